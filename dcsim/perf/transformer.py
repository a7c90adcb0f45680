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
core (selective) before the backward. A mixture-of-experts layer runs a router product, its
routed experts' products for top-k x T tokens (times the load on the busiest expert-parallel
rank: the capacity factor, or the imbalance of dropless routing), its shared experts' for T,
and an all-to-all each way (dispatch, combine) over the expert-parallel group, forward and
backward (`ExpertLinks`). Multi-head latent attention (DeepSeek-V2/V3) changes the projections'
and scores' widths (`zoo.attention_shape`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dcsim.perf.costs import Collectives, Device
from dcsim.perf.zoo import attention_shape, expert_width, out_width
from dcsim.scenario import GptModel, JobSpec
from dcsim.units import DTYPE_BYTES

__all__ = ["Pass", "LayerCost", "ExpertLinks", "layer_cost", "head_cost", "activation_bytes",
           "weight_bytes", "expert_load", "mtp_cost"]

ELEMENTWISE_H_PASSES = 16  # bytes-per-element passes over T x h per layer forward (norms etc.)
SOFTMAX_PASSES = 5  # passes over the attention scores without flash attention
# bytes moved per element quantized to FP8 for a product: read at 16 bits, write the 8-bit
# copy and its transpose (Hopper's FP8 products take both operands K-major, so the weight-
# gradient product needs the activation and gradient transposed; Transformer Engine keeps
# both); the scale comes from the amax history (delayed scaling), no extra pass
CAST_BYTES = 4


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


def eight_bit(job: JobSpec) -> bool:
    """Products in an 8-bit format (fp8, int8): the FP8 training recipe applies."""
    return DTYPE_BYTES[job.precision] == 1


def wide(dev: Device) -> Device:
    """The device at its 16-bit rate, for what an FP8 recipe keeps in BF16: the attention
    core, the output layer and the MoE router (Transformer Engine's recipes; DeepSeek-V3
    section 3.3.1)."""
    if DTYPE_BYTES.get(dev.dtype, 2) != 1:
        return dev
    return replace(dev, dtype="bf16" if dev.gpu.peak_flop_s.get("bf16") else "fp16")


def _casts(dev: Device, job: JobSpec, tensors: tuple[float, ...]) -> float:
    """Quantizing each tensor (its elements) to FP8 before its product: CAST_BYTES per
    element through HBM, a kernel each; nothing outside an 8-bit recipe."""
    if not eight_bit(job):
        return 0.0
    return sum(dev.memory(CAST_BYTES * n) for n in tensors if n > 0)


def act_bytes(dtype: str) -> int:
    """Bytes of an activation: fp8/int8 compute keeps activations in 16 bits."""
    return max(DTYPE_BYTES[dtype], 2)


def _attention(m: GptModel, job: JobSpec, dev: Device) -> tuple[Pass, Pass]:
    """(forward, the part selective recompute repeats) of the attention core (in 16 bits
    under an FP8 recipe)."""
    dev = wide(dev)
    p, t = job.parallelism, job.parallelism.tp
    b, s = p.micro_batch, m.seq_len
    att = attention_shape(m)
    # (context parallel: this rank's tokens, each attending to all s keys of its sequence)
    tokens, d = b * s // p.cp, act_bytes(job.precision)
    flop = 2.0 * tokens * s * (att.qk + att.v) / t
    qkv_bytes = tokens * (att.qk + att.kv) / t * d
    out_bytes = tokens * att.v / t * d
    if m.flash_attention:
        fwd = Pass(dev.gemm(flop, qkv_bytes + out_bytes), 0.0, flop)
        return fwd, Pass()
    scores = b * (m.heads / t) * s * (s / p.cp) * d
    share = att.qk / (att.qk + att.v)
    core = (dev.gemm(flop * share, qkv_bytes + scores)
            + dev.gemm(flop * (1 - share), scores + out_bytes)
            + dev.memory(SOFTMAX_PASSES * scores))
    fwd = Pass(core, 0.0, flop)
    return fwd, fwd


