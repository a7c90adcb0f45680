"""Recommendation and reinforcement-learning networks: NCF (NeuMF), an item-based sparse
autoencoder (Recoder, Gavel's "Recommendation"), DLRM, and A3C on Atari.

Recommendation models are bound by their embedding tables: a lookup reads random rows, and a
dense embedding gradient (PyTorch's default) makes the optimizer sweep whole tables each step.
"""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from dcsim.perf.nets.base import (
    NETS,
    Net,
    NetBuilder,
    Op,
    Widths,
    conv,
    dense,
    gather,
    matmul,
    memory,
)
from dcsim.perf.nets.sequence import rnn_layer

__all__ = ["dlrm_ops"]


@NETS.register("ncf")
class Ncf(NetBuilder):
    description = ("NeuMF (He et al. 2017) as MLPerf / NVIDIA DeepLearningExamples train it: "
                   "GMF and MLP towers over user and item embeddings, Adam; a sample is one "
                   "(user, item) pair, negatives included")

    class Params(NetBuilder.Params):
        users: int = Field(138_493, ge=1, le=10**10)  # MovieLens-20M
        items: int = Field(26_744, ge=1, le=10**10)
        factors: int = Field(64, ge=1, le=65536)
        mlp: Widths = (256, 256, 128, 64)

    def build(self, p: Params) -> Net:
        half = p.mlp[0] // 2
        ops: list[Op] = [gather("mf.user", 1, p.factors, p.users),
                         gather("mf.item", 1, p.factors, p.items),
                         gather("mlp.user", 1, half, p.users),
                         gather("mlp.item", 1, half, p.items),
                         memory("mf.mul", p.factors, passes=3, saved=2 * p.factors)]
        for i, (a, b) in enumerate(zip(p.mlp, p.mlp[1:], strict=False)):
            ops += dense(f"mlp{i}", a, b, act=True)
        ops += dense("out", p.mlp[-1] + p.factors, 1)
        ops.append(memory("loss", 1, passes=6))
        return Net(tuple(ops), optimizer="adam")


@NETS.register("sparse-autoencoder")
class SparseAutoencoder(NetBuilder):
    description = ("an item-based autoencoder for collaborative filtering over sparse rating "
                   "vectors (Recoder, as Gavel's Recommendation job trains it on ML-20M): a "
                   "sparse input layer, one hidden layer, an output layer over the sample's "
                   "rated and sampled users; batches are collated from sparse rows on the host")

    class Params(NetBuilder.Params):
        inputs: int = Field(138_493, ge=1, le=10**10)  # users (item-based vectors)
        hidden: int = Field(200, ge=1, le=65536)
        nonzeros: float = Field(748.0, gt=0, le=10**9)  # ratings per vector (ML-20M: 20M/26,744)
        negatives: float = Field(1.0, ge=0, le=1000)  # sampled negatives per nonzero
        # host time per nonzero to slice, collate and copy a sparse batch (Python / SciPy
        # row slicing and COO building are ~tens of ns per element: an estimate)
        host_s_per_nonzero: float = Field(5e-8, ge=0, le=1e-3)

    def build(self, p: Params) -> Net:
        outputs = p.nonzeros * (1 + p.negatives)
        ops: list[Op] = [gather("encode", p.nonzeros, p.hidden, p.inputs),
                         memory("encode.act", p.hidden, passes=3, saved=p.hidden,
                                weights=p.hidden, param_tensors=1),
                         # the output layer's table (its rows are gathered once per batch)
                         Op("decode.table", "gather", weights=p.inputs * p.hidden + p.inputs,
                            param_tensors=2),
                         replace(matmul("decode", 1, p.hidden, outputs, bias=False),
                                 weights=0.0, param_tensors=0),
                         memory("loss", outputs, passes=6, saved=outputs)]
        return Net(tuple(ops), optimizer="adam",
                   host_s_per_sample=p.nonzeros * p.host_s_per_nonzero,
                   input_bytes_per_sample=p.nonzeros * 12)


