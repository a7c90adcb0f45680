"""Stepping SimPy's clock to the end of a run, with the guards that turn a defect into a
message: a NaN event time, or time that stops advancing, is a SimulationError, never a silent
stop or a hang."""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from dcsim.errors import SimulationError
from dcsim.jobs import JobState

__all__ = ["step_events", "give_reasons", "MAX_EVENTS_AT_ONE_INSTANT"]

# events at one simulated instant (or 50 per job, if more) after which the run is stuck, not busy
MAX_EVENTS_AT_ONE_INSTANT = 5_000_000


def step_events(env: simpy.Environment, until: float, limit: int | None, jobs: int,
                progress: Callable[[], None] | None = None) -> tuple[int, str | None]:
    """Step events up to `until` (inf: while any is left) or `limit` events (None: no
    limit); `progress()` every 4096 events and at the end. Returns the events processed and
    what stopped the run short, if the limit did."""
    stuck_limit = max(MAX_EVENTS_AT_ONE_INSTANT, 50 * jobs)
    events = same = 0
    last_s = -math.inf
    stopped_by = None
    while True:
        next_s = env.peek()
        if math.isnan(next_s):
            raise SimulationError(f"an event was scheduled at a NaN time after "
                                  f"t={env.now:g} s (please report this scenario)")
        if next_s == math.inf or next_s > until:
            break
        if limit is not None and events >= limit:
            stopped_by = f"engine.max_events ({limit:,}) reached"
            break
        same = same + 1 if next_s == last_s else 0
        if same > stuck_limit:
            raise SimulationError(f"simulated time stopped advancing at t={next_s:g} s: "
                                  f"{same:,} events at one instant (please report this "
                                  f"scenario)")
        last_s = next_s
        env.step()
        events += 1
        if progress is not None and events % 4096 == 0:
            progress()
    if progress is not None:
        progress()
    return events, stopped_by


def give_reasons(open_jobs: list[JobState], end: float, why: str) -> None:
    """Every job still open when the run was cut short at `end` gets its reason: unfinished
    (and in which state) if it had arrived, else not arrived."""
    for job in open_jobs:
        arrived = job.spec.arrival_s <= end
        job.reason = (f"unfinished: {why} while {job.status.value}" if arrived
                      else f"not arrived: {why} before its arrival")
