"""Schedulers of deep-learning cluster managers that share GPU time among jobs and decide at
times of their own: Tiresias' discretized two-dimensional least-attained-service and Themis'
finish-time fairness with GPU leases."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dcsim.policies.scheduling.base import EPS, SCHEDULERS, Scheduler
from dcsim.policies.views import JobView

__all__ = ["TiresiasLas", "ThemisFairness"]


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
