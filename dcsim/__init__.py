"""dcsim: a discrete-event simulator of GPU datacenters that train AI models.

    >>> import dcsim
    >>> scenario = dcsim.load_scenario("scenarios/quickstart.yaml")   # doctest: +SKIP
    >>> results = dcsim.simulate(scenario)                             # doctest: +SKIP
    >>> results.summary()["jct_mean_s"]                                # doctest: +SKIP

The public names are imported on first use, so `import dcsim` (and `dcsim --help`) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dcsim._version import __version__

_EXPORTS = {
    "JobSpec": "dcsim.scenario",
    "Scenario": "dcsim.scenario",
    "load_scenario": "dcsim.world",
    "scenario_from_dict": "dcsim.world",
    "World": "dcsim.world",
    "build_world": "dcsim.world",
    "Problem": "dcsim.errors",
    "ScenarioError": "dcsim.errors",
    "SimulationError": "dcsim.errors",
    "UsageError": "dcsim.errors",
    "DcsimError": "dcsim.errors",
    "Results": "dcsim.results",
    "load_results": "dcsim.results",
    "compare": "dcsim.results",
    "Simulation": "dcsim.engine",
    "simulate": "dcsim.engine",
    "run_sweep": "dcsim.sweep",
    "load_sweep": "dcsim.sweep",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # the names above, for type checkers and IDEs
    from dcsim.engine import Simulation, simulate  # noqa: F401
    from dcsim.errors import (  # noqa: F401
        DcsimError,
        Problem,
        ScenarioError,
        SimulationError,
        UsageError,
    )
    from dcsim.results import Results, compare, load_results  # noqa: F401
    from dcsim.scenario import JobSpec, Scenario  # noqa: F401
    from dcsim.sweep import load_sweep, run_sweep  # noqa: F401
    from dcsim.world import World, build_world, load_scenario, scenario_from_dict  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dcsim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
