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
from functools import lru_cache

from dcsim import catalog
from dcsim.perf.convnets import conv_shapes, dense_shapes
from dcsim.perf.nets import NETS, Net
from dcsim.perf.nets.recsys import dlrm_ops
from dcsim.scenario import CnnModel, CustomModel, DlrmModel, GptModel, MlpModel, NetModel

__all__ = ["ModelStats", "model_stats", "build_net", "CNN_NETS", "AttentionShape",
           "attention_shape", "out_width", "expert_width", "moe_layers",
           "dense_layers_in"]


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
    layer_shapes: tuple[tuple[int, int], ...] = ()  # (inputs, outputs) of each dense layer
    conv_shapes: tuple[tuple[int, int, int], ...] = ()  # per sample (M, K, N) of each conv
    net: Net | None = None  # the model operation by operation (dcsim/perf/nets), if known
    # of `params`, the routed experts' (MoE): sharded over the expert-parallel ranks
    expert_params: float = 0.0

    def training_flop_per_sample(self) -> float:
        """Model FLOPs of one forward and backward pass (backward = 2 x forward)."""
        return 3.0 * self.forward_flop_per_sample

    def recompute_flop_per_sample(self, mode: str) -> float:
        if mode == "full":
            return self.layer_forward_flop_per_sample
        if mode == "selective":
            return self.attention_flop_per_sample
        return 0.0


@dataclass(frozen=True, slots=True)
class AttentionShape:
    """Widths of a layer's attention per token. `in_weights`: parameters of the input
    projections (Q, K, V; with MLA the down- and up-projections); `in_width`: the activations
    they write; `qk`, `v`: all heads' query/key and value widths (the scores cost 2 qk and
    their product with V 2 v FLOPs per token pair); `kv`: the key and value widths a token
    keeps (what ring attention passes between context-parallel ranks)."""

    in_weights: int
    in_width: int
    qk: int
    v: int
    kv: int


def attention_shape(m: GptModel) -> AttentionShape:
    """Multi-head / grouped-query attention (h x (h + 2 h_kv) in, h x h out), or multi-head
    latent attention (DeepSeek-V2 section 2.1; V3 config.json): h x q_lora then q_lora x
    heads (nope + rope) for queries, h x (kv_lora + rope) then kv_lora x heads (nope + v) for
    keys and values."""
    h = m.hidden
    if m.mla is None:
        kv = h * (m.kv_heads or m.heads) // m.heads
        return AttentionShape(h * (h + 2 * kv), h + 2 * kv, h, h, 2 * kv)
    a, la = m.heads, m.mla
    qk_head = la.qk_nope_head_dim + la.qk_rope_head_dim
    q = (h * la.q_lora_rank + la.q_lora_rank * a * qk_head if la.q_lora_rank
         else h * a * qk_head)
    kv = h * (la.kv_lora_rank + la.qk_rope_head_dim) + la.kv_lora_rank * a * (
        la.qk_nope_head_dim + la.v_head_dim)
    width = ((la.q_lora_rank or 0) + a * qk_head + la.kv_lora_rank + la.qk_rope_head_dim
             + a * (la.qk_nope_head_dim + la.v_head_dim))
    return AttentionShape(q + kv, width, a * qk_head, a * la.v_head_dim,
                          a * (qk_head + la.v_head_dim))


def out_width(m: GptModel) -> int:
    """The attention output's width, the output projection's input (h without MLA)."""
    return m.heads * m.mla.v_head_dim if m.mla is not None else m.hidden


def expert_width(m: GptModel) -> int:
    """One expert's MLP width."""
    return m.moe_ffn_hidden or m.ffn_hidden or 4 * m.hidden


def moe_layers(m: GptModel) -> int:
    """Layers with experts (the first moe_dense_layers keep a dense MLP)."""
    return m.layers - m.moe_dense_layers if m.moe_experts else 0


def dense_layers_in(m: GptModel, chunks: list[int]) -> list[int]:
    """Of each chunk of consecutive layers (sizes `chunks`, in model order), how many are a
    MoE model's dense first layers."""
    out, start = [], 0
    for k in chunks:
        out.append(max(0, min(start + k, m.moe_dense_layers) - start) if m.moe_experts else 0)
        start += k
    return out


def _transformer(m: GptModel) -> ModelStats:
    s, h, n_layers, vocab = m.seq_len, m.hidden, m.layers, m.vocab
    ffn = m.ffn_hidden or 4 * h
    mlp_mats = 3 if m.gated_mlp else 2
    att = attention_shape(m)
    o = out_width(m)
    proj = 2 * s * (att.in_weights + o * h)
    attn = 2 * s * s * (att.qk + att.v)
    dense_mlp = 2 * s * h * ffn * mlp_mats
    n_moe = moe_layers(m)
    fe = expert_width(m)
    # a MoE layer: its top-k routed and its shared experts' products, and the router's
    moe_mlp = (2 * s * h * fe * mlp_mats * (m.moe_top_k + m.moe_shared_experts)
               + 2 * s * h * (m.moe_experts or 0))
    layers_flop = n_layers * (proj + attn) + (n_layers - n_moe) * dense_mlp + n_moe * moe_mlp
    logits = 2 * s * h * vocab
    # weights + biases + two layer norms per layer (MLA: norms only); embeddings (tied
    # output) + positions
    kv = (att.in_width - h) // 2
    norms = 4 * h if m.mla is not None else 3 * h + 2 * kv + ffn + 4 * h
    attn_params = att.in_weights + o * h
    expert = mlp_mats * h * fe
    routed = n_moe * (m.moe_experts or 0) * expert
    moe_layer_params = (attn_params + expert * (m.moe_experts + m.moe_shared_experts)
                        + h * m.moe_experts + norms) if m.moe_experts else 0
    dense_layer_params = attn_params + mlp_mats * h * ffn + norms
    params = (n_moe * moe_layer_params + (n_layers - n_moe) * dense_layer_params
              + vocab * h * (1 if m.tie_embeddings else 2) + s * h)
    # multi-token prediction (DeepSeek-V3 section 2.2): per module a layer (as the last one), a
    # 2h x h projection and a pass through the shared output head
    last_layer = moe_layer_params if n_moe else dense_layer_params
    last_flop = proj + attn + (moe_mlp if n_moe else dense_mlp)
    params += m.mtp_depth * (last_layer + 2 * h * h)
    mtp_flop = m.mtp_depth * (last_flop + 2 * s * 2 * h * h + logits)
    return ModelStats(
        kind=m.kind,
        params=float(params),
        sharded_params=0.0,
        forward_flop_per_sample=float(layers_flop + logits + mtp_flop),
        layer_forward_flop_per_sample=float(layers_flop),
        attention_flop_per_sample=float(n_layers * attn),
        expert_params=float(routed + m.mtp_depth * (m.moe_experts or 0) * expert
                            * (1 if n_moe else 0)),
    )


