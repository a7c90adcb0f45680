"""Cluster state: servers and which of their GPUs are free. The engine mutates it; policies
see it only through `ServerView`s. Allocating a GPU twice is an error, never clamped."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from dcsim import catalog
from dcsim.catalog import GpuSpec
from dcsim.fabric import TOPOLOGIES, Network
from dcsim.fabric.internals import ServerInside
from dcsim.fabric.topology import ServerPort, server_node
from dcsim.policies.index import FreeIndex
from dcsim.policies.views import Placement, ServerView, ServerViews
from dcsim.scenario import Scenario, ServerGroup
from dcsim.units import GB

__all__ = ["Server", "Cluster", "ClusterError", "build_cluster", "build_network"]

NVSWITCH_LATENCY_S = 1e-6
DEFAULT_PCIE_GBYTE_S = 25.0  # PCIe Gen4 x16 achieved, for inline server groups


class ClusterError(ValueError):
    """A problem with one server group (index `group`, key path `key` within it)."""

    def __init__(self, group: int, key: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.group, self.key = group, key


@dataclass(frozen=True, slots=True)
class Server:
    server_id: int
    name: str
    gpu: GpuSpec
    num_gpus: int
    host_memory_bytes: float
    nic_byte_s: float  # all compute NICs together, one direction
    nic_latency_s: float
    intra_byte_s: float  # per GPU, one direction, to the other GPUs of the server
    intra_kind: str = "nvswitch"  # "nvswitch" | "pcie"
    nics: tuple[float, ...] = ()  # each compute NIC's bandwidth, one direction
    pcie_byte_s: float = DEFAULT_PCIE_GBYTE_S * GB  # per PCIe link, one direction
    pcie_switches: int = 1  # GPUs and NICs spread evenly over them, in index order


def _servers_of(group: ServerGroup, index: int, first_id: int) -> list[Server]:
    base = catalog.servers()[group.type] if group.type else None
    gpu_name = group.gpu or (base.gpu if base else "")
    gpu = catalog.gpus()[gpu_name]
    n_gpus = group.gpus_per_server or (base.gpus_per_server if base else 0)
    memory = group.host_memory_gb * GB if group.host_memory_gb else (
        base.host_memory_bytes if base else 0.0)
    nic_list = ([(n.type, n.count) for n in group.nics] if group.nics is not None
                else list(base.nics) if base else [])
    nic_specs = [(catalog.nics()[t], c) for t, c in nic_list]
    nic_bw = sum(spec.effective_byte_s * c for spec, c in nic_specs)
    nic_lat = max((spec.latency_s for spec, _ in nic_specs), default=0.0)
    intra_kind = group.intra_node or (base.intra_node if base else "nvswitch")
    pcie = base.pcie_byte_s if base else DEFAULT_PCIE_GBYTE_S * GB
    intra = gpu.nvlink_byte_s / 2 if intra_kind == "nvswitch" and gpu.nvlink_byte_s else pcie
    label = group.name or group.type or f"group{index}"
    each = tuple(spec.effective_byte_s for spec, c in nic_specs for _ in range(c))
    switches = base.pcie_switches if base else max(1, n_gpus // 2)
    return [
        Server(first_id + i, f"{label}-{i}", gpu, n_gpus, memory, nic_bw, nic_lat, intra,
               intra_kind, each, pcie, switches)
        for i in range(group.count)
    ]


class Cluster:
    def __init__(self, servers: list[Server]) -> None:
        self.servers = tuple(servers)
        self._free: list[list[int]] = [list(range(s.num_gpus)) for s in servers]
        self.total_gpus = sum(s.num_gpus for s in servers)
        self.allocated_gpus = 0
        self.gpus_by_type: dict[str, int] = {}
        self.gpu_specs: dict[str, GpuSpec] = {s.gpu.name: s.gpu for s in servers}
        self._views: list[ServerView | None] = [None] * len(servers)
        self._stale: set[int] = set(range(len(servers)))  # servers whose view is out of date
        self.out: set[int] = set()  # servers out of service (failed, awaiting repair)
        self.out_gpus = 0  # their GPUs (total_gpus counts every server, in service or not)
        self.version = 0  # changes at every allocation, release, failure and repair
        for s in servers:
            self.gpus_by_type[s.gpu.name] = self.gpus_by_type.get(s.gpu.name, 0) + s.num_gpus
        if any(s.server_id != i for i, s in enumerate(servers)):
            raise ValueError("server ids must be 0 .. n-1 in order")
        self.index = FreeIndex([(s.server_id, s.gpu.name, s.num_gpus) for s in servers],
                               self._free)

    def views(self) -> ServerViews:
        """What policies see of the servers now (built lazily; `index` answers placements
        without a scan). Valid until the next change."""
        return ServerViews(self._view_list, self.index, self._version)

    def _version(self) -> int:
        return self.version

    def _view_list(self) -> list[ServerView]:
        """Each server's view; rebuilt only for servers that changed."""
        for i in self._stale:
            s = self.servers[i]
            self._views[i] = ServerView(s.server_id, s.gpu.name, s.num_gpus, tuple(self._free[i]))
        self._stale.clear()
        return list(self._views)  # type: ignore[arg-type]

    def _set_free(self, server_id: int, free: list[int]) -> None:
        self._free[server_id] = free
        self._stale.add(server_id)
        self.index.moved(server_id)

    def num_free(self, server_id: int) -> int:
        return len(self._free[server_id])

    def allocate(self, placement: Placement) -> None:
        for server_id, gpus in placement.allocations:
            free = self._free[server_id]
            missing = [g for g in gpus if g not in free]
            if missing:
                raise RuntimeError(f"server {server_id}: GPUs {missing} are not free")
        for server_id, gpus in placement.allocations:
            taken = set(gpus)
            self._set_free(server_id, [g for g in self._free[server_id] if g not in taken])
        self.allocated_gpus += placement.num_gpus
        self.version += 1

    def down(self, server_id: int) -> None:
        """Take a server out of service (failure): none of its GPUs may be allocated."""
        s = self.servers[server_id]
        if server_id in self.out or len(self._free[server_id]) != s.num_gpus:
            raise RuntimeError(f"server {server_id}: taken down while in use or already down")
        self.out.add(server_id)
        self._set_free(server_id, [])
        self.out_gpus += s.num_gpus
        self.version += 1

    def up(self, server_id: int) -> None:
        """Put a repaired (or replaced) server back in service."""
        self.out.remove(server_id)
        self._set_free(server_id, list(range(self.servers[server_id].num_gpus)))
        self.out_gpus -= self.servers[server_id].num_gpus
        self.version += 1

    def release(self, placement: Placement) -> None:
        for server_id, gpus in placement.allocations:
            free = self._free[server_id]
            if any(g in free for g in gpus):
                raise RuntimeError(f"server {server_id}: releasing GPUs that are free")
            self._set_free(server_id, sorted(free + list(gpus)))
        self.allocated_gpus -= placement.num_gpus
        self.version += 1


