"""Read-only views that policies receive, and the decisions they return."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["JobView", "ServerView", "Placement"]


class JobView(NamedTuple):
    """A job as policies see it: an immutable record (a NamedTuple, not a frozen dataclass,
    because the engine builds one per running job at every decision instant and per queued
    job at every round; a NamedTuple is built ~8x faster)."""

    job_id: int
    name: str
    num_gpus: int
    gpu_types: tuple[str, ...]  # GPU types the job may run on, in order of preference
    submit_s: float
    priority: int
    running: bool
    iterations: int
    iterations_done: float
    attained_service_gpu_s: float  # GPU-seconds received so far
    user: str = ""
    virtual_cluster: str = ""
    # estimated run time alone of the whole job: iterations x its step time placed alone on an
    # empty cluster (isolated network), computed once at submission; NaN before that
    alone_s: float = math.nan
    # estimated remaining run time: running, the iterations left x its current step time (the
    # network share and placement it has now) plus any restore delay still ahead; queued, the
    # iterations left x its step time alone
    remaining_s: float = math.nan
    run_s: float = 0.0  # time it has held GPUs so far, the current segment included
    queued_since_s: float = math.nan  # when it last entered the queue (arrival or preemption)
    last_start_s: float = math.nan  # when its current (running) or last run segment started
    gpu_type: str = ""  # running: the GPU type of its placement
    # the time it should be finished by (`deadline_s` / `deadline_slack`); inf: no deadline
    due_s: float = math.inf
    deferrable: bool = False  # it may be held back to cleaner hours (carbon-aware scheduler)


@dataclass(frozen=True, slots=True)
class ServerView:
    server_id: int
    gpu_type: str
    num_gpus: int
    free: tuple[int, ...]  # indices of the free GPUs
    # len(free), stored once: placements read it for every server in every round
    num_free: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_free", len(self.free))


@dataclass(frozen=True, slots=True)
class Placement:
    """Which GPUs of which servers a job gets: ((server_id, (gpu index, ...)), ...)."""

    allocations: tuple[tuple[int, tuple[int, ...]], ...]
    # the GPUs in all allocations, stored once (read at every launch, release and record)
    num_gpus: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_gpus", sum(len(g) for _, g in self.allocations))

    @property
    def server_ids(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.allocations)

    def gpus_per_server(self) -> dict[int, int]:
        return {s: len(g) for s, g in self.allocations}
