"""Read-only views that policies receive, and the decisions they return."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from dcsim.policies.index import FreeIndex

__all__ = ["JobView", "ServerView", "ServerViews", "Placement"]


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


class ServerViews(Sequence[ServerView]):
    """The servers as policies see them at one instant (`Cluster.views()`), in id order.

    Built lazily: the per-server `ServerView`s are made only when a policy iterates or indexes
    them; `index` (a `FreeIndex`) answers the built-in placements' questions without scanning.
    Valid until the cluster next changes: any use after that raises, rather than mixing two
    states (take `list(views)` first to keep a snapshot)."""

    __slots__ = ("index", "_build", "_version", "_current", "_list")

    def __init__(self, build: Callable[[], list[ServerView]], index: FreeIndex | None = None,
                 current: Callable[[], int] | None = None) -> None:
        self.index = index
        self._build, self._current = build, current
        self._version = current() if current is not None else 0
        self._list: list[ServerView] | None = None

    def fresh(self) -> bool:
        """Whether the cluster has not changed since these views were taken."""
        return self._current is None or self._current() == self._version

    def _views(self) -> list[ServerView]:
        if self._list is None:
            if not self.fresh():
                raise RuntimeError("server views used after the cluster changed: take "
                                   "cluster.views() again")
            self._list = self._build()
        return self._list

    def __len__(self) -> int:
        return len(self._views())

    def __getitem__(self, i):  # type: ignore[override]
        return self._views()[i]

    def __iter__(self) -> Iterator[ServerView]:
        return iter(self._views())
