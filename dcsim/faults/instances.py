"""The component instances of a cluster that can fail (GPUs, servers, NICs, switches, fabric
links): their counts, the names failures.csv gives them, the targets a failure trace names
(`TargetError` for one this cluster lacks), and each class's per-instance failure distribution
(`resolve_components`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from dcsim.faults import llama3
from dcsim.scenario.faults import COMPONENTS, ComponentFailures, FaultsSpec

if TYPE_CHECKING:
    import networkx as nx

    from dcsim.hardware import Cluster

__all__ = ["Instances", "TargetError", "resolve_components"]


class TargetError(ValueError):
    pass


class Instances:
    """The component instances of a cluster: GPUs (flat index), servers, NICs, switches,
    fabric links."""

    def __init__(self, cluster: Cluster, graph: nx.Graph) -> None:
        servers = cluster.servers
        self.servers = servers
        self.gpu_offsets = np.cumsum([0] + [s.num_gpus for s in servers])
        self.nic_offsets = np.cumsum([0] + [len(s.nics) for s in servers])
        self.switches = sorted(n for n, k in graph.nodes(data="kind") if k == "switch")
        self.links = sorted(tuple(sorted((str(a), str(b)))) for a, b in graph.edges())
        self.graph = graph
        self.by_name = {s.name: s.server_id for s in servers}
        self.count = {
            "gpu": int(self.gpu_offsets[-1]), "gpu_memory": int(self.gpu_offsets[-1]),
            "software": int(self.gpu_offsets[-1]), "host": len(servers),
            "nic": int(self.nic_offsets[-1]), "switch": len(self.switches),
            "link": len(self.links)}

    def gpu_of(self, index: int) -> tuple[int, int]:
        sid = int(np.searchsorted(self.gpu_offsets, index, side="right") - 1)
        return sid, index - int(self.gpu_offsets[sid])

    def server_of(self, component: str, index: int) -> int:
        if component == "host":
            return index
        if component == "nic":
            return int(np.searchsorted(self.nic_offsets, index, side="right") - 1)
        return self.gpu_of(index)[0]

    def _server(self, text: str) -> int:
        if text in self.by_name:
            return self.by_name[text]
        try:
            sid = int(text.removeprefix("server"))
        except ValueError:
            raise TargetError(f"no server {text!r} (give a server id 0-{len(self.servers) - 1} "
                              "or a name like " f"{self.servers[0].name!r})") from None
        if not 0 <= sid < len(self.servers):
            raise TargetError(f"no server {sid}: ids are 0-{len(self.servers) - 1}")
        return sid

    def resolve(self, component: str, target: str) -> int:
        """The instance index of a trace target."""
        if component in ("gpu", "gpu_memory", "software"):
            server, _, gpu = target.partition("/")
            sid = self._server(server.strip())
            g = 0
            if gpu:
                try:
                    g = int(gpu)
                except ValueError:
                    raise TargetError(f"bad GPU index {gpu!r}") from None
                if not 0 <= g < self.servers[sid].num_gpus:
                    raise TargetError(f"server {sid} has GPUs 0-{self.servers[sid].num_gpus - 1}")
            return int(self.gpu_offsets[sid]) + g
        if component == "host":
            return self._server(target)
        if component == "nic":
            sid = self._server(target)
            if not self.servers[sid].nics:
                raise TargetError(f"server {sid} has no NIC")
            return int(self.nic_offsets[sid])
        if component == "switch":
            if target not in self.switches:
                more = " ..." if len(self.switches) > 8 else ""
                raise TargetError(f"no switch {target!r}; switches: "
                                  f"{', '.join(self.switches[:8])}{more}")
            return self.switches.index(target)
        a, _, b = target.partition("|")
        key = tuple(sorted((a.strip(), b.strip())))
        try:
            return self.links.index(key)
        except ValueError:
            raise TargetError(f"no link {target!r} (give NODE|NODE, e.g. "
                              f"{'|'.join(self.links[0]) if self.links else 'none here'})") \
                from None

    def name(self, component: str, index: int) -> str:
        if component in ("gpu", "gpu_memory", "software"):
            sid, g = self.gpu_of(index)
            return f"{self.servers[sid].name}/{g}"
        if component in ("host", "nic"):
            return self.servers[self.server_of(component, index)].name
        if component == "switch":
            return self.switches[index]
        return "|".join(self.links[index])


def resolve_components(spec: FaultsSpec, inst: Instances) -> dict[str, ComponentFailures]:
    """Each class's per-instance failure distribution: the preset's (scaled to this cluster's
    GPUs; dcsim/faults/llama3.py), overridden class by class by `components`."""
    out: dict[str, ComponentFailures] = {}
    gpus = inst.count["gpu"]
    if spec.preset == "llama3":
        for comp in llama3.class_counts():
            n = inst.count[comp]
            rate = llama3.rate_per_gpu_hour(comp) * gpus * spec.preset_scale  # per hour
            if n and rate > 0:
                # (not validated: a small preset_scale or a large fabric may put one
                # instance's MTBF beyond what a scenario may write, and it is still a rate)
                out[comp] = ComponentFailures.model_construct(mtbf_hours=n / rate)
    for comp, cf in spec.components.items():
        out[comp] = cf
    return {c: out[c] for c in COMPONENTS if c in out and inst.count[c] > 0}
