"""The configured failure rates of a cluster, without running anything: per class, and the
mean time between failures that interrupt a job (for Young/Daly checkpoint intervals).

Built from the cluster's component instances (`Instances`) and each class's resolved
distribution (`resolve_components`); the engine's `FaultModel` and a world of its own
(`dcsim estimate` of a job alone) use the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from dcsim.faults.instances import Instances
from dcsim.scenario.faults import ComponentFailures

__all__ = ["FaultRates", "servers_next_to"]

HOUR = 3600.0


def servers_next_to(inst: Instances, nodes: Iterable[str]) -> frozenset[int]:
    """The ids of the servers among `nodes`."""
    kinds = inst.graph.nodes
    return frozenset(int(n.removeprefix("server")) for n in nodes
                     if kinds[n].get("kind") == "server")


class FaultRates:
    def __init__(self, inst: Instances, components: dict[str, ComponentFailures]) -> None:
        self.inst, self.components = inst, components
        self._cache: dict[tuple, float] = {}
        self._link_servers = [servers_next_to(inst, lk) for lk in inst.links]
        self._switch_servers = [servers_next_to(inst, inst.graph[sw]) for sw in inst.switches]

    def class_rate_per_s(self, comp: str) -> float:
        """Failures per second of the whole class (all instances), from the configuration."""
        cf = self.components.get(comp)
        return self.inst.count[comp] / (cf.mtbf_hours * HOUR) if cf else 0.0

    def configured_mtbf_hours(self) -> dict[str, float]:
        """Per class, the cluster-wide mean time between failures (instance MTBF / instances)."""
        return {c: 1.0 / (self.class_rate_per_s(c) * HOUR) for c in self.components}

    def job_mtbf_s(self, job) -> float:
        """Mean time between failures that interrupt `job` (its `spec` and `placement`): 1 /
        the summed rates of the instances it depends on (its GPUs for gpu, gpu_memory,
        software; its servers for host; their NICs; if it spans servers, the links and
        switches that can cut it). Not placed: as many servers as it needs, of the first
        server's size."""
        spec, placement = job.spec, job.placement
        if placement is not None:
            sids = list(placement.server_ids)
        else:
            per = self.inst.servers[0].num_gpus or 1
            sids = list(range(min(len(self.inst.servers), -(-spec.num_gpus // per))))
        key = (spec.num_gpus, tuple(sids))
        if key not in self._cache:
            self._cache[key] = self._mtbf_of(spec.num_gpus, set(sids))
        return self._cache[key]

    def _mtbf_of(self, num_gpus: int, sids: set[int]) -> float:
        rate = 0.0
        for comp, cf in self.components.items():
            per_instance = 1.0 / (cf.mtbf_hours * HOUR)
            if comp in ("gpu", "gpu_memory", "software"):
                n = num_gpus
            elif comp == "host":
                n = len(sids)
            elif comp == "nic":
                n = sum(len(self.inst.servers[s].nics) for s in sids)
            elif len(sids) < 2:
                n = 0
            else:  # a network element cuts the job if above the servers or next to one of its
                ends = self._link_servers if comp == "link" else self._switch_servers
                n = sum(1 for e in ends if not e or not e.isdisjoint(sids))
            rate += n * per_instance
        return 1.0 / rate if rate > 0 else math.inf
