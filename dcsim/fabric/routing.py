"""Routing on the topology graph: shortest paths, with equal-cost multipath (ECMP) chosen by a
stable hash of the flow's key, so the same flow always takes the same path and different flows
spread over the equal-cost paths. Paths are cached per (source, destination).

Links are directed (one per direction of each graph edge) and numbered, so that a route is a
list of link indices and the capacities an array: the form `dcsim.fabric.solver` takes. A
failed link is out of every route until it is restored.

Switched fabrics (no server linked to another server: single switch, leaf-spine, fat-tree,
rail-optimized, dragonfly) are routed on the graph of their switches alone: servers forward
nothing, so the shortest paths between two servers are the shortest switch paths between
their attachment switches, and servers hanging off the same switches share them. For each
destination's attachment switches the router keeps the hop distance of every switch and the
number of shortest paths from it (a breadth-first search in C, scipy's csgraph, and one sparse
product per hop), and walks to the path an ECMP hash picks without listing the others: the
k-th path in the sorted order of all of them is found hop by hop from the counts. The choice is
the one a sorted list of every shortest path would give (what networkx's `all_shortest_paths`
gives on the whole graph), at a 100,000-GPU fat-tree in microseconds per route rather than a
search of the whole graph per server pair. Graphs with server-to-server links (torus, some
user graphs) use networkx on the whole graph.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence

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
        capacity: list[float] = []
        links, index = self.links, self._index
        for u, v, d in graph.edges(data=True):
            each_way = d.get("directed_byte_s")  # (a, b) -> bytes/s, where they differ
            n = len(links)
            links += ((u, v), (v, u))
            index[(u, v)], index[(v, u)] = n, n + 1
            bandwidth = float(d["bandwidth_byte_s"])
            if each_way:
                capacity += (float(each_way.get((u, v), bandwidth)),
                             float(each_way.get((v, u), bandwidth)))
            else:
                capacity += (bandwidth, bandwidth)
        self.capacity = np.array(capacity)
        self._attach = {k: list(v) for k, v in (attach or {}).items()}
        kinds = dict(graph.nodes(data="kind"))
        self._core = _copy_without(graph, {n for n, kind in kinds.items()
                                           if kind in INTERNAL_KINDS})
        # the same without storage nodes: traffic between servers never transits a tier
        self._storage = {n for n, kind in kinds.items() if kind == "storage"}
        self._transit = _copy_without(self._core, self._storage)
        self._paths: dict[tuple[str, str], list[list[str]]] = {}
        self.failed: set[int] = set()  # indices of links that failed (no route uses them)
        self._removed: dict[tuple[str, str], dict] = {}  # failed edges and their attributes
        self._servers = {n for n, kind in kinds.items() if kind == "server"}
        # servers forward nothing when none is linked to another (module docstring)
        self._switched = not any(v in self._servers for s in self._servers
                                 for v in self._core[s])
        self._fabrics: dict[bool, _Switches] = {}  # with storage nodes or not
        # where a set, every (server, server) pair a route's middle runs between is added to it
        self.log: set[tuple[str, str]] | None = None

    def _switches(self, storage: bool) -> _Switches:
        fabric = self._fabrics.get(storage)
        if fabric is None:
            graph = self._core if storage else self._transit
            fabric = self._fabrics[storage] = _Switches(
                graph, [n for n in graph if n not in self._servers])
        return fabric

    def _relinked(self, u: str, v: str) -> None:
        """Link u - v changed: the switch graphs that hold both ends follow it (a link from a
        server changes only where its paths start)."""
        for storage, fabric in self._fabrics.items():
            if u in fabric.index and v in fabric.index:
                fabric.relink(self._core if storage else self._transit, u, v)

    def _ends(self, node: str) -> tuple[str, ...]:
        """The switches a path from `node` starts at: a server's neighbours, else itself."""
        if node in self._servers:
            return tuple(self._core[node])
        return (node,)

    def _choices(self, src: str, dst: str) -> tuple[_Switches, _Targets, list[int]]:
        """(the switch graph, the distances and path counts to dst's switches, src's switches
        on a shortest path); raises ValueError if there is none."""
        storage = src in self._storage or dst in self._storage
        fabric = self._switches(storage)
        targets = fabric.targets(self._ends(dst))
        starts = targets.starts([fabric.index[n] for n in self._ends(src)
                                 if n in fabric.index])
        if not starts:
            raise ValueError(f"no path from {src} to {dst}: the topology is split")
        return fabric, targets, starts

    def _wrap(self, src: str, dst: str, middle: list[str]) -> list[str]:
        head = [src] if src in self._servers else []
        tail = [dst] if dst in self._servers else []
        return head + middle + tail

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
        in a deterministic order (sorted)."""
        key = (src, dst)
        if key not in self._paths:
            self._check(src, dst)
            if self._switched:
                fabric, targets, starts = self._choices(src, dst)
                found = [self._wrap(src, dst, [fabric.names[i] for i in path])
                         for path in targets.walk_all(starts)]
            else:
                graph = (self._core if src in self._storage or dst in self._storage
                         else self._transit)
                try:
                    found = sorted(nx.all_shortest_paths(graph, src, dst))
                except nx.NetworkXNoPath:
                    raise ValueError(f"no path from {src} to {dst}: the topology is "
                                     "split") from None
            self._paths[key] = found
        return self._paths[key]

    def _check(self, src: str, dst: str) -> None:
        if src not in self._core or dst not in self._core:
            missing = src if src not in self._core else dst
            raise KeyError(f"no node {missing!r} in the topology")

    def _path(self, src: str, dst: str, flow_key: Hashable) -> list[str]:
        """The shortest path from src to dst that `flow_key`'s ECMP hash picks."""
        if not self._switched:
            options = self.paths(src, dst)
            return options[_stable_hash((src, dst, flow_key)) % len(options)]
        self._check(src, dst)
        fabric, targets, starts = self._choices(src, dst)
        k = _stable_hash((src, dst, flow_key)) % targets.total(starts)
        return self._wrap(src, dst, [fabric.names[i] for i in targets.walk(starts, k)])

    def route(self, src: str, dst: str, flow_key: Hashable = 0) -> list[int]:
        """Link indices of the path `flow_key` takes from src to dst (ECMP by stable hash).
        Raises ValueError if no path is left (a failed link inside a server, or a split)."""
        if src == dst:
            return []
        up, down = self._attach.get(src, [src]), self._attach.get(dst, [dst])
        a, b = up[-1], down[-1]
        if self.log is not None and a != b:
            self.log.add((a, b))
        middle = self._path(a, b, flow_key) if a != b else [a]
        nodes = up[:-1] + middle + down[-2::-1]
        route = [self._index[(x, y)] for x, y in zip(nodes, nodes[1:], strict=False)]
        if self.failed and self.failed.intersection(route):
            x, y = self.links[next(i for i in route if i in self.failed)]
            raise ValueError(f"no path from {src} to {dst}: link {x} - {y} failed")
        return route

    def moved_by(self, u: str, v: str) -> Callable[[str, str], bool] | None:
        """Asked while link u - v is in the graph (before it fails, after it is repaired): a
        test of whether the route of a pair of nodes (a route's middle ends: servers, storage)
        can differ with and without the link, or None where it cannot tell (graphs whose
        servers forward, links inside servers).

        On a switched fabric a pair's routes follow its shortest switch paths and their count
        (ECMP picks the k-th): a link on none of them changes neither, for the pair's starts
        and every switch on the way keep their distances and path counts without it. A link
        from a server moves only the pairs that end at that server."""
        if not self._switched or u not in self._core or v not in self._core:
            return None
        if u in self._servers or v in self._servers:
            server = u if u in self._servers else v
            return lambda a, b: server in (a, b)

        def on_a_shortest_path(a: str, b: str) -> bool:
            try:
                fabric, targets, starts = self._choices(a, b)
            except ValueError:
                return True  # (cut apart: whatever changes, recompute)
            if u not in fabric.index or v not in fabric.index:
                return False
            x, y = fabric.index[u], fabric.index[v]
            source = fabric.targets_at(starts)
            far = int(targets.dist[starts[0]])
            return any(source.dist[p] >= 0 and targets.dist[q] >= 0
                       and source.dist[p] + 1 + targets.dist[q] == far
                       for p, q in ((x, y), (y, x)))
        return on_a_shortest_path

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
        self._relinked(u, v)

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
        self._relinked(u, v)


