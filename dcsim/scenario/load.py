"""Reading scenarios: YAML with line numbers, `--set` overrides, and the schema's validation.
Every problem becomes a `file:line: key.path: message` in one `ScenarioError`.

This is the schema layer only: `parse_scenario` and `validate_schema` check the YAML's shape
and single values. The checks that need built objects (registered kinds, trace rows, a
buildable cluster) are `dcsim.world.check_world`; `dcsim.world.load_scenario` runs both."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario.schema import Scenario
from dcsim.textfile import read_text
from dcsim.yamlsrc import Located, key_path, load_yaml, parse_yaml

M = TypeVar("M", bound=BaseModel)

__all__ = ["parse_scenario", "validate_schema", "apply_overrides", "validate_doc",
           "pydantic_problems"]


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


def validate_doc(doc: Located, model: type[M], what: str, context: dict | None = None,
                 **located: Any) -> M:
    """The document as a `model`, or a ScenarioError of located problems (`located`: the
    `clean` and `key` of `pydantic_problems`); `what` names the file kind in the message
    for a document that is not a mapping; `context` is pydantic's validation context."""
    if not isinstance(doc.data, dict):
        raise ScenarioError([Problem(doc.source, 1, "", f"a {what} must be a YAML mapping")])
    try:
        return model.model_validate(doc.data, context=context)
    except ValidationError as exc:
        raise ScenarioError(pydantic_problems(exc, doc, **located)) from None


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


def parse_scenario(path: str | Path, overrides: list[str] | None = None,
                   seed: int | None = None) -> Located:
    """A scenario file read, with its `key.path=value` overrides and seed applied, as a
    located document (not yet validated)."""
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
    return doc


def validate_schema(doc: Located, base_dir: str) -> Scenario:
    """The document as a Scenario (shape and single values), its relative paths resolving in
    `base_dir`."""
    return validate_doc(doc, Scenario, "scenario", context={"base_dir": base_dir})