def build_cluster(scenario: Scenario) -> Cluster:
    servers: list[Server] = []
    groups: list[list[Server]] = []
    for index, group in enumerate(scenario.cluster.servers):
        groups.append(_servers_of(group, index, len(servers)))
        servers += groups[-1]
    for index, made in enumerate(groups):
        if len(servers) > 1 and made and not made[0].nics:
            raise ClusterError(index, ("nics",), (
                f"servers of this group have no NICs, so their {made[0].num_gpus} GPUs each "
                "cannot reach the other servers: give the group `nics`"))
    return Cluster(servers)


def build_network(scenario: Scenario, cluster: Cluster) -> Network:
    topo_cls = TOPOLOGIES.get(scenario.topology.kind)
    params = dict(scenario.topology.params)
    if isinstance(params.get("path"), str):  # a file named in the scenario: relative to it
        params["path"] = str(scenario.resolve_path(params["path"]))
    topology = topo_cls(topo_cls.Params(**params))
    ports = [ServerPort(server_id=s.server_id, nic_byte_s=s.nic_byte_s,
                        nic_latency_s=s.nic_latency_s) for s in cluster.servers]
    if len(ports) == 1 and ports[0].nic_byte_s <= 0:  # one server without NICs: no network
        graph = nx.Graph()
        graph.add_node(server_node(ports[0].server_id), kind="server")
    else:
        graph = topology.build(ports)
    intra = {s.server_id: s.intra_byte_s for s in cluster.servers}
    inside = [ServerInside(s.server_id, s.num_gpus, s.nics, s.intra_kind, s.intra_byte_s,
                           s.pcie_byte_s, min(s.pcie_switches, s.num_gpus))
              for s in cluster.servers]
    return Network(graph, intra, NVSWITCH_LATENCY_S, inside)
