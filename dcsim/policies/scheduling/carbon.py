"""Carbon-aware scheduling: deferrable jobs wait for cleaner hours, within their deadlines.

The idea is temporal shifting as in Wiesner et al., "Let's Wait Awhile: How Temporal Workload
Shifting Can Reduce Carbon Emissions in the Cloud" (Middleware 2021): a job that may be
delayed starts at the time in its window whose grid carbon intensity, averaged over the job's
expected run, is lowest. The intensity series is the scenario's (`power.zone`, `power.carbon`
or a flat `power.carbon_g_per_kwh`, times PUE), read as a perfect forecast.

When a deferrable job (`deferrable: true`) is first seen in the queue, before it has ever run,
its release time is planned once:

    run    = its remaining run time alone (iterations left x its step time alone)
    latest = min(now + max_defer_s, due - (1 + margin) x run,       (due = inf: no deadline)
                 the series' end - run)          (`beyond_series: error`: it does not wrap)
    start  = argmin over t in {now} + {each hour boundary of the series in (now, latest]}
             of mean intensity over [t, t + run]        (ties: the earliest; latest <= now: now)

Until then it stays in the queue without being offered GPUs (`hold_until`); afterwards it
queues FIFO by arrival like every other job.
Jobs that are not deferrable, and jobs restarted after a failure or preemption, are never held.
The order is FIFO and strict (the first released job that cannot start stops the round), so
the comparison with `fifo` isolates the deferral.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dcsim.policies.scheduling.base import EPS, SCHEDULERS, CarbonSignal, Scheduler
from dcsim.policies.scheduling.classic import _fifo_key
from dcsim.policies.views import JobView

__all__ = ["CarbonAware"]

HOUR = 3600.0


class CarbonAwareParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # the longest a deferrable job is held (also for jobs without a deadline), seconds
    max_defer_s: Annotated[float, Field(gt=0, le=365 * 86400)] = 86400.0
    # slack kept before a deadline: released by due - (1 + margin) x its run time alone
    margin: Annotated[float, Field(ge=0, le=10)] = 0.1


@SCHEDULERS.register("carbon-aware")
class CarbonAware(Scheduler):
    """FIFO that holds deferrable jobs back to the lowest-carbon start in their window."""

    Params = CarbonAwareParams
    params: CarbonAwareParams
    static_key = _fifo_key
    holds = True
    uses_carbon = True

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        self._carbon: CarbonSignal | None = None

    def bind_carbon(self, carbon: CarbonSignal) -> None:
        self._carbon = carbon

    def hold_until(self, job: JobView, now_s: float) -> float:
        if (not job.deferrable or job.iterations_done > 0 or not math.isnan(job.last_start_s)
                or self._carbon is None):
            return now_s  # (restarted jobs are never held again)
        run = job.remaining_s if math.isfinite(job.remaining_s) else job.alone_s
        if not (math.isfinite(run) and run > 0):
            return now_s
        latest = now_s + self.params.max_defer_s
        if math.isfinite(job.due_s):
            latest = min(latest, job.due_s - (1.0 + self.params.margin) * run)
        carbon = self._carbon
        latest = min(latest, carbon.end_s - run)  # a series that does not wrap: within it
        if not latest > now_s:
            return now_s
        first = now_s + (-(now_s + carbon.offset_s)) % HOUR  # the next hour boundary
        if first <= now_s + EPS:
            first += HOUR
        starts = np.concatenate([[now_s], np.arange(first, latest + EPS, HOUR)])
        cum = carbon.cumulative(np.concatenate([starts, starts + run]))
        means = (cum[len(starts):] - cum[:len(starts)]) / run
        best = float(means.min())
        pick = int(np.flatnonzero(means <= best + 1e-9 * abs(best))[0])  # the earliest
        return float(starts[pick])

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=_fifo_key)
