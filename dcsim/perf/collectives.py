"""Collective operations over a set of servers, the way NCCL runs them, and their bandwidths.

`collective(op, size_bytes, server, nodes, algorithm)` gives the time of one collective over
all GPUs of `nodes` servers of a catalog type, and its algorithm bandwidth (algbw = S / t) and
bus bandwidth (busbw = algbw x the op's factor: 2 (n - 1) / n for all-reduce, (n - 1) / n for
all-gather, reduce-scatter and all-to-all, 1 for broadcast), as nccl-tests reports them.

Algorithms (n = nodes x g ranks, g GPUs per server):
- ring: NCCL opens one ring per NIC ("channel"), each through every GPU of a node over NVLink
  and between nodes over its own NIC, each carrying 1 / rings of the data. A ring step moves
  S / n per rank; the bus bandwidth is the smaller of a GPU's NVLink bandwidth and, across
  nodes, the node's NICs together (rings x NIC).
- tree (double binary tree, Sanders et al. 2009; NCCL 2.4): reduce up and broadcast down two
  complementary trees of nodes, each carrying half the data; latency grows with log2(nodes)
  instead of n, bandwidth as the ring's across nodes.
- hierarchical: reduce-scatter inside each node (NVLink), all-reduce of S / g across nodes (one
  ring per local rank, each through its share of the NICs), all-gather inside each node.
- nvls (NVLink SHARP, NCCL 2.17+; one node of a server with `nvls: true`, all-reduce only): the
  NVSwitch reduces. For each GPU's 1/n share the switch reads that share from every GPU and
  hands back the sum (multimem.ld_reduce), then the GPU writes the reduced share once and the
  switch multicasts it (multimem.st). Each GPU sends S + S / n and receives S / n + S, so
  t = S (n + 1) / n / (NVLink per direction x NVLS_EFFICIENCY) + 2 steps of latency.
- all-to-all: each rank sends S (n - 1) / n; what leaves a node goes through that GPU's share of
  the NICs, the rest over NVLink.
Link efficiencies are the device profile's (NCCL bus bandwidths, data/reference section 3);
NVLS_EFFICIENCY is set from the one NVLS figure there (H100, ~480 GB/s busbw), so that row is a
fit, not a check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from dcsim import catalog
from dcsim.perf.profile import profile_for

__all__ = ["OPS", "ALGORITHMS", "CollectiveResult", "collective", "bus_factor"]

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all")
ALGORITHMS = ("ring", "tree", "hierarchical", "nvls")
STEP_LATENCY_NVLINK_S = 1e-6
STEP_LATENCY_NETWORK_S = 3e-6  # NIC + switch + protocol per step (order of NCCL's LL/Simple)
# achieved / nominal NVLink bandwidth of NVLS all-reduce: the reference's ~480 GB/s busbw on 8
# H100s against its nominal 450 GB/s x 8 / 9 x 2 x 7 / 8 = 700 GB/s
NVLS_EFFICIENCY = 480.0 / 700.0


@dataclass(frozen=True, slots=True)
class CollectiveResult:
    op: str
    algorithm: str
    server: str
    nodes: int
    ranks: int
    size_bytes: float
    time_s: float
    algbw_gbyte_s: float
    busbw_gbyte_s: float

    def as_dict(self) -> dict:
        return asdict(self)


def bus_factor(op: str, n: int) -> float:
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


def _links(server: str) -> tuple[int, float, float]:
    """(GPUs per server, NVLink bandwidth per GPU and direction, NICs of a node together), both
    times the GPU profile's link efficiencies."""
    spec = catalog.servers()[server]
    gpu = catalog.gpus()[spec.gpu]
    prof = profile_for(gpu.name, gpu.first_order_efficiency)
    intra = (gpu.nvlink_byte_s / 2 if spec.intra_node == "nvswitch" and gpu.nvlink_byte_s
             else spec.pcie_byte_s) * prof.nvlink_efficiency
    nics = sum(catalog.nics()[t].effective_byte_s * c for t, c in spec.nics)
    return spec.gpus_per_server, intra, nics * prof.network_efficiency


