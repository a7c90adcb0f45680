"""Services in the world (docs/serving.md): where a service's replicas go, what one replica
costs (from the GPU of its servers and their NVLink), and the checks a scenario's services
must pass before a run."""

from __future__ import annotations

from collections.abc import Callable

from dcsim.errors import Problem
from dcsim.hardware import Cluster
from dcsim.policies import Placement
from dcsim.scenario import Scenario
from dcsim.scenario.serving import ServiceSpec
from dcsim.serving.dnn import DnnCost, dnn_cost
from dcsim.serving.llm import LlmCost, ServingFitError, llm_cost

__all__ = ["replica_placements", "service_cost", "check_services"]


def replica_placements(spec: ServiceSpec, cluster: Cluster, count: int | None = None
                       ) -> list[Placement] | None:
    """`count` (default `spec.replicas`) placements of `spec.tp` GPUs, each inside one server
    of its GPU type, packed onto the lowest-numbered servers with room; None if the free GPUs
    cannot hold them."""
    free = {v.server_id: list(v.free) for v in cluster.views()
            if v.gpu_type == spec.gpu_type and v.server_id not in cluster.out}
    out = []
    for _ in range(spec.replicas if count is None else count):
        sid = next((s for s in sorted(free) if len(free[s]) >= spec.tp), None)
        if sid is None:
            return None
        gpus, free[sid] = tuple(free[sid][:spec.tp]), free[sid][spec.tp:]
        out.append(Placement(((sid, gpus),)))
    return out


def service_cost(spec: ServiceSpec, intra_byte_s: float, intra_latency_s: float
                 ) -> LlmCost | DnnCost:
    """One replica's costs: an LLM's iteration tables, or a DNN's batch latencies."""
    from dcsim import catalog

    if not spec.is_llm:
        return dnn_cost(spec, catalog.gpus()[spec.gpu_type])
    b = spec.batching
    return llm_cost(spec.model, catalog.gpus()[spec.gpu_type], spec.tp, spec.precision,
                    b.max_tokens, b.max_seqs, b.memory_fraction, intra_byte_s, intra_latency_s,
                    b.iteration_overhead_s, spec.kv_precision)


def check_services(sc: Scenario, cluster: Cluster, where: Callable[[tuple], tuple]
                   ) -> list[Problem]:
    """Each service's model fits its replica (else the memory breakdown), and its replicas
    fit the cluster's GPUs of its type (all services together)."""
    problems = []
    for i, spec in enumerate(sc.services):
        key = ("services", i)
        per_server = {s.num_gpus for s in cluster.servers if s.gpu.name == spec.gpu_type}
        if not per_server:
            problems.append(Problem(*where((*key, "gpu_type")), f"services.{i}.gpu_type",
                                    f"the cluster has no {spec.gpu_type} servers; it has "
                                    f"{', '.join(sorted(cluster.gpus_by_type))}"))
            continue
        if spec.tp > max(per_server):
            problems.append(Problem(*where((*key, "tp")), f"services.{i}.tp",
                                    f"tp {spec.tp} is more than the {max(per_server)} GPUs of "
                                    f"one {spec.gpu_type} server (a replica stays in one "
                                    f"server)"))
            continue
        have = sum(s.num_gpus for s in cluster.servers if s.gpu.name == spec.gpu_type)
        if spec.autoscale is not None and spec.autoscale.max_replicas * spec.tp > have:
            problems.append(Problem(*where((*key, "autoscale", "max_replicas")),
                                    f"services.{i}.autoscale.max_replicas",
                                    f"{spec.autoscale.max_replicas} replicas of {spec.tp} GPUs "
                                    f"are more than the cluster's {have} {spec.gpu_type} GPUs"))
        tier = spec.autoscale.weights_from if spec.autoscale else None
        if tier and sc.storage is not None and not getattr(sc.storage, tier).enabled:
            problems.append(Problem(*where((*key, "autoscale", "weights_from")),
                                    f"services.{i}.autoscale.weights_from",
                                    f"storage tier {tier} is disabled (storage.{tier}.enabled: "
                                    f"false); cold starts read the weights from it"))
        try:
            service_cost(spec, 1e11, 1e-6)
        except ServingFitError as exc:
            problems.append(Problem(*where((*key, "model")), f"services.{i}.model",
                                    f"{spec.model.name or 'the model'} on {spec.tp} x "
                                    f"{spec.gpu_type} in {spec.precision}: {exc}"))
    if not problems and sc.services:
        for spec_i, spec in enumerate(sc.services):
            placements = replica_placements(spec, cluster)
            if placements is None:
                problems.append(Problem(*where(("services", spec_i, "replicas")),
                                        f"services.{spec_i}.replicas",
                                        f"{spec.replicas} replicas of {spec.tp} x "
                                        f"{spec.gpu_type} do not fit the cluster's free "
                                        f"{spec.gpu_type} servers (after the services "
                                        f"before it)"))
                break
            for p in placements:
                cluster.allocate(p)
    return problems
