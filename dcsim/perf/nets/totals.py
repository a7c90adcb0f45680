"""CNNs known only by their totals (dcsim/catalog/cnn_archs.yaml): MACs and parameters spread
evenly over their layers."""

from __future__ import annotations

from pydantic import Field

from dcsim import catalog
from dcsim.perf.nets.base import NETS, Net, NetBuilder, Op, memory
from dcsim.perf.nets.vision import image_net

__all__ = ["Totals"]


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
        return image_net(ops, size)