def expert_load(m: GptModel) -> float:
    """Routed tokens the busiest expert-parallel rank processes, over the mean: the capacity
    factor where experts are padded to a capacity, else the imbalance of dropless routing."""
    return m.moe_capacity_factor if m.moe_capacity_factor is not None else m.moe_imbalance


@dataclass(frozen=True, slots=True)
class ExpertLinks:
    """What an expert-parallel all-to-all runs over: `ep` ranks on `nodes` servers, each
    GPU's way off its server (`network`, bytes/s) and to its server's GPUs (`intra`), and
    the latency of one exchange. Every rank sends to every other at once (NCCL's all-to-all
    posts all its peers' sends together), so the slower of the off-server and on-server parts
    sets the time, plus one latency."""

    ep: int
    nodes: int
    network: float
    intra: float
    latency: float

    def all_to_all(self, nbytes: float, copies: float, node_limit: int | None) -> float:
        """One dispatch (or combine) of `copies` copies of each of a rank's tokens (`nbytes`
        bytes together, one copy each), to experts spread evenly over the ep ranks. Off the
        server: each copy whose expert is elsewhere, (nodes - 1) / nodes of them; with
        node-limited routing (DeepSeek-V3 section 3.2.2) a token crosses to each of its at most
        `node_limit` servers once and is forwarded over NVLink there."""
        if self.ep <= 1 or nbytes <= 0:
            return 0.0
        off = (self.nodes - 1) / self.nodes if self.nodes > 1 else 0.0
        per_node = self.ep / self.nodes
        on = copies * (per_node - 1) / self.ep  # to the other GPUs of its own server
        crossing = copies * off
        if node_limit is not None and self.nodes > 1:
            # tokens cross once per destination server, then fan out inside it
            on += crossing * (per_node - 1) / per_node
            crossing = min(copies, node_limit, self.nodes) * off
        t_net = nbytes * crossing / self.network if crossing else 0.0
        t_intra = nbytes * on / self.intra if on else 0.0
        return max(t_net, t_intra) + self.latency


def _mlp(m: GptModel, job: JobSpec, dev: Device, ep: ExpertLinks | None,
         dense: bool) -> tuple[Pass, float, float]:
    """The MLP block: dense, or a mixture of experts' router, routed and shared experts and
    its exposed all-to-alls (dispatch + combine); with the FP8 casts of its products'
    inputs (forward) and output gradients (backward), in seconds."""
    p = job.parallelism
    t, h, tokens, d = p.tp, m.hidden, p.micro_batch * m.seq_len // p.cp, act_bytes(job.precision)
    up = 2 if m.gated_mlp else 1
    w = weight_bytes(job)
    sparse = job.sparsity == "2:4"
    moe = bool(m.moe_experts) and not dense
    casts = [0.0, 0.0]

    def products(rows: float, f: float) -> tuple[float, float]:
        """(time, flop) of an MLP of width f over `rows` tokens."""
        flop_up, flop_down = 2.0 * rows * h * f * up / t, 2.0 * rows * f * h / t
        bytes_up = rows * h * d + h * f * up / t * w + rows * f * up / t * d
        bytes_down = rows * f / t * d + f * h / t * w + rows * h * d
        time = (dev.gemm(flop_up, bytes_up, sparse) + dev.gemm(flop_down, bytes_down, sparse)
                + dev.memory(rows * f / t * d * (up + 1)))
        casts[0] += _casts(dev, job, (rows * h, rows * f / t))
        casts[1] += _casts(dev, job, (rows * f * up / t, rows * h))
        return time, flop_up + flop_down

    if not moe:
        time, flop = products(tokens, m.ffn_hidden or 4 * h)
        return Pass(time, 0.0, flop), casts[0], casts[1]
    fe = expert_width(m)
    routed = tokens * m.moe_top_k
    time, flop = products(routed * expert_load(m), fe)
    flop = flop / expert_load(m)  # model FLOPs: the tokens routed, not the padding
    if m.moe_shared_experts:
        shared_t, shared_f = products(tokens, fe * m.moe_shared_experts)
        time, flop = time + shared_t, flop + shared_f
    router = 2.0 * tokens * h * m.moe_experts
    time += wide(dev).gemm(router, tokens * h * d + h * m.moe_experts * 4)
    # permuting the routed copies into expert order and back (read + write each)
    time += dev.memory(4 * routed * h * d)
    comm = 0.0
    if ep is not None:
        # each tensor-parallel rank dispatches its 1 / t of the tokens (Megatron's MoE
        # layers run with sequence parallelism under tp)
        one = ep.all_to_all(tokens / t * h * d, m.moe_top_k * expert_load(m),
                            m.moe_node_limit)
        comm = 2 * one  # dispatch and combine
    return Pass(time, comm, flop + router), casts[0], casts[1]


