"""Routing on the topology graph: shortest paths, with equal-cost multipath (ECMP) chosen by a
stable hash of the flow's key, so the same flow always takes the same path and different flows
spread over the equal-cost paths. Paths are cached per (source, destination).

Links are directed (one per direction of each graph edge) and numbered, so that a route is a
list of link indices and the capacities an array: the form `dcsim.fabric.solver` takes. A
failed link is out of every route until it is restored.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence

import networkx as nx
import numpy as np

from dcsim.fabric.internals import INTERNAL_KINDS

__all__ = ["Router"]


def _stable_hash(key: Hashable) -> int:
    return int.from_bytes(hashlib.blake2b(repr(key).encode(), digest_size=8).digest(), "little")


class Router:
    """Directed links of `graph` (bandwidth per direction) and routes between its nodes.

    `attach` (from `internals.add_internals`): for each GPU node, its path of nodes to its
    server node. A route between GPUs is then the source GPU's path up, a shortest path between
    the two servers over the graph without the servers' insides, and the destination's path
    down; only that middle part has choices (ECMP)."""

    def __init__(self, graph: nx.Graph, attach: Mapping[str, Sequence[str]] | None = None) -> None:
        self.graph = graph
        self.links: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], int] = {}
        capacity = []
        for u, v, d in graph.edges(data=True):
            each_way = d.get("directed_byte_s", {})  # (a, b) -> bytes/s, where they differ
            for a, b in ((u, v), (v, u)):
                self._index[(a, b)] = len(self.links)
                self.links.append((a, b))
                capacity.append(float(each_way.get((a, b), d["bandwidth_byte_s"])))
        self.capacity = np.array(capacity)
        self._attach = {k: list(v) for k, v in (attach or {}).items()}
        self._core = graph.subgraph([n for n, kind in graph.nodes(data="kind")
                                     if kind not in INTERNAL_KINDS]).copy()
        # the same without storage nodes: traffic between servers never transits a tier
        self._storage = {n for n, kind in graph.nodes(data="kind") if kind == "storage"}
        self._transit = self._core.subgraph(set(self._core) - self._storage).copy()
        self._paths: dict[tuple[str, str], list[list[str]]] = {}
        self.failed: set[int] = set()  # indices of links that failed (no route uses them)
        self._removed: dict[tuple[str, str], dict] = {}  # failed edges and their attributes

    def link_indices(self, u: str, v: str) -> tuple[int, int]:
        """The indices of link u - v's two directions (u -> v, v -> u)."""
        try:
            return self._index[(u, v)], self._index[(v, u)]
        except KeyError:
            raise KeyError(f"no link {u} - {v} in the topology") from None

    def link_name(self, index: int) -> str:
        a, b = self.links[index]
        return f"{a}->{b}"

    @property
    def has_internals(self) -> bool:
        return bool(self._attach)

    def paths(self, src: str, dst: str) -> list[list[str]]:
        """All shortest paths (fewest hops) from src to dst between the servers and switches,
        in a deterministic order."""
        key = (src, dst)
        if key not in self._paths:
            if src not in self._core or dst not in self._core:
                missing = src if src not in self._core else dst
                raise KeyError(f"no node {missing!r} in the topology")
            graph = (self._core if src in self._storage or dst in self._storage
                     else self._transit)
            try:
                found = sorted(nx.all_shortest_paths(graph, src, dst))
            except nx.NetworkXNoPath:
                raise ValueError(f"no path from {src} to {dst}: the topology is split") from None
            self._paths[key] = found
        return self._paths[key]

    def route(self, src: str, dst: str, flow_key: Hashable = 0) -> list[int]:
        """Link indices of the path `flow_key` takes from src to dst (ECMP by stable hash).
        Raises ValueError if no path is left (a failed link inside a server, or a split)."""
        if src == dst:
            return []
        up, down = self._attach.get(src, [src]), self._attach.get(dst, [dst])
        a, b = up[-1], down[-1]
        middle = [a]
        if a != b:
            options = self.paths(a, b)
            middle = options[_stable_hash((a, b, flow_key)) % len(options)]
        nodes = up[:-1] + middle + down[-2::-1]
        route = [self._index[(x, y)] for x, y in zip(nodes, nodes[1:], strict=False)]
        if self.failed and self.failed.intersection(route):
            x, y = self.links[next(i for i in route if i in self.failed)]
            raise ValueError(f"no path from {src} to {dst}: link {x} - {y} failed")
        return route

    def routes(self, pairs: Sequence[tuple[str, str, Hashable]]) -> list[list[int]]:
        return [self.route(src, dst, key) for src, dst, key in pairs]

    def remove(self, u: str, v: str) -> None:
        """A failed link: routes are recomputed without it (cached paths are dropped)."""
        if not self.graph.has_edge(u, v):
            raise KeyError(f"no link {u} - {v} in the topology")
        if (u, v) in self._removed or (v, u) in self._removed:
            raise KeyError(f"link {u} - {v} has already failed")
        self._removed[(u, v)] = dict(self.graph.edges[u, v])
        for graph in (self._core, self._transit):
            if graph.has_edge(u, v):
                graph.remove_edge(u, v)
        self.failed |= {self._index[(u, v)], self._index[(v, u)]}
        self._paths.clear()

    def restore(self, u: str, v: str) -> None:
        """A repaired link: back in the graph, routes recomputed."""
        key = (u, v) if (u, v) in self._removed else (v, u)
        if key not in self._removed:
            raise KeyError(f"link {u} - {v} has not failed")
        attrs = self._removed.pop(key)
        for graph in (self._core, self._transit):
            if key[0] in graph and key[1] in graph:
                graph.add_edge(*key, **attrs)
        self.failed -= {self._index[(u, v)], self._index[(v, u)]}
        self._paths.clear()
