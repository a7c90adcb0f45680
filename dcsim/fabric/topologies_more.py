"""More topology builders: fat-tree, rail-optimized, torus, dragonfly and a user-given graph.

Each is one class with a `Params` model, registered in `TOPOLOGIES` like the ones in
`dcsim.fabric.topology`. Server nodes are `server_node(id)`; every other node is a switch
(`kind="switch"`). Bandwidths given as parameters are in GB/s (`*_gbyte_s`) and converted once here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dcsim.errors import ScenarioError
from dcsim.fabric.topology import TOPOLOGIES, ServerPort, Topology, _edge, server_node
from dcsim.textfile import read_text
from dcsim.units import GB
from dcsim.yamlsrc import load_yaml

__all__ = ["FatTree", "RailOptimized", "Torus", "Dragonfly", "UserGraph"]


def _add_server(g: nx.Graph, s: ServerPort) -> str:
    node = server_node(s.server_id)
    g.add_node(node, kind="server")
    return node


def _link_byte_s(link_gbyte_s: float | None, servers: Sequence[ServerPort]) -> float:
    """A switch-to-switch link: as given, or as fast as the fastest server's NICs."""
    if link_gbyte_s is not None:
        return link_gbyte_s * GB
    return max((s.nic_byte_s for s in servers), default=0.0)


def _check_capacity(kind: str, servers: Sequence[ServerPort], capacity: str, hosts: int) -> None:
    if len(servers) > hosts:
        raise ValueError(f"{kind}: {len(servers)} servers do not fit; {capacity} = {hosts} hosts")


