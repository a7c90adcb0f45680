"""The layers of docs/architecture.md, enforced: a module imports only from its own layer or
below, counting imports inside functions and under TYPE_CHECKING. Where the code does not yet
reach the design, the upward imports are listed in KNOWN (the redesign of issue 15 removes
them); a new upward import fails, and so does an entry of KNOWN that no longer exists, so the
list can only shrink."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

# lowest first; a module belongs to the layer of its longest matching prefix
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("leaf", ("dcsim.errors", "dcsim.units", "dcsim.rng", "dcsim.registry", "dcsim.textfile",
              "dcsim.yamlsrc", "dcsim.kernels", "dcsim.catalog", "dcsim.compression",
              "dcsim.outdir", "dcsim._version")),
    ("schema", ("dcsim.scenario",)),
    # domain logic, testable without SimPy; `policies.views` are the read-only records that
    # policies decide over (plain data, no logic) and `policies.index` the cluster's sorted index
    # of free GPUs they query, both shared with the state that makes them
    ("domain", ("dcsim.perf", "dcsim.fabric", "dcsim.storage", "dcsim.faults",
                "dcsim.workload", "dcsim.hardware", "dcsim.metrics", "dcsim.results",
                "dcsim.execute", "dcsim.policies.views", "dcsim.policies.index", "dcsim.jobs",
                "dcsim.energy",
                "dcsim.serving")),
    ("policies", ("dcsim.policies",)),
    ("world", ("dcsim.world",)),
    ("engine", ("dcsim.engine",)),
    ("shell", ("dcsim.cli", "dcsim.sweep", "dcsim.plotting", "dcsim.tools", "dcsim.__main__",
               "dcsim.scenarios")),
]

# upward imports still in the code (importer, imported): what issue 15 has left to do
KNOWN: set[tuple[str, str]] = set()


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """dcsim modules `path` imports anywhere in it (resolved to the modules that exist)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found |= {f"{target}.{a.name}" for a in node.names} | {target}
    out = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target.startswith("dcsim.") and target != name:
            out.add(target)
    return out  # the package root `dcsim` (lazy re-exports) is everyone's and not counted


def _layer(module: str) -> int:
    best = (-1, -1)
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best[1]:
                best = (i, len(p))
    assert best[0] >= 0, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in (REPO / "dcsim").rglob("*.py")}
    names = set(paths)
    return {m: _imports(p, m, names) for m, p in paths.items() if m != "dcsim"}


def test_imports_point_down_the_layers():
    upward = {(m, d) for m, deps in _graph().items() for d in deps if _layer(d) > _layer(m)}
    new = sorted(upward - KNOWN)
    assert not new, "imports that reach a layer above: " + ", ".join(f"{a} -> {b}"
                                                                      for a, b in new)
    gone = sorted(KNOWN - upward)
    assert not gone, f"fixed, so remove from KNOWN: {gone}"


def test_the_schema_imports_only_catalog_errors_and_the_yaml_reader():
    graph = _graph()
    allowed = {"dcsim.catalog", "dcsim.errors", "dcsim.yamlsrc", "dcsim.textfile",
               "dcsim.units"}
    for module, deps in graph.items():
        if module.startswith("dcsim.scenario"):
            outside = {d for d in deps if not d.startswith("dcsim.scenario")} - allowed
            assert outside <= {d for m, d in KNOWN if m == module}, (module, outside)


def test_no_import_circles():
    """No module reaches itself through its imports: registry packages import their members
    from `__init__` and the members import `base`, not the package; failures reach the
    engine only through the FaultHost protocol (dcsim/faults/host.py)."""
    import networkx as nx

    graph = nx.DiGraph([(a, b) for a, deps in _graph().items() for b in deps])
    circles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert circles == [], circles