# cnn archs of catalog/cnn_archs.yaml built layer by layer: arch -> (builder, its params)
CNN_NETS = {
    "resnet18": ("resnet", {"depth": "resnet18"}), "resnet50": ("resnet", {"depth": "resnet50"}),
    "resnet101": ("resnet", {"depth": "resnet101"}),
    "resnet152": ("resnet", {"depth": "resnet152"}),
    "resnet18-cifar": ("resnet", {"depth": "resnet18", "cifar_stem": True, "classes": 10}),
    "vgg11": ("vgg", {"depth": "vgg11"}), "vgg16": ("vgg", {"depth": "vgg16"}),
    "vgg19": ("vgg", {"depth": "vgg19"}), "yolov3": ("yolov3", {}),
}


def _from_net(kind: str, net: Net) -> ModelStats:
    """Statistics of a network given op by op: parameters with dense gradients are replicated
    and all-reduced; embedding tables with sparse gradients are sharded (model parallel)."""
    sharded = sum(op.weights for op in net.ops if op.kind == "gather" and op.sparse_grad)
    fwd = net.forward_flop
    return ModelStats(kind, net.params - sharded, sharded, fwd, fwd, 0.0,
                      kernels_per_sample=len(net.ops),
                      activation_elems_per_sample=net.saved_elems, net=net)


def build_net(arch: str, params: dict) -> Net:
    builder = NETS.get(arch)()
    return builder.build(builder.Params(**params))


def _cnn(m: CnnModel) -> ModelStats:
    arch = catalog.cnn_archs()[m.arch]
    size = m.image_size or arch.reference_image_size
    if m.arch in CNN_NETS:
        name, params = CNN_NETS[m.arch]
        return _from_net(m.kind, build_net(name, {**params, "image_size": size}))
    convs, dense = conv_shapes(m.arch, size), dense_shapes(m.arch, size)
    if convs:  # the seed's CIFAR-10 CNN, as dcsim's own kernels run it (execute mode)
        macs = sum(mm * k * n for mm, k, n in convs) + sum(i * o for i, o in dense)
        # each convolution's output, its normalization and activation (3 tensors); fc outputs
        acts = 3.0 * sum(mm * n for mm, _, n in convs) + sum(o for _, o in dense)
        return ModelStats(m.kind, arch.params_m * 1e6, 0.0, 2.0 * macs, 2.0 * macs, 0.0,
                          kernels_per_sample=len(convs) + len(dense),
                          activation_elems_per_sample=acts, layer_shapes=dense,
                          conv_shapes=convs)
    return _from_net(m.kind, build_net("totals", {"arch": m.arch, "image_size": size}))


def _mlp_counts(sizes: list[int]) -> tuple[float, float]:
    macs = sum(a * b for a, b in zip(sizes, sizes[1:], strict=False))
    biases = sum(sizes[1:])
    return float(macs + biases), 2.0 * macs


def _dlrm(m: DlrmModel) -> ModelStats:
    ops = dlrm_ops(m.dense_features, tuple(m.embedding_rows), m.embedding_dim,
                   tuple(m.bottom_mlp), tuple(m.top_mlp),
                   tuple(m.lookups) if m.lookups else None, m.interaction, m.cross_layers,
                   m.cross_rank)
    return _from_net(m.kind, Net(tuple(ops), optimizer="sgd"))


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
    """Parameters and per-sample FLOPs of a validated model spec (cached per model: a trace
    asks for the same few models many times)."""
    if isinstance(model, GptModel | MlpModel | CustomModel):
        return _model_stats(model)
    return _stats_by_json(type(model), model.model_dump_json())  # type: ignore[attr-defined]


@lru_cache(maxsize=512)
def _stats_by_json(cls: type, text: str) -> ModelStats:
    return _model_stats(cls.model_validate_json(text))


def _model_stats(model: object) -> ModelStats:
    if isinstance(model, GptModel):  # also BertModel
        return _transformer(model)
    if isinstance(model, NetModel):
        return _from_net(model.kind, build_net(model.arch, model.params))
    for cls, fn in ((CnnModel, _cnn), (DlrmModel, _dlrm), (MlpModel, _mlp), (CustomModel, _custom)):
        if isinstance(model, cls):
            return fn(model)  # type: ignore[operator]
    raise TypeError(f"no statistics for model {model!r}")
