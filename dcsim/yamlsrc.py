"""YAML with positions: parse a document and remember the line of every key path.

Every YAML input (scenarios, sweeps, tables, profiles, graphs, `--set` values) is read by
`load_yaml` or `parse_yaml`, which refuse what a plain `yaml.safe_load` lets through: a key
given twice in one mapping (no "last one wins"), aliases that refer to themselves, documents
that aliases expand past `MAX_YAML_VALUES` values (an "alias bomb" of a few hundred bytes
can otherwise grow to gigabytes once walked), and nesting deeper than `MAX_YAML_DEPTH`.
Each is a ScenarioError with the file and line.
"""

from __future__ import annotations

from typing import Any

import yaml

from dcsim.errors import Problem, ScenarioError

__all__ = ["Located", "parse_yaml", "load_yaml", "key_path", "MAX_YAML_VALUES",
           "MAX_YAML_DEPTH"]

PathKey = tuple[str | int, ...]

MAX_YAML_VALUES = 2_000_000  # values in a document once every alias is expanded
MAX_YAML_DEPTH = 64  # nested mappings and lists


class Located:
    """Parsed YAML data plus a map from key paths to 1-based line numbers."""

    def __init__(self, data: Any, lines: dict[PathKey, int], source: str,
                 overrides: dict[PathKey, str] | None = None) -> None:
        self.data = data
        self.lines = lines
        self.source = source
        self.overrides = overrides or {}  # path -> the `--set` item that gave its value

    def line_of(self, path: PathKey) -> int | None:
        """Line of the deepest prefix of `path` that the document has."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def where(self, path: PathKey) -> tuple[str, int | None]:
        """(source, line) of the value at `path`: the file, or the override that set it."""
        for given, item in self.overrides.items():
            n = min(len(given), len(path))
            if n and given[:n] == path[:n] and (len(given) <= len(path) or path not in self.lines):
                return (item if item.startswith("--") else f"--set {item}"), None
        return self.source, self.line_of(path)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _check(node: yaml.Node, source: str) -> None:
    """Refuse duplicate keys, self-referring aliases, deep nesting and alias bombs. The
    expanded size is counted once per distinct node (aliases share nodes), so checking a bomb
    costs as little as reading it."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def fail(at: yaml.Node, message: str) -> ScenarioError:
        return ScenarioError([Problem(source, _line(at), "", message)])

    def size(n: yaml.Node, depth: int) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        if id(n) in active:
            raise fail(n, "an alias refers to the value that contains it (recursive alias)")
        if depth > MAX_YAML_DEPTH:
            raise fail(n, f"nested more than {MAX_YAML_DEPTH} levels deep")
        total = 1
        if isinstance(n, yaml.MappingNode | yaml.SequenceNode):
            active.add(id(n))
            if isinstance(n, yaml.MappingNode):
                seen: dict[str, int] = {}
                children = []
                for key_node, value_node in n.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                        if key_node.value in seen:
                            raise fail(key_node, f"key {key_node.value!r} given twice in one "
                                                 f"mapping (first at line {seen[key_node.value]})")
                        seen[key_node.value] = _line(key_node)
                    children += [key_node, value_node]
            else:
                children = n.value
            for child in children:
                total += size(child, depth + 1)
                if total > MAX_YAML_VALUES:
                    raise fail(n, f"the document expands to more than {MAX_YAML_VALUES:,} "
                                  f"values through aliases (limit MAX_YAML_VALUES)")
            active.discard(id(n))
        sizes[id(n)] = total
        return total

    size(node, 0)


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The checked node tree of a one-document YAML text, and its data."""
    try:
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        msg = f"invalid YAML: character {exc.character:#06x} is not allowed in YAML text"
        raise ScenarioError([Problem(source, line, "", msg)]) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check(node, source)
        return node, loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = f"invalid YAML: {exc.problem or exc}"
        raise ScenarioError([Problem(source, line, "", msg)]) from None
    except yaml.YAMLError as exc:  # e.g. a character YAML does not allow (ReaderError)
        raise ScenarioError([Problem(source, None, "", f"invalid YAML: {exc}")]) from None
    except RecursionError:
        line = loader.get_mark().line + 1 if loader.get_mark() is not None else None
        msg = f"invalid YAML: nested more than {MAX_YAML_DEPTH} levels deep"
        raise ScenarioError([Problem(source, line, "", msg)]) from None
    finally:
        loader.dispose()


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], done: set[int]) -> None:
    lines.setdefault(path, _line(node))
    if id(node) in done:
        return  # an alias of a node already walked: its inner lines are those of the anchor
    done.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[path + (key,)] = _line(key_node)
            _walk(value_node, path + (key,), lines, done)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, done)


def load_yaml(text: str, source: str) -> Any:
    """The data of a YAML text, checked as described above; ScenarioError otherwise."""
    return _compose(text, source)[1]


def parse_yaml(text: str, source: str) -> Located:
    """Parse `text` and locate its keys; any problem becomes a ScenarioError with its line."""
    node, data = _compose(text, source)
    lines: dict[PathKey, int] = {}
    if node is not None:
        _walk(node, (), lines, set())
    return Located(data, lines, source)


def key_path(path: PathKey) -> str:
    """('workload', 'jobs', 0, 'model') -> 'workload.jobs[0].model'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
