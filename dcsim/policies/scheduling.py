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
  schedulers that draw estimates).

Every job is gang-scheduled: it gets all its GPUs at once or waits.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcsim.policies.views import JobView, Placement, ServerView
from dcsim.registry import Registry
from dcsim.rng import RandomStreams, _name_key

__all__ = ["SCHEDULERS", "Scheduler", "Gate", "ESTIMATE_STREAM"]

SCHEDULERS: Registry[Scheduler] = Registry("scheduler")

ESTIMATE_STREAM = "scheduler.estimates"
EPS = 1e-6  # seconds, GPU-seconds: slack for clock rounding at decision times


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

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def bind(self, streams: RandomStreams) -> None:
        """The scenario's random streams (called once by the engine, before the run)."""

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


# ---------------------------------------------------------------------- Tiresias 2D-LAS
class LasParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # attained-service thresholds (GPU-seconds) between queues: K thresholds, K + 1 queues
    thresholds_gpu_s: list[Annotated[float, Field(gt=0, le=1e20)]] = [3600.0, 36000.0]
    # a queued job waiting this long (since it last entered the queue) is promoted to the
    # first queue; None: never
    starvation_s: Annotated[float, Field(gt=0, le=1e20)] | None = 14400.0

    @field_validator("thresholds_gpu_s")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("thresholds_gpu_s must be strictly increasing")
        return v


@SCHEDULERS.register("las")
class TiresiasLas(Scheduler):
    """Tiresias' discretized two-dimensional least-attained-service (Gu et al., "Tiresias: A GPU
    Cluster Manager for Distributed Deep Learning", NSDI'19): a job's attained service is GPUs
    x time it has run (`attained_service_gpu_s`); queue q = the number of thresholds it has
    reached; lower queues first, FIFO (submit time) within a queue; a queued job may preempt
    running jobs of a higher queue (highest queue first, latest submitted first); jobs that do
    not fit are passed over. Starvation prevention: a job queued for `starvation_s` since it
    last entered the queue is promoted to queue 0, and stays there while it runs until it has
    received thresholds_gpu_s[0] GPU-seconds in that run. Decision times: when a running job
    reaches a threshold that puts it below a queued job's queue, and when a queued job's
    promotion falls due."""

    preempts = True
    timed_decisions = True

    backfill = True
    Params = LasParams
    params: LasParams  # this class's own params (typed)

    def promoted(self, j: JobView, now_s: float) -> bool:
        limit = self.params.starvation_s
        if limit is None or math.isnan(j.queued_since_s):
            return False
        if not j.running:
            return now_s - j.queued_since_s >= limit - EPS
        first = self.params.thresholds_gpu_s[0]
        return (j.last_start_s - j.queued_since_s >= limit - EPS
                and (now_s - j.last_start_s) * j.num_gpus < first - EPS)

    def queue_of(self, j: JobView, now_s: float) -> int:
        if self.promoted(j, now_s):
            return 0
        return bisect.bisect_right(self.params.thresholds_gpu_s,
                                   j.attained_service_gpu_s + EPS)

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (self.queue_of(j, now_s), j.submit_s, j.job_id))

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        q = self.queue_of(head, now_s)
        victims = [(self.queue_of(j, now_s), j) for j in running]
        victims = sorted((p for p in victims if p[0] > q),
                         key=lambda p: (-p[0], -p[1].submit_s, -p[1].job_id))
        return [j.job_id for _, j in victims]

    def next_decision_s(self, running: Sequence[JobView], queue: Sequence[JobView],
                        now_s: float) -> float | None:
        thresholds = self.params.thresholds_gpu_s
        limit = self.params.starvation_s
        queues = [self.queue_of(j, now_s) for j in queue]
        best = math.inf
        if limit is not None:  # promotions that would move a queued job up
            for j, q in zip(queue, queues, strict=True):
                if q > 0 and not math.isnan(j.queued_since_s):
                    best = min(best, j.queued_since_s + limit)
        q_min = min(queues)
        for j in running:  # a running job falling below the best queued job's queue
            if self.promoted(j, now_s):
                best = min(best, j.last_start_s + thresholds[0] / j.num_gpus)
                continue
            for k in range(q_min, len(thresholds)):
                if thresholds[k] > j.attained_service_gpu_s + EPS:
                    best = min(best, now_s + (thresholds[k] - j.attained_service_gpu_s)
                               / j.num_gpus)
                    break
        return best if best > now_s + EPS and best < math.inf else None


# ---------------------------------------------------------------------- Themis
class ThemisParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    lease_s: Annotated[float, Field(gt=0, le=1e20)] = 600.0  # GPU leases end at multiples of this


@SCHEDULERS.register("themis")
class ThemisFairness(Scheduler):
    """Themis-style finish-time fairness (Mahajan et al., "Themis: Fair and Efficient GPU
    Cluster Scheduling", NSDI'20): rho = T_shared / T_ideal, the job's estimated finish time in
    the shared cluster over its finish time alone; here T_shared = (now - submit_s) +
    remaining_s and T_ideal = alone_s. The queue by rho, highest first (ties FIFO); jobs that
    do not fit are passed over. GPUs are leased: at each multiple of `lease_s` every lease
    ends and a queued job may preempt running jobs of lower rho (lowest first); between
    lease ends nothing is preempted. A waiting job's rho grows with its wait, so none waits
    forever. (Themis auctions GPUs among apps with partial allocations; dcsim's jobs are
    gangs of a fixed size, so this keeps its metric and leases, not its auction.)"""

    preempts = True
    timed_decisions = True

    backfill = True
    Params = ThemisParams
    params: ThemisParams  # this class's own params (typed)

    @staticmethod
    def rho(j: JobView, now_s: float) -> float:
        return (now_s - j.submit_s + j.remaining_s) / j.alone_s if j.alone_s > 0 else math.inf

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (-self.rho(j, now_s), j.submit_s, j.job_id))

    def lease_end(self, now_s: float) -> bool:
        lease = self.params.lease_s
        return abs(now_s - round(now_s / lease) * lease) <= EPS * max(1.0, now_s / lease)

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        if not self.lease_end(now_s):
            return []
        r = self.rho(head, now_s)
        victims = sorted(((self.rho(j, now_s), j) for j in running),
                         key=lambda p: (p[0], -p[1].submit_s, -p[1].job_id))
        return [j.job_id for rho, j in victims if rho < r - EPS]

    def next_decision_s(self, running: Sequence[JobView], queue: Sequence[JobView],
                        now_s: float) -> float | None:
        if not running:
            return None  # nothing to take back: arrivals and completions decide
        lease = self.params.lease_s
        k = math.floor(now_s / lease + EPS) + 1
        return k * lease
