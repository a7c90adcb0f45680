"""The world: what a scenario builds, and the checks that need it built.

`load_scenario(path)` = read and validate the schema (dcsim.scenario), then `check_world`
(dcsim/world/check.py): the problems that only a built cluster, a read trace or a registry
can show, all located. Layers: the world sits above the domain packages (hardware, fabric,
storage, perf, workload, faults, policies) and below the engine (docs/architecture.md).
"""

from __future__ import annotations

from pathlib import Path

from dcsim.errors import ScenarioError
from dcsim.scenario.load import parse_scenario, validate_schema
from dcsim.scenario.schema import Scenario
from dcsim.world.build import World, build_world
from dcsim.world.check import check_world
from dcsim.yamlsrc import Located

__all__ = ["load_scenario", "scenario_from_dict", "check_world", "World", "build_world"]


def _checked(doc: Located, base_dir: str) -> Scenario:
    sc = validate_schema(doc, base_dir)
    problems = check_world(sc, doc)
    if problems:
        raise ScenarioError(problems)
    return sc


def load_scenario(
    path: str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> Scenario:
    """Read, override (`key.path=value`), and validate a scenario file."""
    return _checked(parse_scenario(path, overrides, seed), str(Path(path).parent))


def scenario_from_dict(data: dict, source: str = "<dict>", base_dir: str = ".") -> Scenario:
    """Validate a scenario given as a Python dict (notebooks, sweeps, tests)."""
    return _checked(Located(data, {}, source), base_dir)
