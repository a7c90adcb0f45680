"""How fast a job runs now: the one place a step time is put together.

    step model (GPU, links)  ->  fabric share  ->  power cap  ->  stragglers  ->  storage

`pace` is a function of its arguments: the step model's estimate over the placement's links,
narrowed to the bandwidth the shared fabric gives the job now; its compute phase slowed by a
GPU power cap, if any (`PowerModel.capped`); every phase stretched by the slowest GPU's
straggler factor; then the data stall and the amortized checkpoint pauses that
the storage model plans for that step (`StorageTerms`). The engine (a running job) and the
world (a job placed alone) both call it; a time that is not finite and positive is a
SimulationError naming the job and the part.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from dcsim.catalog import GpuSpec
from dcsim.errors import SimulationError
from dcsim.fabric.network import RingPath
from dcsim.perf.step import StepEstimate, StepTimeModel
from dcsim.scenario import JobSpec

__all__ = ["pace", "StorageTerms", "STEP_PARTS"]

STEP_PARTS = ("compute_s", "bubble_s", "dp_comm_s", "tp_comm_s", "optimizer_s", "data_stall_s",
              "overhead_s", "checkpoint_s")
# step seconds before storage -> (data stall s, checkpoint pause s amortized per iteration)
StorageTerms = Callable[[float], tuple[float, float]]


def pace(model: StepTimeModel, spec: JobSpec, gpu: GpuSpec, ring: RingPath, *,
         ring_share: float | None = None, p2p_share: float | None = None,
         a2a_share: float | None = None, cp_share: float | None = None,
         slowdown: float = 1.0, storage: StorageTerms | None = None,
         cap: Callable[[StepEstimate], StepEstimate] | None = None) -> StepEstimate:
    """The job's step on `gpu` over `ring`, with the fabric's shares (bytes/s; None: alone:
    its ring, pipeline, expert all-to-all and ring-attention rates),
    the power cap (None: none), the straggler factor (>= 1) and the storage terms (None: no
    storage I/O)."""
    # (their own rates, not the ring's share, below)
    if a2a_share is not None:
        ring = replace(ring, a2a_byte_s=min(a2a_share, ring.a2a_bandwidth))
    if cp_share is not None:
        ring = replace(ring, cp_byte_s=min(cp_share, ring.cp_bandwidth))
    if ring_share is not None and ring_share < ring.bandwidth_byte_s:
        ring = replace(ring, bandwidth_byte_s=ring_share)
    if p2p_share is not None and p2p_share < ring.p2p_bandwidth:
        ring = replace(ring, p2p_byte_s=p2p_share)
    est = model.estimate(spec, gpu, ring)
    if cap is not None:
        est = cap(est)
    if slowdown > 1.0:  # every phase waits for the slowest GPU
        f = slowdown
        est = replace(est, iteration_s=est.iteration_s * f, compute_s=est.compute_s * f,
                      bubble_s=est.bubble_s * f, dp_comm_s=est.dp_comm_s * f,
                      tp_comm_s=est.tp_comm_s * f, optimizer_s=est.optimizer_s * f,
                      data_stall_s=est.data_stall_s * f, overhead_s=est.overhead_s * f)
    if storage is not None:
        stall, pause = storage(est.iteration_s)
        est = replace(est, iteration_s=est.iteration_s + stall + pause,
                      data_stall_s=est.data_stall_s + stall, checkpoint_s=pause)
    if not (math.isfinite(est.iteration_s) and est.iteration_s > 0):
        parts = ", ".join(f"{k} {getattr(est, k):g}" for k in STEP_PARTS
                          if not math.isfinite(getattr(est, k)))
        raise SimulationError(f"job {spec.name!r}: its step time is {est.iteration_s} s (from "
                              f"{parts or 'its parts'}); every time must be finite and positive "
                              f"(please report this scenario)")
    return est
