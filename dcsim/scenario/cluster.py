"""The `cluster:` section (server groups, their GPUs and NICs) and the `storage:` tiers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from dcsim import catalog
from dcsim.scenario.base import (
    MAX_GPUS_PER_SERVER,
    NonNegFloat,
    PosFloat,
    PosInt,
    ServerCount,
    Strict,
)

__all__ = ["Cluster", "ServerGroup", "NicGroup", "Storage", "StorageTier"]


class NicGroup(Strict):
    type: str
    count: Annotated[int, Field(gt=0, le=64)] = 1

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in catalog.nics():
            raise ValueError(f"unknown NIC type {v!r}; valid: {', '.join(catalog.nics())}")
        return v


class ServerGroup(Strict):
    """`count` servers, either of a catalog `type` or described inline."""

    name: str | None = None
    count: ServerCount
    type: str | None = None
    gpus_per_server: Annotated[int, Field(gt=0, le=MAX_GPUS_PER_SERVER)] | None = None
    gpu: str | None = None
    host_memory_gb: PosFloat | None = None
    nics: list[NicGroup] | None = None
    intra_node: Literal["nvswitch", "pcie"] | None = None

    @model_validator(mode="after")
    def _type_or_inline(self) -> ServerGroup:
        if self.type is not None:
            if self.type not in catalog.servers():
                valid = ", ".join(catalog.servers())
                raise ValueError(f"unknown server type {self.type!r}; valid: {valid}")
        elif self.gpus_per_server is None or self.gpu is None:
            raise ValueError("give a catalog server `type`, or `gpus_per_server` and `gpu` inline")
        if self.gpu is not None and self.gpu not in catalog.gpus():
            raise ValueError(f"unknown GPU type {self.gpu!r}; valid: {', '.join(catalog.gpus())}")
        return self


class Cluster(Strict):
    servers: Annotated[list[ServerGroup], Field(min_length=1)]


class StorageTier(Strict):
    """One storage tier: a catalog `device` (`dcsim catalog storage`) x `count`, any figure
    overridden (aggregate over the devices; dram and nvme per server)."""

    enabled: bool = True
    device: str | None = None  # None: the tier's default (catalog/storage.yaml)
    count: PosInt | None = None  # devices: per server (dram, nvme), in total (pfs, object)
    capacity_gb: PosFloat | None = None
    read_gbyte_s: PosFloat | None = None
    write_gbyte_s: PosFloat | None = None
    latency_s: NonNegFloat | None = None
    metadata_latency_s: NonNegFloat | None = None  # per file opened (pfs, object)
    # dram, nvme: the share of the capacity that caches datasets (dram default 0.5, nvme 1)
    cache_fraction: Annotated[float, Field(gt=0, le=1)] | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str | None) -> str | None:
        if v is not None and v not in catalog.storage_devices():
            raise ValueError(f"unknown storage device {v!r}; valid: "
                             f"{', '.join(catalog.storage_devices())}")
        return v


class Storage(Strict):
    """Storage tiers (dcsim/storage/): per-server host DRAM cache and local NVMe, a shared
    parallel file system and an object store. GPU HBM is the GPUs' own memory (capacity only)."""

    dram: StorageTier = StorageTier()
    nvme: StorageTier = StorageTier()
    pfs: StorageTier = StorageTier()
    object: StorageTier = StorageTier()
    loader_workers: PosInt = 8  # data-loader processes per GPU (concurrent file opens)
