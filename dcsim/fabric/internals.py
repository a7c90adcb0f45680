"""What is inside a server, as graph nodes: GPUs, NICs, PCIe switches, the NVSwitch.

The topology builders link servers (`server{i}` nodes) to switches; `add_internals` hangs each
server's insides off its node, so that flows start and end at GPUs and cross the links a real
transfer crosses (GPUDirect RDMA: GPU -> its PCIe switch -> a NIC on that switch -> the fabric):

    server{i}.gpu{g} --pcie-- server{i}.pcie{k} --pcie-- server{i}.nic{n} --nic-- server{i}
    server{i}.gpu{g} --nvlink-- server{i}.nvswitch            (NVSwitch servers)
    server{i}.pcie{k} --pcie-- server{i}.cpu                  (more than one PCIe switch)

GPUs, then NICs, are spread evenly over the PCIe switches in index order; a GPU uses a NIC on
its own switch (the j-th GPU of a switch the (j mod NICs there)-th NIC), or, if its switch has
none, NIC g x N / G through the CPU's root complex. `server{i}` itself stands for the server's
network ports together: its links are the topology's (for a rail-optimized fabric all rails
meet there, so ECMP, not the NIC, picks a flow's rail). Each link's bandwidth is per direction;
internal links have no latency of their own (the NIC's is on the topology's links).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx

from dcsim.fabric.topology import server_node

__all__ = ["ServerInside", "INTERNAL_KINDS", "add_internals", "check_insides", "gpu_node"]

INTERNAL_KINDS = frozenset({"gpu", "nic", "pcie-switch", "nvswitch", "cpu"})


@dataclass(frozen=True, slots=True)
class ServerInside:
    server_id: int
    gpus: int
    nics: tuple[float, ...]  # each compute NIC's bandwidth (bytes/s, one direction)
    intra_kind: str  # "nvswitch" | "pcie"
    nvlink_byte_s: float  # per GPU and direction to the NVSwitch (nvswitch servers)
    pcie_byte_s: float  # per PCIe link and direction
    pcie_switches: int


def gpu_node(server_id: int, gpu: int) -> str:
    return f"{server_node(server_id)}.gpu{gpu}"


def _spread(count: int, bins: int) -> list[int]:
    """Bin of each of `count` items spread evenly over `bins` in index order."""
    return [i * bins // count for i in range(count)]


def add_internals(graph: nx.Graph, servers: Sequence[ServerInside]
                  ) -> tuple[nx.Graph, dict[str, list[str]]]:
    """A copy of `graph` with every server's insides, and each GPU's path of nodes to its
    server node (the way its traffic leaves the server). Servers of one make share one layout
    (`_layout`), instantiated per server; nodes are added before edges, in the order (and
    with the adjacency order) that adding them one by one would give."""
    g = graph.copy()
    attach: dict[str, list[str]] = {}
    layouts: dict[tuple, _Layout] = {}
    nodes: list[tuple[str, dict]] = []
    edges: list[tuple[str, str, dict]] = []
    for s in servers:
        top = server_node(s.server_id)
        if top not in g or s.gpus == 0:
            continue
        key = _layout_key(s)
        layout = layouts.get(key)
        if layout is None:
            layout = layouts[key] = _layout(s)
        name = f"{top}."

        def node(suffix: str, name: str = name, top: str = top) -> str:
            return name + suffix if suffix else top

        nodes += [(name + suffix, {"kind": kind}) for suffix, kind in layout.nodes]
        edges += [(node(a), node(b), {"bandwidth_byte_s": bw, "latency_s": 0.0})
                  for a, b, bw in layout.edges]
        for gpu, path in layout.attach.items():
            attach[name + gpu] = [node(x) for x in path]
    g.add_nodes_from(nodes)
    g.add_edges_from(edges)
    return g, attach


def check_insides(servers: Sequence[ServerInside]) -> None:
    """Raise ValueError (naming the link) if a server's insides have a link without
    bandwidth: what `add_internals` would raise, without building the graph."""
    seen = set()
    for s in servers:
        key = _layout_key(s)
        if key not in seen and s.gpus:
            seen.add(key)
            _layout(s)


def _layout_key(s: ServerInside) -> tuple:
    return (s.gpus, s.nics, s.intra_kind, s.nvlink_byte_s, s.pcie_byte_s, s.pcie_switches)


@dataclass(frozen=True, slots=True)
class _Layout:
    """One server's insides with node names as suffixes of `server{i}.` ("" is the server
    node itself): nodes (suffix, kind) and links (a, b, bandwidth) in the order they are
    added, and each GPU's way out."""

    nodes: list[tuple[str, str]]
    edges: list[tuple[str, str, float]]
    attach: dict[str, list[str]]


def _layout(s: ServerInside) -> _Layout:
    nodes: dict[str, str] = {}  # (re-adding a node keeps its place)
    edges: list[tuple[str, str, float]] = []
    attach: dict[str, list[str]] = {}

    def link(a: str, b: str, bandwidth: float) -> None:
        if bandwidth <= 0:
            name = f"{server_node(s.server_id)}."
            raise ValueError(f"link {name + a if a else name[:-1]} - "
                             f"{name + b if b else name[:-1]}: bandwidth must be > 0, "
                             f"got {bandwidth}")
        edges.append((a, b, bandwidth))

    switches = max(1, min(s.pcie_switches, s.gpus))
    for k in range(switches):
        nodes[f"pcie{k}"] = "pcie-switch"
        if switches > 1:
            nodes["cpu"] = "cpu"
            link(f"pcie{k}", "cpu", s.pcie_byte_s)
    nic_switch = _spread(len(s.nics), switches) if s.nics else []
    for n, bw in enumerate(s.nics):
        nodes[f"nic{n}"] = "nic"
        link(f"nic{n}", f"pcie{nic_switch[n]}", s.pcie_byte_s)
        link(f"nic{n}", "", bw)
    gpu_switch = _spread(s.gpus, switches)
    nvswitch = s.intra_kind == "nvswitch" and s.gpus > 1
    if nvswitch:
        nodes["nvswitch"] = "nvswitch"
    for gpu in range(s.gpus):
        node, k = f"gpu{gpu}", gpu_switch[gpu]
        nodes[node] = "gpu"
        link(node, f"pcie{k}", s.pcie_byte_s)
        if nvswitch:
            link(node, "nvswitch", s.nvlink_byte_s)
        if not s.nics:
            continue
        local = [n for n, kk in enumerate(nic_switch) if kk == k]
        if local:
            nth = gpu_switch[:gpu].count(k)
            nic = local[nth % len(local)]
            attach[node] = [node, f"pcie{k}", f"nic{nic}", ""]
        else:
            nic = gpu * len(s.nics) // s.gpus
            attach[node] = [node, f"pcie{k}", "cpu", f"pcie{nic_switch[nic]}", f"nic{nic}", ""]
    return _Layout(list(nodes.items()), edges, attach)
