"""Routing on the topology graph: shortest paths, with equal-cost multipath (ECMP) chosen by a
stable hash of the flow's key, so the same flow always takes the same path and different flows
spread over the equal-cost paths. Paths are cached per (source, destination).

Links are directed (one per direction of each graph edge) and numbered, so that a route is a
list of link indices and the capacities an array: the form `dcsim.fabric.solver` takes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

import networkx as nx
import numpy as np

__all__ = ["Router"]


def _stable_hash(key: Hashable) -> int:
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little")


class Router:
    """Directed links of `graph` (bandwidth per direction) and routes between its nodes."""

    def __init__(self, graph: nx.Graph) -> None:
        self.graph = graph
        self.links: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], int] = {}
        capacity = []
        for u, v, d in graph.edges(data=True):
            for a, b in ((u, v), (v, u)):
                self._index[(a, b)] = len(self.links)
                self.links.append((a, b))
                capacity.append(float(d["bandwidth_byte_s"]))
        self.capacity = np.array(capacity)
        self._paths: dict[tuple[str, str], list[list[str]]] = {}
        self.failed: set[int] = set()  # indices of links that failed (no route uses them)
        self._removed: dict[tuple[str, str], dict] = {}  # failed edges and their attributes

    def paths(self, src: str, dst: str) -> list[list[str]]:
        """All shortest paths (fewest hops) from src to dst, in a deterministic order."""
        key = (src, dst)
        if key not in self._paths:
            if src not in self.graph or dst not in self.graph:
                missing = src if src not in self.graph else dst
                raise KeyError(f"no node {missing!r} in the topology")
            try:
                found = sorted(nx.all_shortest_paths(self.graph, src, dst))
            except nx.NetworkXNoPath:
                raise ValueError(f"no path from {src} to {dst}: the topology is split") from None
            self._paths[key] = found
        return self._paths[key]

    def route(self, src: str, dst: str, flow_key: Hashable = 0) -> list[int]:
        """Link indices of the path `flow_key` takes from src to dst (ECMP by stable hash)."""
        if src == dst:
            return []
        options = self.paths(src, dst)
        path = options[_stable_hash((src, dst, flow_key)) % len(options)]
        return [self._index[(a, b)] for a, b in zip(path, path[1:], strict=False)]

    def routes(self, pairs: Sequence[tuple[str, str, Hashable]]) -> list[list[int]]:
        return [self.route(src, dst, key) for src, dst, key in pairs]

    def remove(self, u: str, v: str) -> None:
        """A failed link: routes are recomputed without it (cached paths are dropped)."""
        if not self.graph.has_edge(u, v):
            raise KeyError(f"no link {u} - {v} in the topology")
        self._removed[(u, v)] = self.graph.edges[u, v]
        self.graph = self.graph.copy()
        self.graph.remove_edge(u, v)
        self.failed |= {self._index[(u, v)], self._index[(v, u)]}
        self._paths.clear()

    def restore(self, u: str, v: str) -> None:
        """A repaired link: back in the graph, routes recomputed."""
        key = (u, v) if (u, v) in self._removed else (v, u)
        if key not in self._removed:
            raise KeyError(f"link {u} - {v} has not failed")
        self.graph = self.graph.copy()
        self.graph.add_edge(*key, **self._removed.pop(key))
        self.failed -= {self._index[(u, v)], self._index[(v, u)]}
        self._paths.clear()
