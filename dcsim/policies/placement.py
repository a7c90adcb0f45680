"""Placement policies: which free GPUs a job gets, or None if it does not fit now.

All GPUs of one job are of one type (the first type in the job's preference list that fits).
A policy that needs more than the server views (the topology, the links' current load, a
random stream) gets it once from the engine through `bind`, right after construction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter
from typing import TYPE_CHECKING, ClassVar, Protocol

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dcsim.policies.views import JobView, Placement, ServerView, ServerViews
from dcsim.registry import Registry
from dcsim.rng import RandomStreams

if TYPE_CHECKING:
    from dcsim.fabric.network import Network
    from dcsim.policies.index import FreeIndex

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
    """A placement policy answers `place(job, servers)`. Subclasses implement `choose` over
    the candidate server views; a built-in one also implements `pick`, the same choice asked
    of the cluster's `FreeIndex` (no scan of the servers), used whenever `servers` carries
    one (`ServerViews.index`, what the engine passes) and the class that defines `choose`
    defines `pick` beside it (so a subclass that re-defines `choose` alone gets its own)."""

    name: ClassVar[str]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, params: BaseModel) -> None:
        self.params = params
        chooser = next(c for c in type(self).__mro__ if "choose" in vars(c))
        self._indexed = "pick" in vars(chooser)

    def bind(self, network: Network | None = None, fabric: LinkLoads | None = None,
             streams: RandomStreams | None = None) -> None:
        """Called once by the engine after construction with what the simulation holds: the
        network (its topology graph), the flow-level fabric whose `utilization` is current at
        every round (None under `engine.network: isolated`) and the scenario's random streams.
        The default ignores them; a policy precomputes what it needs here."""

    def place(self, job: JobView, servers: Sequence[ServerView]) -> Placement | None:
        index = servers.index if self._indexed and isinstance(servers, ServerViews) else None
        if index is not None:
            for gpu_type in job.gpu_types:
                if index.free_gpus(gpu_type) >= job.num_gpus:
                    return self.pick(job.num_gpus, gpu_type, index)
            return None
        for gpu_type in job.gpu_types:
            candidates = [s for s in servers if s.num_free and s.gpu_type == gpu_type]
            if sum(map(_num_free, candidates)) >= job.num_gpus:
                return self.choose(job.num_gpus, candidates)
        return None

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        """Pick n GPUs from `servers`, which together have at least n free."""
        raise NotImplementedError

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        """`choose`'s answer for the servers of `gpu_type` (which have at least n free GPUs),
        read from the index."""
        raise NotImplementedError


def _take(n: int, servers: Iterable[tuple[int, Sequence[int]]]) -> Placement:
    """The first n free GPUs of `servers`, (server id, free GPU indices) in order: each
    server's lowest-numbered free GPUs."""
    allocations = []
    for sid, free in servers:
        k = min(n, len(free))
        allocations.append((sid, tuple(free[:k])))
        n -= k
        if n == 0:
            break
    return Placement(tuple(allocations))


def _pairs(servers: Iterable[ServerView]) -> Iterator[tuple[int, Sequence[int]]]:
    return ((s.server_id, s.free) for s in servers)


def _indexed(ids: Iterable[int], index: FreeIndex) -> Iterator[tuple[int, Sequence[int]]]:
    return ((sid, index.free_of(sid)) for sid in ids)


def _single_or_spread(n: int, servers: list[ServerView], single: ServerOrder,
                      multi: ServerOrder) -> Placement:
    fits = [s for s in servers if s.num_free >= n]
    if fits:
        return _take(n, _pairs([min(fits, key=single)]))
    return _take(n, _pairs(sorted(servers, key=multi)))


# (num_free, server_id): fewest free GPUs, then lowest id (attrgetter: called per server per
# placement, so kept in C)
_best_fit: ServerOrder = attrgetter("num_free", "server_id")


def _best_fit_or(n: int, gpu_type: str, index: FreeIndex, spread: Iterable[int]) -> Placement:
    """Best fit on one server if one holds n, else `spread` (server ids) in order."""
    sid = index.best_fit(gpu_type, n)
    return _take(n, _indexed((sid,) if sid is not None else spread, index))


@PLACEMENTS.register("packed")
class Packed(PlacementPolicy):
    """Fewest servers: best fit on one server if possible, else the emptiest servers first."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, _best_fit, lambda s: (-s.num_free, s.server_id))

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        return _best_fit_or(n, gpu_type, index, index.most_free(gpu_type))


@PLACEMENTS.register("first-fit")
class FirstFit(PlacementPolicy):
    """The first server (by id) that fits the whole job; else servers in id order."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, lambda s: (s.server_id,), lambda s: (s.server_id,))

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        fits = index.fits(gpu_type, n)
        return _take(n, _indexed(fits[:1] if fits else index.fits(gpu_type, 1), index))


