"""The simulation engine: the only place that wires SimPy processes together.

`simulation.py` holds `Simulation` (build, the event loop, runners, rounds) and `simulate`;
`ledger.py` keeps each job's storage and checkpoint books (plans, restore points, totals,
the last completed checkpoint); `collect.py` turns a finished run into `Results`.
docs/architecture.md has the split still to come (runner, pace, rounds).
"""

from dcsim.engine.simulation import Simulation, simulate

__all__ = ["Simulation", "simulate"]
