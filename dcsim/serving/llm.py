"""One LLM replica's iteration time and KV-cache capacity, from the calibrated device profiles
(dcsim/perf/costs.py's roofline with each GPU's fitted efficiencies).

A replica is `tp` GPUs of one server running one copy of a decoder-only transformer
(`GptModel`). An iteration of continuous batching processes T tokens (prefill chunks and one
token per decoding request) of which S sequences produce a token; its time is

    t = overhead + lin(T) + head(S) + max(A x attn_flop_s, K x kv_read_s)

- lin(T): per layer, the QKV, output and MLP products of T tokens (their weights read once
  per iteration however many tokens share them: decode with a small batch is bound by HBM
  bandwidth, prefill by the tensor cores; `Device.gemm` decides which), the norms, residuals
  and activation (memory-bound passes over T x hidden), and with tp > 1 two all-reduces of
  T x hidden activations over NVLink; plus the embedding lookup.
- head(S): the output layer for the S sequences that sample a token (vocab / tp columns each,
  and with tp > 1 an all-gather of the logits).
- attention: A = the prefill work (query tokens x the context each attends to, causal), at the
  16-bit large-product rate (attention runs on 16-bit activations even with 8-bit weights);
  K = the context tokens whose keys and values are read from HBM (every decoding request's
  whole context, and a chunked prefill's earlier chunks). FlashAttention-
  and PagedAttention-style kernels are compute-bound in prefill and bandwidth-bound in
  decode, so the slower of the two sets the time.
- overhead: the serving engine's own time per iteration (scheduling, sampling, the Python
  loop): `iteration_overhead_s` (default ITERATION_OVERHEAD_S).

lin and head are tabulated at powers of two and interpolated by the kernel
(dcsim/kernels/serving.py).

KV cache (Kwon et al. 2023, vLLM): per token and GPU, 2 (K and V) x layers x kv_heads x
head_dim / tp elements (kv_heads < tp: each GPU keeps one head); its capacity is what is left of
`memory_fraction` x the GPU's memory after the weights and the activations of the largest batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from dcsim.catalog import GpuSpec
from dcsim.perf.costs import Collectives, Device
from dcsim.perf.profile import profile_for
from dcsim.scenario import GptModel
from dcsim.units import DTYPE_BYTES

__all__ = ["LlmCost", "llm_cost", "MemoryPlan", "params_of", "ITERATION_OVERHEAD_S",
           "ServingFitError"]

# the serving engine's time per iteration outside the GPU kernels: the scheduler, the sampler
# and the Python loop. vLLM's maintainers measured this CPU time at a large share of a decode
# step before v0.6 (the vLLM team's blog "vLLM v0.6.0: 2.7x throughput improvement", Sept
# 2024, which hides it with multi-step scheduling); a few milliseconds is the order of
# magnitude. An estimate; a scenario sets its own with `iteration_overhead_s`.
ITERATION_OVERHEAD_S = 2e-3
ELEMENTWISE_PASSES = 10  # bytes-per-element passes over T x hidden per layer (2 norms, 2 adds,
# the activation, rotary embeddings), inference: no dropout
# live T x hidden buffers at the peak of one layer's forward (inference keeps no activations
# across layers): the residual stream, its normalized copy, the attention output and the
# projection's output; the MLP's T x ffn / tp buffers are counted beside them
ACTIVATION_COPIES = 4
CUDA_CONTEXT_BYTES = 1e9  # the CUDA context, cuBLAS workspaces and allocator slack per GPU
# Serving reads big contiguous tensors (weights, KV blocks) once per iteration: a streaming
# read, which reaches ~85-90% of the HBM data-sheet bandwidth (STREAM-like copies: A100 80GB
# ~1.75 of 2.04 TB/s, H100 SXM ~2.9-3.0 of 3.35 TB/s). The training-fitted profiles' memory
# efficiency (short elementwise kernels) can be lower; the serving cost takes the higher.
STREAM_EFFICIENCY = 0.85
# Serving engines replay decode iterations as CUDA graphs: a kernel inside a graph costs a few
# microseconds of launch (NVIDIA's CUDA graphs notes: ~2-3 us per node), less than the eager
# launches the training profiles were fitted with; the serving cost takes the lower.
GRAPH_KERNEL_S = 3e-6


class ServingFitError(ValueError):
    """A model that does not fit its replica's GPUs; the message has the memory breakdown."""


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Bytes per GPU of one replica."""

    total: float
    usable: float  # memory_fraction x total
    weights: float
    activations: float
    context: float
    kv_cache: float  # what is left for the KV cache (may be negative: does not fit)
    kv_bytes_per_token: float

    def describe(self) -> str:
        gb = 1e9
        return (f"per GPU: {self.total / gb:.1f} GB, of which usable {self.usable / gb:.1f} GB = "
                f"weights {self.weights / gb:.1f} GB + activations {self.activations / gb:.2f} GB"
                f" + CUDA context {self.context / gb:.1f} GB + KV cache "
                f"{self.kv_cache / gb:.1f} GB ({self.kv_bytes_per_token / 1e3:.1f} kB per token)")


@dataclass(frozen=True, slots=True)
class LlmCost:
    """The kernel's cost tables and limits for one replica."""

    lin_tokens: np.ndarray
    lin_s: np.ndarray
    head_seqs: np.ndarray
    head_s: np.ndarray
    attn_flop_s: float  # seconds per (query token x context token) of prefill attention
    kv_read_s: float  # seconds per context token read in an iteration
    overhead_s: float
    kv_capacity_tokens: int
    memory: MemoryPlan
    params: float

    @property
    def table(self) -> np.ndarray:
        """The two tables as the kernel reads them (kernels/serving.py T_LIN_X...): one row
        each, the shorter padded by repeating its last point (which changes no value)."""
        n = max(len(self.lin_tokens), len(self.head_seqs))
        rows = [self.lin_tokens, self.lin_s, self.head_seqs, self.head_s]
        return np.array([np.concatenate([x, np.repeat(x[-1:], n - len(x))]) for x in rows])

    def iteration_s(self, tokens: float, seqs: float, attn: float = 0.0,
                    kv_read: float = 0.0) -> float:
        """One iteration's time (the kernel's formula, for reports and tests)."""
        def at(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
            if x <= xs[0]:
                return float(ys[0] * x / xs[0])
            if x >= xs[-1]:
                return float(ys[-1] * x / xs[-1])
            return float(np.interp(x, xs, ys))
        return (self.overhead_s + at(tokens, self.lin_tokens, self.lin_s)
                + at(seqs, self.head_seqs, self.head_s)
                + max(attn * self.attn_flop_s, kv_read * self.kv_read_s))

    def prefill_s(self, prompt: int, max_tokens: int) -> float:
        """A lone prompt's prefill: chunks of `max_tokens`, each attending to what came before."""
        done, total = 0, 0.0
        while done < prompt:
            c = min(max_tokens, prompt - done)
            total += self.iteration_s(c, 1 if done + c >= prompt else 0,
                                      c * (done + 0.5 * c), done)
            done += c
        return total

    def decode_s(self, batch: int, context: float) -> float:
        """One decode iteration of `batch` requests holding `context` tokens each."""
        return self.iteration_s(batch, batch, 0.0, batch * context)


def params_of(m: GptModel) -> tuple[float, float]:
    """(parameters in the transformer layers, in the embedding and output layers)."""
    head_dim = m.hidden // m.heads
    kv_dim = (m.kv_heads or m.heads) * head_dim
    ffn = m.ffn_hidden or 4 * m.hidden
    per_layer = m.hidden * (m.hidden + 2 * kv_dim) + m.hidden * m.hidden \
        + (3 if m.gated_mlp else 2) * m.hidden * ffn + 4 * m.hidden
    return float(m.layers * per_layer), float(2 * m.vocab * m.hidden)


def _grid(top: int) -> np.ndarray:
    points = [1]
    while points[-1] < top:
        points.append(min(points[-1] * 2, top))
    return np.array(points, dtype=float)


def llm_cost(m: GptModel, gpu: GpuSpec, tp: int, precision: str, max_tokens: int,
             max_seqs: int, memory_fraction: float, intra_byte_s: float,
             intra_latency_s: float, overhead_s: float | None = None,
             kv_precision: str = "bf16") -> LlmCost:
    """The cost tables of a `tp`-GPU replica of `m` on `gpu` in `precision` (its weights and
    products), with its KV cache in `kv_precision` (8-bit: fp8 or int8),
    batching up to `max_tokens` tokens and `max_seqs` sequences. Raises ServingFitError when
    the weights and activations leave no room for one full-length sequence's KV cache."""
    if m.moe_experts is not None:
        raise ServingFitError("mixture-of-experts models are not served yet (dense "
                              "decoder-only transformers only)")
    if precision not in gpu.peak_flop_s:
        raise ServingFitError(f"{gpu.name} has no {precision} math; its dtypes: "
                              f"{', '.join(gpu.peak_flop_s)}")
    prof = profile_for(gpu.name, gpu.first_order_efficiency)
    prof = replace(prof, kernel_overhead_s=min(prof.kernel_overhead_s, GRAPH_KERNEL_S),
                   memory_efficiency=max(prof.memory_efficiency, STREAM_EFFICIENCY))
    dev = Device(gpu, prof, precision)
    w = DTYPE_BYTES[precision]
    act = 2  # activations in 16-bit
    h, layers = m.hidden, m.layers
    head_dim = h // m.heads
    kv_heads = m.kv_heads or m.heads
    kv_dim = kv_heads * head_dim
    ffn = m.ffn_hidden or 4 * h
    up = (2 if m.gated_mlp else 1) * ffn
    tpc = Collectives(tp, intra_byte_s * dev.profile.nvlink_efficiency, intra_latency_s)

    def lin(t: float) -> float:
        products = ((h, (h + 2 * kv_dim) / tp), (h / tp, h), (h, up / tp), (ffn / tp, h))
        s = 0.0
        for k, n in products:
            s += dev.gemm(2.0 * t * k * n, (t * k + t * n) * act + k * n * w, sides=(t, k, n))
        s += dev.memory(ELEMENTWISE_PASSES * t * h * act)
        s += 2 * tpc.all_reduce(t * h * act)
        return layers * s + dev.memory(t * h * act)  # + the embedding lookup

    def head(sq: float) -> float:
        s = dev.gemm(2.0 * sq * h * m.vocab / tp, (sq * h + sq * m.vocab / tp) * act
                     + h * m.vocab / tp * w, sides=(sq, h, m.vocab / tp))
        return s + tpc.all_gather(sq * m.vocab * 4) + dev.memory(2 * sq * h * act)

    lin_tokens = _grid(max(max_tokens, max_seqs))
    head_seqs = _grid(max_seqs)
    layer_params, embed_params = params_of(m)
    weights = (layer_params + embed_params) / tp * w
    kv_per_token = 2.0 * layers * max(kv_heads // tp, 1) * head_dim * DTYPE_BYTES[kv_precision]
    activations = (max_tokens * h * act * ACTIVATION_COPIES
                   + max_tokens * (up + 2 * kv_dim) / tp * act
                   + max_seqs * m.vocab / tp * 4)
    usable = memory_fraction * gpu.memory_bytes
    kv = usable - weights - activations - CUDA_CONTEXT_BYTES
    plan = MemoryPlan(gpu.memory_bytes, usable, weights, activations, CUDA_CONTEXT_BYTES, kv,
                      kv_per_token)
    capacity = int(kv // kv_per_token) if kv > 0 else 0
    if capacity < 16:  # less than one 16-token block
        raise ServingFitError(f"does not fit {tp} x {gpu.name}: {plan.describe()}")
    # attention runs on 16-bit activations whatever the weights' type (an 8-bit KV cache is
    # widened as it is read): the 16-bit tensor-core rate
    attn_dev = Device(gpu, prof, "bf16" if "bf16" in gpu.peak_flop_s else "fp16")
    rate = attn_dev.peak * prof.gemm_efficiency * attn_dev.tensor_scale
    return LlmCost(
        lin_tokens=lin_tokens, lin_s=np.array([lin(t) for t in lin_tokens]),
        head_seqs=head_seqs, head_s=np.array([head(s) for s in head_seqs]),
        attn_flop_s=4.0 * h * layers / tp / rate,
        kv_read_s=kv_per_token / (dev.bandwidth * dev.profile.memory_efficiency),
        overhead_s=ITERATION_OVERHEAD_S if overhead_s is None else overhead_s,
        kv_capacity_tokens=capacity, memory=plan, params=layer_params + embed_params)


def describe_cost(c: LlmCost) -> str:
    """One line for reports: decode and prefill speeds at a glance."""
    one = c.decode_s(1, 1024)
    return (f"{c.params / 1e9:.1f}B params; decode at batch 1: {one * 1e3:.1f} ms/token; "
            f"prefill of 1,024 tokens: {c.prefill_s(1024, 1 << 20) * 1e3:.1f} ms; KV cache "
            f"{c.kv_capacity_tokens:,} tokens")


if __name__ == "__main__":  # pragma: no cover - a quick look
    import sys

    from dcsim import catalog
    from dcsim.scenario.jobs import JobSpec

    spec = JobSpec.model_validate({"name": "x", "model": sys.argv[1] if len(sys.argv) > 1
                                   else "llama2-7b", "global_batch": 1, "iterations": 1})
    gpu = catalog.gpus()[sys.argv[2] if len(sys.argv) > 2 else "h100-sxm5-80gb"]
    tp = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    assert isinstance(spec.model, GptModel)
    print(describe_cost(llm_cost(spec.model, gpu, tp, "bf16", 8192, 256, 0.9,
                                 gpu.nvlink_byte_s or 1e11, 5e-6)))
