"""Memory per GPU: weights, gradients, optimizer states, activations and buffers.

Model state per parameter on a GPU (Rajbhandari et al., ZeRO, 2020): weights in the training
dtype (bf16/fp16: 2 bytes, fp32/tf32: 4, fp8/int8: 1 plus a 2-byte master copy for the update),
gradients in `grad_reduce_dtype` (fp32: 4 bytes, Megatron's main_grad; bf16: 2; fp32 training:
4), and Adam's fp32 master weights,
first and second moments (12 bytes; 8 when training in fp32, whose weights are the master copy).
ZeRO-1 shards the optimizer states over the dp ranks (or an HSDP group of them, `zero_group`),
ZeRO-2 also the gradients, ZeRO-3 (FSDP) also the weights, holding whole the layer computing and
the `prefetch` layers gathered ahead. Unstructured pruning stores (1 - fraction) of the weights,
gradients and optimizer states; its weights are stored sparse (value plus a 4-byte index) only
where that is smaller than dense. 2:4 sparsity stores half the weights plus 2 bits of metadata
per kept one.
Activations: per layer and micro-batch from `transformer.activation_bytes`, times the layers a
device holds, times the micro-batches in flight (1F1B: the first stage holds p; interleaved:
p (1 + (p - 1) / (p v)); GPipe: all m). Buffers: the fp32 logits of one micro-batch on the last
stage and a fixed workspace (CUDA context, NCCL and allocator slack).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from dcsim.perf.transformer import act_bytes, activation_bytes
from dcsim.perf.zoo import ModelStats, dense_layers_in, model_stats
from dcsim.scenario import GptModel, JobSpec
from dcsim.units import DTYPE_BYTES

__all__ = ["MemoryBreakdown", "memory_breakdown", "local_params", "local_param_split",
           "WORKSPACE_BYTES"]

WORKSPACE_BYTES = 2e9  # CUDA context, NCCL buffers, allocator fragmentation (rule of thumb)
# the same for a layer-by-layer network on one GPU: the CUDA context (~0.3-0.5 GB) and cuDNN
# workspace; a 12 GB K80 and a 16 GB P100 ran ResNet-50 in fp32 at batch 128 (Gavel's table)
NET_WORKSPACE_BYTES = 1e9


@dataclass(frozen=True, slots=True)
class MemoryBreakdown:
    weights: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations + self.buffers

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / 1e9:.1f}" for k, v in asdict(self).items())
        return f"{self.total / 1e9:.1f} GB per GPU ({parts} GB)"


# optimizer state per parameter beside the weights (fp32 moments; a 16/8-bit job also keeps
# fp32 master weights, 4 bytes more): Adam 2 moments, SGD with momentum 1, plain SGD none
OPTIMIZER_STATE_BYTES = {"adam": 8.0, "sgd": 4.0, "sgd-plain": 0.0, "none": 0.0}


def _state_bytes(job: JobSpec, optimizer: str = "adam") -> tuple[float, float, float]:
    """(weights, gradients, optimizer) bytes per parameter before sharding."""
    dtype = DTYPE_BYTES[job.precision]
    moments = OPTIMIZER_STATE_BYTES[optimizer]
    if dtype >= 4:
        weights, grads, optim = 4.0, 4.0, moments
    else:
        # gradients are kept (and reduced) in grad_reduce_dtype: Megatron's fp32 main_grad
        grads = float(DTYPE_BYTES[job.parallelism.grad_reduce_dtype])
        weights, optim = float(dtype) + (2.0 if dtype == 1 else 0.0), moments + 4.0
    if job.sparsity == "2:4":
        weights = weights / 2 + 0.25 / 2  # half the values plus 2 bits of metadata each
    keep = 1.0 - job.prune_fraction
    if job.prune_fraction:
        weights = min(weights, keep * (weights + 4.0))  # values plus a 4-byte index
        grads, optim = grads * keep, optim * keep
    return weights, grads, optim


def _in_flight(job: JobSpec, micro: int) -> float:
    p = job.parallelism
    schedule = p.pipeline_schedule
    if p.pp == 1:
        return 1.0
    if schedule == "gpipe":
        return float(micro)
    if schedule == "interleaved":
        # Korthikanti et al. 2022, section 4.2.3: the first stage holds L/p layers' activations
        # for p micro-batches times (1 + (p - 1) / (p v)) with v model chunks per device
        return min(p.pp * (1 + (p.pp - 1) / (p.pp * p.virtual_stages)), float(micro))
    return float(min(p.pp, micro))


def local_params(job: JobSpec, stats: ModelStats) -> float:
    """Dense parameters held by one GPU: / (tp x pp), MoE experts also / ep."""
    shared, experts = local_param_split(job, stats)
    return shared + experts


def local_param_split(job: JobSpec, stats: ModelStats) -> tuple[float, float]:
    """(parameters replicated over all dp ranks, expert parameters replicated over dp / ep
    ranks) held by one GPU. Without MoE the second is 0."""
    p = job.parallelism
    m = job.model
    # uneven pipeline stages: the stage that holds the most layers
    share = _stage_share(job) if isinstance(m, GptModel) else 1.0
    experts = stats.expert_params
    if not experts:
        return stats.params / (p.tp * p.pp) * share, 0.0
    # the experts of the stage with the most MoE layers (dense first layers hold none)
    chunks = p.chunk_layers(m.layers)
    moe = [k - n for k, n in zip(chunks, dense_layers_in(m, chunks), strict=True)]
    most = max(sum(moe[c * p.pp + d] for c in range(p.virtual_stages)) for d in range(p.pp))
    return ((stats.params - experts) / (p.tp * p.pp) * share,
            experts * most / sum(moe) / (p.tp * p.ep))


def _device_layers(job: JobSpec) -> list[int]:
    """Each pipeline stage's layers (over its virtual stages)."""
    p = job.parallelism
    chunks = p.chunk_layers(job.model.layers)
    return [sum(chunks[c * p.pp + d] for c in range(p.virtual_stages)) for d in range(p.pp)]


