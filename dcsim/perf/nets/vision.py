"""Vision networks layer by layer: ResNet and ResNeXt (ImageNet and CIFAR stems), VGG,
EfficientNet, YOLOv3 (Darknet-53), SSD300, 2D and 3D U-Net, CycleGAN, and networks known only
by their totals.

Shapes follow the papers and the reference implementations named in each builder; MACs and
parameters are checked against published totals in tests/test_nets.py (e.g. ResNet-50 4.09
GMACs / 25.6M, ResNeXt-50 32x4d 4.26 / 25.0M, EfficientNet-B0 0.39 / 5.3M, YOLOv3-416 32.9
GMACs, VGG-16 15.5 / 138M).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field

from dcsim import catalog
from dcsim.perf.nets.base import NETS, Net, NetBuilder, Op, Widths, conv, dense, memory

__all__ = ["resnet_ops", "vgg_ops", "RESNETS", "decode_s"]

# Decoding and augmenting one ImageNet JPEG (~110 KB, ~400 x 350 px) to a 224 px crop on one
# CPU core with PIL and torchvision transforms: ~10 ms (a core feeds ~100 images/s; the figure
# DALI and FFCV set out to beat). Scaled by the crop's pixels; small images (CIFAR, 32 px)
# are already decoded arrays: ~50 us for the crop, flip and normalization.
DECODE_S_224 = 10e-3
DECODE_S_SMALL = 5e-5


def _image_net(ops: list[Op] | tuple[Op, ...], size: int, optimizer: str = "sgd") -> Net:
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


def _block(name: str, kind: str, size: int, c_in: int, width: int, stride: int, groups: int,
           width_per_group: int) -> tuple[list[Op], int, int]:
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
            block, size, c = _block(f"s{stage}.b{i}", kind, size, c, width, stride, groups, wpg)
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
        return _image_net(ops, p.image_size)


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
        return _image_net(ops, p.image_size)


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
        return _image_net(ops, resolution)


def _darknet_res(name: str, size: int, c: int, n: int) -> list[Op]:
    ops: list[Op] = []
    for i in range(n):
        ops += conv(f"{name}.{i}.a", size, c, c // 2, 1)
        ops += conv(f"{name}.{i}.b", size, c // 2, c, 3)
        ops.append(memory(f"{name}.{i}.add", size * size * c, passes=3))
    return ops


def _yolo_head(name: str, size: int, c_in: int, c: int, outputs: int) -> list[Op]:
    ops: list[Op] = []
    cin = c_in
    for i in range(5):
        width = c if i % 2 == 0 else 2 * c
        ops += conv(f"{name}.{i}", size, cin, width, 1 if i % 2 == 0 else 3)
        cin = width
    ops += conv(f"{name}.out3", size, c, 2 * c, 3)
    ops += conv(f"{name}.out", size, 2 * c, outputs, 1, norm=False, act=False, bias=True)
    return ops


@NETS.register("yolov3")
class YoloV3(NetBuilder):
    description = "YOLOv3 (Redmon & Farhadi 2018): Darknet-53 and three detection scales"

    class Params(NetBuilder.Params):
        image_size: int = Field(416, ge=64, le=4096)
        classes: int = Field(80, ge=1, le=100_000)

    def build(self, p: Params) -> Net:
        s = p.image_size
        ops = conv("c0", s, 3, 32, 3)
        c, size = 32, s
        feats = {}
        for stage, n in enumerate((1, 2, 8, 8, 4)):
            ops += conv(f"down{stage}", size, c, 2 * c, 3, 2)
            c, size = 2 * c, -(-size // 2)
            ops += _darknet_res(f"res{stage}", size, c, n)
            feats[size] = c
        outs = 3 * (5 + p.classes)
        ops += _yolo_head("head32", size, 1024, 512, outs)
        ops += conv("route16", size, 512, 256, 1)
        size *= 2
        ops.append(memory("up16", size * size * 256, passes=1.25))
        ops += _yolo_head("head16", size, 256 + 512, 256, outs)
        ops += conv("route8", size, 256, 128, 1)
        size *= 2
        ops.append(memory("up8", size * size * 128, passes=1.25))
        ops += _yolo_head("head8", size, 128 + 256, 128, outs)
        anchors = 3 * sum((s // r) ** 2 for r in (8, 16, 32))
        ops.append(memory("loss", anchors * (5 + p.classes), passes=8))
        return _image_net(ops, s)


@NETS.register("ssd")
class Ssd(NetBuilder):
    description = ("SSD300 (Liu et al. 2016) with a ResNet-34/50 backbone cut after its third "
                   "stage at stride 8 (MLPerf, NVIDIA DeepLearningExamples)")

    class Params(NetBuilder.Params):
        backbone: Literal["resnet34", "resnet50"] = "resnet50"
        image_size: int = Field(300, ge=64, le=4096)
        classes: int = Field(81, ge=2, le=100_000)

    def build(self, p: Params) -> Net:
        kind, blocks, groups, wpg = RESNETS[p.backbone]
        s = p.image_size
        ops = conv("stem", s, 3, 64, 7, 2)
        size = -(-s // 2) // 2
        ops.append(memory("maxpool", size * size * 64, passes=1.25))
        c = 64
        for stage, (n, width) in enumerate(zip(blocks[:3], (64, 128, 256), strict=True)):
            for i in range(n):
                stride = 2 if (stage == 1 and i == 0) else 1  # the third stage keeps stride 8
                block, size, c = _block(f"s{stage}.b{i}", kind, size, c, width, stride, groups,
                                        wpg)
                ops += block
        maps = [(size, c)]
        for i, (mid, out, stride) in enumerate(((256, 512, 2), (256, 512, 2), (128, 256, 2),
                                                (128, 256, 1), (128, 256, 1))):
            ops += conv(f"extra{i}.a", size, c, mid, 1)
            ops += conv(f"extra{i}.b", size, mid, out, 3, stride)
            size = -(-size // stride) if stride > 1 else max(1, size - 2)
            c = out
            maps.append((size, c))
        priors = 0
        for j, ((fs, fc), a) in enumerate(zip(maps, (4, 6, 6, 6, 4, 4), strict=True)):
            ops += conv(f"loc{j}", fs, fc, a * 4, 3, norm=False, act=False, bias=True)
            ops += conv(f"conf{j}", fs, fc, a * p.classes, 3, norm=False, act=False, bias=True)
            priors += fs * fs * a
        # softmax over classes per prior, box decoding and hard-negative mining (a sort)
        ops.append(memory("loss", priors * (p.classes + 4), passes=10))
        return _image_net(ops, s)


@NETS.register("unet")
class UNet(NetBuilder):
    description = ("U-Net, 2D (Ronneberger et al. 2015) or 3D (Cicek et al. 2016; the MLPerf "
                   "KiTS19 variant: stride-2 downsampling, transposed-conv upsampling)")

    class Params(NetBuilder.Params):
        dims: Literal[2, 3] = 3
        image_size: int = Field(128, ge=16, le=4096)  # side of the (square / cubic) patch
        in_channels: int = Field(1, ge=1, le=1024)
        classes: int = Field(3, ge=1, le=100_000)
        filters: Widths = (32, 64, 128, 256, 320, 320)

    def build(self, p: Params) -> Net:
        d, size, c = p.dims, p.image_size, p.in_channels
        ops: list[Op] = []
        skips = []
        for i, f in enumerate(p.filters):
            stride = 1 if i == 0 else 2
            ops += conv(f"enc{i}.a", size, c, f, 3, stride, dims=d)
            size = -(-size // stride)
            ops += conv(f"enc{i}.b", size, f, f, 3, dims=d)
            c = f
            skips.append((size, f))
        for i in range(len(p.filters) - 2, -1, -1):
            skip_size, f = skips[i]
            ops += conv(f"dec{i}.up", size, c, f, 2, 2, dims=d, norm=False, act=False,
                        transposed=True)
            size = skip_size
            ops += conv(f"dec{i}.a", size, 2 * f, f, 3, dims=d)
            ops += conv(f"dec{i}.b", size, f, f, 3, dims=d)
            c = f
        ops += conv("out", size, c, p.classes, 1, dims=d, norm=False, act=False, bias=True)
        ops.append(memory("loss", size ** d * p.classes, passes=6))
        return Net(tuple(ops), optimizer="adam",
                   input_bytes_per_sample=p.in_channels * p.image_size ** d * 4)


def _cyclegan_generator(size: int, blocks: int) -> list[Op]:
    ops = conv("g.c7", size, 3, 64, 7)
    ops += conv("g.d128", size, 64, 128, 3, 2)
    ops += conv("g.d256", size // 2, 128, 256, 3, 2)
    s = size // 4
    for i in range(blocks):
        ops += conv(f"g.r{i}.a", s, 256, 256, 3) + conv(f"g.r{i}.b", s, 256, 256, 3, act=False)
        ops.append(memory(f"g.r{i}.add", s * s * 256, passes=3))
    ops += conv("g.u128", s, 256, 128, 3, 2, transposed=True)
    ops += conv("g.u64", 2 * s, 128, 64, 3, 2, transposed=True)
    ops += conv("g.out", size, 64, 3, 7, norm=False, act=True, bias=True)
    return ops


def _patchgan(size: int) -> list[Op]:
    ops = conv("d.c64", size, 3, 64, 4, 2, norm=False)
    ops += conv("d.c128", size // 2, 64, 128, 4, 2)
    ops += conv("d.c256", size // 4, 128, 256, 4, 2)
    ops += conv("d.c512", size // 8, 256, 512, 4)
    ops += conv("d.out", size // 8, 512, 1, 4, norm=False, act=False, bias=True)
    return ops


def _reuse(ops: list[Op], times: int) -> list[Op]:
    from dataclasses import replace

    return [replace(op, reuse=times) for op in ops]


@NETS.register("cyclegan")
class CycleGan(NetBuilder):
    description = ("CycleGAN (Zhu et al. 2017): two ResNet generators and two 70x70 PatchGAN "
                   "discriminators; a step runs each generator 3 times (translation, cycle, "
                   "identity) and the discriminators 3 times each")

    class Params(NetBuilder.Params):
        image_size: int = Field(256, ge=32, le=4096)
        residual_blocks: int = Field(9, ge=1, le=64)

    def build(self, p: Params) -> Net:
        # per step: 2 generators x 3 passes = 6 generator passes, 2 discriminators x 3 passes
        gen = _reuse(_cyclegan_generator(p.image_size, p.residual_blocks), 3)
        disc = _reuse(_patchgan(p.image_size), 3)
        ops = [*_twice(gen, "A"), *_twice(disc, "A")]
        return Net(tuple(ops), optimizer="adam",
                   input_bytes_per_sample=2 * 3 * p.image_size ** 2 * 4)


def _twice(ops: list[Op], tag: str) -> list[Op]:
    from dataclasses import replace

    return [replace(op, name=f"{op.name}.{tag}{i}") for i in (1, 2) for op in ops]


@NETS.register("totals")
class Totals(NetBuilder):
    description = ("a CNN of catalog/cnn_archs.yaml known only by its totals: its MACs spread "
                   "evenly over its layers as 3x3 convolutions with normalization and "
                   "activation")

    class Params(NetBuilder.Params):
        arch: str
        image_size: int | None = Field(None, ge=8, le=4096)

    def build(self, p: Params) -> Net:
        arch = catalog.cnn_archs()[p.arch]
        size = p.image_size or arch.reference_image_size
        macs = arch.forward_gmacs * 1e9 * (size / arch.reference_image_size) ** 2
        layers = max(1, arch.layers)
        width = 256
        pixels = macs / layers / (9 * width * width)
        elems = pixels * width
        ops = (Op("layers", "matmul", m=pixels, k=9 * width, n=width, inputs=elems,
                  weights=arch.params_m * 1e6 / layers, param_tensors=1, saved=elems,
                  count=layers),
               memory("layers.norm", elems, passes=4, count=layers, saved=elems,
                      weights=0.0),
               memory("layers.act", elems, passes=2, count=layers))
        return _image_net(ops, size)
