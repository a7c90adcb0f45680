"""The layer list of the seed article's CIFAR-10 CNN, as dcsim's own kernels run it (execute
mode: two 3x3 'same' convolutions with 2x2 max-pooling, then two dense layers).

Each convolution is given as the matrix product it runs as (im2col): per sample, M output
pixels x K = c_in x k x k inputs x N = c_out filters; M K N multiply-accumulates. Other
networks are described operation by operation in dcsim/perf/nets.
"""

from __future__ import annotations

__all__ = ["conv_shapes", "dense_shapes"]

ConvShape = tuple[int, int, int]  # (M output pixels, K inputs per output, N filters)

def _cifar10_cnn(size: int) -> list[ConvShape]:
    return [(size * size, 3 * 9, 32), ((size // 2) ** 2, 32 * 9, 64)]


_CONVS = {"cifar10-cnn": _cifar10_cnn}
_DENSE = {"cifar10-cnn": lambda size: [(64 * (size // 4) ** 2, 128), (128, 10)]}


def conv_shapes(arch: str, size: int) -> tuple[ConvShape, ...]:
    """The convolutions of `arch` at `size` px, or () if dcsim knows only its totals."""
    return tuple(_CONVS[arch](size)) if arch in _CONVS else ()


def dense_shapes(arch: str, size: int) -> tuple[tuple[int, int], ...]:
    """The fully connected layers (inputs, outputs) after the convolutions."""
    return tuple(_DENSE[arch](size)) if arch in _DENSE else ()
