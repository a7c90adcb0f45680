"""Hardware and model catalog: data files shipped inside the package, validated on load.

Every number in the YAML files carries its source in a comment. The loaders convert the
human units of the files (GB/s, TFLOP/s, Gb/s) to SI once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from dcsim.units import GB, GBIT, GIB, TERA

__all__ = [
    "DTYPES",
    "GpuSpec",
    "NicSpec",
    "ServerSpec",
    "CnnArch",
    "gpus",
    "nics",
    "servers",
    "model_presets",
    "cnn_archs",
    "StorageDevice",
    "storage_devices",
    "storage_defaults",
    "power_figures",
    "cost_figures",
]

DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")


@dataclass(frozen=True, slots=True)
class GpuSpec:
    name: str
    description: str
    peak_flop_s: dict[str, float]  # only the dtypes the device supports
    hbm_bandwidth_byte_s: float
    memory_bytes: float
    nvlink_byte_s: float  # bidirectional total per GPU
    first_order_efficiency: float
    sparse_tensor_cores: bool  # 2:4 structured sparsity runs at twice the dense rate

    def supports(self, dtype: str) -> bool:
        return dtype in self.peak_flop_s


@dataclass(frozen=True, slots=True)
class NicSpec:
    name: str
    description: str
    line_rate_bit_s: float
    effective_byte_s: float
    latency_s: float


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    description: str
    gpu: str
    gpus_per_server: int
    host_memory_bytes: float
    nics: tuple[tuple[str, int], ...]  # (nic type, count)
    intra_node: str  # "nvswitch" | "pcie"
    pcie_byte_s: float
    nvls: bool = False  # NVSwitch with NVLink SHARP (in-switch reduction; 3rd-gen NVSwitch)
    pcie_switches: int = 1  # PCIe switches the GPUs and NICs hang off (fabric/internals.py)


@dataclass(frozen=True, slots=True)
class CnnArch:
    name: str
    forward_gmacs: float
    params_m: float
    reference_image_size: int
    layers: int  # convolution and fully connected layers (matrix-product kernels)


def _load(filename: str) -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"catalog file {filename} must hold a mapping")
    return data


@cache
def power_figures() -> dict[str, Any]:
    """power.yaml as read: GPU, host and switch-port power and the activity fractions (the
    power model that uses them is dcsim/energy/model.py)."""
    return _load("power.yaml")


@cache
def cost_figures() -> dict[str, Any]:
    """cost.yaml as read: server, GPU, switch-port, storage and facility prices, lifetimes and
    maintenance (the cost model that uses them is dcsim/energy/cost.py)."""
    return _load("cost.yaml")


@cache
def gpus() -> dict[str, GpuSpec]:
    out = {}
    for name, d in _load("gpus.yaml").items():
        peaks = {k: float(v) * TERA for k, v in d["peak_tflop_s"].items() if v is not None}
        out[name] = GpuSpec(
            name=name,
            description=d["description"],
            peak_flop_s=peaks,
            hbm_bandwidth_byte_s=float(d["hbm_bandwidth_gbyte_s"]) * GB,
            memory_bytes=float(d["memory_gib"]) * GIB,
            nvlink_byte_s=float(d["nvlink_gbyte_s"]) * GB,
            first_order_efficiency=float(d["first_order_efficiency"]),
            sparse_tensor_cores=bool(d["sparse_tensor_cores"]),
        )
    return out


@cache
def nics() -> dict[str, NicSpec]:
    return {
        name: NicSpec(
            name=name,
            description=d["description"],
            line_rate_bit_s=float(d["line_rate_gbit_s"]) * GBIT,
            effective_byte_s=float(d["effective_gbyte_s"]) * GB,
            latency_s=float(d["latency_s"]),
        )
        for name, d in _load("nics.yaml").items()
    }


@cache
def servers() -> dict[str, ServerSpec]:
    return {
        name: ServerSpec(
            name=name,
            description=d["description"],
            gpu=d["gpu"],
            gpus_per_server=int(d["gpus_per_server"]),
            host_memory_bytes=float(d["host_memory_gb"]) * GB,
            nics=tuple((n["type"], int(n["count"])) for n in d["nics"]),
            intra_node=d["intra_node"],
            pcie_byte_s=float(d.get("pcie_gbyte_s", 25.0)) * GB,
            nvls=bool(d.get("nvls", False)),
            pcie_switches=int(d.get("pcie_switches", 1)),
        )
        for name, d in _load("servers.yaml").items()
    }


@cache
def model_presets() -> dict[str, dict[str, Any]]:
    return _load("models.yaml")


@cache
def cnn_archs() -> dict[str, CnnArch]:
    return {name: CnnArch(name=name, **d) for name, d in _load("cnn_archs.yaml").items()}


@dataclass(frozen=True, slots=True)
class StorageDevice:
    """One storage device (catalog/storage.yaml); SI units. capacity_bytes NaN: from the server
    (host DRAM)."""

    name: str
    tier: str  # dram | nvme | pfs | object
    description: str
    capacity_bytes: float
    read_byte_s: float
    write_byte_s: float
    latency_s: float
    metadata_latency_s: float = 0.0


@cache
def storage_devices() -> dict[str, StorageDevice]:
    out = {}
    for name, d in _load("storage.yaml")["devices"].items():
        cap = d.get("capacity_gb")
        out[name] = StorageDevice(
            name=name, tier=d["tier"], description=d["description"],
            capacity_bytes=float(cap) * GB if cap is not None else float("nan"),
            read_byte_s=float(d["read_gbyte_s"]) * GB,
            write_byte_s=float(d["write_gbyte_s"]) * GB, latency_s=float(d["latency_s"]),
            metadata_latency_s=float(d.get("metadata_latency_s", 0)))
    return out


@cache
def storage_defaults() -> dict[str, Any]:
    """`defaults` (per tier) and `local_nvme` (per server type) of catalog/storage.yaml."""
    data = _load("storage.yaml")
    return {"defaults": data["defaults"], "local_nvme": data["local_nvme"]}
