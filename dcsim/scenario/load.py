"""Loading scenarios: YAML with line numbers, `--set` overrides, and the checks across sections
(registered kinds, trace rows, a buildable cluster). Every problem becomes a
`file:line: key.path: message` in one `ScenarioError`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario.schema import KindParams, Scenario
from dcsim.textfile import read_text
from dcsim.yamlsrc import Located, key_path, load_yaml, parse_yaml

M = TypeVar("M", bound=BaseModel)

__all__ = ["load_scenario", "scenario_from_dict", "apply_overrides"]


def pydantic_problems(exc: ValidationError, doc: Located, prefix: tuple = (),
                      clean: Callable[[tuple, Any], tuple] | None = None,
                      key: Callable[[tuple], str] = key_path) -> list[Problem]:
    """A pydantic error as located problems: each error's path in the document (`clean` drops
    the union tags pydantic inserts; by default the scenario's `_clean_loc`), its file and
    line, the dotted key (`key`) and a plain message."""
    problems = []
    for err in exc.errors():
        path = (clean or _clean_loc)(prefix + tuple(err["loc"]), doc.data)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        problems.append(Problem(*doc.where(path), key(path), msg))
    return problems


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop the union tags pydantic inserts (e.g. 'gpt') so the path matches the document."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_list or (isinstance(node, dict) and part in node):
            node = node[part]
            out.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part not in node:
            # a missing or unknown key under a mapping, or a union tag
            if not _is_tag(part):
                out.append(part)
                node = None
        elif not _is_tag(str(part)):
            out.append(part)
            node = None
    return tuple(out)


def _is_tag(part: Any) -> bool:
    tags = {"gpt", "bert", "cnn", "dlrm", "mlp", "custom", "net", "str", "poisson", "philly"}
    return isinstance(part, str) and (part in tags or "[" in part)


def _check_kinds(sc: Scenario, doc: Located) -> list[Problem]:
    """Each {kind, params} block names a registered component with valid params."""
    from dcsim.fabric.topology import TOPOLOGIES
    from dcsim.policies import PLACEMENTS, SCHEDULERS

    problems = []
    for key, registry in (("topology", TOPOLOGIES), ("scheduler", SCHEDULERS),
                          ("placement", PLACEMENTS)):
        block: KindParams = getattr(sc, key)
        if block.kind not in registry:
            msg = f"unknown {registry.what} {block.kind!r}; valid: {', '.join(registry.names())}"
            problems.append(Problem(*doc.where((key, "kind")), f"{key}.kind", msg))
            continue
        try:
            registry.get(block.kind).Params(**block.params)
        except ValidationError as exc:
            problems += pydantic_problems(exc, doc, (key, "params"))
    return problems


def _check_files(sc: Scenario, doc: Located) -> list[Problem]:
    """The trace exists and its rows are valid (or skipped, if the scenario says so); the jobs
    read are kept on the scenario for the build (a big trace is read once)."""
    from dcsim.workload.traces import load_trace, remember

    trace = sc.workload.trace
    if trace is None:
        return []
    if not sc.resolve_path(trace.path).is_file():
        path = ("workload", "trace", "path")
        msg = f"trace file not found: {sc.resolve_path(trace.path)}"
        return [Problem(*doc.where(path), key_path(path), msg)]
    try:
        remember(sc, load_trace(sc))
    except ScenarioError as exc:
        return exc.problems
    return []


def _check_profiles(sc: Scenario, doc: Located) -> list[Problem]:
    """Each `engine.profiles` file exists and is a valid profile file."""
    from dcsim.perf.profile import ProfileError, load_profile_file

    problems = []
    for i, path in enumerate(sc.engine.profiles):
        key = ("engine", "profiles", i)
        try:
            load_profile_file(sc.resolve_path(path))
        except ScenarioError as exc:  # unreadable, not text, not YAML: located in that file
            problems += [Problem(*doc.where(key), key_path(key), str(p))
                         for p in exc.problems]
        except ProfileError as exc:
            problems.append(Problem(*doc.where(key), key_path(key),
                                    f"{sc.resolve_path(path)}: {exc}"))
    return problems


def _check_throughputs(sc: Scenario, doc: Located) -> list[Problem]:
    """Each `engine.throughputs` table reads cleanly (every problem located in its file); a
    trace job that asks for the measured model has tables to look in."""
    from dcsim.perf.tables import read_table

    problems = []
    for i, src in enumerate(sc.engine.throughputs):
        path = sc.resolve_path(src.path)
        if not path.exists():
            key = ("engine", "throughputs", i, "path")
            problems.append(Problem(*doc.where(key), key_path(key),
                                    f"throughput table not found: {path}"))
            continue
        try:
            read_table(sc.resolve_path(src.path), src.format, src.gpus)
        except ScenarioError as exc:
            problems += exc.problems
    if not sc.engine.throughputs and sc.workload.trace is not None:
        from dcsim.workload.traces import cached_trace

        wants = [j for j in cached_trace(sc).jobs if j.step_model == "measured"]
        if wants:
            key = ("workload", "trace", "path")
            problems.append(Problem(*doc.where(key), key_path(key),
                                    f"{len(wants)} trace jobs (first: {wants[0].name}) ask for "
                                    "step_model measured: it needs engine.throughputs"))
    return problems


def _check_build(sc: Scenario, doc: Located) -> list[Problem]:
    """The cluster and its topology can be built (e.g. every link has bandwidth > 0)."""
    from dcsim.hardware import ClusterError, build_cluster, build_network

    try:
        build_network(sc, build_cluster(sc))
    except ClusterError as exc:
        key = ("cluster", "servers", exc.group, *exc.key)
        return [Problem(*doc.where(key), ".".join(map(str, key)), str(exc))]
    except ValueError as exc:
        return [Problem(*doc.where(("topology",)), "topology", str(exc))]
    return []


def _check_faults(sc: Scenario, doc: Located) -> list[Problem]:
    """The failure trace exists, its rows are valid and name instances of this cluster
    (`file:line:column: message`)."""
    faults = sc.faults
    if faults is None or faults.trace is None:
        return []
    from dcsim.faults.model import Instances, TargetError
    from dcsim.faults.trace import read_failure_trace
    from dcsim.hardware import build_cluster, build_network

    path = sc.resolve_path(faults.trace.path)
    if not path.is_file():
        key = ("faults", "trace", "path")
        return [Problem(*doc.where(key), key_path(key), f"failure trace not found: {path}")]
    try:
        rows = read_failure_trace(path)
    except ScenarioError as exc:
        return exc.problems
    cluster = build_cluster(sc)
    inst = Instances(cluster, build_network(sc, cluster).graph)
    problems = []
    for row in rows:
        try:
            inst.resolve(row.component, row.target)
        except TargetError as exc:
            problems.append(Problem(str(path), row.line, "", str(exc), "target"))
    return problems


def _check_storage(sc: Scenario, doc: Located) -> list[Problem]:
    """Each inline job's dataset fits its tier and its checkpoint fits the checkpoint tier
    (trace and generated jobs are checked at submission, and rejected with the reason)."""
    jobs = sc.workload.jobs or []
    if sc.storage is None and sc.checkpoint is None and not any(
            j.dataset is not None or j.checkpoint is not None for j in jobs):
        return []
    from dcsim.hardware import build_cluster
    from dcsim.storage import StorageModel

    model = StorageModel(sc, build_cluster(sc).servers)
    problems = []
    for i, job in enumerate(jobs):
        bad = model.problem(job)
        if bad is None:
            continue
        sub, msg = bad
        key = (("checkpoint", *sub[1:]) if sub[0] == "<scenario>"
               else ("workload", "jobs", i, *sub))
        if sub[0] == "<scenario>":
            msg = f"job {job.name!r}: {msg}"
        if sub[0] == "dataset" and job.dataset is None:
            key = ("workload", "jobs", i, "model")
            msg = f"its default dataset: {msg} (give the job a smaller `dataset`)"
        problems.append(Problem(*doc.where(key), key_path(key), msg))
    return problems


def validate_doc(doc: Located, model: type[M], what: str, **located: Any) -> M:
    """The document as a `model`, or a ScenarioError of located problems (`located`: the
    `clean` and `key` of `pydantic_problems`); `what` names the file kind in the message
    for a document that is not a mapping."""
    if not isinstance(doc.data, dict):
        raise ScenarioError([Problem(doc.source, 1, "", f"a {what} must be a YAML mapping")])
    try:
        return model.model_validate(doc.data)
    except ValidationError as exc:
        raise ScenarioError(pydantic_problems(exc, doc, **located)) from None


def _validate(doc: Located, base_dir: str) -> Scenario:
    sc = validate_doc(doc, Scenario, "scenario")
    sc._base_dir = base_dir
    problems = _check_kinds(sc, doc)
    problems += _check_files(sc, doc) if not problems else []
    problems += _check_profiles(sc, doc) if not problems else []
    problems += _check_throughputs(sc, doc) if not problems else []
    problems += _check_build(sc, doc) if not problems else []
    problems += _check_storage(sc, doc) if not problems else []
    problems += _check_faults(sc, doc) if not problems else []
    if problems:
        raise ScenarioError(problems)
    return sc


def apply_overrides(data: dict, overrides: list[str], source: str = "--set") -> dict:
    """Apply `key.path=value` overrides (value parsed as YAML) to a copy of `data`."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ScenarioError([Problem(source, None, item, "expected key.path=value")])
        node: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            idx: Any = int(part) if isinstance(node, list) and part.isdigit() else part
            if isinstance(node, dict) and idx not in node:
                node[idx] = {}  # a section the file leaves to its defaults
            try:
                node = node[idx]
            except (KeyError, IndexError, TypeError):
                raise ScenarioError([Problem(source, None, key, f"no such key {part!r}")]) from None
        last = parts[-1]
        if isinstance(node, list) and last.isdigit():
            if int(last) >= len(node):
                raise ScenarioError([Problem(source, None, key, f"no such item {last}")])
            node[int(last)] = load_yaml(raw, f"--set {item}")
        elif isinstance(node, dict):
            node[last] = load_yaml(raw, f"--set {item}")
        else:
            raise ScenarioError([Problem(source, None, key, "cannot set a key here")])
    return data


def _override_path(item: str, data: Any) -> tuple:
    path: list[str | int] = []
    node = data
    for part in item.partition("=")[0].split("."):
        key: str | int = int(part) if isinstance(node, list) and part.isdigit() else part
        path.append(key)
        node = node[key] if isinstance(node, dict | list) else None
    return tuple(path)


def load_scenario(
    path: str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> Scenario:
    """Read, override (`key.path=value`), and validate a scenario file."""
    path = Path(path)
    source = str(path)
    doc = parse_yaml(read_text(path, "scenario"), source)
    if overrides or seed is not None:
        if not isinstance(doc.data, dict):
            raise ScenarioError([Problem(source, 1, "", "a scenario must be a YAML mapping")])
        data = apply_overrides(doc.data, list(overrides or []))
        given = {_override_path(item, data): item for item in overrides or []}
        if seed is not None:
            data["seed"] = seed
            given[("seed",)] = f"--seed {seed}"
        doc = Located(data, doc.lines, source, given)
    return _validate(doc, str(path.parent))


def scenario_from_dict(data: dict, source: str = "<dict>", base_dir: str = ".") -> Scenario:
    """Validate a scenario given as a Python dict (notebooks, sweeps, tests)."""
    return _validate(Located(data, {}, source), base_dir)
