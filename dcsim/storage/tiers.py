"""Storage tiers: capacity, read/write bandwidth and latency of each tier, per server or shared.

Tiers (fastest first): GPU HBM (the GPUs' own memory: capacity only, it holds the training
state), host DRAM (per server; `cache_fraction` of the host memory caches datasets), local NVMe
(per server, by server type), a shared parallel file system (`pfs`: aggregate bandwidth,
metadata latency per file opened) and an object store / HDD tier (`object`). Each tier is a
catalog device (catalog/storage.yaml) times a count, any figure overridable in the scenario's
`storage` section. The shared tiers are nodes of the network graph (`attach_storage`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx

from dcsim import catalog
from dcsim.scenario.cluster import Storage, StorageTier
from dcsim.scenario.schema import Scenario
from dcsim.units import GB

__all__ = ["Tier", "StorageSystem", "build_storage", "attach_storage", "SHARED_TIERS",
           "storage_node", "max_min_share"]

SHARED_TIERS = ("pfs", "object")
DEFAULT_CACHE_FRACTION = {"dram": 0.5, "nvme": 1.0}


def storage_node(tier: str) -> str:
    return f"storage.{tier}"


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier's aggregate figures (SI): per server for dram and nvme, in total for shared."""

    name: str  # dram | nvme | pfs | object
    device: str
    count: int
    capacity_bytes: float
    read_byte_s: float
    write_byte_s: float
    latency_s: float
    metadata_latency_s: float = 0.0
    cache_fraction: float = 0.0  # dram, nvme: share of the capacity caching datasets
    enabled: bool = True

    @property
    def cache_bytes(self) -> float:
        return self.capacity_bytes * self.cache_fraction if self.enabled else 0.0


def _tier(name: str, cfg: StorageTier, default: Mapping, host_memory_bytes: float = math.nan
          ) -> Tier:
    device_name = cfg.device or default["device"]
    dev = catalog.storage_devices()[device_name]
    count = cfg.count or (int(default.get("count", 1)) if cfg.device is None else 1)
    cap = dev.capacity_bytes * count if not math.isnan(dev.capacity_bytes) else host_memory_bytes
    frac = cfg.cache_fraction or default.get("cache_fraction") or DEFAULT_CACHE_FRACTION.get(
        name, 0.0)
    return Tier(
        name=name, device=device_name, count=count,
        capacity_bytes=cfg.capacity_gb * GB if cfg.capacity_gb else cap,
        read_byte_s=cfg.read_gbyte_s * GB if cfg.read_gbyte_s else dev.read_byte_s * count,
        write_byte_s=cfg.write_gbyte_s * GB if cfg.write_gbyte_s else dev.write_byte_s * count,
        latency_s=cfg.latency_s if cfg.latency_s is not None else dev.latency_s,
        metadata_latency_s=(cfg.metadata_latency_s if cfg.metadata_latency_s is not None
                            else dev.metadata_latency_s),
        cache_fraction=float(frac), enabled=cfg.enabled)


@dataclass(frozen=True, slots=True)
class StorageSystem:
    """Every tier of a cluster: `dram[i]`, `nvme[i]` of server i; `shared[name]` (pfs, object);
    `hbm_bytes[i]`: the GPU memory of server i (all its GPUs; capacity only)."""

    dram: tuple[Tier, ...]
    nvme: tuple[Tier, ...]
    shared: dict[str, Tier]
    hbm_bytes: tuple[float, ...]
    loader_workers: int = 8

    def local(self, tier: str, server_id: int) -> Tier:
        return (self.dram if tier == "dram" else self.nvme)[server_id]

    def capacity(self, tier: str) -> float:
        """Bytes a dataset or checkpoint on `tier` may use: a shared tier's capacity, or the
        smallest server's for nvme (a dataset staged there is copied to every server)."""
        if tier in SHARED_TIERS:
            t = self.shared[tier]
            return t.capacity_bytes if t.enabled else 0.0
        tiers = self.nvme if tier == "nvme" else self.dram
        return min((t.capacity_bytes if t.enabled else 0.0 for t in tiers), default=0.0)

    def enabled(self, tier: str) -> bool:
        if tier in SHARED_TIERS:
            return self.shared[tier].enabled
        return any(t.enabled for t in (self.nvme if tier == "nvme" else self.dram))


