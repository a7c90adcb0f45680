"""A transformer layer on one GPU, operation by operation, for one micro-batch.

For b sequences of s tokens (T = b s), hidden h, heads a, key/value width h_kv, MLP width f,
tensor-parallel degree t, the forward pass runs these matrix products on each GPU:
QKV 2 T h (h + 2 h_kv) / t, attention scores and their product with V 2 x 2 T s h / t (one fused
kernel with flash attention), output projection 2 T h^2 / t, MLP 2 T h f (2 or 3) / t; and
memory-bound kernels: layer norms, residual adds and dropouts (~16 T h bytes-per-element passes,
divided by t with sequence parallelism), the activation function, and without flash attention
the softmax, mask and dropout over b (a / t) s^2 scores. With t > 1 it runs two all-reduces of
T h activations (with sequence parallelism: two all-gathers and two reduce-scatters, the same
volume; Korthikanti et al. 2022). The backward pass runs twice the matrix FLOPs, twice the
memory traffic and the same collectives. Recompute repeats the forward (full) or the attention
core (selective) before the backward. A mixture-of-experts MLP runs its experts' products for
top-k x T tokens and two all-to-alls over the expert-parallel group in each direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.perf.costs import Collectives, Device
from dcsim.scenario import GptModel, JobSpec
from dcsim.units import DTYPE_BYTES

__all__ = ["Pass", "LayerCost", "layer_cost", "head_cost", "activation_bytes", "weight_bytes"]

ELEMENTWISE_H_PASSES = 16  # bytes-per-element passes over T x h per layer forward (norms etc.)
SOFTMAX_PASSES = 5  # passes over the attention scores without flash attention


@dataclass(frozen=True, slots=True)
class Pass:
    """One pass (forward, backward or recompute) of one micro-batch through a layer.
    `comm_s` is the communication left exposed (not overlapped with compute)."""

    compute_s: float = 0.0
    comm_s: float = 0.0
    flop: float = 0.0

    def __add__(self, other: Pass) -> Pass:
        return Pass(self.compute_s + other.compute_s, self.comm_s + other.comm_s,
                    self.flop + other.flop)

    def __mul__(self, k: float) -> Pass:
        return Pass(self.compute_s * k, self.comm_s * k, self.flop * k)

    @property
    def time_s(self) -> float:
        return self.compute_s + self.comm_s


@dataclass(frozen=True, slots=True)
class LayerCost:
    forward: Pass
    backward: Pass
    recompute: Pass


def weight_bytes(job: JobSpec) -> float:
    """Bytes per weight a kernel reads: the dtype's, halved plus metadata with 2:4 sparsity,
    times the kept fraction with pruning."""
    w = float(DTYPE_BYTES[job.precision])
    if job.sparsity == "2:4":
        w = w / 2 + 0.125
    return w * (1 - job.prune_fraction)


def act_bytes(dtype: str) -> int:
    """Bytes of an activation: fp8/int8 compute keeps activations in 16 bits."""
    return max(DTYPE_BYTES[dtype], 2)


def _attention(m: GptModel, job: JobSpec, dev: Device) -> tuple[Pass, Pass]:
    """(forward, the part selective recompute repeats) of the attention core."""
    p, t = job.parallelism, job.parallelism.tp
    b, s, h = p.micro_batch, m.seq_len, m.hidden
    # (context parallel: this rank's tokens, each attending to all s keys of its sequence)
    tokens, d = b * s // p.cp, act_bytes(job.precision)
    flop = 4.0 * tokens * s * h / t
    kv = h * (m.kv_heads or m.heads) // m.heads
    qkv_bytes = tokens * (h + 2 * kv) / t * d
    if m.flash_attention:
        fwd = Pass(dev.gemm(flop, qkv_bytes + tokens * h / t * d), 0.0, flop)
        return fwd, Pass()
    scores = b * (m.heads / t) * s * (s / p.cp) * d
    core = (dev.gemm(flop / 2, qkv_bytes + scores) + dev.gemm(flop / 2, scores + tokens * h / t * d)
            + dev.memory(SOFTMAX_PASSES * scores))
    fwd = Pass(core, 0.0, flop)
    return fwd, fwd


def _mlp(m: GptModel, job: JobSpec, dev: Device, ep_comm: Collectives) -> Pass:
    p = job.parallelism
    t, h, tokens, d = p.tp, m.hidden, p.micro_batch * m.seq_len // p.cp, act_bytes(job.precision)
    f = m.ffn_hidden or 4 * h
    up = 2 if m.gated_mlp else 1
    routed = tokens * (m.moe_top_k if m.moe_experts else 1)
    w = weight_bytes(job)
    sparse = job.sparsity == "2:4"
    flop_up, flop_down = 2.0 * routed * h * f * up / t, 2.0 * routed * f * h / t
    bytes_up = routed * h * d + h * f * up / t * w + routed * f * up / t * d
    bytes_down = routed * f / t * d + f * h / t * w + routed * h * d
    time = (dev.gemm(flop_up, bytes_up, sparse) + dev.gemm(flop_down, bytes_down, sparse)
            + dev.memory(routed * f / t * d * (3 if m.gated_mlp else 2)))
    comm = 0.0
    if m.moe_experts:
        comm = 2 * ep_comm.all_to_all(routed * h * d)  # dispatch and combine
    return Pass(time, comm, flop_up + flop_down)


def layer_cost(m: GptModel, job: JobSpec, dev: Device, tp_comm: Collectives,
               ep_comm: Collectives, cp_comm: Collectives | None = None) -> LayerCost:
    """One layer's passes for one micro-batch on one GPU. With context parallelism (cp > 1)
    the GPU holds micro_batch x seq_len / cp tokens (Megatron's load-balanced split: 2 cp
    chunks, each rank a pair, so causal work is even) and runs ring attention (Liu et al.
    2023): cp - 1 steps, each passing its KV chunk to the next rank (`cp_comm`) while it
    attends to the chunk it holds; only the transfer beyond that step's attention is exposed,
    twice over backward (the KV and their gradients go round)."""
    p = job.parallelism
    t, h, tokens, d = p.tp, m.hidden, p.micro_batch * m.seq_len // p.cp, act_bytes(job.precision)
    kv = h * (m.kv_heads or m.heads) // m.heads
    w = weight_bytes(job)
    sparse = job.sparsity == "2:4"
    flop_qkv, flop_proj = 2.0 * tokens * h * (h + 2 * kv) / t, 2.0 * tokens * h * h / t
    projections = (dev.gemm(flop_qkv, tokens * h * d + h * (h + 2 * kv) / t * w
                            + tokens * (h + 2 * kv) / t * d, sparse)
                   + dev.gemm(flop_proj, 2 * tokens * h / t * d + h * h / t * w, sparse))
    shard = t if p.sequence_parallel else 1
    elementwise = dev.memory(ELEMENTWISE_H_PASSES * tokens * h * d / shard)
    attention, selective = _attention(m, job, dev)
    mlp = _mlp(m, job, dev, ep_comm)
    comm = 2 * tp_comm.all_reduce(tokens * h * d)
    compute = attention.compute_s + mlp.compute_s + projections + elementwise
    # overlapped with the projections and MLP products they feed (Wang et al. 2022 style)
    hidden = min(comm, projections + mlp.compute_s) if p.overlap_tp_comm else 0.0
    ring = 0.0  # ring attention's exposed KV transfers, forward
    if p.cp > 1 and cp_comm is not None:
        step = cp_comm.ring_pass(tokens * 2 * kv / t * d)
        ring = (p.cp - 1) * max(0.0, step - attention.compute_s / p.cp)
    forward = Pass(compute, comm - hidden + mlp.comm_s + ring, attention.flop + mlp.flop
                   + flop_qkv + flop_proj)
    # backward: a data-gradient and a weight-gradient product per forward product
    backward = Pass(2 * forward.compute_s, forward.comm_s + ring, 2 * forward.flop)
    recompute = {"none": Pass(), "selective": selective, "full": forward}[p.recompute]
    return LayerCost(forward, backward, recompute)


def head_cost(m: GptModel, job: JobSpec, dev: Device) -> tuple[Pass, Pass]:
    """(forward, backward) of the output logits and the loss, on the last pipeline stage."""
    p = job.parallelism
    tokens, h, v, d = (p.micro_batch * m.seq_len // p.cp, m.hidden, m.vocab,
                       act_bytes(job.precision))
    flop = 2.0 * tokens * h * v / p.tp
    logits = tokens * v / p.tp * 4  # fp32 logits for the loss
    fwd = Pass(dev.gemm(flop, tokens * h * d + h * v / p.tp * d + logits) + dev.memory(2 * logits),
               0.0, flop)
    bwd = Pass(2 * dev.gemm(flop, tokens * h * d + h * v / p.tp * d + logits)
               + dev.memory(logits), 0.0, 2 * flop)
    return fwd, bwd


def activation_bytes(m: GptModel, job: JobSpec) -> float:
    """Activations one layer keeps for one micro-batch (Korthikanti et al. 2022, eq. 1-6, in
    bytes for 16-bit activations): s b h (10 + 24 / t + 5 a s / (h t)) without sequence
    parallelism, s b h (34 + 5 a s / h) / t with it; selective recompute or flash attention drops
    the 5 a s / h term; full recompute keeps only the layer input, 2 s b h (/ t with sp)."""
    p = job.parallelism
    s, b, h, a, t = m.seq_len, p.micro_batch, m.hidden, m.heads, p.tp
    scale = act_bytes(job.precision) / 2 / p.cp  # (context parallel: s / cp tokens a GPU)
    shard = t if p.sequence_parallel else 1
    if p.recompute == "full":
        return 2.0 * s * b * h / shard * scale
    attn = 0.0 if (m.flash_attention or p.recompute == "selective") else 5.0 * a * s / (h * t)
    if p.sequence_parallel:
        return s * b * h * (34.0 / t + attn) * scale
    return s * b * h * (10.0 + 24.0 / t + attn) * scale
