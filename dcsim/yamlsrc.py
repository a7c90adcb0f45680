"""YAML with positions: parse a document and remember the line of every key path."""

from __future__ import annotations

from typing import Any

import yaml

from dcsim.errors import Problem, ScenarioError

__all__ = ["Located", "parse_yaml", "key_path"]

PathKey = tuple[str | int, ...]


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


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines)


def parse_yaml(text: str, source: str) -> Located:
    """Parse `text`; a syntax error becomes a ScenarioError with its line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        msg = f"invalid YAML: {exc.problem or exc}"
        raise ScenarioError([Problem(source, line, "", msg)]) from None
    lines: dict[PathKey, int] = {}
    if node is not None:
        _walk(node, (), lines)
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
