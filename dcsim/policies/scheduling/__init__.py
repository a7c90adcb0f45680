"""Schedulers: the order in which queued jobs are offered GPUs, and whether jobs may pass.

A scheduler is a pure policy over read-only `JobView`s (docs/scenario-reference.md#scheduler-
and-placement has every kind, param and formula):

- `order(queue, now)`: the queue in the order jobs are tried;
- `backfill`: whether the walk goes on past a job that cannot start (True) or stops there;
- `preempt(head, running, now)`: running jobs to stop so that `head` can start (none by
  default);
- `gate(running, now)`: an optional per-round `Gate` that may refuse a job that would fit
  (EASY's reservation) and decides whether the walk goes on past a job that cannot start;
- `next_decision_s(running, queue, now)`: the next time, other than an arrival or a
  completion, at which the order or the preemptions may change (a service threshold, a lease,
  a starvation limit); the engine runs a round then. Called only while the queue is not empty.
- `bind(streams)`: called once by the engine with the scenario's random streams (for
  schedulers that draw estimates);
- `hold_until(job, now)`: as a job enters the queue, the time before which it is not offered
  GPUs (declared by `holds`; carbon-aware holds deferrable jobs);
- `bind_carbon(carbon)`: the grid's carbon intensity over run time, for a scheduler that
  declares `uses_carbon` (carbon-aware).

Every job is gang-scheduled: it gets all its GPUs at once or waits.
"""

from __future__ import annotations

from dcsim.policies.scheduling.base import (
    ESTIMATE_STREAM,
    SCHEDULERS,
    CarbonSignal,
    Gate,
    Scheduler,
)

__all__ = ["SCHEDULERS", "Scheduler", "Gate", "CarbonSignal", "ESTIMATE_STREAM"]

# Register the schedulers, in this order: fifo, priority, sjf, srtf, easy; las, themis;
# carbon-aware; power-capped.
from dcsim.policies.scheduling import classic, fairness, carbon, power  # noqa: F401,I001
