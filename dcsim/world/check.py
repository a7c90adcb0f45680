"""The checks across a scenario's sections that need built objects: registered kinds with
valid params, the trace's rows, profile and throughput files, a buildable cluster and
topology, datasets and checkpoints that fit their tiers, and a failure trace that names this
cluster's parts. Every problem is located (`file:line: key.path: message`)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario.base import KindParams
from dcsim.scenario.jobs import JobSpec
from dcsim.scenario.load import pydantic_problems
from dcsim.scenario.models import NetModel
from dcsim.scenario.schema import Scenario
from dcsim.world.build import World, build_world
from dcsim.world.serving import check_services
from dcsim.yamlsrc import Located, key_path

__all__ = ["check_world"]

M = TypeVar("M", bound=BaseModel)


def check_world(sc: Scenario, doc: Located) -> list[Problem]:
    """Every cross-section problem of a schema-valid scenario (`doc`: where its keys are), in
    order; a group of checks runs only if the ones before found nothing."""
    problems = (_check_kinds(sc, doc) + _check_engine_kinds(sc, doc) + _check_nets(sc, doc)
                + _check_distributions(sc, doc))
    problems += _check_files(sc, doc) if not problems else []
    problems += _check_profiles(sc, doc) if not problems else []
    problems += _check_throughputs(sc, doc) if not problems else []
    if problems:
        return problems
    world, problems = _check_build(sc, doc)  # built once, for the checks that follow
    if world is None:
        return problems
    problems += _check_storage(sc, doc, world)
    problems += _check_faults(sc, doc, world) if not problems else []
    problems += _check_power(sc, doc, world) if not problems else []
    problems += _check_services(sc, doc, world) if not problems else []
    return problems


def _check_services(sc: Scenario, doc: Located, world: World) -> list[Problem]:
    """Services (docs/serving.md): models that fit their replicas, replicas that fit the
    cluster, request traces that read cleanly (each bad row located in its file). Runs last:
    it takes the replicas' GPUs from this check's own cluster."""
    if not sc.services:
        return []
    from dcsim.rng import RandomStreams
    from dcsim.scenario.serving import TraceStream
    from dcsim.serving.requests import make_requests

    problems = []
    for i, spec in enumerate(sc.services):
        if isinstance(spec.requests, TraceStream):
            path = sc.resolve_path(spec.requests.path)
            if not path.is_file():
                problems.append(Problem(*doc.where(("services", i, "requests", "path")),
                                        f"services.{i}.requests.path",
                                        f"no such file: {path}"))
                continue
            try:
                make_requests(spec.requests, RandomStreams(sc.seed).stream("check"),
                              sc.base_dir, f"services.{i}.requests")
            except ScenarioError as exc:
                problems += exc.problems
    names = [s.name for s in sc.services]
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(Problem(*doc.where(("services", i, "name")),
                                    f"services.{i}.name", f"{name!r} is used by another "
                                    f"service; names must be unique"))
    if problems:
        return problems
    return check_services(sc, world.cluster, doc.where)


def _check_power(sc: Scenario, doc: Located, world: World) -> list[Problem]:
    """The grid series read cleanly (each problem located in its file), cover `power.start`,
    and, without `wrap`, the horizon; every GPU type of the cluster has power figures."""
    try:
        grid = world.grid
    except ScenarioError as exc:
        return exc.problems
    try:
        model = world.power
    except ValueError as exc:  # an override against a catalog figure: "power.gpus.NAME: ..."
        where, _, message = str(exc).partition(": ")
        key = tuple(where.split("."))
        return [Problem(*doc.where(key), where, message)]
    problems = []
    for name in world.cluster.gpu_specs:
        try:
            model.gpu(name)
        except KeyError as exc:
            problems.append(Problem(*doc.where(("cluster",)), "cluster", str(exc.args[0])))
    from dcsim.policies import SCHEDULERS

    if SCHEDULERS.get(sc.scheduler.kind).uses_carbon and grid.carbon is None:
        key = ("scheduler", "kind")
        problems.append(Problem(*doc.where(key), key_path(key), (
            f"{sc.scheduler.kind!r} reads the grid's carbon intensity: give power.zone, "
            "power.carbon (an hourly series) or power.carbon_g_per_kwh")))
    if sc.cost is not None:
        problems += _check_cost(sc, doc, world, grid)
    if SCHEDULERS.get(sc.scheduler.kind).caps_power and sc.power.budget_kw is None:
        key = ("scheduler", "kind")
        problems.append(Problem(*doc.where(key), key_path(key), (
            f"{sc.scheduler.kind!r} caps GPU power to keep within a facility power budget: "
            "give power.budget_kw")))
    budget = sc.power.budget_kw
    if budget is not None and not problems:

        key = ("power", "budget_kw")
        if SCHEDULERS.get(sc.scheduler.kind).preempts:
            problems.append(Problem(*doc.where(key), key_path(key), (
                f"a power budget works with schedulers that do not preempt; "
                f"{sc.scheduler.kind!r} preempts")))
        idle_kw = world.idle_it_w() * max(grid.pue.values) / 1e3
        if idle_kw > budget:
            problems.append(Problem(*doc.where(key), key_path(key), (
                f"{budget:g} kW is below the cluster's idle facility power, {idle_kw:,.1f} kW "
                f"(every server in service, nothing running, at PUE {max(grid.pue.values):g})")))
    if sc.horizon_s is not None:
        for rate in (grid.carbon, grid.price):
            try:
                if rate is not None:
                    rate.check_covers(sc.horizon_s)
            except ScenarioError as exc:
                key = ("power", "beyond_series")
                problems += [Problem(*doc.where(key), key_path(key), str(p)) for p in exc.problems]
    return problems


def _check_cost(sc: Scenario, doc: Located, world: World, grid) -> list[Problem]:
    """TCO needs an electricity price and a price for every server of the cluster."""
    problems = []
    if grid.price is None:
        key = ("cost",)
        problems.append(Problem(*doc.where(key), "cost", (
            "the total cost of ownership needs an electricity price: give power.zone, "
            "power.price (an hourly series) or power.price_usd_per_mwh")))
    try:
        world.capex()
    except KeyError as exc:
        problems.append(Problem(*doc.where(("cluster",)), "cluster", str(exc.args[0])))
    return problems


def _check_kinds(sc: Scenario, doc: Located) -> list[Problem]:
    """Each {kind, params} block names a registered component with valid params."""
    from dcsim.fabric.topology import TOPOLOGIES
    from dcsim.policies import PLACEMENTS, SCHEDULERS
    from dcsim.workload.formats import FORMATS

    problems = []
    trace = sc.workload.trace
    if trace is not None and trace.format not in FORMATS:
        msg = f"unknown trace format {trace.format!r}; valid: {', '.join(FORMATS.names())}"
        key = ("workload", "trace", "format")
        problems.append(Problem(*doc.where(key), key_path(key), msg))
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


def _check_engine_kinds(sc: Scenario, doc: Located) -> list[Problem]:
    """`engine.network` names a registered flow fabric; `engine.step_model` and each job's
    `step_model` a registered step model, one that needs throughput tables only with
    `engine.throughputs`."""
    from dcsim.fabric.flows import FLOW_FABRICS
    from dcsim.perf.select import STEP_MODELS

    problems = []
    if sc.engine.network not in FLOW_FABRICS:
        msg = (f"unknown {FLOW_FABRICS.what} {sc.engine.network!r}; valid: "
               f"{', '.join(FLOW_FABRICS.names())}")
        problems.append(Problem(*doc.where(("engine", "network")), "engine.network", msg))
    wants = [(("engine", "step_model"), sc.engine.step_model)]
    wants += [((*path, "step_model"), job.step_model)
              for path, job in _found(sc, (), JobSpec) if job.step_model is not None]
    for key, name in wants:
        if name not in STEP_MODELS:
            msg = f"unknown {STEP_MODELS.what} {name!r}; valid: {', '.join(STEP_MODELS.names())}"
        elif STEP_MODELS.get(name).needs_tables and not sc.engine.throughputs:
            msg = (f"step model {name!r} needs engine.throughputs (a table of measured "
                   "throughputs)")
        else:
            continue
        problems.append(Problem(*doc.where(key), key_path(key), msg))
    return problems


def _check_files(sc: Scenario, doc: Located) -> list[Problem]:
    """The trace exists and its rows are valid (or skipped, if the scenario says so); reading
    it is remembered for the build (dcsim/workload/traces.py: a big trace is read once)."""
    from dcsim.workload.traces import load_trace

    trace = sc.workload.trace
    if trace is None:
        return []
    if not sc.resolve_path(trace.path).is_file():
        path = ("workload", "trace", "path")
        msg = f"trace file not found: {sc.resolve_path(trace.path)}"
        return [Problem(*doc.where(path), key_path(path), msg)]
    try:
        load_trace(sc)
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
        from dcsim.perf.select import STEP_MODELS
        from dcsim.workload.traces import load_trace

        for name in sorted({j.step_model for j in load_trace(sc).jobs if j.step_model}):
            if not STEP_MODELS.get(name).needs_tables:
                continue
            wants = [j for j in load_trace(sc).jobs if j.step_model == name]
            key = ("workload", "trace", "path")
            problems.append(Problem(*doc.where(key), key_path(key),
                                    f"{len(wants)} trace jobs (first: {wants[0].name}) ask for "
                                    f"step_model {name}: it needs engine.throughputs"))
    return problems


def _check_build(sc: Scenario, doc: Located) -> tuple[World | None, list[Problem]]:
    """The cluster and its topology can be built (e.g. every link has bandwidth > 0): the
    world built, or None and why."""
    from dcsim.hardware import ClusterError

    try:
        return build_world(sc), []
    except ClusterError as exc:
        key = ("cluster", "servers", exc.group, *exc.key)
        return None, [Problem(*doc.where(key), ".".join(map(str, key)), str(exc))]
    except ValueError as exc:
        return None, [Problem(*doc.where(("topology",)), "topology", str(exc))]


def _found(node: object, path: tuple, cls: type[M]) -> list[tuple[tuple, M]]:
    """Every `cls` model in a validated scenario (outermost only), with its key path."""
    if isinstance(node, cls):
        return [(path, node)]
    if isinstance(node, BaseModel):
        return [found for name in type(node).model_fields
                for found in _found(getattr(node, name), (*path, name), cls)]
    if isinstance(node, list | tuple):
        return [found for i, item in enumerate(node) for found in _found(item, (*path, i), cls)]
    if isinstance(node, dict):
        return [found for k, v in node.items() for found in _found(v, (*path, k), cls)]
    return []


def _check_nets(sc: Scenario, doc: Located) -> list[Problem]:
    """Each `kind: net` model names a registered architecture (dcsim/perf/nets/) and gives
    it valid params (the builder's typed `Params`)."""
    from dcsim.perf.nets import NETS

    problems = []
    for path, net in _found(sc, (), NetModel):
        if net.arch not in NETS:
            msg = f"unknown net arch {net.arch!r}; valid: {', '.join(NETS.names())}"
        else:
            try:
                NETS.get(net.arch).Params(**net.params)
                continue
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                text = err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    text = "unknown key"
                msg = f"params.{where}: {text}"
        problems.append(Problem(*doc.where(path), key_path(path), msg))
    return problems


def _check_distributions(sc: Scenario, doc: Located) -> list[Problem]:
    """Each failure and repair distribution is registered and given only the parameters it
    takes (a `shape` on an exponential is an error, not ignored)."""
    from dcsim.faults.distributions import REPAIRS, TTF, check_params

    faults = sc.faults
    if faults is None:
        return []
    blocks: list[tuple[tuple, object, object]] = [(("faults", "repair"), faults.repair, REPAIRS)]
    for comp, cf in faults.components.items():
        blocks.append((("faults", "components", comp), cf, TTF))
        if cf.repair is not None:
            blocks.append((("faults", "components", comp, "repair"), cf.repair, REPAIRS))
    problems = []
    for at, spec, registry in blocks:
        why = check_params(registry, spec.distribution, spec.model_fields_set,  # type: ignore
                           {"shape", "sigma"})
        if why is not None:
            key = (*at, "distribution")
            problems.append(Problem(*doc.where(key), key_path(key), why))
    return problems


def _check_faults(sc: Scenario, doc: Located, world: World) -> list[Problem]:
    """The failure trace exists, its rows are valid and name instances of this cluster
    (`file:line:column: message`)."""
    faults = sc.faults
    if faults is None or faults.trace is None:
        return []
    from dcsim.faults.instances import Instances, TargetError
    from dcsim.faults.trace import read_failure_trace

    path = sc.resolve_path(faults.trace.path)
    if not path.is_file():
        key = ("faults", "trace", "path")
        return [Problem(*doc.where(key), key_path(key), f"failure trace not found: {path}")]
    try:
        rows = read_failure_trace(path)
    except ScenarioError as exc:
        return exc.problems
    inst = Instances(world.cluster, world.network.graph)
    problems = []
    for row in rows:
        try:
            inst.resolve(row.component, row.target)
        except TargetError as exc:
            problems.append(Problem(str(path), row.line, "", str(exc), "target"))
    return problems


def _check_storage(sc: Scenario, doc: Located, world: World) -> list[Problem]:
    """Each inline job's dataset fits its tier and its checkpoint fits the checkpoint tier
    (trace and generated jobs are checked at submission, and rejected with the reason)."""
    jobs = sc.workload.jobs or []
    if sc.storage is None and sc.checkpoint is None and not any(
            j.dataset is not None or j.checkpoint is not None for j in jobs):
        return []
    model = world.storage
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
