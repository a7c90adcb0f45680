"""Device profiles: the fitted parameters of the cost model, per device.

A profile says how close a device gets to its data-sheet peaks: the fraction of the dtype peak
that large matrix products reach, how that fraction falls for small ones, the fraction of HBM
bandwidth that memory-bound kernels reach, a fixed cost per kernel launch, and the fraction of
link bandwidth collectives reach on NVLink and on the network. GPU profiles are fitted to the
published measurements in data/reference by `python -m dcsim.tools.fit_profiles`; the host
profile is measured by `dcsim calibrate`. Each profile carries its provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from dcsim.catalog import DTYPES

__all__ = ["DeviceProfile", "ProfileError", "profiles", "profile_for", "load_profile_file",
           "PROFILE_FILE"]

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
    step_overhead_s: float = 0.0  # framework time per training step outside the kernels
    # host (CPU) time per framework call (PyTorch eager dispatch) on the device's usual host
    op_overhead_s: float = 0.0
    # fraction of the dtype peak that large products reach on tensor cores (16- and 8-bit
    # types, tf32), where it differs from gemm_efficiency (fitted on fp32); None: the same
    tensor_efficiency: float | None = None
    # speed of the host CPU the device is usually paired with, relative to the reference host
    # of the networks' host costs (a 2.3 GHz Broadwell Xeon core): host work per sample and
    # per step (dcsim/perf/nets: data collation, an RL environment) divides by it
    host_speed: float = 1.0
    # CPU cores per GPU that decode input data in parallel (data-loader workers) on that host;
    # 0: decoding is not a bottleneck (decoded on the GPU, e.g. NVIDIA DALI, or enough cores)
    loader_cores: float = 0.0
    # measured fractions of peak on a grid: {"sides": [batch m ...], "widths": [k = n ...],
    # "fraction": [[per width] per batch]}; where present, products interpolate in it
    gemm_table: dict[str, list] | None = field(default=None, compare=False)
    gemm_half_dim: float = 0.0  # a product whose smallest side is this long reaches half the
    # efficiency of a square one (skinny products on CPU BLAS); 0: size alone decides

    def gemm_fraction(self, flop: float,
                      sides: tuple[float, float, float] | None = None) -> float:
        """Fraction of peak reached by one matrix product of `flop` FLOPs, (m, k, n) = `sides`
        where known: interpolated in the measured table if the profile has one; else
        gemm_efficiency x F / (F + F_half), times s / (s + gemm_half_dim) for the smallest side
        s if the profile has that fall-off."""
        if self.gemm_table is not None and sides is not None:
            return _interpolate(self.gemm_table, sides)
        half = self.gemm_half_gflop * 1e9
        fraction = self.gemm_efficiency * flop / (flop + half)
        if sides is not None and self.gemm_half_dim > 0:
            smallest = min(sides)
            fraction *= smallest / (smallest + self.gemm_half_dim)
        return fraction

    def params(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in PARAMS}


def _interpolate(table: dict[str, list], sides: tuple[float, float, float]) -> float:
    """Bilinear interpolation in log space of the measured fraction of peak of a product of an
    (m x k) activation with a (k x n) weight, at m and the geometric mean of k and n (the
    calibration grid's batch and square width), clamped to the grid."""
    import numpy as np

    m, k, n = sides
    x, y = np.log(max(m, 1.0)), np.log(max(np.sqrt(k * n), 1.0))
    xs, ys = np.log(table["sides"]), np.log(table["widths"])
    grid = np.asarray(table["fraction"], dtype=float)
    x, y = float(np.clip(x, xs[0], xs[-1])), float(np.clip(y, ys[0], ys[-1]))
    along_y = np.array([np.interp(y, ys, row) for row in grid])
    return float(np.interp(x, xs, along_y))


PARAMS = ("gemm_efficiency", "gemm_half_gflop", "memory_efficiency", "kernel_overhead_s",
          "nvlink_efficiency", "network_efficiency")


class ProfileError(ValueError):
    """A profile file that cannot be used; the message says which key and why."""


RANGES = {  # (low, high], per parameter
    "gemm_efficiency": (0.0, 1.0), "memory_efficiency": (0.0, 1.0),
    "nvlink_efficiency": (0.0, 1.0), "network_efficiency": (0.0, 1.0),
    "gemm_half_gflop": (0.0, float("inf")), "kernel_overhead_s": (0.0, float("inf")),
}


OPTIONAL = {"peak_tflop_s", "hbm_bandwidth_gbyte_s", "step_overhead_s", "gemm_half_dim",
            "op_overhead_s", "tensor_efficiency", "host_speed", "loader_cores",
            "gemm_table",
            "provenance"}


def _check_table(device: str, table: Any) -> None:
    where = f"{device}.gemm_table"
    if not isinstance(table, dict) or set(table) != {"sides", "widths", "fraction"}:
        raise ProfileError(f"{where}: must map sides, widths and fraction")
    sides, widths, grid = table["sides"], table["widths"], table["fraction"]
    for name, axis in (("sides", sides), ("widths", widths)):
        if not (isinstance(axis, list) and axis and all(
                isinstance(v, int | float) and v > 0 for v in axis) and axis == sorted(axis)):
            raise ProfileError(f"{where}.{name}: must be an increasing list of numbers > 0")
    if not (isinstance(grid, list) and len(grid) == len(sides) and all(
            isinstance(row, list) and len(row) == len(widths)
            and all(isinstance(v, int | float) and v > 0 for v in row) for row in grid)):
        raise ProfileError(f"{where}.fraction: must be {len(sides)} rows of {len(widths)} "
                           "numbers > 0")


def _check_optional(device: str, d: dict[str, Any]) -> None:
    unknown = sorted(set(d) - set(PARAMS) - OPTIONAL)
    if unknown:
        raise ProfileError(f"{device}: unknown keys {', '.join(unknown)}; valid: "
                           f"{', '.join([*PARAMS, *sorted(OPTIONAL)])}")
    for key, top in (("step_overhead_s", 10.0), ("gemm_half_dim", 1e9), ("op_overhead_s", 1.0)):
        if key in d and not (isinstance(d[key], int | float) and 0 <= d[key] <= top):
            raise ProfileError(f"{device}.{key}: must be a number in [0, {top:g}], got "
                               f"{d[key]!r}")
    for key, (lo, hi) in (("host_speed", (0.01, 100.0)), ("loader_cores", (0.0, 1024.0))):
        if key in d and not (isinstance(d[key], int | float) and lo <= d[key] <= hi):
            raise ProfileError(f"{device}.{key}: must be a number in [{lo:g}, {hi:g}], got "
                               f"{d[key]!r}")
    if "tensor_efficiency" in d and not (isinstance(d["tensor_efficiency"], int | float)
                                         and 0 < d["tensor_efficiency"] <= 1):
        raise ProfileError(f"{device}.tensor_efficiency: must be a number in (0, 1], got "
                           f"{d['tensor_efficiency']!r}")
    if "hbm_bandwidth_gbyte_s" in d and not (
            isinstance(d["hbm_bandwidth_gbyte_s"], int | float) and d["hbm_bandwidth_gbyte_s"] > 0):
        raise ProfileError(f"{device}.hbm_bandwidth_gbyte_s: must be a number > 0")
    table = d.get("gemm_table")
    if table is not None:
        _check_table(device, table)
    peaks = d.get("peak_tflop_s", {})
    if not isinstance(peaks, dict) or any(
            k not in DTYPES or not isinstance(v, int | float) or v <= 0 for k, v in peaks.items()):
        raise ProfileError(f"{device}.peak_tflop_s: must map dtypes ({', '.join(DTYPES)}) to "
                           f"numbers > 0, got {peaks!r}")


def _check_entry(device: str, d: Any, known: set[str] | None) -> None:
    if known is not None and device not in known:
        raise ProfileError(f"{device}: unknown device; valid: {', '.join(sorted(known))}")
    if not isinstance(d, dict):
        raise ProfileError(f"{device}: must be a mapping of profile parameters")
    missing = [k for k in PARAMS if k not in d]
    if missing:
        raise ProfileError(f"{device}: missing {', '.join(missing)}")
    for key, (low, high) in RANGES.items():
        value = d[key]
        if not isinstance(value, int | float) or not low < value <= high:
            raise ProfileError(f"{device}.{key}: must be a number in ({low:g}, {high:g}], "
                               f"got {value!r}")
    _check_optional(device, d)


def _parse(device: str, d: dict[str, Any]) -> DeviceProfile:
    peaks = d.get("peak_tflop_s")
    bandwidth = d.get("hbm_bandwidth_gbyte_s")
    return DeviceProfile(
        device=device, **{k: float(d[k]) for k in PARAMS},
        provenance=dict(d.get("provenance", {})),
        peak_flop_s={k: float(v) * 1e12 for k, v in peaks.items()} if peaks else None,
        hbm_bandwidth_byte_s=float(bandwidth) * 1e9 if bandwidth else None,
        step_overhead_s=float(d.get("step_overhead_s", 0.0)),
        op_overhead_s=float(d.get("op_overhead_s", 0.0)),
        tensor_efficiency=(float(d["tensor_efficiency"]) if "tensor_efficiency" in d
                           else None),
        host_speed=float(d.get("host_speed", 1.0)),
        loader_cores=float(d.get("loader_cores", 0.0)),
        gemm_half_dim=float(d.get("gemm_half_dim", 0.0)),
        gemm_table=d.get("gemm_table"))


def load_profile_file(path: str | Path) -> dict[str, DeviceProfile]:
    """Profiles from a file like catalog/profiles.yaml or `dcsim calibrate`'s output. Raises
    ScenarioError if unreadable or not YAML, ProfileError if it is not a valid profile file."""
    from dcsim import catalog
    from dcsim.textfile import read_text
    from dcsim.yamlsrc import load_yaml

    source = str(path)
    data = load_yaml(read_text(source, "profile file"), source)
    if not isinstance(data, dict) or not data:
        raise ProfileError("a profile file maps device names to profile parameters")
    known = set(catalog.gpus())
    for name, d in data.items():
        _check_entry(str(name), d, known)
    return {str(name): _parse(str(name), d) for name, d in data.items()}


@cache
def profiles() -> dict[str, DeviceProfile]:
    """The profiles shipped in dcsim/catalog/profiles.yaml."""
    text = resources.files("dcsim.catalog").joinpath(PROFILE_FILE).read_text(encoding="utf-8")
    return {name: _parse(name, d) for name, d in (yaml.safe_load(text) or {}).items()}


# devices without a fitted profile that share a fitted one's chip (the catalog gives each
# its own peaks, memory bandwidth and size)
SIBLINGS = {"a100-sxm4-40gb": "a100-sxm4-80gb", "a100-pcie-80gb": "a100-sxm4-80gb",
            "a100-pcie-40gb": "a100-sxm4-80gb", "h100-pcie-80gb": "h100-sxm5-80gb",
            "h800-sxm5-80gb": "h100-sxm5-80gb",
            "v100-sxm2-32gb": "v100-sxm2-16gb", "v100-pcie-16gb": "v100-sxm2-16gb",
            "v100-pcie-32gb": "v100-sxm2-16gb", "p100-sxm2-16gb": "p100-pcie-16gb"}


def profile_for(device: str, first_order_efficiency: float) -> DeviceProfile:
    """The device's profile: its fitted one, else its sibling's (same chip), else a generic
    profile: large products at its first-order efficiency, the size fall-off, memory
    efficiency, launch and host costs at the middle of what the fitted GPUs show (said so
    in its provenance)."""
    if device in profiles():
        return profiles()[device]
    sibling = SIBLINGS.get(device)
    if sibling in profiles():
        from dataclasses import replace

        return replace(profiles()[sibling], device=device, provenance={
            "source": f"{sibling}'s fitted profile (same chip)"})
    return DeviceProfile(device, gemm_efficiency=first_order_efficiency, gemm_half_gflop=0.1,
                         memory_efficiency=0.8, kernel_overhead_s=5e-6, op_overhead_s=2e-5,
                         step_overhead_s=2e-3,
                         provenance={"source": "generic: no fitted profile for this device"})
