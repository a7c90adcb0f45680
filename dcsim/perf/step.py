"""Step-time models: how long one training iteration of a job takes on a placement.

`StepTimeModel` is the interface the engine calls; `FirstOrderStepModel` is the first-level
implementation: compute = hardware FLOPs / (GPUs x dtype peak x efficiency), plus the pipeline
bubble (p - 1) / (v m) of Narayanan et al., plus an exposed (not overlapped) data-parallel
gradient ring all-reduce, 2 (d - 1) / d x bytes / bandwidth + 2 (d - 1) x latency, over the
slowest link of the job's ring. Tensor- and pipeline-parallel communication are not modelled
separately at this level: they are inside the efficiency factor. The calibrated model,
dcsim.perf.calibrated.CalibratedStepModel (the default) implements the same interface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.perf.zoo import model_stats
from dcsim.scenario import JobSpec
from dcsim.units import DTYPE_BYTES

__all__ = ["StepEstimate", "StepTimeModel", "FirstOrderStepModel"]

@dataclass(frozen=True, slots=True)
class StepEstimate:
    """One iteration of a job on a placement; times in seconds, FLOPs per iteration (all GPUs)."""

    iteration_s: float
    compute_s: float
    bubble_s: float
    dp_comm_s: float
    model_flop: float
    hardware_flop: float
    num_gpus: int
    peak_flop_s: float
    tp_comm_s: float = 0.0  # tensor-parallel collectives on the critical device
    optimizer_s: float = 0.0
    data_stall_s: float = 0.0  # waiting for input data (the storage model sets it)
    overhead_s: float = 0.0  # framework time per step outside the kernels (profiled hosts)
    checkpoint_s: float = 0.0  # checkpoint pauses amortized per iteration (the storage model)
    # where the iteration time came from: "model" (a step-time model), "measured" (a
    # throughput table entry) or "interpolated" (between entries; dcsim/perf/measured.py)
    source: str = "model"
    # a GPU power cap (W per GPU; inf: none) and how much it stretched compute_s (>= 1): the
    # power model reads both (dcsim/energy/model.py `PowerModel.capped`)
    power_cap_w: float = math.inf
    compute_stretch: float = 1.0

    @property
    def model_flop_s_per_gpu(self) -> float:
        return self.model_flop / (self.iteration_s * self.num_gpus)

    @property
    def hardware_flop_s_per_gpu(self) -> float:
        """FLOP/s the GPUs execute, recompute included."""
        return self.hardware_flop / (self.iteration_s * self.num_gpus)

    @property
    def mfu(self) -> float:
        """Model FLOPs utilization: achieved model FLOP/s over the dtype peak."""
        return self.model_flop_s_per_gpu / self.peak_flop_s


class StepTimeModel(Protocol):
    def estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate: ...


class FirstOrderStepModel:
    """Roofline-free first-level model; see the module docstring for its formulas."""

    def estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        stats = model_stats(job.model)
        p = job.parallelism
        peak = gpu.peak_flop_s[job.precision]
        per_sample_model = stats.training_flop_per_sample()
        per_sample_hw = per_sample_model + stats.recompute_flop_per_sample(p.recompute)
        model_flop = per_sample_model * job.global_batch
        hardware_flop = per_sample_hw * job.global_batch
        compute_s = hardware_flop / (job.num_gpus * peak * gpu.first_order_efficiency)
        micro_batches = job.global_batch // (p.dp * p.micro_batch)
        bubble_s = compute_s * (p.pp - 1) / (p.virtual_stages * micro_batches)
        grad_bytes = stats.params / (p.tp * p.pp) * DTYPE_BYTES[job.precision]
        dp_comm_s = 0.0
        if p.dp > 1:
            steps = 2 * (p.dp - 1)
            dp_comm_s = steps / p.dp * grad_bytes / ring.bandwidth_byte_s + steps * ring.latency_s
        return StepEstimate(
            iteration_s=compute_s + bubble_s + dp_comm_s,
            compute_s=compute_s,
            bubble_s=bubble_s,
            dp_comm_s=dp_comm_s,
            model_flop=model_flop,
            hardware_flop=hardware_flop,
            num_gpus=job.num_gpus,
            peak_flop_s=peak,
        )
