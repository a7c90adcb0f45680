"""The classic queue disciplines: FIFO, priority (preemptive), shortest job first and
shortest remaining time first (on run-time estimates), and FIFO with EASY backfilling."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dcsim.policies.scheduling.base import EPS, ESTIMATE_STREAM, SCHEDULERS, Gate, Scheduler
from dcsim.policies.views import JobView, Placement, ServerView
from dcsim.rng import RandomStreams, _name_key

__all__ = ["Fifo", "Priority", "ShortestJobFirst", "ShortestRemainingTimeFirst", "EasyBackfill"]

# (submit_s, job_id): FIFO order; attrgetter keeps the per-job key call in C (FIFO sorts the
# whole queue every round)
_fifo_key = attrgetter("submit_s", "job_id")


@SCHEDULERS.register("fifo")
class Fifo(Scheduler):
    """First in, first out, strictly: the head of the queue blocks everything behind it."""

    static_key = _fifo_key

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=_fifo_key)


@SCHEDULERS.register("priority")
class Priority(Scheduler):
    """Highest `priority` first (FIFO within a priority); preempts lower-priority jobs."""

    preempts = True

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (-j.priority, j.submit_s, j.job_id))

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        victims = sorted(
            (j for j in running if j.priority < head.priority),
            key=lambda j: (j.priority, -j.submit_s, -j.job_id),
        )
        return [j.job_id for j in victims]


# ---------------------------------------------------------------------- run-time estimates
class EstimateParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # the scheduler's estimate of a job's run time alone is alone_s x exp(sigma x z), z ~ N(0, 1)
    # drawn once per job (named stream scheduler.estimates); 0: exactly alone_s
    estimate_sigma: Annotated[float, Field(ge=0, le=10)] = 0.0


class _Estimating(Scheduler):
    """A scheduler that knows jobs' run times only as estimates (users' requests, predictions):
    est_alone_s = alone_s x exp(estimate_sigma x z_job), one standard normal z per job from the
    named stream `scheduler.estimates` (drawn by job id, so independent of the call order)."""

    params: EstimateParams  # its subclasses' params extend these (typed)

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        self._seed = 0
        self._factor: dict[int, float] = {}

    def bind(self, streams: RandomStreams) -> None:
        self._seed = streams.seed

    def factor(self, job_id: int) -> float:
        sigma = self.params.estimate_sigma
        if sigma == 0:
            return 1.0
        f = self._factor.get(job_id)
        if f is None:
            seq = np.random.SeedSequence(entropy=self._seed,
                                         spawn_key=(_name_key(ESTIMATE_STREAM), job_id))
            f = self._factor[job_id] = math.exp(sigma * np.random.default_rng(seq)
                                                .standard_normal())
        return f

    def est_alone_s(self, j: JobView) -> float:
        return j.alone_s * self.factor(j.job_id)


@SCHEDULERS.register("sjf")
class ShortestJobFirst(_Estimating):
    """Shortest job first (non-preemptive): the queue by estimated run time alone, shortest
    first (ties FIFO); a job that does not fit is passed over (work-conserving), so long or
    wide jobs can starve. The classic SJF rule (e.g. Silberschatz et al., Operating System
    Concepts, ch. 5); in DL clusters the baseline of Tiresias (Gu et al., NSDI'19) and Gavel."""

    backfill = True
    Params = EstimateParams

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (self.est_alone_s(j), j.submit_s, j.job_id))


class SrtfParams(EstimateParams):
    # true: the engine's remaining time (iterations left x current step time); false: the
    # estimate est_alone_s - run time so far (what a scheduler that only knows the request has)
    oracle: bool = False


