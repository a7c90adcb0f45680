"""Image classification networks layer by layer: ResNet and ResNeXt (ImageNet and CIFAR
stems), VGG, EfficientNet; and what the vision networks share: RGB images decoded on the host
(`image_net`, `decode_s`) and the ResNet stages (`RESNETS`, `resnet_block`). The other vision
families are sibling modules: `detection` (YOLOv3, SSD300, U-Net), `gan` (CycleGAN) and
`totals` (networks known only by their totals).

Shapes follow the papers and the reference implementations named in each builder; MACs and
parameters are checked against published totals in tests/test_nets.py (e.g. ResNet-50 4.09
GMACs / 25.6M, ResNeXt-50 32x4d 4.26 / 25.0M, EfficientNet-B0 0.39 / 5.3M, VGG-16 15.5 / 138M).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from dcsim.perf.nets.base import NETS, Net, NetBuilder, Op, conv, dense, memory

__all__ = ["resnet_ops", "resnet_block", "vgg_ops", "RESNETS", "decode_s", "image_net"]

# Decoding and augmenting one ImageNet JPEG (~110 KB, ~400 x 350 px) to a 224 px crop on one
# CPU core with PIL and torchvision transforms: ~10 ms (a core feeds ~100 images/s; the figure
# DALI and FFCV set out to beat). Scaled by the crop's pixels; small images (CIFAR, 32 px)
# are already decoded arrays: ~50 us for the crop, flip and normalization.
DECODE_S_224 = 10e-3
DECODE_S_SMALL = 5e-5


def image_net(ops: list[Op] | tuple[Op, ...], size: int, optimizer: str = "sgd") -> Net:
    """A network trained on `size`-px RGB images: fp32 input copied to the GPU, decoded on
    the host (`decode_s`)."""
    return Net(tuple(ops), optimizer=optimizer, input_bytes_per_sample=3 * size * size * 4,
               decode_s_per_sample=decode_s(size))


def decode_s(image_size: int) -> float:
    """Host decode and augmentation time of one image of `image_size` px on one core."""
    if image_size <= 64:
        return DECODE_S_SMALL
    return DECODE_S_224 * (image_size / 224) ** 2

# name -> (block, blocks per stage, groups, width per group)
RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2), 1, 64), "resnet34": ("basic", (3, 4, 6, 3), 1, 64),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 1, 64),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 1, 64),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 1, 64),
    "resnext50-32x4d": ("bottleneck", (3, 4, 6, 3), 32, 4),
    "resnext101-32x4d": ("bottleneck", (3, 4, 23, 3), 32, 4),
    "resnext101-32x8d": ("bottleneck", (3, 4, 23, 3), 32, 8),
    "wide-resnet50-2": ("bottleneck", (3, 4, 6, 3), 1, 128),
}


def _add(name: str, elems: float, relu: bool = True) -> list[Op]:
    """The residual add and its activation; the activation's output is the next block's
    input, which that block's first convolution keeps (counted there, once)."""
    ops = [memory(f"{name}.add", elems, passes=3)]
    if relu:
        ops.append(memory(f"{name}.relu", elems, passes=2))
    return ops


