"""The registry and base types of `dcsim.policies.scheduling` (what a scheduler is: see the
package): its package imports them and every member, so that each member registers; members
import this module, not the package."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from dcsim.policies.views import JobView, Placement, ServerView
from dcsim.registry import Registry
from dcsim.rng import RandomStreams

__all__ = ["SCHEDULERS", "Scheduler", "Gate", "CarbonSignal", "ESTIMATE_STREAM", "EPS"]

SCHEDULERS: Registry[Scheduler] = Registry("scheduler")

ESTIMATE_STREAM = "scheduler.estimates"
EPS = 1e-6  # seconds, GPU-seconds: slack for clock rounding at decision times


class CarbonSignal(Protocol):
    """The grid's carbon intensity over run time, as a scheduler sees it (the scenario's
    hourly or flat series times PUE, dcsim/energy/grid.py `HourlyRate`)."""

    offset_s: float  # the series' hours start at run time -offset_s + k x 3600

    @property
    def end_s(self) -> float:
        """Where the series ends in run time (inf: it wraps around)."""
        ...

    def cumulative(self, t: Any) -> Any:
        """The intensity integrated over run time [0, t] (an array of times)."""
        ...


class Gate:
    """One round's control over the walk of the ordered queue (default: let every job that fits
    start; go past a job that cannot start iff `backfill`)."""

    def __init__(self, backfill: bool) -> None:
        self.backfill = backfill

    def allow(self, job: JobView, placement: Placement, servers: Sequence[ServerView]) -> bool:
        """May `job`, which fits now on `placement`, start?"""
        return True

    def blocked(self, job: JobView, servers: Sequence[ServerView]) -> bool:
        """`job` cannot start now: go on with the next job (True) or end the round (False)?"""
        return self.backfill

    def started(self, job: JobView, placement: Placement, servers: Sequence[ServerView]) -> None:
        """`job` was launched on `placement` in this round."""


class Scheduler:
    name: ClassVar[str]
    backfill: ClassVar[bool] = False
    # A key that fixes each queued job's rank for its whole wait, so that `order(queue)` is
    # `sorted(queue, key=static_key)`. A strict scheduler with one (no backfill, gate,
    # preemption or decision times) lets the engine keep the queue as a heap and look only at
    # its head each round.
    static_key: ClassVar[Callable[[JobView], Any] | None] = None
    # Which optional hooks the scheduler uses, declared (the engine skips the others' costs;
    # tests/test_schedulers.py checks that a class declares each hook it overrides)
    gates: ClassVar[bool] = False  # `gate`: a per-round rule beyond `backfill`
    preempts: ClassVar[bool] = False  # `preempt`: may stop running jobs
    timed_decisions: ClassVar[bool] = False  # `next_decision_s`: rounds at times of its own
    uses_carbon: ClassVar[bool] = False  # `bind_carbon`: reads the grid's carbon intensity
    holds: ClassVar[bool] = False  # `hold_until`: may hold a job back as it enters the queue
    # under a facility power budget, start a job that does not fit at full power under a GPU
    # power cap (params.min_cap_fraction) instead of holding it (dcsim/engine/budget.py)
    caps_power: ClassVar[bool] = False

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def bind(self, streams: RandomStreams) -> None:
        """The scenario's random streams (called once by the engine, before the run)."""

    def bind_carbon(self, carbon: CarbonSignal) -> None:
        """The grid's carbon intensity (called once by the engine, before the run, only if the
        class declares `uses_carbon`; the scenario must then give a carbon source)."""

    def hold_until(self, job: JobView, now_s: float) -> float:
        """As `job` enters the queue (arrival, or back after a preemption or failure): the
        time before which it is not offered GPUs (now: not held). It stays in the queue and
        out of `order`'s input until then. Called only if the class declares `holds`."""
        return now_s

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        raise NotImplementedError

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        """Running jobs (ids) to stop so that `head` can start; none by default."""
        return []

    def gate(self, running: Sequence[JobView], now_s: float) -> Gate:
        """This round's gate (see `Gate`); the engine calls it only if the class declares
        `gates`."""
        return Gate(self.backfill)

    def next_decision_s(self, running: Sequence[JobView], queue: Sequence[JobView],
                        now_s: float) -> float | None:
        """The next time after now at which a round may decide differently, though no job
        arrives or ends; None: arrivals and completions are enough."""
        return None
