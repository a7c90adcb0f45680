"""Networks described operation by operation, for the step-time model of the small and
mid-size jobs that fill real clusters (CNNs, detectors, segmentation, speech, recurrent
language models, encoder-decoder translation, recommendation, reinforcement learning).

A `Net` is the forward pass of one sample as a tuple of `Op`s (per sample; the step model
multiplies by the micro-batch), plus what the training step does around it: the optimizer,
how many forward/backward passes a step runs through which ops (CycleGAN), and time on the
host that no kernel accounts for (an RL environment). Architectures are built by registered
builders (`NETS`), each with typed parameters: `model: {kind: net, arch: NAME, params: {...}}`
(presets in dcsim/catalog/models.yaml). Adding one is a builder class, a registration and a
test.

Op kinds:
- `matmul`: a matrix product (a dense layer, a convolution as its implicit GEMM, a batched
  attention product): per sample m output rows x k inputs x n outputs (2 m k n FLOPs), in
  `groups` independent products (grouped and depthwise convolutions); `inputs` is the
  activation elements it reads per sample (a convolution reads its input once, not k times).
  `steps` > 1: a recurrent product run once per time step (sequential kernels of m rows each).
- `memory`: an elementwise or reduction kernel (normalization, activation, pooling, softmax,
  residual add) moving `passes` x `elems` elements per sample.
- `gather`: an embedding lookup of `elems` elements per sample from a table of `weights`
  parameters (random rows: bound by memory bandwidth).
"""

from __future__ import annotations

from dcsim.perf.nets.base import (  # noqa: F401  (re-exported)
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

__all__ = ["Op", "Net", "NetBuilder", "NETS", "matmul", "memory", "gather", "conv", "dense",
           "Widths"]

# Register the architectures.
from dcsim.perf.nets import recsys, sequence, vision, detection, gan, totals  # noqa: F401,I001