def _ring_bus_bandwidth(g: int, nodes: int, intra: float, network: float) -> tuple[float, float]:
    """(bus bandwidth, latency per step) of NCCL's rings over `nodes` servers."""
    if nodes == 1:
        return intra, STEP_LATENCY_NVLINK_S
    return min(intra, network), STEP_LATENCY_NETWORK_S


def _time(op: str, algorithm: str, size: float, g: int, nodes: int, intra: float,
          network: float) -> float:
    n = g * nodes
    if n == 1:
        return 0.0
    if op == "all_to_all":
        off_node = size * (nodes - 1) / nodes
        on_node = size * (g - 1) / n
        per_gpu_network = network / g
        t = max(off_node / per_gpu_network if nodes > 1 else 0.0, on_node / intra)
        return t + (n - 1) * (STEP_LATENCY_NETWORK_S if nodes > 1 else STEP_LATENCY_NVLINK_S)
    bus, latency = _ring_bus_bandwidth(g, nodes, intra, network)
    steps = {"all_reduce": 2 * (n - 1), "broadcast": n - 1}.get(op, n - 1)
    if algorithm == "ring" or nodes == 1:
        return size * bus_factor(op, n) / bus + steps * latency
    if algorithm == "tree":
        depth = 2 * math.ceil(math.log2(nodes)) + 2 * (g - 1)  # up and down the trees
        return size * bus_factor(op, n) / bus + depth * latency
    # hierarchical: intra-node reduce-scatter, inter-node ring of S / g, intra-node all-gather
    inner = size * (g - 1) / g / intra
    outer_ranks = nodes
    outer = (size / g) * bus_factor(op, outer_ranks) / (network / g)
    outer_steps = {"all_reduce": 2 * (outer_ranks - 1)}.get(op, outer_ranks - 1)
    passes = 2 if op == "all_reduce" else 1
    return (passes * inner + outer + 2 * (g - 1) * STEP_LATENCY_NVLINK_S
            + outer_steps * STEP_LATENCY_NETWORK_S)


def _nvls_time(op: str, size: float, server: str, nodes: int) -> float:
    spec = catalog.servers()[server]
    if not spec.nvls:
        nvls = [name for name, s in catalog.servers().items() if s.nvls]
        raise ValueError(f"nvls needs NVSwitches with NVLink SHARP; {server} has none "
                         f"(servers with it: {', '.join(nvls)})")
    if op != "all_reduce":
        raise ValueError(f"nvls is modelled for all_reduce only, not {op}")
    if nodes != 1:
        raise ValueError("nvls is modelled inside one node (multi-node NVLS needs InfiniBand "
                         "SHARP, not modelled): use --nodes 1")
    n = spec.gpus_per_server
    per_direction = catalog.gpus()[spec.gpu].nvlink_byte_s / 2
    return size * (n + 1) / n / (per_direction * NVLS_EFFICIENCY) + 2 * STEP_LATENCY_NVLINK_S


def collective(op: str, size_bytes: float, server: str, nodes: int = 1,
               algorithm: str = "ring") -> CollectiveResult:
    """One `op` of `size_bytes` per rank over all GPUs of `nodes` servers of type `server`."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}; valid: {', '.join(OPS)}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; valid: {', '.join(ALGORITHMS)}")
    if server not in catalog.servers():
        raise ValueError(f"unknown server {server!r}; valid: {', '.join(catalog.servers())}")
    if nodes < 1:
        raise ValueError(f"nodes must be >= 1, got {nodes}")
    if not size_bytes > 0:
        raise ValueError(f"size_bytes must be > 0, got {size_bytes}")
    g, intra, network = _links(server)
    n = g * nodes
    if algorithm == "nvls":
        t = _nvls_time(op, float(size_bytes), server, nodes)
    else:
        t = _time(op, algorithm, float(size_bytes), g, nodes, intra, network)
    algbw = size_bytes / t if t > 0 else math.inf
    return CollectiveResult(op, algorithm, server, nodes, n, float(size_bytes), t,
                            algbw / 1e9, algbw * bus_factor(op, n) / 1e9)