def _round_robin(n: int, order: list[tuple[int, Sequence[int]]]) -> Placement:
    """One GPU at a time over `order` (server id, free GPUs), round after round."""
    taken = [0] * len(order)
    while n:
        for i, (_, free) in enumerate(order):
            if n and taken[i] < len(free):
                taken[i] += 1
                n -= 1
    return Placement(tuple((sid, tuple(free[:k])) for (sid, free), k in zip(order, taken,
                                                                              strict=True)
                           if k))


@PLACEMENTS.register("spread")
class Spread(PlacementPolicy):
    """As many servers as possible: one GPU at a time, round-robin over the servers with the
    most free GPUs (ties by id); spreads load, but rings cross the network."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _round_robin(n, list(_pairs(sorted(servers, key=lambda s: (-s.num_free,
                                                                          s.server_id)))))

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        # n GPUs one per server touch at most the first n servers of that order
        return _round_robin(n, list(_indexed(islice(index.most_free(gpu_type), n), index)))


@PLACEMENTS.register("load-balanced")
class LoadBalanced(PlacementPolicy):
    """Least-loaded servers first: a job that fits one server goes to the one with the lowest
    allocated fraction (worst fit); a bigger one takes whole servers' free GPUs in that order."""

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        return _single_or_spread(n, servers, _load_order, _load_order)

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        single = next(index.least_loaded(gpu_type, n), None)
        ids = (single,) if single is not None else index.least_loaded(gpu_type)
        return _take(n, _indexed(ids, index))


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
            return _take(n, _pairs([fits[int(self._rng.integers(len(fits)))]]))
        return _take(n, _pairs(servers[int(i)] for i in self._rng.permutation(len(servers))))

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        # the same draws as `choose`: its candidate lists are these, in id order
        fits = index.fits(gpu_type, n)
        if fits:
            return _take(n, _indexed((fits[int(self._rng.integers(len(fits)))],), index))
        some = index.fits(gpu_type, 1)
        return _take(n, _indexed((some[int(i)] for i in self._rng.permutation(len(some))),
                                 index))


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
        self._rows = np.zeros(0, dtype=np.int64)  # server id -> its row of _uplinks (-1: none)

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
        pad = len(index)  # past the links: reads as level 0
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
        self._rows = np.full(max(self._row, default=-1) + 1, -1, dtype=np.int64)
        for sid, row in self._row.items():
            self._rows[sid] = row

    def _loads(self, ids: np.ndarray) -> np.ndarray:
        """The uplink load now of each server in `ids` (0 without a fabric or if unbound)."""
        if self._fabric is None or self._uplinks.size == 0:
            return np.zeros(len(ids))
        rows = self._rows[np.minimum(ids, len(self._rows) - 1)]
        rows = np.where(ids < len(self._rows), rows, -1)
        levels = self._fabric.utilization
        out = np.zeros(len(ids))
        bound = rows >= 0
        picked = self._uplinks[rows[bound]]
        found = levels[np.minimum(picked, len(levels) - 1)]
        found[picked >= len(levels)] = 0.0  # the padding
        out[bound] = found.max(axis=1)
        return out

    def uplink_load(self) -> dict[int, float]:
        """Each bound server's uplink load now (0 for all without a fabric)."""
        if self._fabric is None or self._uplinks.size == 0:
            return {}
        ids = np.array(sorted(self._row), dtype=np.int64)
        return dict(zip(ids.tolist(), self._loads(ids).tolist(), strict=True))

    def choose(self, n: int, servers: list[ServerView]) -> Placement:
        fits = [s for s in servers if s.num_free >= n]
        if fits:
            return _take(n, _pairs([min(fits, key=_best_fit)]))
        return self._near(n, list(_pairs(servers)))

    def pick(self, n: int, gpu_type: str, index: FreeIndex) -> Placement:
        sid = index.best_fit(gpu_type, n)
        if sid is not None:
            return _take(n, _indexed((sid,), index))
        return self._near(n, list(_indexed(index.fits(gpu_type, 1), index)))

    def _near(self, n: int, servers: list[tuple[int, Sequence[int]]]) -> Placement:
        """A multi-server job's servers (see the class docstring): `servers` are the
        candidates, (id, free GPUs), which together hold n."""
        ids = np.fromiter((sid for sid, _ in servers), dtype=np.int64, count=len(servers))
        free = np.fromiter((len(f) for _, f in servers), dtype=np.int64, count=len(servers))
        load = self._loads(ids)
        perm = np.lexsort((ids, load, -free))  # most free, then less loaded, then lower id
        groups = np.array([self._group.get(sid, 0) for sid in ids.tolist()], dtype=np.int64)
        c = _Candidates(free=free[perm], load=load[perm], ids=ids[perm], groups=groups[perm])
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
        return _take(n, (servers[int(perm[i])] for i in best_pick))

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
