"""Sequence networks layer by layer: encoder-decoder transformers (translation), recurrent
language models, DeepSpeech2, Jasper and RNN-T (speech).

A recurrent layer runs its input projection for all time steps as one product, then one small
product per step (the recurrence), each a kernel; a fused (cuDNN) layer is one framework call
for all its steps. The sequence lengths are per sample after padding.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from dcsim.perf.nets.base import NETS, Net, NetBuilder, Op, conv, dense, gather, matmul, memory

__all__ = ["attention_ops", "rnn_layer"]


def attention_ops(name: str, q_len: int, kv_len: int, d: int, heads: int,
                  self_attention: bool = True) -> list[Op]:
    """Multi-head attention of q_len queries over kv_len keys: projections, the heads split
    out (reshapes and transposes: copies of Q, K and V and ~10 framework calls), scores,
    softmax (scale, mask, softmax, dropout), the product with V, the heads merged back (a
    copy), the output projection, dropout, residual add and layer norm."""
    dk = d // heads
    ops = [matmul(f"{name}.q", q_len, d, d if not self_attention else 3 * d),
           memory(f"{name}.split_heads", (q_len + 2 * kv_len) * d, passes=2, host_ops=10)]
    if not self_attention:
        ops.append(matmul(f"{name}.kv", kv_len, d, 2 * d))
    scores = heads * q_len * kv_len
    ops += [Op(f"{name}.scores", "matmul", m=heads * q_len, k=dk, n=kv_len,
               inputs=heads * (q_len + kv_len) * dk, saved=heads * (q_len + kv_len) * dk),
            memory(f"{name}.softmax", scores, passes=6, saved=2 * scores),
            Op(f"{name}.context", "matmul", m=heads * q_len, k=kv_len, n=dk,
               inputs=scores + heads * kv_len * dk, saved=0.0),
            memory(f"{name}.merge_heads", q_len * d, passes=2, host_ops=3),
            matmul(f"{name}.out", q_len, d, d),
            memory(f"{name}.norm", q_len * d, passes=8, saved=2 * q_len * d, weights=2 * d,
                   param_tensors=2)]
    return ops


def _ffn(name: str, tokens: int, d: int, ffn: int) -> list[Op]:
    return [*dense(f"{name}.ffn1", d, ffn, tokens, act=True), *dense(f"{name}.ffn2", ffn, d,
                                                                      tokens),
            memory(f"{name}.norm", tokens * d, passes=8, saved=2 * tokens * d, weights=2 * d,
                   param_tensors=2)]


@NETS.register("transformer")
class Transformer(NetBuilder):
    description = ("encoder-decoder Transformer for translation (Vaswani et al. 2017): base "
                   "512/2048/8 heads, big 1024/4096/16; lengths in tokens per sentence after "
                   "padding")

    class Params(NetBuilder.Params):
        layers: int = Field(6, ge=1, le=1000)
        decoder_layers: int | None = Field(None, ge=0, le=1000)  # None: as `layers`
        hidden: int = Field(512, ge=8, le=65536)
        heads: int = Field(8, ge=1, le=1024)
        ffn_hidden: int = Field(2048, ge=8, le=262144)
        src_len: int = Field(32, ge=1, le=1_000_000)
        tgt_len: int = Field(32, ge=1, le=1_000_000)
        vocab: int = Field(32000, ge=2, le=10_000_000)  # target vocabulary (output softmax)
        src_vocab: int | None = Field(None, ge=2, le=10_000_000)  # None: shared with target
        optimizer: Literal["adam", "sgd"] = "adam"

    def build(self, p: Params) -> Net:
        d, s, t = p.hidden, p.src_len, p.tgt_len
        dec = p.layers if p.decoder_layers is None else p.decoder_layers
        # the target embedding is the output projection's weights (tied); the source's too
        # unless it has its own vocabulary
        ops: list[Op] = [gather("src.embed", s, d, p.src_vocab or 0),
                         memory("src.pos", s * d, passes=3)]
        for i in range(p.layers):
            ops += attention_ops(f"enc{i}.self", s, s, d, p.heads) + _ffn(f"enc{i}", s, d,
                                                                          p.ffn_hidden)
        if dec:
            ops += [gather("tgt.embed", t, d, 0),
                    memory("tgt.pos", t * d, passes=3)]
        for i in range(dec):
            ops += attention_ops(f"dec{i}.self", t, t, d, p.heads)
            ops += attention_ops(f"dec{i}.cross", t, s, d, p.heads, self_attention=False)
            ops += _ffn(f"dec{i}", t, d, p.ffn_hidden)
        out_len = t if dec else s
        ops.append(matmul("logits", out_len, d, p.vocab, bias=False))
        ops.append(memory("loss", out_len * p.vocab, passes=5, saved=out_len * p.vocab))
        return Net(tuple(ops), optimizer=p.optimizer)


def rnn_layer(name: str, steps: int, n_in: int, hidden: int, cell: str = "lstm",
              directions: int = 1, fused: bool = True) -> list[Op]:
    """One recurrent layer over `steps` time steps: the input projection as one product, the
    recurrence as one small product plus the gate arithmetic per step and direction."""
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    host = 1.0 / (2 + directions) if fused else 1.0  # fused: one call for the three ops below
    return [matmul(f"{name}.input", steps, n_in, gates * hidden * directions,
                   host_ops=host),
            Op(f"{name}.recurrent", "matmul", m=1, k=hidden, n=gates * hidden,
               weights=gates * hidden * hidden + gates * hidden, param_tensors=2,
               steps=steps, count=directions, inputs=hidden, saved=hidden * steps,
               host_ops=host if fused else float(steps)),
            replace(memory(f"{name}.cell", gates * hidden, passes=3, steps=steps,
                           count=directions, saved=(gates + 1) * hidden * steps,
                           host_ops=0.0 if fused else float(steps)),
                    launches=0.0 if fused else 1.0)]


@NETS.register("rnn-lm")
class RnnLm(NetBuilder):
    description = ("word-level recurrent language model (PyTorch word_language_model: "
                   "embedding, LSTM layers, decoder over the vocabulary), plain SGD with "
                   "gradient clipping")

    class Params(NetBuilder.Params):
        vocab: int = Field(33278, ge=2, le=10_000_000)  # WikiText-2
        embedding: int = Field(200, ge=1, le=65536)
        hidden: int = Field(200, ge=1, le=65536)
        layers: int = Field(2, ge=1, le=1000)
        bptt: int = Field(35, ge=1, le=100_000)
        cell: Literal["lstm", "gru", "rnn"] = "lstm"

    def build(self, p: Params) -> Net:
        ops = [gather("embed", p.bptt, p.embedding, p.vocab),
               memory("embed.dropout", p.bptt * p.embedding, passes=3)]
        n_in = p.embedding
        for i in range(p.layers):
            ops += rnn_layer(f"rnn{i}", p.bptt, n_in, p.hidden, p.cell)
            n_in = p.hidden
        ops.append(memory("dropout", p.bptt * p.hidden, passes=3))
        ops.append(matmul("decoder", p.bptt, p.hidden, p.vocab))
        ops.append(memory("loss", p.bptt * p.vocab, passes=5, saved=p.bptt * p.vocab))
        # clip_grad_norm_: a norm per parameter tensor and a host sync
        return Net(tuple(ops), optimizer="sgd-plain", extra={"clip": True})


@NETS.register("deepspeech2")
class DeepSpeech2(NetBuilder):
    description = ("DeepSpeech2 (Amodei et al. 2016) as deepspeech.pytorch trains it: two 2D "
                   "convolutions over a 161-bin spectrogram, bidirectional recurrent layers "
                   "(directions summed), a character classifier, CTC")

    class Params(NetBuilder.Params):
        frames: int = Field(500, ge=8, le=1_000_000)  # 10 ms frames per utterance (padded)
        hidden: int = Field(1024, ge=8, le=65536)
        layers: int = Field(5, ge=1, le=100)
        cell: Literal["lstm", "gru"] = "lstm"
        classes: int = Field(29, ge=2, le=100_000)

    def build(self, p: Params) -> Net:
        t1 = -(-p.frames // 2)
        ops = [matmul("conv1", 81 * t1, 41 * 11, 32, bias=False, inputs=161 * p.frames),
               memory("conv1.norm", 81 * t1 * 32, passes=6, saved=81 * t1 * 32,
                      weights=64, param_tensors=2),
               matmul("conv2", 41 * t1, 32 * 21 * 11, 32, bias=False, inputs=81 * t1 * 32),
               memory("conv2.norm", 41 * t1 * 32, passes=6, saved=41 * t1 * 32,
                      weights=64, param_tensors=2)]
        n_in = 32 * 41
        for i in range(p.layers):
            ops += rnn_layer(f"rnn{i}", t1, n_in, p.hidden, p.cell, directions=2)
            ops.append(memory(f"rnn{i}.norm", t1 * p.hidden, passes=6, saved=t1 * p.hidden,
                              weights=2 * p.hidden, param_tensors=2))
            n_in = p.hidden
        ops.append(matmul("fc", t1, p.hidden, p.classes, bias=False))
        ops.append(memory("ctc", t1 * p.classes, passes=12))
        return Net(tuple(ops), optimizer="sgd", input_bytes_per_sample=161 * p.frames * 4)


@NETS.register("jasper")
class Jasper(NetBuilder):
    description = ("Jasper (Li et al. 2019): 1D convolutions over mel features in B blocks of "
                   "R sub-blocks (10x5: 333M parameters), CTC (NVIDIA DeepLearningExamples)")

    class Params(NetBuilder.Params):
        frames: int = Field(1600, ge=8, le=1_000_000)  # 10 ms frames (stride 2 after the prolog)
        features: int = Field(64, ge=1, le=4096)
        blocks: int = Field(10, ge=1, le=100)  # 5 kinds of block, each repeated blocks / 5
        repeats: int = Field(5, ge=1, le=100)
        classes: int = Field(29, ge=2, le=100_000)

    def build(self, p: Params) -> Net:
        t = -(-p.frames // 2)
        ops = _conv1d("prolog", p.frames, p.features, 256, 11, stride=2)
        c = 256
        per_kind = max(1, p.blocks // 5)
        for kind, (width, kernel) in enumerate(((256, 11), (384, 13), (512, 17), (640, 21),
                                                (768, 25))):
            for b in range(per_kind):
                name = f"b{kind}.{b}"
                for r in range(p.repeats):
                    ops += _conv1d(f"{name}.{r}", t, c if r == 0 else width, width, kernel)
                ops += _conv1d(f"{name}.res", t, c, width, 1, act=False)
                ops.append(memory(f"{name}.add", t * width, passes=3))
                c = width
        ops += _conv1d("epilog1", t, c, 896, 29)
        ops += _conv1d("epilog2", t, 896, 1024, 1)
        ops += _conv1d("epilog3", t, 1024, p.classes, 1, act=False)
        ops.append(memory("ctc", t * p.classes, passes=12))
        return Net(tuple(ops), optimizer="adam", input_bytes_per_sample=p.features * p.frames * 4)


def _conv1d(name: str, length: int, c_in: int, c_out: int, kernel: int, stride: int = 1,
            act: bool = True) -> list[Op]:
    ops = conv(name, length, c_in, c_out, kernel, stride, dims=1, act=act)
    if act:  # dropout after the activation
        ops.append(memory(f"{name}.dropout", -(-length // stride) * c_out, passes=3))
    return ops


@NETS.register("rnnt")
class RnnT(NetBuilder):
    description = ("RNN-T (Graves 2012) as MLPerf trains it: LSTM encoder with a time "
                   "reduction, LSTM prediction network over the labels, joint network over "
                   "every (frame, label) pair")

    class Params(NetBuilder.Params):
        frames: int = Field(500, ge=8, le=1_000_000)  # 30 ms stacked frames per utterance
        labels: int = Field(120, ge=1, le=100_000)  # label tokens per utterance
        features: int = Field(240, ge=1, le=4096)
        encoder_hidden: int = Field(1024, ge=8, le=65536)
        pre_layers: int = Field(2, ge=1, le=100)
        post_layers: int = Field(3, ge=1, le=100)
        prediction_hidden: int = Field(320, ge=8, le=65536)
        joint_hidden: int = Field(512, ge=8, le=65536)
        vocab: int = Field(1024, ge=2, le=1_000_000)

    def build(self, p: Params) -> Net:
        ops: list[Op] = []
        n_in, h = p.features, p.encoder_hidden
        for i in range(p.pre_layers):
            ops += rnn_layer(f"enc.pre{i}", p.frames, n_in, h)
            n_in = h
        t = -(-p.frames // 2)
        n_in = 2 * h  # frames stacked in pairs
        for i in range(p.post_layers):
            ops += rnn_layer(f"enc.post{i}", t, n_in, h)
            n_in = h
        u = p.labels + 1
        ops.append(gather("pred.embed", u, p.prediction_hidden, p.vocab))
        for i in range(2):
            ops += rnn_layer(f"pred{i}", u, p.prediction_hidden, p.prediction_hidden)
        ops.append(matmul("joint.enc", t, h, p.joint_hidden))
        ops.append(matmul("joint.pred", u, p.prediction_hidden, p.joint_hidden))
        pairs = t * u
        ops.append(memory("joint.add_relu", pairs * p.joint_hidden, passes=4,
                          saved=pairs * p.joint_hidden))
        ops.append(matmul("joint.out", pairs, p.joint_hidden, p.vocab))
        ops.append(memory("loss", pairs * p.vocab, passes=6, saved=pairs * p.vocab))
        return Net(tuple(ops), optimizer="adam",
                   input_bytes_per_sample=p.features * p.frames * 4)