def _copy_without(graph: nx.Graph, left_out: set[str]) -> nx.Graph:
    """The graph without the `left_out` nodes, as `graph.subgraph(...).copy()` gives it but
    in the graph's own node order (a subgraph view of fewer than half the nodes lists them in
    set order), reading only the adjacency of the nodes kept. (Routes do not depend on the
    order: every choice is made over sorted names.)"""
    out = nx.Graph()
    out.add_nodes_from((n, d.copy()) for n, d in graph.nodes(data=True) if n not in left_out)
    adj = graph.adj
    out.add_edges_from((u, v, d.copy()) for u in out for v, d in adj[u].items()
                       if v not in left_out)
    return out


class _Switches:
    """The switches (and storage nodes) `nodes` of `graph` as arrays: numbered in name order,
    each one's neighbours among them in name order, and their adjacency matrix for scipy."""

    def __init__(self, graph: nx.Graph, nodes: Sequence[str]) -> None:
        self.names = sorted(nodes)
        self.index = {n: i for i, n in enumerate(self.names)}
        self.neighbours = [self._around(graph, n) for n in self.names]
        self._adjacency()

    def _around(self, graph: nx.Graph, node: str) -> list[int]:
        index = self.index
        return sorted(index[v] for v in graph[node] if v in index)

    def _adjacency(self) -> None:
        """The adjacency matrix from the neighbour lists, and its arcs (row, column) in
        order, each one's position, all present."""
        size = len(self.names)
        self._rows = np.repeat(np.arange(size), [len(a) for a in self.neighbours])
        self._cols = np.array([v for a in self.neighbours for v in a], dtype=np.int64)
        self._arcs = {arc: i for i, arc in enumerate(zip(self._rows.tolist(),
                                                         self._cols.tolist(), strict=True))}
        self._live = np.ones(len(self._cols), dtype=bool)
        self._matrix()

    def _matrix(self) -> None:
        from scipy.sparse import csr_array

        size, live = len(self.names), self._live
        self.adjacency = csr_array((np.ones(int(live.sum())), (self._rows[live],
                                                               self._cols[live])),
                                   shape=(size, size))
        self._targets: dict[frozenset[int], _Targets] = {}

    def relink(self, graph: nx.Graph, u: str, v: str) -> None:
        """The link u - v failed or came back in `graph`: its ends' neighbours, the adjacency
        (the same matrix as built from the neighbour lists) and every distance follow."""
        a, b = self.index[u], self.index[v]
        for n in (u, v):
            self.neighbours[self.index[n]] = self._around(graph, n)
        if (a, b) not in self._arcs:  # (absent when the arcs were listed)
            self._adjacency()
            return
        self._live[self._arcs[a, b]] = self._live[self._arcs[b, a]] = graph.has_edge(u, v)
        self._matrix()

    def targets(self, ends: Sequence[str]) -> _Targets:
        return self.targets_at([self.index[n] for n in ends if n in self.index])

    def targets_at(self, ends: Sequence[int]) -> _Targets:
        key = frozenset(ends)
        found = self._targets.get(key)
        if found is None:
            found = self._targets[key] = _Targets(self, sorted(key))
        return found