@SCHEDULERS.register("srtf")
class ShortestRemainingTimeFirst(_Estimating):
    """Shortest remaining time first (preemptive SJF; Schrage, Oper. Res. 1968; the SRTF
    baseline of Tiresias, Gu et al., NSDI'19): the queue by remaining time, shortest first; a
    queued job may stop running jobs with a longer remaining time (longest first) to start.
    Remaining time: with `oracle`, `remaining_s` of the view (iterations left x the job's step
    time: its current one if running, alone if queued); else max(0, est_alone_s - run_s), the
    estimate less the time it has held GPUs (blind to lost work and slowdowns). Remaining times
    only shrink while jobs run, so arrivals and completions are the only decision times."""

    preempts = True

    backfill = True
    Params = SrtfParams
    params: SrtfParams  # this class's own params (typed)

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        self._ranked_for: Sequence[JobView] | None = None
        self._ranked_at = math.nan
        self._ranked_ids: list[int] = []
        self._ranked_neg: list[float] = []

    def remaining(self, j: JobView) -> float:
        if self.params.oracle:
            return j.remaining_s
        return max(0.0, self.est_alone_s(j) - j.run_s)

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (self.remaining(j), j.submit_s, j.job_id))

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        if self._ranked_for is not running or self._ranked_at != now_s:
            # the running jobs, longest remaining first: ranked once per round and running set
            # (the engine passes the same list until a job starts or stops)
            ranked = sorted(((self.remaining(j), j) for j in running),
                            key=lambda p: (-p[0], -p[1].submit_s, -p[1].job_id))
            self._ranked_for, self._ranked_at = running, now_s
            self._ranked_ids = [j.job_id for _, j in ranked]
            self._ranked_neg = [-rem for rem, _ in ranked]  # ascending
        # victims: those with remaining > r + EPS, a prefix of the ranking
        cut = bisect.bisect_left(self._ranked_neg, -(self.remaining(head) + EPS))
        return self._ranked_ids[:cut]


# ---------------------------------------------------------------------- EASY backfilling
class _EasyGate(Gate):
    """EASY's reservation for the first job that cannot start (the head): the earliest time
    (shadow) at which enough GPUs of one of its types are free, from the running jobs'
    estimated ends (now + remaining_s), and the GPUs spare then (extra). A later job that fits
    now may start only if it ends by the shadow (now + its remaining_s) or takes no more than
    the extra GPUs (which it then uses up)."""

    def __init__(self, running: Sequence[JobView], now_s: float) -> None:
        super().__init__(backfill=True)
        self.now = now_s
        self.ends = [(j.remaining_s, j.num_gpus, j.gpu_type) for j in running]
        self.reservation: tuple[float, str, int] | None = None  # (shadow_s, gpu type, extra)
        self.reserved_for: int | None = None
        self._type_of: dict[int, str] = {}

    def blocked(self, job: JobView, servers: Sequence[ServerView]) -> bool:
        if self.reserved_for is None:
            self.reserved_for = job.job_id
            self.reservation = self.shadow(job, servers)
        return True

    def shadow(self, job: JobView, servers: Sequence[ServerView]) -> tuple[float, str, int] | None:
        best = None
        for gpu_type in job.gpu_types:
            free = sum(s.num_free for s in servers if s.gpu_type == gpu_type)
            at = self.now
            for rem, n, _ in sorted(e for e in self.ends if e[2] == gpu_type):
                if free >= job.num_gpus:
                    break
                free, at = free + n, self.now + rem
            if free >= job.num_gpus and (best is None or at < best[0]):
                best = (at, gpu_type, free - job.num_gpus)
        return best

    def allow(self, job: JobView, placement: Placement, servers: Sequence[ServerView]) -> bool:
        if self.reservation is None:
            return True
        shadow, gpu_type, extra = self.reservation
        if not self._type_of:
            self._type_of = {s.server_id: s.gpu_type for s in servers}
        if self._type_of[placement.server_ids[0]] != gpu_type:
            return True
        if self.now + job.remaining_s <= shadow + EPS:
            return True
        if job.num_gpus <= extra:
            self.reservation = (shadow, gpu_type, extra - job.num_gpus)
            return True
        return False

    def started(self, job: JobView, placement: Placement, servers: Sequence[ServerView]) -> None:
        if not self._type_of:
            self._type_of = {s.server_id: s.gpu_type for s in servers}
        self.ends.append((job.remaining_s, job.num_gpus, self._type_of[placement.server_ids[0]]))


@SCHEDULERS.register("easy")
class EasyBackfill(Scheduler):
    """FIFO with EASY backfilling (Lifka, "The ANL/IBM SP scheduling system", JSSPP 1995;
    Mu'alem & Feitelson, IEEE TPDS 2001): the first queued job that cannot start gets a
    reservation at the earliest time enough GPUs free up, from the running jobs' estimated end
    times; a later job may start now only if it does not delay that reservation (it ends
    before it, or uses only GPUs spare at it). Estimates are the views' `remaining_s`
    (running: current step time; queued: step time alone); the reservation holds exactly when
    they are exact (e.g. an isolated network and placements as fast as alone). Never preempts."""

    gates = True

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=_fifo_key)

    def gate(self, running: Sequence[JobView], now_s: float) -> Gate:
        return _EasyGate(running, now_s)
