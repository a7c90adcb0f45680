"""The `power:` section: the facility around the cluster (PUE), the grid it draws from (carbon
intensity and electricity price, flat or hourly series) and overrides of the catalog's power
figures. The power model itself is dcsim/energy/ (docs/energy.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from dcsim.scenario.base import NonNegFloat, Strict

__all__ = ["PowerSpec", "SeriesSpec", "GpuPowerSpec", "HostPowerSpec", "GRID_ZONES"]

# the hourly 2023 series shipped with dcsim (data/grid/, Electricity Maps via green-dcc)
GRID_ZONES = ("US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "DE-LU")
Watts = Annotated[float, Field(ge=0, le=1e6)]  # one device: a megawatt would be absurd
Pue = Annotated[float, Field(ge=1.0, le=3.0)]  # facility power / IT power


class SeriesSpec(Strict):
    """An hourly series in a CSV file: a time column (ISO 8601, UTC unless it says otherwise)
    and a value column whose header names its unit."""

    path: str
    column: str | None = None  # the value column (default: the one whose header has the unit)
    time_column: str | None = None  # default: the file's first column


class GpuPowerSpec(Strict):
    tdp_w: Watts | None = None
    idle_w: Watts | None = None
    # a power limit for every GPU of the type (nvidia-smi -pl): above idle, at most the TDP
    cap_w: Annotated[float, Field(gt=0, le=1e6)] | None = None


class HostPowerSpec(Strict):
    host_idle_w: Watts | None = None
    host_busy_w: Watts | None = None


class PowerSpec(Strict):
    # facility power / IT power: one value, or 24 values by hour of the day (UTC)
    pue: Pue | Annotated[list[Pue], Field(min_length=24, max_length=24)] = 1.0
    # the grid: a shipped zone (both hourly series), or flat values, or series files
    zone: Literal["US-CAL-CISO", "US-TEX-ERCO", "US-MIDA-PJM", "DE-LU"] | None = None
    carbon_g_per_kwh: Annotated[float, Field(ge=0, le=1e4)] | None = None
    carbon: SeriesSpec | None = None
    # which carbon intensity of a zone's series: direct (operational) or life-cycle
    carbon_basis: Literal["direct", "lca"] = "direct"
    # wholesale prices can be negative: kept as they are
    price_usd_per_mwh: Annotated[float, Field(ge=-1e5, le=1e5)] | None = None
    price: SeriesSpec | None = None
    # where the run's t = 0 falls in the series (UTC)
    start: str = "2023-01-01T00:00:00+00:00"
    # a run longer than a series: wrap around to its first hour, or stop with an error
    beyond_series: Literal["wrap", "error"] = "wrap"
    # shared storage systems' power (not modelled per device: est. by the user)
    storage_w: NonNegFloat = 0.0
    # per GPU type: replace the catalog's board power or idle power
    gpus: dict[str, GpuPowerSpec] = Field(default_factory=dict)
    # per server type: replace the catalog's host (non-GPU) power
    servers: dict[str, HostPowerSpec] = Field(default_factory=dict)
    # one power for every switch port in use, instead of the catalog's by line rate
    switch_port_w: Watts | None = None
    # the facility's power budget: a job starts only if facility power stays within it
    budget_kw: Annotated[float, Field(gt=0, le=1e9)] | None = None

    @field_validator("start")
    @classmethod
    def _iso_time(cls, v: str) -> str:
        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not an ISO 8601 time: {v!r} (e.g. 2023-07-01T00:00:00+00:00)"
                             ) from None
        return v

    @field_validator("gpus", "servers")
    @classmethod
    def _known_types(cls, v: dict, info: ValidationInfo) -> dict:
        from dcsim import catalog

        kind, known = (("GPU", catalog.gpus()) if info.field_name == "gpus"
                       else ("server", catalog.servers()))
        unknown = sorted(set(v) - set(known))
        if unknown:
            raise ValueError(f"unknown {kind} types {unknown}; see dcsim catalog {kind.lower()}s")
        return v

    @model_validator(mode="after")
    def _one_source_each(self) -> PowerSpec:
        sources = {"carbon": {"carbon_g_per_kwh": self.carbon_g_per_kwh, "carbon": self.carbon},
                   "price": {"price_usd_per_mwh": self.price_usd_per_mwh, "price": self.price}}
        for what, options in sources.items():
            given = [k for k, v in {**options, "zone": self.zone}.items() if v is not None]
            if len(given) > 1:
                raise ValueError(f"{what} from one source only, not {' and '.join(given)}")
        for name, host in self.servers.items():
            if (host.host_idle_w is not None and host.host_busy_w is not None
                    and host.host_idle_w > host.host_busy_w):
                raise ValueError(f"servers.{name}: host_idle_w ({host.host_idle_w:g}) above "
                                 f"host_busy_w ({host.host_busy_w:g})")
        for name, gpu in self.gpus.items():
            if gpu.tdp_w is not None and gpu.idle_w is not None and gpu.idle_w > gpu.tdp_w:
                raise ValueError(f"gpus.{name}: idle_w ({gpu.idle_w:g}) above tdp_w "
                                 f"({gpu.tdp_w:g})")
        return self
