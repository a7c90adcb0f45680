"""Jobs sharing the network: each running job that spans servers keeps its data-parallel rings'
traffic on the topology graph as flows, and the max-min fair solver shares every link between
all of them. A job's ring bandwidth is the slowest of its flows' rates.

Each ring hop (server a -> next server b, in id order around the ring) carries one flow per GPU
the job has on a (all its rings run at once, one per local rank, as NCCL's channels do), routed
by ECMP with the key (job, hop, rank). Rates are recomputed only when the set of running jobs
changes. The model treats a job's collectives as continuous: it shares links by the jobs'
presence, not by the timing of their communication phases within an iteration. A failed link
(`fail`) reroutes the flows that crossed it; a job whose servers it cuts apart stalls (a rate of
STALL_RATE) until the link is repaired (`repair`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

from dcsim.fabric.internals import gpu_node
from dcsim.fabric.routing import Router
from dcsim.fabric.solver import max_min_rates
from dcsim.fabric.topology import server_node

__all__ = ["SharedFabric", "STALL_RATE", "ring_routes"]

STALL_RATE = 1.0  # bytes/s of a job whose servers a failure cut apart: it all but stops


GpusOf = Mapping[int, int | Sequence[int]]  # server id -> the job's GPU indices (or a count)


def gpu_lists(gpus: GpusOf) -> dict[int, tuple[int, ...]]:
    return {s: tuple(range(g)) if isinstance(g, int) else tuple(g) for s, g in gpus.items()}


def ring_routes(router: Router, job_id: int, gpus: Mapping[int, Sequence[int]]
                ) -> list[list[int]]:
    """The routes of a job's ring flows: for each hop (server a -> next server b, in id order
    around the ring), one per GPU the job has on a, from that GPU to the same-rank GPU of b
    (or between the server nodes if the graph has no GPUs), ECMP-keyed by (job, hop, rank).
    Raises ValueError if a failure split the servers apart."""
    servers = sorted(gpus)
    routes = []
    for hop, (a, b) in enumerate(zip(servers, servers[1:] + servers[:1], strict=False)):
        for rank, gpu in enumerate(gpus[a]):
            if router.has_internals:
                src, dst = gpu_node(a, gpu), gpu_node(b, gpus[b][rank % len(gpus[b])])
            else:
                src, dst = server_node(a), server_node(b)
            routes.append(router.route(src, dst, (job_id, hop, rank)))
    return routes


class SharedFabric:
    def __init__(self, graph: nx.Graph, attach: Mapping[str, Sequence[str]] | None = None) -> None:
        self.router = Router(graph, attach)
        self._jobs: dict[int, dict[int, tuple[int, ...]]] = {}  # job id -> GPUs per server
        self._rates: dict[int, float] = {}  # job id -> slowest flow rate (bytes/s)
        self._routes: dict[int, list[list[int]] | None] = {}  # job id -> its routes (None: cut)
        self.utilization = np.zeros(len(self.router.links))  # per directed link, last solve

    def add(self, job_id: int, gpus: GpusOf) -> bool:
        """A running job's GPUs (server id -> GPU indices, or how many); only jobs that span
        servers have flows. True if the job has flows (the links need re-sharing)."""
        if len(gpus) > 1:
            self._jobs[job_id] = gpu_lists(gpus)
            return True
        return False

    def remove(self, job_id: int) -> bool:
        """The job left; True if it had flows (the links need re-sharing)."""
        self._rates.pop(job_id, None)
        self._routes.pop(job_id, None)
        return self._jobs.pop(job_id, None) is not None

    def link_name(self, index: int) -> str:
        a, b = self.router.links[index]
        return f"{a}->{b}"

    def rate(self, job_id: int) -> float | None:
        """The job's per-GPU ring bandwidth under sharing, or None if it has no network flows."""
        return self._rates.get(job_id)

    def fail(self, u: str, v: str) -> None:
        self.router.remove(u, v)
        self._routes.clear()

    def repair(self, u: str, v: str) -> None:
        self.router.restore(u, v)
        self._routes.clear()

    def _job_routes(self, job_id: int) -> list[list[int]] | None:
        """The job's flow routes (cached until a link changes), or None if it is cut apart."""
        if job_id not in self._routes:
            try:
                self._routes[job_id] = ring_routes(self.router, job_id, self._jobs[job_id])
            except ValueError:  # a failed link split the job's servers apart
                self._routes[job_id] = None
        return self._routes[job_id]

    def solve(self) -> dict[int, float]:
        """Recompute every job's rate; returns the jobs whose rate changed (id -> new rate)."""
        owners, routes = [], []
        new: dict[int, float] = {}
        for job_id in sorted(self._jobs):
            job_routes = self._job_routes(job_id)
            if job_routes is None:  # cut apart: it stalls
                new[job_id] = STALL_RATE
                continue
            owners += [job_id] * len(job_routes)
            routes += job_routes
        load = np.zeros(len(self.router.links))
        if routes:
            rates = max_min_rates(routes, self.router.capacity)
            for job_id, route, rate in zip(owners, routes, rates, strict=True):
                new[job_id] = min(new.get(job_id, float("inf")), float(rate))
                load[route] += rate
        self.utilization = load / self.router.capacity
        changed = {j: r for j, r in new.items()
                   if j not in self._rates or abs(self._rates[j] - r) > 1e-9 * r}
        self._rates = new
        return changed
