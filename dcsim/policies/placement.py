"""Placement policies: which free GPUs a job gets, or None if it does not fit now.

All GPUs of one job are of one type (the first type in the job's preference list that fits).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from dcsim.policies.views import JobView, Placement, ServerView
from dcsim.registry import Registry

__all__ = ["PLACEMENTS", "PlacementPolicy"]

PLACEMENTS: Registry[PlacementPolicy] = Registry("placement")

ServerOrder = Callable[[ServerView], tuple]


class PlacementPolicy:
    name: ClassVar[str]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def place(self, job: JobView, servers: Sequence[ServerView]) -> Placement | None:
        for gpu_type in job.gpu_types:
            candidates = [s for s in servers if s.gpu_type == gpu_type and s.num_free]
            if sum(s.num_free for s in candidates) >= job.num_gpus:
                return self.choose(job.num_gpus, candidates)
        return None

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        """Pick n GPUs from `servers`, which together have at least n free."""
        raise NotImplementedError


def _take(n: int, servers: Sequence[ServerView]) -> Placement:
    allocations = []
    for s in servers:
        k = min(n, s.num_free)
        allocations.append((s.server_id, s.free[:k]))
        n -= k
        if n == 0:
            break
    return Placement(tuple(allocations))


def _single_or_spread(n: int, servers: list[ServerView], single: ServerOrder,
                      multi: ServerOrder) -> Placement:
    fits = [s for s in servers if s.num_free >= n]
    if fits:
        return _take(n, [min(fits, key=single)])
    return _take(n, sorted(servers, key=multi))


@PLACEMENTS.register("packed")
class Packed(PlacementPolicy):
    """Fewest servers: best fit on one server if possible, else the emptiest servers first."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, lambda s: (s.num_free, s.server_id),
                                 lambda s: (-s.num_free, s.server_id))


@PLACEMENTS.register("first-fit")
class FirstFit(PlacementPolicy):
    """The first server (by id) that fits the whole job; else servers in id order."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, lambda s: (s.server_id,), lambda s: (s.server_id,))


@PLACEMENTS.register("spread")
class Spread(PlacementPolicy):
    """As many servers as possible: one GPU at a time, round-robin over the servers with the
    most free GPUs (ties by id); spreads load, but rings cross the network."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        order = sorted(servers, key=lambda s: (-s.num_free, s.server_id))
        taken = {s.server_id: 0 for s in order}
        while n:
            for s in order:
                if n and taken[s.server_id] < s.num_free:
                    taken[s.server_id] += 1
                    n -= 1
        return Placement(tuple((s.server_id, s.free[:taken[s.server_id]]) for s in order
                               if taken[s.server_id]))