def layer_cost(m: GptModel, job: JobSpec, dev: Device, tp_comm: Collectives,
               ep: ExpertLinks | None, cp_comm: Collectives | None = None,
               dense: bool = False) -> LayerCost:
    """One layer's passes for one micro-batch on one GPU (`dense`: a MoE model's dense
    layer). With context parallelism (cp > 1)
    the GPU holds micro_batch x seq_len / cp tokens (Megatron's load-balanced split: 2 cp
    chunks, each rank a pair, so causal work is even) and runs ring attention (Liu et al.
    2023): cp - 1 steps, each passing its KV chunk to the next rank (`cp_comm`) while it
    attends to the chunk it holds; only the transfer beyond that step's attention is exposed,
    twice over backward (the KV and their gradients go round). With `overlap_ep_comm` the
    expert all-to-alls run behind another micro-batch's compute (DeepSeek-V3's DualPipe,
    Megatron's overlapped expert-parallel communication): only what exceeds the layer's
    compute is exposed."""
    p = job.parallelism
    t, h, tokens, d = p.tp, m.hidden, p.micro_batch * m.seq_len // p.cp, act_bytes(job.precision)
    att = attention_shape(m)
    o = out_width(m)
    w = weight_bytes(job)
    sparse = job.sparsity == "2:4"
    flop_qkv, flop_proj = 2.0 * tokens * att.in_weights / t, 2.0 * tokens * o * h / t
    projections = (dev.gemm(flop_qkv, tokens * h * d + att.in_weights / t * w
                            + tokens * att.in_width / t * d, sparse)
                   + dev.gemm(flop_proj, tokens * (h + o) / t * d + o * h / t * w, sparse))
    shard = t if p.sequence_parallel else 1
    elementwise = dev.memory(ELEMENTWISE_H_PASSES * tokens * h * d / shard)
    attention, selective = _attention(m, job, dev)
    mlp, mlp_cast_f, mlp_cast_b = _mlp(m, job, dev, ep, dense)
    # FP8: the projections' inputs quantized forward, their output gradients backward
    cast_f = mlp_cast_f + _casts(dev, job, (tokens * h, tokens * o / t))
    cast_b = mlp_cast_b + _casts(dev, job, (tokens * att.in_width / t, tokens * h))
    comm = 2 * tp_comm.all_reduce(tokens * h * d)
    products = attention.compute_s + mlp.compute_s + projections + elementwise
    compute = products + cast_f
    # overlapped with the projections and MLP products they feed (Wang et al. 2022 style)
    hidden = min(comm, projections + mlp.compute_s) if p.overlap_tp_comm else 0.0
    expert = mlp.comm_s
    if p.overlap_ep_comm:
        expert = max(0.0, expert - compute)
    ring = 0.0  # ring attention's exposed KV transfers, forward
    if p.cp > 1 and cp_comm is not None:
        step = cp_comm.ring_pass(tokens * att.kv / t * d)
        ring = (p.cp - 1) * max(0.0, step - attention.compute_s / p.cp)
    forward = Pass(compute, comm - hidden + expert + ring, attention.flop + mlp.flop
                   + flop_qkv + flop_proj)
    # backward: a data-gradient and a weight-gradient product per forward product
    backward = Pass(2 * products + cast_b, forward.comm_s + ring, 2 * forward.flop)
    recompute = {"none": Pass(), "selective": selective, "full": forward}[p.recompute]
    return LayerCost(forward, backward, recompute)