def dlrm_ops(dense_features: int, rows: tuple[int, ...], dim: int, bottom: tuple[int, ...],
             top: tuple[int, ...], lookups: tuple[int, ...] | None = None,
             interaction: str = "dot", cross_layers: int = 3, cross_rank: int = 512
             ) -> list[Op]:
    """DLRM (Naumov et al. 2019): bottom MLP, the embedding lookups (`lookups` rows summed per
    table, default one; sparse gradients), the interaction, top MLP. `dot`: DLRM v1's
    pairwise dot products of the bottom output and the embeddings; `dcn`: DLRM v2's DCNv2
    cross network (Wang et al. 2021) on their concatenation, each layer a rank-`cross_rank`
    product pair (V then U) and an elementwise x0 * y + x."""
    ops: list[Op] = []
    n_in = dense_features
    for i, w in enumerate(bottom):
        ops += dense(f"bottom{i}", n_in, w, act=True)
        n_in = w
    # an embedding bag reads its rows and sums them as it goes (PyTorch's EmbeddingBag,
    # TensorRT's plugins): the reads are the cost, the output one row per table
    per_table = lookups or (1,) * len(rows)
    ops += [gather(f"table{i}", k, dim, r, sparse_grad=True)
            for i, (r, k) in enumerate(zip(rows, per_table, strict=True))]
    if interaction == "dcn":
        width = bottom[-1] + len(rows) * dim
        for layer in range(cross_layers):
            ops += dense(f"cross{layer}.v", width, cross_rank, bias=False)
            ops += dense(f"cross{layer}.u", cross_rank, width)
            ops.append(memory(f"cross{layer}.mix", width, passes=4, saved=width))
        n_in = width
    else:
        vectors = len(rows) + 1
        ops.append(Op("interaction", "matmul", m=vectors, k=dim, n=vectors,
                      inputs=vectors * dim, saved=vectors * dim))
        pairs = vectors * (vectors - 1) // 2
        ops.append(memory("interaction.tril", vectors * vectors + pairs, passes=2))
        n_in = bottom[-1] + pairs
    for i, w in enumerate(top):
        ops += dense(f"top{i}", n_in, w, act=i < len(top) - 1)
        n_in = w
    ops.append(memory("loss", 1, passes=6))
    return ops


@NETS.register("a3c")
class A3c(NetBuilder):
    description = ("A3C (Mnih et al. 2016) on Atari with an LSTM policy (rl_a3c_pytorch, as "
                   "Gavel trains it on Pong): each update runs a rollout of environment steps "
                   "with a batch-1 forward pass each, backpropagates through it, and applies a "
                   "shared Adam step on the host; several worker processes share the GPU")

    class Params(NetBuilder.Params):
        rollout: int = Field(20, ge=1, le=100_000)  # environment steps per update
        workers: int = Field(4, ge=1, le=1024)  # processes sharing the GPU
        # host time of one environment step: an ALE Atari step with frame skip 4 plus frame
        # preprocessing (the emulator runs a few thousand frames/s per core): an estimate
        env_step_s: float = Field(1e-3, ge=0, le=10)
        image_size: int = Field(80, ge=8, le=1024)
        actions: int = Field(6, ge=1, le=10_000)

    def build(self, p: Params) -> Net:
        s = p.image_size
        ops = (conv("c1", s, 1, 32, 5, norm=False, bias=True)
               + [memory("pool1", (s // 2) ** 2 * 32, passes=1.25)]
               + conv("c2", s // 2, 32, 32, 5, norm=False, bias=True)
               + [memory("pool2", (s // 4) ** 2 * 32, passes=1.25)]
               + conv("c3", s // 4, 32, 64, 4, norm=False, bias=True)
               + [memory("pool3", (s // 8) ** 2 * 64, passes=1.25)]
               + conv("c4", s // 8, 64, 64, 3, norm=False, bias=True)
               + [memory("pool4", (s // 16) ** 2 * 64, passes=1.25)])
        flat = (s // 16) ** 2 * 64
        ops += rnn_layer("lstm", 1, flat, 512, fused=False)
        ops += dense("critic", 512, 1) + dense("actor", 512, p.actions)
        params = sum(op.weights * op.count for op in ops)
        # the shared model lives in host memory: gradients copied out, an Adam step on the
        # CPU (~ tens of ns per parameter), the weights copied back into the worker's model
        host = p.rollout * p.env_step_s + params * 2e-8
        return Net(tuple(ops), optimizer="none", host_s_per_step=host,
                   input_bytes_per_sample=2 * params * 4, rollout=p.rollout,
                   processes=p.workers)
