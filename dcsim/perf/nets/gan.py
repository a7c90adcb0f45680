"""CycleGAN layer by layer: ResNet generators and PatchGAN discriminators, each run several
times per training step."""

from __future__ import annotations

from dataclasses import replace

from pydantic import Field

from dcsim.perf.nets.base import NETS, Net, NetBuilder, Op, conv, memory

__all__ = ["CycleGan"]


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
    return [replace(op, name=f"{op.name}.{tag}{i}") for i in (1, 2) for op in ops]
