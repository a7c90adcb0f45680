"""Layer lists of the convolutional networks dcsim knows layer by layer.

Each convolution is given as the matrix product it runs as (im2col): per sample, M output
pixels x K = c_in x k x k inputs x N = c_out filters; M K N multiply-accumulates. ResNet-50
follows He et al. 2016 with the stride on the 3x3 convolution of each bottleneck (torchvision's
"v1.5"; 53 convolutions, 4.09 GMACs at 224 px with the classifier, as its model card says); the
CIFAR-10 CNN is the seed article's (two 3x3 'same' convolutions with 2x2 max-pooling). Other
architectures are known only by their totals (dcsim/catalog/cnn_archs.yaml).
"""

from __future__ import annotations

__all__ = ["conv_shapes", "dense_shapes"]

ConvShape = tuple[int, int, int]  # (M output pixels, K inputs per output, N filters)

_RESNET50_STAGES = ((3, 64, 256, 1), (4, 128, 512, 2), (6, 256, 1024, 2), (3, 512, 2048, 2))


def _resnet50(size: int) -> list[ConvShape]:
    h = size // 2
    layers = [(h * h, 3 * 7 * 7, 64)]  # 7x7 stride-2 stem
    h //= 2  # 3x3 stride-2 max-pool
    c_in = 64
    for blocks, mid, out, stride in _RESNET50_STAGES:
        for block in range(blocks):
            h_out = h // (stride if block == 0 else 1)
            layers += [(h * h, c_in, mid), (h_out * h_out, mid * 9, mid), (h_out * h_out, mid, out)]
            if block == 0:
                layers.append((h_out * h_out, c_in, out))  # projection shortcut
            c_in, h = out, h_out
    return layers


def _cifar10_cnn(size: int) -> list[ConvShape]:
    return [(size * size, 3 * 9, 32), ((size // 2) ** 2, 32 * 9, 64)]


_CONVS = {"resnet50": _resnet50, "cifar10-cnn": _cifar10_cnn}
_DENSE = {"resnet50": lambda size: [(2048, 1000)],
          "cifar10-cnn": lambda size: [(64 * (size // 4) ** 2, 128), (128, 10)]}


def conv_shapes(arch: str, size: int) -> tuple[ConvShape, ...]:
    """The convolutions of `arch` at `size` px, or () if dcsim knows only its totals."""
    return tuple(_CONVS[arch](size)) if arch in _CONVS else ()


def dense_shapes(arch: str, size: int) -> tuple[tuple[int, int], ...]:
    """The fully connected layers (inputs, outputs) after the convolutions."""
    return tuple(_DENSE[arch](size)) if arch in _DENSE else ()
