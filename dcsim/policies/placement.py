"""Placement policies: which free GPUs a job gets, or None if it does not fit now.

All GPUs of one job are of one type (the first type in the job's preference list that fits).
A policy that needs more than the server views (the topology, the links' current load, a
random stream) gets it once from the engine through `bind`, right after construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar, Protocol

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dcsim.policies.views import JobView, Placement, ServerView
from dcsim.registry import Registry
from dcsim.rng import RandomStreams

if TYPE_CHECKING:
    from dcsim.fabric.network import Network

__all__ = ["PLACEMENTS", "PlacementPolicy", "LinkLoads"]

PLACEMENTS: Registry[PlacementPolicy] = Registry("placement")

ServerOrder = Callable[[ServerView], tuple]
_num_free = attrgetter("num_free")


class _Links(Protocol):
    links: list[tuple[str, str]]


class LinkLoads(Protocol):
    """What a placement may read of a flow-level fabric (`SharedFabric`, `TimedFabric`): its
    directed links (`router.links`) and each one's level at the last re-solve."""

    @property
    def router(self) -> _Links: ...

    @property
    def utilization(self) -> np.ndarray: ...


class PlacementPolicy:
    name: ClassVar[str]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, params: BaseModel) -> None:
        self.params = params

    def bind(self, network: Network | None = None, fabric: LinkLoads | None = None,
             streams: RandomStreams | None = None) -> None:
        """Called once by the engine after construction with what the simulation holds: the
        network (its topology graph), the flow-level fabric whose `utilization` is current at
        every round (None under `engine.network: isolated`) and the scenario's random streams.
        The default ignores them; a policy precomputes what it needs here."""

    def place(self, job: JobView, servers: Sequence[ServerView]) -> Placement | None:
        for gpu_type in job.gpu_types:
            candidates = [s for s in servers if s.num_free and s.gpu_type == gpu_type]
            if sum(map(_num_free, candidates)) >= job.num_gpus:
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


# (num_free, server_id): fewest free GPUs, then lowest id (attrgetter: called per server per
# placement, so kept in C)
_best_fit: ServerOrder = attrgetter("num_free", "server_id")


@PLACEMENTS.register("packed")
class Packed(PlacementPolicy):
    """Fewest servers: best fit on one server if possible, else the emptiest servers first."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, _best_fit, lambda s: (-s.num_free, s.server_id))


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


@PLACEMENTS.register("load-balanced")
class LoadBalanced(PlacementPolicy):
    """Least-loaded servers first: a job that fits one server goes to the one with the lowest
    allocated fraction (worst fit); a bigger one takes whole servers' free GPUs in that order."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, _load_order, _load_order)


def _load_order(s: ServerView) -> tuple:
    return ((s.num_gpus - s.num_free) / s.num_gpus, -s.num_free, s.server_id)


