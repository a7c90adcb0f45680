"""One DNN replica's batch latency and memory: a model that is not a decoder-only LLM (ResNet,
BERT, DLRM, NCF, 3D U-Net, ...) served with dynamic batching on one GPU.

A batch of b one-sample requests takes the calibrated step model's forward pass at micro-batch
b plus the scenario's `batch_overhead_s`. The forward pass (`CalibratedStepModel.forward_s`)
uses the same device profiles and operation costs that time training steps; by default
(`fused_kernels`) as an inference engine such as TensorRT runs it: only the matrix products
and embedding lookups, with normalizations folded and elementwise work fused into them, and
activations in the precision's own bytes (dcsim/perf/netcost.py `fused_forward_s`,
`CalibratedStepModel._fused_forward`). Nothing here is fitted to inference measurements.
The forward pass is computed at batch sizes 1, 2, 3, 4, 6, 8, 12, 16, ... (powers of two and
1.5x them) and interpolated linearly in between.

Memory per GPU: the weights (dense and embedding tables, in the service's precision), the
activations of the largest batch (LIVE_BUFFERS buffers of the largest layer output: inference
frees each layer's input once the next has it) and the CUDA context must fit 90% of the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.perf.transformer import act_bytes
from dcsim.perf.zoo import model_stats
from dcsim.scenario import JobSpec
from dcsim.scenario.serving import ServiceSpec
from dcsim.serving.llm import CUDA_CONTEXT_BYTES, ServingFitError
from dcsim.units import DTYPE_BYTES

__all__ = ["DnnCost", "DnnMemory", "dnn_cost", "batch_grid", "MEMORY_FRACTION"]

MEMORY_FRACTION = 0.9
# live activation buffers at the peak of an inference forward pass, each as large as the
# largest layer output: a layer's input, its output and a residual branch held beside them
# (inference keeps nothing for a backward pass)
LIVE_BUFFERS = 3


@dataclass(frozen=True, slots=True)
class DnnMemory:
    """Bytes per GPU of one replica."""

    total: float
    weights: float
    activations: float
    context: float

    def describe(self) -> str:
        gb = 1e9
        return (f"per GPU: {self.total / gb:.1f} GB, of which usable "
                f"{MEMORY_FRACTION * self.total / gb:.1f} GB; needs weights "
                f"{self.weights / gb:.2f} GB + activations of the largest batch "
                f"{self.activations / gb:.2f} GB + CUDA context {self.context / gb:.1f} GB")


@dataclass(frozen=True, slots=True)
class DnnCost:
    """The kernel's table: `batch_s[b]` is a batch of b requests' time (b = 0..max_batch)."""

    batch_s: np.ndarray
    memory: DnnMemory
    params: float
    kv_capacity_tokens: int = 0  # (no KV cache)


def _largest_output(model, stats) -> float:
    """Elements per sample of the model's largest layer output (a transformer's MLP
    activation; else the largest product or elementwise output; an embedding lookup's output
    is no larger than what follows it, and a bag's is one row however many it reads)."""
    from dcsim.scenario import GptModel

    if isinstance(model, GptModel):
        return model.seq_len * max(model.ffn_hidden or 4 * model.hidden, 3 * model.hidden)
    if stats.net is not None:
        return max((op.m * op.n if op.kind == "matmul" else op.elems) for op in stats.net.ops
                   if op.kind != "gather")
    sizes = [m * n for m, _, n in stats.conv_shapes] + [n for _, n in stats.layer_shapes]
    return max(sizes, default=stats.activation_elems_per_sample)


def batch_grid(max_batch: int) -> list[int]:
    """Batch sizes whose forward pass is computed: 1, 2, 3, 4, 6, 8, 12, ..., max_batch."""
    sizes = {1, max_batch}
    k = 1
    while k < max_batch:
        sizes.update(x for x in (k, 3 * k // 2) if x < max_batch)
        k *= 2
    return sorted(sizes)


def _job(spec: ServiceSpec, batch: int) -> JobSpec:
    return JobSpec.model_validate({
        "name": spec.name, "model": spec.model, "precision": spec.precision,
        "global_batch": batch, "iterations": 1,
        "parallelism": {"dp": 1, "micro_batch": batch}})


def dnn_cost(spec: ServiceSpec, gpu: GpuSpec) -> DnnCost:
    """The batch-latency table and memory of one replica of `spec` on `gpu`; ServingFitError
    if it does not fit (with the breakdown) or the GPU lacks the precision."""
    from dcsim.perf.calibrated import CalibratedStepModel

    if spec.precision not in gpu.peak_flop_s:
        raise ServingFitError(f"{gpu.name} has no {spec.precision} math; it has "
                              f"{', '.join(gpu.peak_flop_s)}")
    b_max = spec.dynamic_batching.max_batch
    stats = model_stats(spec.model)
    weights = (stats.params + stats.sharded_params) * DTYPE_BYTES[spec.precision]
    acts = LIVE_BUFFERS * _largest_output(spec.model, stats) * b_max * act_bytes(spec.precision)
    memory = DnnMemory(gpu.memory_bytes, weights, acts, CUDA_CONTEXT_BYTES)
    if weights + acts + CUDA_CONTEXT_BYTES > MEMORY_FRACTION * gpu.memory_bytes:
        raise ServingFitError(f"does not fit at max_batch {b_max}: {memory.describe()}")
    model = CalibratedStepModel()
    one_gpu = RingPath(gpu.nvlink_byte_s or 1e11, 1e-6, gpu.nvlink_byte_s or 1e11, 1e-6, 1, 1)
    grid = batch_grid(b_max)
    fused = spec.dynamic_batching.fused_kernels
    times = [model.forward_s(_job(spec, b), gpu, one_gpu, fused) for b in grid]
    sizes = np.arange(b_max + 1, dtype=float)
    batch_s = np.interp(sizes, grid, times) + spec.dynamic_batching.batch_overhead_s
    batch_s[0] = 0.0
    return DnnCost(batch_s, memory, stats.params + stats.sharded_params)
