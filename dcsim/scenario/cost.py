"""The `cost:` section: total cost of ownership (capital amortised over lifetimes, maintenance,
energy) and overrides of the catalog's prices (dcsim/catalog/cost.yaml). Given (even `{}`),
the run reports its TCO; the model is dcsim/energy/cost.py (docs/energy.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from dcsim.scenario.base import Strict

__all__ = ["CostSpec", "Lifetimes"]

Usd = Annotated[float, Field(ge=0, le=1e12)]
Years = Annotated[float, Field(gt=0, le=100)]


class Lifetimes(Strict):
    """Years over which each part's capital is amortised (None: the catalog's)."""

    servers: Years | None = None
    network: Years | None = None
    storage: Years | None = None
    facility: Years | None = None


class CostSpec(Strict):
    # price of a whole server, by catalog server type (default: the catalog's, or its GPUs +
    # host_usd for a type without a system price)
    servers: dict[str, Usd] = Field(default_factory=dict)
    # price of one GPU board, by catalog GPU type (servers priced from their parts)
    gpus: dict[str, Usd] = Field(default_factory=dict)
    host_usd: Usd | None = None  # the non-GPU part of a server priced from its parts
    port_usd: Usd | None = None  # one price for every switch port in use (default: by speed)
    storage_usd_per_tb: dict[str, Usd] = Field(default_factory=dict)  # pfs, object
    facility_usd_per_w: Annotated[float, Field(ge=0, le=1e4)] | None = None  # 0: no building
    lifetime_years: Lifetimes = Lifetimes()
    maintenance_per_year: Annotated[float, Field(ge=0, le=10)] | None = None  # x hardware capex

    @field_validator("servers", "gpus")
    @classmethod
    def _known_types(cls, v: dict, info) -> dict:
        from dcsim import catalog

        known = catalog.servers() if info.field_name == "servers" else catalog.gpus()
        unknown = sorted(set(v) - set(known))
        if unknown:
            kind = "server" if info.field_name == "servers" else "GPU"
            raise ValueError(f"unknown {kind} types {unknown}; see dcsim catalog {kind.lower()}s")
        return v

    @field_validator("storage_usd_per_tb")
    @classmethod
    def _shared_tiers(cls, v: dict) -> dict:
        unknown = sorted(set(v) - {"pfs", "object"})
        if unknown:
            raise ValueError(f"unknown tiers {unknown}: priced per TB are pfs and object (local "
                             "DRAM and NVMe are part of the server's price)")
        return v