@PLACEMENTS.register("random")
class RandomPlacement(PlacementPolicy):
    """A seeded random choice: one server drawn uniformly among those that fit the job, else
    the servers in a uniformly random order; from the scenario seed's stream `params.stream`."""

    class Params(PlacementPolicy.Params):
        stream: str = Field(default="placement", min_length=1)

    params: Params  # this class's own params (typed)

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        self._rng = RandomStreams(0).stream(self.params.stream)

    def bind(self, network: Network | None = None, fabric: LinkLoads | None = None,
             streams: RandomStreams | None = None) -> None:
        if streams is not None:
            self._rng = streams.stream(self.params.stream)

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        fits = [s for s in servers if s.num_free >= n]
        if fits:
            return _take(n, [fits[int(self._rng.integers(len(fits)))]])
        return _take(n, [servers[int(i)] for i in self._rng.permutation(len(servers))])


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The candidate servers of one placement, most free GPUs first, as arrays."""

    free: np.ndarray
    load: np.ndarray
    ids: np.ndarray
    groups: np.ndarray


def _group_hops(graph: nx.Graph, members: list[list[str]]) -> np.ndarray:
    """Hops between the groups' servers (group g's first server to group h's first; within a
    group, its first to its second, 0 for a lone server); 10**6 where cut off (cannot happen:
    validated). Breadth-first searches in C (scipy's csgraph), many sources at a time: the
    same hop counts as networkx's, at a 10,000-server cluster in about a second, not minutes."""
    from scipy.sparse.csgraph import shortest_path

    index = {n: i for i, n in enumerate(graph)}
    adjacency = nx.to_scipy_sparse_array(graph, nodelist=list(graph), weight=None,
                                         format="csr")
    firsts = np.array([index[m[0]] for m in members], dtype=np.int64)
    seconds = np.array([index[m[1] if len(m) > 1 else m[0]] for m in members], dtype=np.int64)
    n = len(members)
    dist = np.zeros((n, n), dtype=np.int64)
    chunk = max(1, 2**22 // max(1, graph.number_of_nodes()))  # rows of at most ~32 MB
    for lo in range(0, n, chunk):
        rows = shortest_path(adjacency, unweighted=True, directed=False,
                             indices=firsts[lo:lo + chunk])
        rows = np.where(np.isfinite(rows), rows, 10**6).astype(np.int64)
        dist[lo:lo + chunk] = rows[:, firsts]
        k = np.arange(lo, min(lo + chunk, n))
        dist[k, k] = rows[k - lo, seconds[k]]
    return dist


@PLACEMENTS.register("topology-aware")
class TopologyAware(PlacementPolicy):
    """Fewest servers, then the closest ones in the topology (same leaf first), then the least
    loaded uplinks; a job that fits one server gets the best fit (as packed).

    Bound to a network, servers are grouped by the switches they hang off (a leaf-spine's leaf,
    a fat-tree's edge switch; a server linked only to servers, as in a torus, is its own group),
    and the hop distances between groups are computed once. A multi-server job of n GPUs is
    tried on neighbourhoods: for each group g holding free GPUs, the groups within hop distance
    r of g, r growing over the distances that occur, stopping at the first r whose selection
    uses the fewest servers any selection can (k_min, from all candidate servers). In a
    neighbourhood the selection takes the fewest servers: the k-1 with the most free GPUs
    (ties: less loaded uplinks, lower id), then, of the rest that hold the remaining GPUs, the
    closest to those (then fewest free, less loaded, lower id). The chosen selection minimises
    (servers, largest hop distance between two of them, hops around the ring in id order, the
    highest uplink load among them, the sorted server ids). A server's uplink load is the
    highest level (`utilization`) of the fabric's links between it and its switches and
    between those switches and the switches above; 0 without a flow-level fabric."""

    def __init__(self, params: BaseModel) -> None:
        super().__init__(params)
        self._group: dict[int, int] = {}  # server id -> group index
        self._dist = np.ones((1, 1), dtype=np.int64)  # hops between groups (diagonal: within)
        self._hoods: list[list[np.ndarray]] = [[np.ones(1, dtype=bool)]]  # per group, growing
        self._fabric: LinkLoads | None = None
        self._uplinks = np.zeros((0, 0), dtype=np.int64)  # row per server id, padded
        self._row: dict[int, int] = {}

    def bind(self, network: Network | None = None, fabric: LinkLoads | None = None,
             streams: RandomStreams | None = None) -> None:
        if network is None:
            return
        graph = network.graph
        nodes = sorted((n for n, kind in graph.nodes(data="kind") if kind == "server"),
                       key=lambda n: int(n.removeprefix("server")))
        keys: dict[frozenset, int] = {}
        members: list[list[str]] = []
        for node in nodes:
            switches = frozenset(v for v in graph[node] if graph.nodes[v].get("kind") != "server")
            key = switches if switches else frozenset({node})
            if key not in keys:
                keys[key] = len(members)
                members.append([])
            members[keys[key]].append(node)
            self._group[int(node.removeprefix("server"))] = keys[key]
        self._dist = _group_hops(graph, members)
        self._hoods = []
        for g in range(len(members)):
            hoods: list[np.ndarray] = []
            for r in np.unique(self._dist[g]):
                hood = self._dist[g] <= r
                hood[g] = True
                if not hoods or (hood != hoods[-1]).any():
                    hoods.append(hood)
            self._hoods.append(hoods)
        self._fabric = fabric
        if fabric is not None:
            self._bind_uplinks(graph, nodes, fabric)

    def _bind_uplinks(self, graph: nx.Graph, nodes: list[str], fabric: LinkLoads) -> None:
        index = {link: i for i, link in enumerate(fabric.router.links)}
        pad = len(index)  # points at an extra 0 appended to the levels
        rows = []
        for node in nodes:
            pairs = set()
            for v in graph[node]:
                pairs |= {(node, v), (v, node)}
                if graph.nodes[v].get("kind") != "server":
                    pairs |= {p for w in graph[v] if graph.nodes[w].get("kind") != "server"
                              for p in ((v, w), (w, v))}
            rows.append(sorted(index[p] for p in pairs if p in index))
        width = max((len(r) for r in rows), default=0)
        self._uplinks = np.array([r + [pad] * (width - len(r)) for r in rows],
                                 dtype=np.int64).reshape(len(rows), width)
        self._row = {int(n.removeprefix("server")): i for i, n in enumerate(nodes)}

    def uplink_load(self) -> dict[int, float]:
        """Each bound server's uplink load now (0 for all without a fabric)."""
        if self._fabric is None or self._uplinks.size == 0:
            return {}
        levels = np.append(self._fabric.utilization, 0.0)
        loads = levels[self._uplinks].max(axis=1)
        return {sid: float(loads[row]) for sid, row in self._row.items()}

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        fits = [s for s in servers if s.num_free >= n]
        if fits:
            return _take(n, [min(fits, key=_best_fit)])
        load = self.uplink_load()
        order = sorted(servers, key=lambda s: (-s.num_free, load.get(s.server_id, 0.0),
                                               s.server_id))
        c = _Candidates(
            free=np.array([s.num_free for s in order], dtype=np.int64),
            load=np.array([load.get(s.server_id, 0.0) for s in order]),
            ids=np.array([s.server_id for s in order], dtype=np.int64),
            groups=np.array([self._group.get(s.server_id, 0) for s in order], dtype=np.int64))
        k_min = int(np.searchsorted(np.cumsum(c.free), n)) + 1
        best: tuple | None = None
        best_pick: list[int] = []
        seen: dict[bytes, int] = {}  # neighbourhoods tried (as masks over `order`) -> servers
        for g in np.unique(c.groups).tolist():
            for hood in self._hoods[g]:
                inside = hood[c.groups]
                key = inside.tobytes()
                if key not in seen:
                    seen[key], score, pick = self._try(n, np.flatnonzero(inside), c, best)
                    if score is not None and (best is None or score < best):
                        best, best_pick = score, pick
                if seen[key] == k_min:
                    break
        return _take(n, [order[i] for i in best_pick])

    def _try(self, n: int, idx: np.ndarray, c: _Candidates, best: tuple | None
             ) -> tuple[int, tuple | None, list[int]]:
        """The fewest servers among `idx` (positions in `c`, most free first) that hold n GPUs:
        how many (0: they cannot), and, unless more than `best` has, their score and
        positions."""
        held = np.cumsum(c.free[idx])
        if held[-1] < n:
            return 0, None, []
        k = int(np.searchsorted(held, n)) + 1
        if best is not None and k > best[0]:
            return k, None, []
        first = idx[:k - 1]
        left = n - (int(held[k - 2]) if k > 1 else 0)
        rest = idx[k - 1:]
        rest = rest[c.free[rest] >= left]
        far = (self._dist[np.ix_(c.groups[rest], c.groups[first])].max(axis=1) if k > 1
               else np.zeros(len(rest), dtype=np.int64))
        last = rest[np.lexsort((c.ids[rest], c.load[rest], c.free[rest], far))[0]]
        pick = np.append(first, last)
        pick = pick[np.argsort(c.ids[pick])]
        hops = self._dist[np.ix_(c.groups[pick], c.groups[pick])]
        np.fill_diagonal(hops, 0)  # a server to itself
        ring = int(hops[np.arange(k), (np.arange(k) + 1) % k].sum())
        score = (k, int(hops.max()), ring, float(c.load[pick].max()), tuple(c.ids[pick].tolist()))
        return k, score, pick.tolist()