def head_cost(m: GptModel, job: JobSpec, dev: Device) -> tuple[Pass, Pass]:
    """(forward, backward) of the output logits and the loss, on the last pipeline stage
    (in 16 bits under an FP8 recipe)."""
    dev = wide(dev)
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


def mtp_cost(m: GptModel, job: JobSpec, dev: Device, layer: LayerCost, head_f: Pass,
             head_b: Pass) -> tuple[Pass, Pass]:
    """(forward, backward) of a model's multi-token-prediction modules (DeepSeek-V3 section
    2.2), on the last stage: per module one more layer like the last, a projection of the
    concatenated hidden states (2h -> h) and a pass through the shared output head."""
    if not m.mtp_depth:
        return Pass(), Pass()
    p = job.parallelism
    tokens, h = p.micro_batch * m.seq_len // p.cp, m.hidden
    flop = 2.0 * tokens * 2 * h * h / p.tp
    proj = Pass(dev.gemm(flop, tokens * 3 * h * act_bytes(job.precision)
                         + 2 * h * h / p.tp * weight_bytes(job)), 0.0, flop)
    fwd = (layer.forward + proj + head_f) * m.mtp_depth
    bwd = (layer.backward + layer.recompute + proj * 2 + head_b) * m.mtp_depth
    return fwd, bwd


def activation_bytes(m: GptModel, job: JobSpec, dense: bool = False) -> float:
    """Activations one layer keeps for one micro-batch (`dense`: a MoE model's dense layer),
    following Korthikanti et al. 2022 (section 4.1) term by term for 16-bit activations, per
    token: the two layer norms' inputs (4h bytes), two dropout masks (2h), the attention and
    MLP inputs (2h each): 10h, held whole on every tensor-parallel rank unless sequence
    parallelism shards them; split over tp: what the input projections write (2 x their
    width: Q, K, V; with MLA also the latents) and the output projection's input (2 x its
    width), the MLP's first products and activation (2 (up + 1) f; with experts per routed
    copy, times the load, plus the copy itself, 2h, and the shared experts'); without flash
    attention or selective recompute 5 a s bytes of scores. For GPT's MLP (f = 4h, one up
    product) and full-width K and V this is the paper's s b h (10 + 24 / t + 5 a s / (h t)),
    and s b h (34 + 5 a s / h) / t with sequence parallelism. Full recompute keeps only the
    layer input, 2 s b h (/ t with sp)."""
    p = job.parallelism
    s, b, h, a, t = m.seq_len, p.micro_batch, m.hidden, m.heads, p.tp
    scale = act_bytes(job.precision) / 2 / p.cp  # (context parallel: s / cp tokens a GPU)
    shard = t if p.sequence_parallel else 1
    if p.recompute == "full":
        return 2.0 * s * b * h / shard * scale
    att = attention_shape(m)
    up = 2 if m.gated_mlp else 1
    if m.moe_experts and not dense:
        fe = expert_width(m)
        copies = m.moe_top_k * expert_load(m)
        mlp = copies * (2 * h + 2 * (up + 1) * fe) + m.moe_shared_experts * 2 * (up + 1) * fe
    else:
        mlp = 2 * (up + 1) * (m.ffn_hidden or 4 * h)
    split = 2 * att.in_width + 2 * out_width(m) + mlp
    if not (m.flash_attention or p.recompute == "selective"):
        split += 5.0 * a * s
    per_token = (10.0 * h + split) / t if p.sequence_parallel else 10.0 * h + split / t
    return s * b * per_token * scale
