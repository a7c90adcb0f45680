"""Total cost of ownership: what owning and running the cluster costs per year, per run, per
GPU-hour and per job (docs/energy.md#total-cost-of-ownership).

Capital (prices from dcsim/catalog/cost.yaml, with the scenario's `cost:` overrides):

    servers   each server's price (a system price, or its GPUs + host_usd)
    network   each switch port in use x its price by line rate (the ports the power model counts)
    storage   each shared tier's usable capacity (TB) x its price per TB (with a `storage:` section)
    facility  facility_usd_per_w x the IT capacity (servers at full power, switches, storage)

Per year: capital / lifetime for each part, maintenance = maintenance_per_year x the hardware
capital (servers, network, storage), and energy = the run's electricity cost scaled to a year
(cost / sim_end_s x one year: the run is taken as typical of the year). TCO per year is their
sum. A run costs its share of a year's capital and maintenance (sim_end_s / one year) plus its
electricity. A job costs its GPU-hours at the cluster's capital-and-maintenance rate per GPU-hour
of capacity, plus its own electricity; what no job used (idle GPUs, the idle cluster's power)
is `cost_idle_usd`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dcsim import catalog
from dcsim.energy.model import by_line_rate
from dcsim.scenario.cost import CostSpec

__all__ = ["CostModel", "Capex", "tco_results", "YEAR_S"]

YEAR_S = 365.0 * 86400.0
PARTS = ("servers", "network", "storage", "facility")


@dataclass(frozen=True)
class Capex:
    """The cluster's capital by part (USD)."""

    servers: float
    network: float
    storage: float
    facility: float

    @property
    def hardware(self) -> float:
        return self.servers + self.network + self.storage

    @property
    def total(self) -> float:
        return self.hardware + self.facility


class CostModel:
    """The catalog's prices, lifetimes and maintenance, with a `cost:` section's overrides."""

    def __init__(self, spec: CostSpec | None = None) -> None:
        spec = spec if spec is not None else CostSpec()
        data = catalog.cost_figures()
        self._servers = {k: float(v["usd"]) for k, v in data["servers"].items()}
        self._servers.update(spec.servers)
        self._gpus = {k: float(v) for k, v in data["gpus"].items()}
        self._gpus.update(spec.gpus)
        self.host_usd = spec.host_usd if spec.host_usd is not None else float(data["host_usd"])
        self._port_usd = spec.port_usd
        self._ports = [(float(p["up_to_gbit_s"]) * 1e9, float(p["usd"]))
                       for p in data["port_usd"]]
        self._per_tb = {k: float(v) for k, v in data["storage_usd_per_tb"].items()}
        self._per_tb.update(spec.storage_usd_per_tb)
        self.facility_usd_per_w = (spec.facility_usd_per_w if spec.facility_usd_per_w
                                   is not None else float(data["facility_usd_per_w"]))
        given = spec.lifetime_years.model_dump()
        self.lifetime_years = {part: float(given[part] if given[part] is not None
                                           else data["lifetime_years"][part]) for part in PARTS}
        self.maintenance_per_year = (spec.maintenance_per_year if spec.maintenance_per_year
                                     is not None else float(data["maintenance_per_year"]))

    def server_usd(self, server_type: str, gpu: str, num_gpus: int) -> float:
        """A server's price: its type's system price, else its GPUs and a host."""
        if server_type in self._servers:
            return self._servers[server_type]
        try:
            board = self._gpus[gpu]
        except KeyError:
            raise KeyError(f"no price for GPU type {gpu!r} (dcsim/catalog/cost.yaml; set "
                           f"cost.gpus.{gpu})") from None
        return num_gpus * board + self.host_usd

    def port_usd(self, line_rate_bit_s: float) -> float:
        if self._port_usd is not None:
            return self._port_usd
        return by_line_rate(self._ports, line_rate_bit_s)

    def capex(self, servers: Sequence, server_types: Sequence[str],
              ports: Sequence[tuple[float, int]], storage_tb: Mapping[str, float],
              it_capacity_w: float) -> Capex:
        return Capex(
            servers=sum(self.server_usd(t, s.gpu.name, s.num_gpus)
                        for s, t in zip(servers, server_types, strict=True)),
            network=sum(n * self.port_usd(bit_s) for bit_s, n in ports),
            storage=sum(tb * self._per_tb[name] for name, tb in storage_tb.items()),
            facility=self.facility_usd_per_w * it_capacity_w)

    def fixed_per_year(self, capex: Capex) -> tuple[float, float]:
        """(capital amortised per year, maintenance per year), USD."""
        capital = sum(getattr(capex, part) / self.lifetime_years[part] for part in PARTS)
        return capital, self.maintenance_per_year * capex.hardware


def tco_results(model: CostModel, capex: Capex, total_gpus: int, end_s: float,
                energy_cost_usd: float, job_gpu_hours: np.ndarray,
                job_energy_cost_usd: np.ndarray, completed: np.ndarray
                ) -> tuple[dict, np.ndarray]:
    """(the summary's cost keys, each job's `cost_usd`). `job_gpu_hours`: GPUs x run_s / 3600
    of each job; `completed`: which jobs completed."""
    gpu_hours_allocated = float(job_gpu_hours.sum())
    capital, maintenance = model.fixed_per_year(capex)
    fixed = capital + maintenance
    energy_year = energy_cost_usd / end_s * YEAR_S if end_s > 0 else 0.0
    run_fixed = fixed * end_s / YEAR_S
    run_cost = run_fixed + energy_cost_usd
    gpu_hours_capacity = total_gpus * end_s / 3600.0
    rate = fixed / (total_gpus * YEAR_S / 3600.0) if total_gpus else math.nan  # USD/GPU-h
    jobs = job_gpu_hours * rate + np.nan_to_num(job_energy_cost_usd)
    summary = {
        "capex_servers_usd": capex.servers,
        "capex_network_usd": capex.network,
        "capex_storage_usd": capex.storage,
        "capex_facility_usd": capex.facility,
        "capex_usd": capex.total,
        "tco_capital_usd_per_year": capital,
        "tco_maintenance_usd_per_year": maintenance,
        "tco_energy_usd_per_year": energy_year,
        "tco_usd_per_year": capital + maintenance + energy_year,
        "cost_run_usd": run_cost,
        "usd_per_gpu_hour": (run_cost / gpu_hours_allocated if gpu_hours_allocated > 0
                             else math.nan),
        "usd_per_gpu_hour_provisioned": (run_cost / gpu_hours_capacity
                                         if gpu_hours_capacity > 0 else math.nan),
        "cost_jobs_usd": float(jobs.sum()),
        "cost_idle_usd": run_cost - float(jobs.sum()),
        "cost_per_job_mean_usd": (float(jobs[completed].mean()) if completed.any()
                                  else math.nan),
    }
    return summary, jobs