def _stage_share(job: JobSpec) -> float:
    """The most layers a pipeline stage holds, over the average (1 with even stages)."""
    p = job.parallelism
    if p.stage_layers is None and p.first_stage_layers is None and p.last_stage_layers is None:
        return 1.0
    return max(_device_layers(job)) / (job.model.layers / p.pp)


def _activations(job: JobSpec, micro: int) -> float:
    """The activations of the pipeline stage holding the most: each stage's layers (a MoE
    model's dense layers at their own size) times its micro-batches in flight (1F1B: stage d
    holds min(pp - d, m); the other schedules as the first stage, an upper bound for uneven
    stages)."""
    m, p = job.model, job.parallelism
    chunks = p.chunk_layers(m.layers)
    dense = dense_layers_in(m, chunks)
    per_moe, per_dense = activation_bytes(m, job), activation_bytes(m, job, dense=True)
    chunk_bytes = [(k - n) * per_moe + n * per_dense for k, n in zip(chunks, dense, strict=True)]
    first = _in_flight(job, micro)
    best = 0.0
    for d in range(p.pp):
        held = sum(chunk_bytes[c * p.pp + d] for c in range(p.virtual_stages))
        held *= min(p.pp - d, micro) if p.pipeline_schedule == "1f1b" else first
        best = max(best, held)
    return best


def memory_breakdown(job: JobSpec, stats: ModelStats | None = None) -> MemoryBreakdown:
    stats = stats or model_stats(job.model)
    p = job.parallelism
    w, g, o = _state_bytes(job, stats.net.optimizer if stats.net is not None else "adam")
    shared, experts = local_param_split(job, stats)

    def state(per_param: float, stage: int) -> float:
        """ZeRO `stage` and above shard this state over the ranks holding a replica."""
        if p.zero < stage:
            return (shared + experts) * per_param
        ranks = p.shard_ranks  # (the data- and context-parallel ranks, or its HSDP group)
        return shared * per_param / ranks + experts * per_param / max(1, ranks // p.ep)

    sharded = stats.sharded_params / job.num_gpus * 8.0  # embedding tables: fp32 + SGD state
    weights = state(w, 3) + sharded
    if p.zero == 3 and isinstance(job.model, GptModel):
        # the layer computing and the `prefetch` layers gathered ahead, whole
        per_layer = (shared + experts) / max(1.0, job.model.layers / p.pp)
        weights += (1 + p.prefetch) * per_layer * w
    gradients = state(g, 2)
    optimizer = state(o, 1)
    micro = job.global_batch // (p.dp * p.micro_batch)
    activations, buffers = 0.0, WORKSPACE_BYTES
    if isinstance(job.model, GptModel):
        m = job.model
        activations = _activations(job, micro)
        buffers += p.micro_batch * m.seq_len // p.cp * m.vocab / p.tp * 4.0
    else:  # the layer outputs a backward pass needs, where the model lists them
        activations = stats.activation_elems_per_sample * p.micro_batch * act_bytes(job.precision)
        if stats.net is not None:
            buffers = NET_WORKSPACE_BYTES
    return MemoryBreakdown(weights, gradients, optimizer, activations, buffers)
