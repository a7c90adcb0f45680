"""Detection and segmentation networks layer by layer: YOLOv3 (Darknet-53), SSD300 (on a
ResNet backbone, `dcsim.perf.nets.vision`), 2D and 3D U-Net.

Shapes follow the papers and the reference implementations named in each builder; MACs are
checked against published totals in tests/test_nets.py (e.g. YOLOv3-416 32.9 GMACs).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dcsim.perf.nets.base import NETS, Net, NetBuilder, Op, Widths, conv, memory
from dcsim.perf.nets.vision import RESNETS, image_net, resnet_block

__all__ = ["YoloV3", "Ssd", "UNet"]


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
        return image_net(ops, s)


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
                block, size, c = resnet_block(f"s{stage}.b{i}", kind, size, c, width, stride,
                                              groups, wpg)
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
        return image_net(ops, s)


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
