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

__all__ = ["ModelStats", "model_stats", "build_net", "CNN_NETS"]


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
