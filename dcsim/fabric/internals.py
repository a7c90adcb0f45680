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

__all__ = ["ServerInside", "INTERNAL_KINDS", "add_internals", "gpu_node"]

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
    server node (the way its traffic leaves the server)."""
    g = graph.copy()
    attach: dict[str, list[str]] = {}
    for s in servers:
        top = server_node(s.server_id)
        if top not in g or s.gpus == 0:
            continue
        name = f"{top}."
        switches = max(1, min(s.pcie_switches, s.gpus))
        for k in range(switches):
            g.add_node(f"{name}pcie{k}", kind="pcie-switch")
            if switches > 1:
                g.add_node(f"{name}cpu", kind="cpu")
                _link(g, f"{name}pcie{k}", f"{name}cpu", s.pcie_byte_s)
        nic_switch = _spread(len(s.nics), switches) if s.nics else []
        for n, bw in enumerate(s.nics):
            g.add_node(f"{name}nic{n}", kind="nic")
            _link(g, f"{name}nic{n}", f"{name}pcie{nic_switch[n]}", s.pcie_byte_s)
            _link(g, f"{name}nic{n}", top, bw)
        gpu_switch = _spread(s.gpus, switches)
        if s.intra_kind == "nvswitch" and s.gpus > 1:
            g.add_node(f"{name}nvswitch", kind="nvswitch")
        for gpu in range(s.gpus):
            node, k = gpu_node(s.server_id, gpu), gpu_switch[gpu]
            g.add_node(node, kind="gpu")
            _link(g, node, f"{name}pcie{k}", s.pcie_byte_s)
            if s.intra_kind == "nvswitch" and s.gpus > 1:
                _link(g, node, f"{name}nvswitch", s.nvlink_byte_s)
            if not s.nics:
                continue
            local = [n for n, kk in enumerate(nic_switch) if kk == k]
            if local:
                nth = gpu_switch[:gpu].count(k)
                nic = local[nth % len(local)]
                attach[node] = [node, f"{name}pcie{k}", f"{name}nic{nic}", top]
            else:
                nic = gpu * len(s.nics) // s.gpus
                attach[node] = [node, f"{name}pcie{k}", f"{name}cpu",
                                f"{name}pcie{nic_switch[nic]}", f"{name}nic{nic}", top]
    return g, attach


def _link(g: nx.Graph, a: str, b: str, bandwidth: float) -> None:
    if bandwidth <= 0:
        raise ValueError(f"link {a} - {b}: bandwidth must be > 0, got {bandwidth}")
    g.add_edge(a, b, bandwidth_byte_s=bandwidth, latency_s=0.0)
