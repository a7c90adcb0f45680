"""Schedulers: the order in which queued jobs are offered GPUs, and whether jobs may pass.

A scheduler is a pure policy over read-only `JobView`s: `order` returns the queue in the order
jobs are tried; `backfill` says whether a later job may start when an earlier one does not fit;
`preempt` may name running jobs to stop so that the queue's head can start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from dcsim.policies.views import JobView
from dcsim.registry import Registry

__all__ = ["SCHEDULERS", "Scheduler"]

SCHEDULERS: Registry[Scheduler] = Registry("scheduler")


class Scheduler:
    name: ClassVar[str]
    backfill: ClassVar[bool] = False

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        raise NotImplementedError

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        """Running jobs (ids) to stop so that `head` can start; none by default."""
        return []


@SCHEDULERS.register("fifo")
class Fifo(Scheduler):
    """First in, first out, strictly: the head of the queue blocks everything behind it."""

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (j.submit_s, j.job_id))


@SCHEDULERS.register("priority")
class Priority(Scheduler):
    """Highest `priority` first (FIFO within a priority); preempts lower-priority jobs."""

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=lambda j: (-j.priority, j.submit_s, j.job_id))

    def preempt(self, head: JobView, running: Sequence[JobView], now_s: float) -> list[int]:
        victims = sorted(
            (j for j in running if j.priority < head.priority),
            key=lambda j: (j.priority, -j.submit_s, -j.job_id),
        )
        return [j.job_id for j in victims]
