"""First-level communication model: the bandwidth of a ring over a set of servers.

Each ring hop between two servers gets the maximum flow between them in the topology graph
(so ECMP over several spines adds up), shared by the job's GPUs on the sending server, which all
run their rings at once; inside one server the GPUs talk over NVSwitch or PCIe. There is no
sharing between jobs at this level: the flow-level fabric (issue 4) replaces this class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import networkx as nx
import numpy as np

from dcsim.fabric.internals import ServerInside, add_internals, check_insides
from dcsim.fabric.maxflow import FlowGraph
from dcsim.fabric.topology import server_node

__all__ = ["Network", "RingPath"]


@dataclass(frozen=True, slots=True)
class RingPath:
    """What a job's collectives see. `bandwidth_byte_s` and `latency_s`: per GPU (one direction)
    and per step, of a ring through all of the job's servers (its data-parallel rings);
    `intra_*`: inside one server (tensor-parallel groups); `servers`: how many it spans."""

    bandwidth_byte_s: float
    latency_s: float
    intra_byte_s: float = 0.0  # 0: same as bandwidth_byte_s
    intra_latency_s: float = 0.0
    servers: int = 1
    min_gpus_per_server: int = 0  # the fewest of the job's GPUs on one server (0: unknown)
    p2p_byte_s: float = 0.0  # between pipeline stages under sharing (0: bandwidth_byte_s)
    shape: tuple[int, ...] = ()  # the job's GPUs per server, largest first (() unknown)
    a2a_byte_s: float = 0.0  # per GPU off its server, expert all-to-alls under sharing
    cp_byte_s: float = 0.0  # between context-parallel ranks on different servers, sharing

    @property
    def intra_bandwidth(self) -> float:
        return self.intra_byte_s or self.bandwidth_byte_s

    @property
    def p2p_bandwidth(self) -> float:
        return self.p2p_byte_s or self.bandwidth_byte_s

    @property
    def a2a_bandwidth(self) -> float:
        return self.a2a_byte_s or self.bandwidth_byte_s

    @property
    def cp_bandwidth(self) -> float:
        return self.cp_byte_s or self.bandwidth_byte_s


class Network:
    """`graph`: servers and switches (what the topology built); `detailed`: the same with each
    server's GPUs, NICs and PCIe/NVLink links (`internals.add_internals`), and `attach`, each
    GPU's way out of its server, which the flow-level fabrics route on."""

    ARRAY_MAX_FLOW_LINKS = 20_000  # from this many links on, max-flow on arrays (numba)

    def __init__(self, graph: nx.Graph, intra_byte_s: Mapping[int, float],
                 intra_latency_s: float = 1e-6,
                 inside: Sequence[ServerInside] = ()) -> None:
        self.graph = graph
        self._inside = list(inside)
        check_insides(self._inside)  # (the detailed graph itself is built on first use)
        self._on_detailed: list[Callable[[nx.Graph], None]] = []
        self._intra = dict(intra_byte_s)  # per-GPU per-direction bandwidth inside each server
        self._intra_latency_s = intra_latency_s
        # A node with one link carries no flow between two others: leave such servers out of
        # each max-flow problem (it then scales with the switches, not with the servers).
        self._transit = {n for n in graph if graph.degree(n) > 1}
        self._pair_cache: dict[frozenset, tuple[float, float]] = {}
        self._links: dict[int, tuple] = {}  # server id -> its links (`_links_of`)
        self._check_connected()

    @cached_property
    def _detailed(self) -> tuple[nx.Graph, dict[str, list[str]]]:
        detailed, attach = add_internals(self.graph, self._inside)
        for add in self._on_detailed:
            add(detailed)
        return detailed, attach

    @property
    def detailed(self) -> nx.Graph:
        """The graph with every server's insides (built on first use: a flow-level fabric, a
        detailed listing or plot; an isolated run never needs it)."""
        return self._detailed[0]

    @property
    def attach(self) -> dict[str, list[str]]:
        return self._detailed[1]

    def add_to_detailed(self, add: Callable[[nx.Graph], None]) -> None:
        """Apply `add` (e.g. attaching the storage tiers) to the detailed graph: now if it is
        built, else right after it is."""
        if "_detailed" in self.__dict__:
            add(self.detailed)
        else:
            self._on_detailed.append(add)

    @cached_property
    def _directed(self) -> nx.DiGraph:
        directed = self.graph.to_directed()
        for _, _, d in directed.edges(data=True):
            d["capacity"] = d["bandwidth_byte_s"]
        return directed

    def _check_connected(self) -> None:
        servers = [n for n, k in self.graph.nodes(data="kind") if k == "server"]
        if len(servers) > 1 and not nx.is_connected(self.graph):
            parts = sorted(nx.connected_components(self.graph), key=len, reverse=True)
            cut = sorted((n for part in parts[1:] for n in part
                          if self.graph.nodes[n].get("kind") == "server"),
                         key=lambda n: (len(n), n))
            gone = set(cut)
            gpus = sum(s.gpus for s in self._inside if server_node(s.server_id) in gone)
            shown = ", ".join(cut[:5]) + (f" and {len(cut) - 5} more" if len(cut) > 5 else "")
            raise ValueError(
                f"the topology is disconnected: {len(parts)} separate parts; {shown} (with "
                f"{gpus} GPUs) cannot reach {min(parts[0], key=lambda n: (len(n), n))}")

    def _pair(self, a: int, b: int) -> tuple[float, float]:
        """Max-flow bandwidth and path latency between servers a and b. Cached by the servers'
        links: two servers with the same neighbours over the same links (twins, e.g. under one
        leaf) swap by a symmetry of the graph, so every pair of twins of the same two kinds has
        the same answer (384 servers of 24 leaves: about 48 max-flow problems, not 384)."""
        key = frozenset((self._links_of(a), self._links_of(b)))
        if key not in self._pair_cache:
            u, v = server_node(a), server_node(b)
            flow = self._max_flow(u, v)
            # fewest hops, then least latency (the same for twins, whatever the edge order)
            path = nx.shortest_path(self.graph, u, v,
                                    weight=lambda _a, _b, d: 1.0 + min(d["latency_s"], 0.5))
            hops = zip(path, path[1:], strict=False)
            latency = sum(self.graph.edges[x, y]["latency_s"] for x, y in hops)
            self._pair_cache[key] = (float(flow), float(latency))
        return self._pair_cache[key]

    @cached_property
    def _flows(self) -> tuple[FlowGraph, dict[str, int]]:
        """The transit nodes and their links as arrays for `maxflow` (built once)."""
        names = sorted(self._transit, key=lambda n: (len(n), n))
        index = {n: i for i, n in enumerate(names)}
        links = [(index[x], index[y], d["bandwidth_byte_s"])
                 for x, y, d in self.graph.edges(data=True) if x in index and y in index]
        ends = np.array([(x, y) for x, y, _ in links], dtype=np.int64).reshape(-1, 2)
        caps = np.array([c for _, _, c in links], dtype=float)
        return FlowGraph(len(names), ends[:, 0], ends[:, 1], caps), index

    def _max_flow(self, u: str, v: str) -> float:
        """The maximum flow from server u to server v over the transit nodes: on a fabric of
        `ARRAY_MAX_FLOW_LINKS` links or more, exact, on arrays, where the capacities are whole
        numbers (dcsim/fabric/maxflow.py); networkx's preflow-push otherwise (the same value
        where both are exact; on a small fabric it answers before numba has loaded)."""
        if self._small:
            return self._nx_max_flow(u, v)
        graph, index = self._flows
        ends: list[dict[int, float]] = [{}, {}]
        direct = 0.0
        for side, (node, other) in enumerate(((u, v), (v, u))):
            if node in index:
                ends[side][index[node]] = math.inf
                continue
            for nbr, d in self.graph[node].items():
                cap = float(d["bandwidth_byte_s"])
                if nbr in index:
                    ends[side][index[nbr]] = ends[side].get(index[nbr], 0.0) + cap
                elif nbr == other and side == 0:  # a link straight between the two
                    direct = cap
        if not graph.exact_with(*ends) or direct != math.floor(direct):
            return self._nx_max_flow(u, v)
        return graph.max_flow(*ends) + direct

    def _nx_max_flow(self, u: str, v: str) -> float:
        core = self._directed.subgraph(self._transit | {u, v})
        return float(nx.maximum_flow_value(core, u, v, capacity="capacity"))

    @cached_property
    def _small(self) -> bool:
        return self.graph.number_of_edges() < self.ARRAY_MAX_FLOW_LINKS

    def _links_of(self, server: int) -> tuple:
        """A server's links: (neighbour, bandwidth, latency), sorted."""
        if server not in self._links:
            node = server_node(server)
            self._links[server] = tuple(sorted(
                (str(n), d["bandwidth_byte_s"], d["latency_s"])
                for n, d in self.graph[node].items()))
        return self._links[server]

    def ring(self, gpus_per_server: Mapping[int, int]) -> RingPath:
        """The ring through the servers of `gpus_per_server` (server id -> the job's GPUs there)."""
        ids = sorted(gpus_per_server)
        intra = min(self._intra[s] for s in ids)
        fewest = min(gpus_per_server.values())
        shape = tuple(sorted(gpus_per_server.values(), reverse=True))
        if len(ids) == 1:
            return RingPath(intra, self._intra_latency_s, intra, self._intra_latency_s, 1,
                            fewest, shape=shape)
        bandwidth, latency = intra, 0.0
        for a, b in zip(ids, ids[1:] + ids[:1], strict=False):
            flow, lat = self._pair(a, b)
            bandwidth = min(bandwidth, flow / gpus_per_server[a])
            latency = max(latency, lat)
        return RingPath(bandwidth, latency, intra, self._intra_latency_s, len(ids), fewest,
                        shape=shape)
