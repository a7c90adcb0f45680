"""Parameter sweeps: a YAML file of factors over a base scenario, expanded into points (grid,
random or Latin hypercube, times replicate seeds), run in parallel (local processes or Ray),
resumable, and gathered into one tidy table (docs/sweeps.md).

    >>> import dcsim
    >>> table = dcsim.run_sweep("sweeps/scheduler_vs_size.yaml", "results/sweep")  # doctest: +SKIP

`dcsim.sweep.plots.response` draws a metric against a factor with a confidence band.
"""

from dcsim.sweep.design import Plan, Point, plan_sweep
from dcsim.sweep.runner import SweepReport, run_sweep
from dcsim.sweep.spec import Sweep, SweepSpec, read_sweep, sweep_from_dict
from dcsim.sweep.store import TIMING_COLUMNS, load_sweep

__all__ = ["Plan", "Point", "Sweep", "SweepReport", "SweepSpec", "TIMING_COLUMNS", "load_sweep",
           "plan_sweep", "read_sweep", "run_sweep", "sweep_from_dict"]
