"""Device profiles: the fitted parameters of the cost model, per device.

A profile says how close a device gets to its data-sheet peaks: the fraction of the dtype peak
that large matrix products reach, how that fraction falls for small ones, the fraction of HBM
bandwidth that memory-bound kernels reach, a fixed cost per kernel launch, and the fraction of
link bandwidth collectives reach on NVLink and on the network. GPU profiles are fitted to the
published measurements in data/reference by `python -m dcsim.perf.fit`; the host profile is
measured by `dcsim calibrate`. Each profile carries its provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DeviceProfile", "profiles", "profile_for", "load_profile_file", "PROFILE_FILE"]

PROFILE_FILE = "profiles.yaml"


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    device: str
    gemm_efficiency: float  # fraction of the dtype peak reached by large matrix products
    gemm_half_gflop: float  # a product of this many GFLOP reaches half of gemm_efficiency
    memory_efficiency: float  # fraction of HBM bandwidth reached by memory-bound kernels
    kernel_overhead_s: float  # fixed time per kernel launch
    nvlink_efficiency: float = 0.8  # achieved / nominal per-direction NVLink bandwidth
    network_efficiency: float = 0.9  # achieved / effective NIC bandwidth in collectives
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)
    # measured peaks that replace the catalog's (a calibrated host); None: the catalog's
    peak_flop_s: dict[str, float] | None = field(default=None, compare=False)
    hbm_bandwidth_byte_s: float | None = None

    def gemm_fraction(self, flop: float) -> float:
        """Fraction of peak reached by one matrix product of `flop` FLOPs."""
        half = self.gemm_half_gflop * 1e9
        return self.gemm_efficiency * flop / (flop + half)

    def params(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in PARAMS}


PARAMS = ("gemm_efficiency", "gemm_half_gflop", "memory_efficiency", "kernel_overhead_s",
          "nvlink_efficiency", "network_efficiency")


def _parse(device: str, d: dict[str, Any]) -> DeviceProfile:
    peaks = d.get("peak_tflop_s")
    bandwidth = d.get("hbm_bandwidth_gbyte_s")
    return DeviceProfile(
        device=device, **{k: float(d[k]) for k in PARAMS},
        provenance=dict(d.get("provenance", {})),
        peak_flop_s={k: float(v) * 1e12 for k, v in peaks.items()} if peaks else None,
        hbm_bandwidth_byte_s=float(bandwidth) * 1e9 if bandwidth else None)


def load_profile_file(path: str | Path) -> dict[str, DeviceProfile]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {name: _parse(name, d) for name, d in data.items()}


@cache
def profiles() -> dict[str, DeviceProfile]:
    """The profiles shipped in dcsim/catalog/profiles.yaml."""
    text = resources.files("dcsim.catalog").joinpath(PROFILE_FILE).read_text(encoding="utf-8")
    return {name: _parse(name, d) for name, d in (yaml.safe_load(text) or {}).items()}


def profile_for(device: str, first_order_efficiency: float) -> DeviceProfile:
    """The device's profile; a device without one gets a generic profile built from its
    first-order efficiency (said so in its provenance)."""
    if device in profiles():
        return profiles()[device]
    return DeviceProfile(device, gemm_efficiency=first_order_efficiency, gemm_half_gflop=1.0,
                         memory_efficiency=0.7, kernel_overhead_s=5e-6,
                         provenance={"source": "generic: no fitted profile for this device"})