def build_storage(scenario: Scenario, servers: Sequence) -> StorageSystem:
    """The tiers of `scenario` (its `storage` section, else the defaults) over the cluster's
    `servers` (hardware.Server: `host_memory_bytes`, `gpu`, `num_gpus`; their group's catalog
    type picks the NVMe)."""
    cfg = scenario.storage or Storage()
    defaults = catalog.storage_defaults()
    types: list[str] = []
    for group in scenario.cluster.servers:
        types += [group.type or "default"] * group.count
    nvme_by_type = defaults["local_nvme"]
    dram, nvme, hbm = [], [], []
    for s, kind in zip(servers, types, strict=True):
        dram.append(_tier("dram", cfg.dram, defaults["defaults"]["dram"], s.host_memory_bytes))
        nvme.append(_tier("nvme", cfg.nvme, nvme_by_type.get(kind, nvme_by_type["default"])))
        hbm.append(s.gpu.memory_bytes * s.num_gpus)
    shared = {name: _tier(name, getattr(cfg, name), defaults["defaults"][name])
              for name in SHARED_TIERS}
    return StorageSystem(tuple(dram), tuple(nvme), shared, tuple(hbm), cfg.loader_workers)


def attach_storage(graph: nx.Graph, storage: StorageSystem) -> None:
    """Add each enabled shared tier to `graph`: node `storage.<tier>` (kind `storage`) linked
    to its gateway `storage.<tier>.gw` (kind `storage`) by one link that carries the tier's
    aggregate bandwidth (its read bandwidth out of the tier, its write bandwidth into it:
    `directed_byte_s`, which the router reads) at the tier's latency; the gateway links to the
    topology's top switches (those without servers below them: spines, cores; else all
    switches; with no switch, one server node), each able to carry the whole tier. So a lone
    reader gets the whole tier whichever switch ECMP picks, and all readers together no more
    than it. The router never routes other traffic through storage nodes."""
    kinds = graph.nodes(data="kind")
    switches = [n for n, k in kinds if k == "switch"]
    top = [n for n in switches if not any(kinds[m] == "server" for m in graph.neighbors(n))]
    ends = top or switches or [n for n, k in kinds if k == "server"][:1]
    for name, tier in storage.shared.items():
        if not tier.enabled or not ends:
            continue
        node, gateway = storage_node(name), f"{storage_node(name)}.gw"
        bw = max(tier.read_byte_s, tier.write_byte_s)
        graph.add_node(node, kind="storage")
        graph.add_node(gateway, kind="storage")
        graph.add_edge(node, gateway, bandwidth_byte_s=bw, latency_s=tier.latency_s,
                       directed_byte_s={(node, gateway): tier.read_byte_s,
                                        (gateway, node): tier.write_byte_s})
        for end in ends:
            graph.add_edge(gateway, end, bandwidth_byte_s=bw, latency_s=0.0)


def max_min_share(capacity: float, demands: Mapping[int, float]) -> dict[int, float]:
    """Max-min fair shares of `capacity` among jobs with these demands (bytes/s; inf: as much as
    it gets): a job asking less than an equal share gets its demand, the rest split the rest."""
    out: dict[int, float] = {}
    left, todo = capacity, sorted(demands.items(), key=lambda kv: kv[1])
    while todo:
        fair = left / len(todo)
        job_id, want = todo[0]
        if want <= fair:
            out[job_id] = want
            left -= want
            todo.pop(0)
        else:
            for job_id, _ in todo:
                out[job_id] = fair
            break
    return out