def resnet_block(name: str, kind: str, size: int, c_in: int, width: int, stride: int,
                 groups: int, width_per_group: int) -> tuple[list[Op], int, int]:
    """One residual block (torchvision: the stride on the 3x3 convolution)."""
    out_size = -(-size // stride)
    if kind == "basic":
        c_out = width
        ops = conv(f"{name}.conv1", size, c_in, width, 3, stride)
        ops += conv(f"{name}.conv2", out_size, width, width, 3, act=False)
    else:
        mid = width * width_per_group // 64 * groups
        c_out = width * 4
        ops = conv(f"{name}.conv1", size, c_in, mid, 1)
        ops += conv(f"{name}.conv2", size, mid, mid, 3, stride, groups=groups)
        ops += conv(f"{name}.conv3", out_size, mid, c_out, 1, act=False)
    if stride != 1 or c_in != c_out:  # the projection reads the block input conv1 keeps
        down = conv(f"{name}.down", size, c_in, c_out, 1, stride, act=False)
        ops += [replace(down[0], saved=0.0), *down[1:]]
    ops += _add(name, out_size ** 2 * c_out)
    return ops, out_size, c_out


def resnet_ops(arch: str, image_size: int, classes: int = 1000, cifar: bool = False
               ) -> tuple[list[Op], int]:
    """A ResNet/ResNeXt's ops and its final channels. `cifar`: the 3x3 stem without max-pool
    (the CIFAR-10 variant Gavel and Pollux train, github kuangliu/pytorch-cifar)."""
    kind, blocks, groups, wpg = RESNETS[arch]
    if cifar:
        ops, size = conv("stem", image_size, 3, 64, 3), image_size
    else:
        ops = conv("stem", image_size, 3, 64, 7, 2)
        size = -(-image_size // 2)
        ops.append(memory("maxpool", (size // 2) ** 2 * 64, passes=1 + 1 / 4, saved=0))
        size //= 2
    c = 64
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512), strict=True)):
        for i in range(n):
            stride = 2 if (stage > 0 and i == 0) else 1
            block, size, c = resnet_block(f"s{stage}.b{i}", kind, size, c, width, stride, groups,
                                          wpg)
            ops += block
    ops.append(memory("avgpool", size * size * c, passes=1))
    ops += dense("fc", c, classes)
    return ops, c


class ImageParams(NetBuilder.Params):
    image_size: int = Field(224, ge=32, le=4096)
    classes: int = Field(1000, ge=1, le=1_000_000)


@NETS.register("resnet")
class ResNet(NetBuilder):
    description = "ResNet / ResNeXt / Wide ResNet (He et al. 2016; Xie et al. 2017), torchvision"

    class Params(ImageParams):
        depth: Literal[tuple(RESNETS)] = "resnet50"  # type: ignore[valid-type]
        cifar_stem: bool = False  # the 3x3 stem of the CIFAR-10 variant (32 px images)

    def build(self, p: Params) -> Net:
        ops, _ = resnet_ops(p.depth, p.image_size, p.classes, p.cifar_stem)
        return image_net(ops, p.image_size)


VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512,
              512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


def vgg_ops(cfg: tuple, image_size: int, classes: int, batch_norm: bool = False) -> list[Op]:
    ops: list[Op] = []
    size, c = image_size, 3
    for i, v in enumerate(cfg):
        if v == "M":
            ops.append(memory(f"pool{i}", size * size * c, passes=1.25))
            size //= 2
        else:
            ops += conv(f"conv{i}", size, c, v, 3, norm=batch_norm, bias=not batch_norm)
            c = v
    flat = size * size * c
    ops += dense("fc1", flat, 4096, act=True) + dense("fc2", 4096, 4096, act=True)
    return ops + dense("fc3", 4096, classes)


@NETS.register("vgg")
class Vgg(NetBuilder):
    description = "VGG-11/16/19 (Simonyan & Zisserman 2015), torchvision"

    class Params(ImageParams):
        depth: Literal["vgg11", "vgg16", "vgg19"] = "vgg16"
        batch_norm: bool = False

    def build(self, p: Params) -> Net:
        ops = vgg_ops(VGG_CONFIGS[p.depth], p.image_size, p.classes, p.batch_norm)
        return image_net(ops, p.image_size)


# EfficientNet-B0 stages (Tan & Le 2019, table 1): expand ratio, kernel, stride, channels, repeats
_B0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
       (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# variant -> (width multiplier, depth multiplier, resolution) (the paper's compound scaling)
EFFICIENTNETS = {"b0": (1.0, 1.0, 224), "b1": (1.0, 1.1, 240), "b2": (1.1, 1.2, 260),
                 "b3": (1.2, 1.4, 300), "b4": (1.4, 1.8, 380), "b5": (1.6, 2.2, 456),
                 "b6": (1.8, 2.6, 528), "b7": (2.0, 3.1, 600)}


def _round_channels(c: float) -> int:
    return max(8, int(c + 4) // 8 * 8)


@NETS.register("efficientnet")
class EfficientNet(NetBuilder):
    description = "EfficientNet-B0..B7 (Tan & Le 2019): MBConv with depthwise convolutions, SE"

    class Params(NetBuilder.Params):
        variant: Literal[tuple(EFFICIENTNETS)] = "b0"  # type: ignore[valid-type]
        image_size: int | None = Field(None, ge=32, le=4096)  # None: the variant's
        classes: int = Field(1000, ge=1, le=1_000_000)

    def build(self, p: Params) -> Net:
        import math

        wm, dm, res = EFFICIENTNETS[p.variant]
        resolution = size = p.image_size or res
        c = _round_channels(32 * wm)
        ops = conv("stem", size, 3, c, 3, 2)
        size = -(-size // 2)
        for s, (e, k, stride, ch, reps) in enumerate(_B0):
            out = _round_channels(ch * wm)
            for r in range(math.ceil(reps * dm)):
                st = stride if r == 0 else 1
                mid = c * e
                name = f"s{s}.b{r}"
                if e != 1:
                    ops += conv(f"{name}.expand", size, c, mid, 1)
                ops += conv(f"{name}.dw", size, mid, mid, k, st, groups=mid)
                size = -(-size // st)
                se = max(1, c // 4)
                ops.append(memory(f"{name}.se.pool", size * size * mid, passes=1))
                ops += dense(f"{name}.se.fc1", mid, se, act=True) + dense(f"{name}.se.fc2", se, mid)
                ops.append(memory(f"{name}.se.scale", size * size * mid, passes=3,
                                  saved=size * size * mid))
                ops += conv(f"{name}.project", size, mid, out, 1, act=False)
                if st == 1 and c == out:
                    ops.append(memory(f"{name}.add", size * size * out, passes=3))
                c = out
        head = _round_channels(1280 * wm)
        ops += conv("head", size, c, head, 1)
        ops.append(memory("avgpool", size * size * head, passes=1))
        ops += dense("fc", head, p.classes)
        return image_net(ops, resolution)
