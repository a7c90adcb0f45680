"""Maximum flow between two nodes of an undirected graph whose links carry a bandwidth in each
direction: the bandwidth a ring hop between two servers gets alone (`network.Network`).

Shortest augmenting paths (Edmonds and Karp, JACM 1972) over arrays, the loop compiled by numba
on first use and cached on disk. Every link is a pair of opposite arcs of its bandwidth. The
two ends are given as capacities from a virtual source into nodes and from nodes into a virtual
sink (a server outside the graph enters through its links; one inside it, without limit), so one
graph serves every pair. An augmenting path is found by breadth-first search over what capacity
is left, and the flow pushed along it is the smallest capacity left on it.

When every capacity is a whole number (bytes/s, as every catalog NIC and switch link is) and
the flow through one node stays below 2^53, all the arithmetic is on whole numbers that float64
holds exactly, so the value is the exact maximum flow, the same to the bit as any exact
algorithm's (networkx's preflow-push included). `exact_with(sources, sinks)` says whether that
holds for a pair's ends; `Network` uses networkx otherwise.

    >>> import numpy as np
    >>> # a square a-b-d, a-c-d, the a-c side twice as wide; from a to d
    >>> g = FlowGraph(4, np.array([0, 1, 0, 2]), np.array([1, 3, 2, 3]),
    ...               np.array([5.0, 5.0, 10.0, 10.0]))
    >>> g.max_flow({0: np.inf}, {3: np.inf})
    15.0
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["FlowGraph"]

_EXACT_LIMIT = 2.0 ** 53


class FlowGraph:
    """`n` nodes and links ends_a[i] - ends_b[i] of `capacity[i]` each way, as arc arrays:
    arcs sorted by tail (CSR `start`), each with its head, capacity and opposite arc."""

    def __init__(self, n: int, ends_a: np.ndarray, ends_b: np.ndarray,
                 capacity: np.ndarray) -> None:
        m = len(capacity)
        tails = np.concatenate([ends_a, ends_b]).astype(np.int64)
        heads = np.concatenate([ends_b, ends_a]).astype(np.int64)
        caps = np.concatenate([capacity, capacity]).astype(np.float64)
        order = np.argsort(tails, kind="stable")
        where = np.empty(2 * m, dtype=np.int64)
        where[order] = np.arange(2 * m)
        opposite = np.concatenate([np.arange(m, 2 * m), np.arange(m)])
        self.n = n
        self.heads = heads[order]
        self.capacity = caps[order]
        self.opposite = where[opposite[order]]
        self.start = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(tails, minlength=n), out=self.start[1:])
        # every value the arithmetic meets is a whole number below the largest capacity x
        # (the most links at one node + 2): the flow out of one node, or twice one arc's
        degree = int(np.diff(self.start).max(initial=0))
        biggest = float(capacity.max(initial=0.0))
        self.exact = bool(np.isfinite(capacity).all() and (capacity >= 0).all()
                          and (capacity == np.floor(capacity)).all()
                          and biggest * (degree + 2) < _EXACT_LIMIT)

    def exact_with(self, sources: dict[int, float], sinks: dict[int, float]) -> bool:
        """Whether `max_flow` with these ends is exact: the graph's capacities and the ends'
        finite ones whole numbers, and what may enter or leave below 2^53."""
        ends = [c for caps in (sources, sinks) for c in caps.values() if c < np.inf]
        return self.exact and all(c == np.floor(c) for c in ends) and all(
            sum(c for c in caps.values() if c < np.inf) * 2 < _EXACT_LIMIT
            for caps in (sources, sinks))

    def max_flow(self, sources: dict[int, float], sinks: dict[int, float]) -> float:
        """The maximum flow from a virtual source, linked to each node of `sources` with its
        capacity (inf: without limit), to a virtual sink linked likewise from `sinks`."""
        into = np.zeros(self.n)
        out = np.zeros(self.n)
        for caps, arr in ((sources, into), (sinks, out)):
            for node, cap in caps.items():
                arr[node] += cap
        if (np.isinf(into) & np.isinf(out)).any():
            raise ValueError("a node linked without limit to both the source and the sink")
        return float(_kernel()(self.start, self.heads, self.capacity, self.opposite, into, out))


@functools.cache
def _kernel():
    from numba import njit

    return njit(cache=True)(_edmonds_karp)


def _edmonds_karp(start, heads, capacity, opposite, into, out):
    n = start.size - 1
    left = capacity.copy()
    source_left = into.copy()
    sink_left = out.copy()
    via = np.empty(n, dtype=np.int64)  # the arc a node was reached by (-1 not yet, -2 source)
    queue = np.empty(n, dtype=np.int64)
    flow = 0.0
    while True:
        via[:] = -1
        tail = 0
        for node in range(n):
            if source_left[node] > 0.0:
                via[node] = -2
                queue[tail] = node
                tail += 1
        head, last = 0, -1
        while head < tail:
            node = queue[head]
            head += 1
            if sink_left[node] > 0.0:
                last = node
                break
            for arc in range(start[node], start[node + 1]):
                nxt = heads[arc]
                if via[nxt] == -1 and left[arc] > 0.0:
                    via[nxt] = arc
                    queue[tail] = nxt
                    tail += 1
        if last < 0:
            return flow
        push = sink_left[last]
        node = last
        while via[node] != -2:
            arc = via[node]
            push = min(push, left[arc])
            node = heads[opposite[arc]]
        push = min(push, source_left[node])
        sink_left[last] -= push
        node = last
        while via[node] != -2:
            arc = via[node]
            left[arc] -= push
            left[opposite[arc]] += push
            node = heads[opposite[arc]]
        source_left[node] -= push
        flow += push
