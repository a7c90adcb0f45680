"""Model zoo: parameters and FLOPs per sample for each model kind.

Transformer counts follow Narayanan et al. (SC'21) and Korthikanti et al. (MLSys'23): per layer
and per sequence of s tokens, forward FLOPs are 2*s*(2h^2 + 2h*h_kv) for the attention
projections, 4*s^2*h for the attention scores and their product with V, and 2*s*h*f*(2 or 3)
for the (gated) MLP; the logits add 2*s*h*V. With f = 4h and no GQA this is Megatron's
24*s*h^2 + 4*s^2*h per layer, and training (forward + backward) is three times the forward.
Full recompute repeats each layer's forward once more; selective recompute repeats only the
attention-score part (4*s^2*h per layer), as in Korthikanti et al.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsim import catalog
from dcsim.perf.convnets import conv_shapes, dense_shapes
from dcsim.scenario import CnnModel, CustomModel, DlrmModel, GptModel, MlpModel

__all__ = ["ModelStats", "model_stats"]


@dataclass(frozen=True, slots=True)
class ModelStats:
    """What the step-time model needs to know of a model, per sample (sequence or image)."""

    kind: str
    params: float  # dense parameters, replicated across data-parallel ranks
    sharded_params: float  # parameters sharded across all of a job's GPUs (embedding tables)
    forward_flop_per_sample: float
    layer_forward_flop_per_sample: float  # the part of forward that full recompute repeats
    attention_flop_per_sample: float  # the part that selective recompute repeats
    kernels_per_sample: int = 1  # matrix-product kernels of one forward pass (non-transformers)
    activation_elems_per_sample: float = 0.0  # layer outputs one forward pass writes
    lookup_bytes_per_sample: float = 0.0  # embedding rows gathered and updated (DLRM)
    layer_shapes: tuple[tuple[int, int], ...] = ()  # (inputs, outputs) of each dense layer
    conv_shapes: tuple[tuple[int, int, int], ...] = ()  # per sample (M, K, N) of each conv

    def training_flop_per_sample(self) -> float:
        """Model FLOPs of one forward and backward pass (backward = 2 x forward)."""
        return 3.0 * self.forward_flop_per_sample

    def recompute_flop_per_sample(self, mode: str) -> float:
        if mode == "full":
            return self.layer_forward_flop_per_sample
        if mode == "selective":
            return self.attention_flop_per_sample
        return 0.0


def _transformer(m: GptModel) -> ModelStats:
    s, h, n_layers, vocab = m.seq_len, m.hidden, m.layers, m.vocab
    ffn = m.ffn_hidden or 4 * h
    kv = h * (m.kv_heads or m.heads) // m.heads
    mlp_mats = 3 if m.gated_mlp else 2
    experts = m.moe_experts or 1  # parameters of all experts; FLOPs of the top-k routed ones
    routed = m.moe_top_k if m.moe_experts else 1
    proj = 2 * s * (2 * h * h + 2 * h * kv)
    attn = 4 * s * s * h
    mlp = 2 * s * h * ffn * mlp_mats * routed
    layer = proj + attn + mlp
    logits = 2 * s * h * vocab
    # weights + biases + two layer norms per layer; embeddings (tied output) + positions
    layer_params = (2 * h * h + 2 * h * kv + mlp_mats * h * ffn * experts
                    + (3 * h + 2 * kv + ffn) + 4 * h)
    params = n_layers * layer_params + vocab * h + s * h
    return ModelStats(
        kind=m.kind,
        params=float(params),
        sharded_params=0.0,
        forward_flop_per_sample=float(n_layers * layer + logits),
        layer_forward_flop_per_sample=float(n_layers * layer),
        attention_flop_per_sample=float(n_layers * attn),
    )


def _cnn(m: CnnModel) -> ModelStats:
    arch = catalog.cnn_archs()[m.arch]
    size = m.image_size or arch.reference_image_size
    convs, dense = conv_shapes(m.arch, size), dense_shapes(m.arch, size)
    if convs:  # known layer by layer: FLOPs and activations from the layers themselves
        macs = sum(mm * k * n for mm, k, n in convs) + sum(i * o for i, o in dense)
        # each convolution's output, its normalization and activation (3 tensors); fc outputs
        acts = 3.0 * sum(mm * n for mm, _, n in convs) + sum(o for _, o in dense)
        return ModelStats(m.kind, arch.params_m * 1e6, 0.0, 2.0 * macs, 2.0 * macs, 0.0,
                          kernels_per_sample=len(convs) + len(dense),
                          activation_elems_per_sample=acts, layer_shapes=dense,
                          conv_shapes=convs)
    fwd = 2.0 * arch.forward_gmacs * 1e9 * (size / arch.reference_image_size) ** 2
    return ModelStats(m.kind, arch.params_m * 1e6, 0.0, fwd, fwd, 0.0,
                      kernels_per_sample=arch.layers)


def _mlp_counts(sizes: list[int]) -> tuple[float, float]:
    macs = sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
    biases = sum(sizes[1:])
    return float(macs + biases), 2.0 * macs


def _dlrm(m: DlrmModel) -> ModelStats:
    d = m.embedding_dim
    bottom_p, bottom_f = _mlp_counts([m.dense_features, *m.bottom_mlp])
    n_vectors = len(m.embedding_rows) + 1
    pairs = n_vectors * (n_vectors - 1) // 2
    interaction_f = 2.0 * pairs * d
    top_p, top_f = _mlp_counts([m.bottom_mlp[-1] + pairs, *m.top_mlp])
    fwd = bottom_f + interaction_f + top_f
    # fp32 rows: gathered forward, gradient scattered and row updated backward (3 passes)
    lookups = 3.0 * len(m.embedding_rows) * d * 4
    return ModelStats(m.kind, bottom_p + top_p, float(sum(m.embedding_rows) * d), fwd, fwd, 0.0,
                      kernels_per_sample=len(m.bottom_mlp) + len(m.top_mlp) + 1,
                      activation_elems_per_sample=float(sum(m.bottom_mlp) + sum(m.top_mlp)),
                      lookup_bytes_per_sample=lookups)


def _mlp(m: MlpModel) -> ModelStats:
    sizes = [m.inputs, *m.hidden, m.outputs]
    params, fwd = _mlp_counts(sizes)
    return ModelStats(m.kind, params, 0.0, fwd, fwd, 0.0, kernels_per_sample=len(m.hidden) + 1,
                      activation_elems_per_sample=float(sum(m.hidden) + m.outputs),
                      layer_shapes=tuple(zip(sizes, sizes[1:], strict=False)))


def _custom(m: CustomModel) -> ModelStats:
    f = m.forward_flop_per_sample
    return ModelStats(m.kind, m.params, 0.0, f, f, 0.0)


def model_stats(model: object) -> ModelStats:
    """Parameters and per-sample FLOPs of a validated model spec."""
    if isinstance(model, GptModel):  # also BertModel
        return _transformer(model)
    for cls, fn in ((CnnModel, _cnn), (DlrmModel, _dlrm), (MlpModel, _mlp), (CustomModel, _custom)):
        if isinstance(model, cls):
            return fn(model)  # type: ignore[operator]
    raise TypeError(f"no statistics for model {model!r}")