@TOPOLOGIES.register("fat-tree")
class FatTree(Topology):
    """3-level k-ary fat-tree (Al-Fares et al., SIGCOMM 2008).

    k pods of k/2 edge and k/2 aggregation switches, (k/2)^2 core switches; edge switch e of a
    pod links to every aggregation switch of its pod, aggregation switch j to core switches
    j*k/2 .. (j+1)*k/2 - 1. Servers fill the edge switches in order, k/2 each (k^3/4 at most).
    Every switch-to-switch link carries `link_gbyte_s`, or by default the fastest server's NIC
    bandwidth (full bisection). The whole switch fabric is built even for fewer servers.
    """

    class Params(Topology.Params):
        k: int = Field(default=4, ge=2, le=128)  # k=128: 524,288 hosts
        link_gbyte_s: float | None = Field(default=None, gt=0, le=1e6)
        switch_latency_s: float = Field(default=5e-7, ge=0, le=1.0)

        @field_validator("k")
        @classmethod
        def _even(cls, k: int) -> int:
            if k % 2:
                raise ValueError(f"k must be even, got {k}")
            return k

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        k, half = self.params.k, self.params.k // 2
        _check_capacity("fat-tree", servers, f"k={k}: k^3/4", k**3 // 4)
        link = _link_byte_s(self.params.link_gbyte_s, servers)
        lat = self.params.switch_latency_s
        g = nx.Graph()
        for c in range(half * half):
            g.add_node(f"core{c}", kind="switch")
        for pod in range(k):
            for j in range(half):
                g.add_node(f"pod{pod}-agg{j}", kind="switch")
                for c in range(j * half, (j + 1) * half):
                    _edge(g, f"pod{pod}-agg{j}", f"core{c}", link, lat)
            for e in range(half):
                g.add_node(f"pod{pod}-edge{e}", kind="switch")
                for j in range(half):
                    _edge(g, f"pod{pod}-edge{e}", f"pod{pod}-agg{j}", link, lat)
        for i, s in enumerate(servers):
            pod, e = divmod(i // half, half)
            _edge(g, _add_server(g, s), f"pod{pod}-edge{e}", s.nic_byte_s, s.nic_latency_s)
        return g


@TOPOLOGIES.register("rail-optimized")
class RailOptimized(Topology):
    """DGX SuperPOD-like rail-optimized fabric.

    Servers form scalable units of `servers_per_unit`; each server's NICs form `rails` links of
    NIC total / rails each, and rail r of every server in a unit goes to that unit's leaf r.
    Every leaf links to every spine; a leaf's uplink capacity is the sum of its rail links
    divided by `oversubscription`, split evenly over the spines.
    """

    class Params(Topology.Params):
        rails: int = Field(default=8, gt=0, le=64)
        servers_per_unit: int = Field(default=32, gt=0, le=100_000)
        spines: int = Field(default=8, gt=0, le=4096)
        oversubscription: float = Field(default=1.0, ge=1.0, le=1000.0)
        switch_latency_s: float = Field(default=5e-7, ge=0, le=1.0)

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        p = self.params
        rails, per_unit, spines = p.rails, p.servers_per_unit, p.spines
        g = nx.Graph()
        for spine in range(spines):
            g.add_node(f"spine{spine}", kind="switch")
        for unit in range(math.ceil(len(servers) / per_unit)):
            members = servers[unit * per_unit : (unit + 1) * per_unit]
            for r in range(rails):
                leaf = f"su{unit}-leaf{r}"
                g.add_node(leaf, kind="switch")
                for s in members:
                    _edge(g, _add_server(g, s), leaf, s.nic_byte_s / rails, s.nic_latency_s)
                uplink = sum(s.nic_byte_s / rails for s in members) / p.oversubscription
                for spine in range(spines):
                    _edge(g, leaf, f"spine{spine}", uplink / spines, p.switch_latency_s)
        return g


@TOPOLOGIES.register("torus")
class Torus(Topology):
    """2D or 3D torus of servers linked directly to their neighbours (no switches).

    Server i sits at the i-th position of `dims` in row-major order (the first positions fill up,
    so a partly filled torus stays connected). Each link carries `link_gbyte_s`, or by default the
    slower end's NIC total / (2 x number of dimensions). A dimension of size 2 has one link between
    its two positions (not two), a dimension of size 1 none.
    """

    class Params(Topology.Params):
        dims: list[Annotated[int, Field(gt=0, le=4096)]] = Field(min_length=2, max_length=3)
        link_gbyte_s: float | None = Field(default=None, gt=0, le=1e6)

        @field_validator("dims")
        @classmethod
        def _positive(cls, dims: list[int]) -> list[int]:
            if any(d < 1 for d in dims):
                raise ValueError(f"every dimension must be >= 1, got {dims}")
            return dims

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        dims, given = self.params.dims, self.params.link_gbyte_s
        _check_capacity("torus", servers, f"dims {dims}: product", math.prod(dims))
        g = nx.Graph()
        at = {}
        for i, s in enumerate(servers):
            at[_coords(i, dims)] = s
            _add_server(g, s)
        for pos, a in at.items():
            for axis, size in enumerate(dims):
                nxt = list(pos)
                nxt[axis] = (pos[axis] + 1) % size
                b = at.get(tuple(nxt))
                if b is None or b is a:
                    continue
                bw = given * GB if given else min(a.nic_byte_s, b.nic_byte_s) / (2 * len(dims))
                _edge(
                    g,
                    server_node(a.server_id),
                    server_node(b.server_id),
                    bw,
                    a.nic_latency_s + b.nic_latency_s,
                )
        return g


def _coords(index: int, dims: Sequence[int]) -> tuple[int, ...]:
    out = []
    for size in reversed(dims):
        index, c = divmod(index, size)
        out.append(c)
    return tuple(reversed(out))


@TOPOLOGIES.register("dragonfly")
class Dragonfly(Topology):
    """Dragonfly (Kim et al., ISCA 2008): groups of routers, all-to-all inside each group, one
    global link between every pair of groups.

    Group i's global links, to the other groups in order, are spread round-robin over its routers.
    Servers fill the routers in order, `servers_per_router` each. Local links carry `link_gbyte_s`
    and global ones `global_link_gbyte_s`, both by default the fastest server's NIC bandwidth.
    """

    class Params(Topology.Params):
        groups: int = Field(default=4, gt=0, le=4096)
        routers_per_group: int = Field(default=4, gt=0, le=1024)
        servers_per_router: int = Field(default=2, gt=0, le=1024)
        link_gbyte_s: float | None = Field(default=None, gt=0, le=1e6)
        global_link_gbyte_s: float | None = Field(default=None, gt=0, le=1e6)
        switch_latency_s: float = Field(default=5e-7, ge=0, le=1.0)
        global_latency_s: float = Field(default=1e-6, ge=0, le=1.0)

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        p = self.params
        groups, a, per = p.groups, p.routers_per_group, p.servers_per_router
        capacity = f"groups x routers_per_group x servers_per_router = {groups} x {a} x {per}"
        _check_capacity("dragonfly", servers, capacity, groups * a * per)
        local = _link_byte_s(p.link_gbyte_s, servers)
        glob = _link_byte_s(p.global_link_gbyte_s, servers)
        g = nx.Graph()
        for grp in range(groups):
            for r in range(a):
                g.add_node(f"g{grp}-r{r}", kind="switch")
                for q in range(r):
                    _edge(g, f"g{grp}-r{q}", f"g{grp}-r{r}", local, p.switch_latency_s)
        for i in range(groups):
            for j in range(i + 1, groups):  # j is i's (j-1)-th other group, i is j's i-th
                _edge(g, f"g{i}-r{(j - 1) % a}", f"g{j}-r{i % a}", glob, p.global_latency_s)
        for i, s in enumerate(servers):
            grp, r = divmod(i // per, a)
            _edge(g, _add_server(g, s), f"g{grp}-r{r}", s.nic_byte_s, s.nic_latency_s)
        return g


class _EdgeRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    u: str
    v: str
    bandwidth_gbyte_s: float = Field(le=1e6)
    latency_s: float = Field(default=0.0, ge=0, le=1.0)


@TOPOLOGIES.register("graph")
class UserGraph(Topology):
    """A graph read from a file: GraphML (`.graphml`, `.xml`) or a YAML edge list.

    `path` is used as given: the caller (the scenario loader) resolves a relative path against the
    scenario file's directory before building; here a relative path would be relative to the
    current directory. Nodes `server0` .. `server{N-1}` are the cluster's servers (all must be
    present, no others), every other node is a switch. Every edge has `bandwidth_gbyte_s` > 0 (per
    direction) and optionally `latency_s` (default 0); the graph must be connected. The YAML form:

        edges:
          - {u: server0, v: sw0, bandwidth_gbyte_s: 25, latency_s: 1.0e-6}
    """

    class Params(Topology.Params):
        path: Path

    params: Params  # this class's own params (typed)

    def build(self, servers: Sequence[ServerPort]) -> nx.Graph:
        path = self.params.path
        g = nx.Graph()
        for u, v, data in _read_edges(path):
            for node in (u, v):
                if node.startswith(RESERVED_PREFIXES):
                    raise ValueError(f"{path}: node {node!r}: names starting with "
                                     f"{' or '.join(RESERVED_PREFIXES)} are reserved for "
                                     f"dcsim's own nodes (shared storage tiers)")
            if u == v:
                raise ValueError(f"{path}: edge {u} - {v} joins a node to itself")
            if g.has_edge(u, v):
                raise ValueError(f"{path}: edge {u} - {v} is given twice (one link per pair; "
                                 f"give its total bandwidth)")
            bw = data.get("bandwidth_gbyte_s")
            if not isinstance(bw, int | float) or not bw > 0:
                raise ValueError(f"{path}: edge {u} - {v}: bandwidth_gbyte_s must be > 0, got {bw}")
            _edge(g, u, v, float(bw) * GB, float(data.get("latency_s", 0.0)))
        _check_user_graph(g, servers, path)
        for n in g:
            g.nodes[n]["kind"] = "server" if n in _names(servers) else "switch"
        return g


# node names dcsim adds to a topology itself: the shared storage tiers (`storage.<tier>`)
RESERVED_PREFIXES = ("storage.",)


def _names(servers: Sequence[ServerPort]) -> set[str]:
    return {server_node(s.server_id) for s in servers}


def _read_edges(path: Path) -> list[tuple[str, str, dict]]:
    try:
        text = read_text(path, "topology graph")
        if path.suffix.lower() in (".graphml", ".xml"):
            graph = nx.parse_graphml(text, force_multigraph=True)
            return [(str(u), str(v), d) for u, v, d in graph.edges(data=True)]
        data = load_yaml(text, str(path))
    except ScenarioError as exc:  # unreadable, not text, not YAML: its first problem
        raise ValueError(str(exc.problems[0])) from None
    except (nx.NetworkXError, SyntaxError) as exc:  # ParseError is a SyntaxError
        raise ValueError(f"{path}: not a valid graph file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("edges"), list):
        raise ValueError(f"{path}: expected a mapping with an `edges` list")
    rows = []
    for i, item in enumerate(data["edges"]):
        try:
            row = _EdgeRow.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise ValueError(f"{path}: edges.{i}.{where}: {err['msg']}".rstrip(".")) from None
        rows.append((row.u, row.v, row.model_dump(include={"bandwidth_gbyte_s", "latency_s"})))
    return rows


def _check_user_graph(g: nx.Graph, servers: Sequence[ServerPort], path: Path) -> None:
    wanted = _names(servers)
    missing = sorted(wanted - set(g), key=lambda n: int(n.removeprefix("server")))
    if missing:
        raise ValueError(f"{path}: server node {missing[0]} is missing ({len(missing)} missing)")
    extra = sorted(n for n in g if re.fullmatch(r"server\d+", n) and n not in wanted)
    if extra:
        raise ValueError(
            f"{path}: node {extra[0]} is named like a server but the cluster has "
            f"{len(servers)} servers"
        )
    if g and not nx.is_connected(g):
        reach = nx.node_connected_component(g, next(iter(sorted(wanted) or g)))
        stray = sorted(set(g) - reach)
        raise ValueError(
            f"{path}: the graph is disconnected: node {stray[0]} cannot reach "
            f"{next(iter(reach))} ({len(stray)} nodes cut off)"
        )
