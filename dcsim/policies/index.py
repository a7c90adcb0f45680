"""Where the free GPUs are, kept sorted as they change, so that a placement asks without
looking at every server.

The cluster (dcsim/hardware.py) owns one `FreeIndex` and tells it each server whose free GPUs
changed (`moved`); placement policies read it through `ServerViews.index`. Per GPU type it
keeps, as sorted lists of server ids (sortedcontainers' `SortedList`: O(log n) insert, delete,
and the i-th element):

- `exact[k][g]`: the servers of g GPUs with exactly k free (k >= 1);
- `at_least[t]`: the servers with at least t free (t >= 1), whatever their size;
- the free GPUs of the type, as a count.

A change of one server from a to b free GPUs costs O((|a - b| + 2) log n); each query below is
O(log n) plus the servers it returns. The orders and tie-breaks are those of the policies'
server-view scans (dcsim/policies/placement.py), which tests compare on random states.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from sortedcontainers import SortedList

__all__ = ["FreeIndex"]


class _TypeIndex:
    __slots__ = ("exact", "at_least", "free", "sizes", "by_load")

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = sorted(set(sizes))  # GPUs per server among this type's servers
        top = self.sizes[-1] if self.sizes else 0
        self.exact: list[dict[int, SortedList]] = [
            {g: SortedList() for g in self.sizes if g >= k} for k in range(top + 1)]
        self.at_least: list[SortedList] = [SortedList() for _ in range(top + 1)]
        self.free = 0
        # (size, free) buckets in load-balanced order: allocated fraction, then most free
        self.by_load = sorted(((g, k) for g in self.sizes for k in range(1, g + 1)),
                              key=lambda gk: ((gk[0] - gk[1]) / gk[0], -gk[1]))


class FreeIndex:
    """Servers bucketed by GPU type and free GPUs; see the module docstring."""

    def __init__(self, servers: Sequence[tuple[int, str, int]], free: list[list[int]]) -> None:
        """`servers`: (server id, GPU type, GPUs) with ids 0..n-1 in order; `free`: the
        cluster's per-server lists of free GPU indices (shared, not copied: the cluster
        replaces an entry and then calls `moved`)."""
        sizes: dict[str, list[int]] = {}
        for _, gpu_type, gpus in servers:
            sizes.setdefault(gpu_type, []).append(gpus)
        self._types = {t: _TypeIndex(s) for t, s in sizes.items()}
        self._type_of = [t for _, t, _ in servers]
        self._size = [g for _, _, g in servers]
        self._free = free
        self._count = [0] * len(servers)  # free GPUs each server is filed under
        for sid in range(len(servers)):
            self.moved(sid)

    # ------------------------------------------------------------------ upkeep
    def moved(self, sid: int) -> None:
        """Server `sid`'s free GPUs changed (the cluster replaced `free[sid]`)."""
        old, new = self._count[sid], len(self._free[sid])
        if old == new:
            return
        t, g = self._types[self._type_of[sid]], self._size[sid]
        if old:
            t.exact[old][g].remove(sid)
        if new:
            t.exact[new][g].add(sid)
        for k in range(old + 1, new + 1):
            t.at_least[k].add(sid)
        for k in range(new + 1, old + 1):
            t.at_least[k].remove(sid)
        t.free += new - old
        self._count[sid] = new

    # ------------------------------------------------------------------ queries
    def free_gpus(self, gpu_type: str) -> int:
        """Free GPUs of this type over all servers in service."""
        t = self._types.get(gpu_type)
        return t.free if t is not None else 0

    def num_free(self, sid: int) -> int:
        return self._count[sid]

    def free_of(self, sid: int) -> list[int]:
        """Server `sid`'s free GPU indices, ascending (the cluster's list: do not modify)."""
        return self._free[sid]

    def fits(self, gpu_type: str, n: int) -> SortedList:
        """The servers of this type with at least n (>= 1) free GPUs, by id (do not modify)."""
        t = self._types.get(gpu_type)
        if t is None or n >= len(t.at_least):
            return SortedList()
        return t.at_least[max(1, n)]

    def best_fit(self, gpu_type: str, n: int) -> int | None:
        """The server with the fewest free GPUs that still holds n, lowest id among those."""
        t = self._types.get(gpu_type)
        if t is None:
            return None
        for k in range(max(1, n), len(t.exact)):
            firsts = [ids[0] for ids in t.exact[k].values() if ids]
            if firsts:
                return min(firsts)
        return None

    def most_free(self, gpu_type: str) -> Iterator[int]:
        """Servers with free GPUs, most free first, then by id."""
        t = self._types.get(gpu_type)
        if t is None:
            return
        for k in range(len(t.exact) - 1, 0, -1):
            groups = [ids for ids in t.exact[k].values() if ids]
            yield from groups[0] if len(groups) == 1 else heapq.merge(*groups)

    def least_loaded(self, gpu_type: str, n: int = 1) -> Iterator[int]:
        """Servers with at least n free GPUs by allocated fraction, then most free, then id."""
        t = self._types.get(gpu_type)
        if t is None:
            return
        for g, k in t.by_load:
            if k >= n:
                yield from t.exact[k][g]