class _Targets:
    """Hop distances and shortest-path counts from every switch to a set of switches."""

    def __init__(self, fabric: _Switches, ends: list[int]) -> None:
        from scipy.sparse.csgraph import shortest_path

        self.fabric = fabric
        size = len(fabric.names)
        if ends:
            rows = shortest_path(fabric.adjacency, unweighted=True, directed=False,
                                 indices=ends)
            far = np.min(np.atleast_2d(rows), axis=0)
        else:
            far = np.full(size, np.inf)
        reach = np.isfinite(far)
        self.dist = np.where(reach, far, -1).astype(np.int64)
        count = np.zeros(size)
        count[ends] = 1.0
        top = int(self.dist.max(initial=0))
        for d in range(1, top + 1):  # paths from hop d = sum over neighbours at hop d - 1
            layer = np.flatnonzero(self.dist == d)
            below = np.where(self.dist == d - 1, count, 0.0)
            count[layer] = fabric.adjacency[layer] @ below
        self.count = count

    def starts(self, ends: list[int]) -> list[int]:
        """The start switches on a shortest path: the nearest reachable ones, in name order."""
        reach = [i for i in ends if self.dist[i] >= 0]
        if not reach:
            return []
        near = min(int(self.dist[i]) for i in reach)
        return sorted(i for i in reach if self.dist[i] == near)

    def total(self, starts: list[int]) -> int:
        return int(sum(self.count[i] for i in starts))

    def walk(self, starts: list[int], k: int) -> list[int]:
        """The k-th (from 0) shortest path in sorted order, as switch numbers."""
        path: list[int] = []
        options = starts
        while True:
            for i in options:
                c = int(self.count[i])
                if k < c:
                    path.append(i)
                    break
                k -= c
            else:
                raise AssertionError("path index beyond the path count")
            d = int(self.dist[path[-1]])
            if d == 0:
                return path
            options = [v for v in self.fabric.neighbours[path[-1]] if self.dist[v] == d - 1]

    def walk_all(self, starts: list[int], path: tuple[int, ...] = ()) -> Iterator[list[int]]:
        """Every shortest path, in sorted order (all have the same length)."""
        for i in starts:
            d = int(self.dist[i])
            if d == 0:
                yield [*path, i]
            else:
                yield from self.walk_all([v for v in self.fabric.neighbours[i]
                                          if self.dist[v] == d - 1], (*path, i))
