"""Collecting a finished run: the recorder's typed records become `Results` (the tables of
docs/metrics.md), with the summary and run.json. Reads the simulation's state; changes none
of it but the recorder's job rows."""

from __future__ import annotations

import math
from collections import Counter
from typing import Protocol

import numpy as np
import pandas as pd

from dcsim._version import __version__
from dcsim.energy.account import power_results
from dcsim.energy.cost import YEAR_S, Capex, tco_results
from dcsim.engine.ledger import Ledger
from dcsim.engine.record import Records
from dcsim.errors import ScenarioError, SimulationError
from dcsim.faults.model import FaultModel
from dcsim.jobs import JobState
from dcsim.metrics import (
    FAILURE_COLUMNS,
    Recorder,
    add_fairness,
    fault_metrics,
    group_breakdown,
    summarize,
)
from dcsim.results import Results
from dcsim.scenario import Scenario
from dcsim.world import World


class Finished(Protocol):
    """What collecting reads of a finished run (dcsim/engine/simulation.py's Simulation)."""

    scenario: Scenario
    world: World
    jobs: list[JobState]
    recorder: Recorder
    records: Records
    ledger: Ledger
    faults: FaultModel | None
    cut_by: str

    def gpu_of(self, job: JobState) -> str: ...


__all__ = ["collect", "storage_results", "power_frames"]


def collect(sim: Finished, events: int, end_s: float, wall_s: float) -> Results:
    """The run's Results: the recorder's tables, the summary (docs/metrics.md) and run.json."""
    sim.recorder.jobs = [j.record(sim.gpu_of(j) if j.history else "") for j in sim.jobs]
    frames = sim.recorder.frames()
    add_fairness(frames["jobs"], frames["gpu_timeline"], sim.world.cluster.total_gpus)
    rows = {(p.source, p.line): p for p in sim.world.workload.skipped}  # one reason per row
    reasons = Counter(p.message if p.column is None else f"{p.column}: {p.message}"
                      for p in rows.values())
    extra = {
        "jobs_read": sim.world.workload.rows_read,
        "jobs_accepted": len(sim.jobs),
        "rows_skipped": len(rows),
        "skip_reasons": dict(sorted(reasons.items())),
        "sim_end_s": end_s,
        # what cut the run short with work left: "horizon_s", "engine.max_events" or ""
        "stopped_by": sim.cut_by,
        "events_processed": events,
        "wall_s": wall_s,
        "events_per_s": events / wall_s if wall_s > 0 else float("nan"),
    }
    extra.update(storage_results(sim, frames["jobs"]))
    ran = frames["jobs"]["step_source"]
    extra["step_sources"] = {k: int((ran == k).sum())
                             for k in ("measured", "interpolated", "model")}
    if sim.world.table_counts:  # the throughput tables' entries, all tables together
        extra["throughput_entries"] = {
            k: sum(t[k] for t in sim.world.table_counts) for k in ("read", "accepted")}
        extra["throughput_entries"]["skipped"] = (extra["throughput_entries"]["read"]
                                                  - extra["throughput_entries"]["accepted"])
    frames["failures"] = pd.DataFrame(sim.faults.events if sim.faults else [],
                                      columns=FAILURE_COLUMNS)
    extra.update(fault_metrics(frames["jobs"], frames["failures"], frames["events"], end_s,
                               sim.faults.configured_mtbf_hours() if sim.faults else {}))
    frames["power"], power_summary = power_frames(sim, frames, end_s)
    extra.update(power_summary)
    if sim.world.cost is not None:
        extra.update(cost_frames(sim, frames["jobs"], power_summary, end_s))
    frames["groups"] = group_breakdown(frames["jobs"])
    serving = getattr(sim, "serving", None)
    if serving is not None:
        serving_frames, serving_summary = serving.frames(frames["jobs"])
        if sim.world.cost is not None:
            serving_cost(serving_frames["services"], serving_summary, gpu_hour_rates(sim.world))
        frames.update(serving_frames)
        extra.update(serving_summary)
    summary = summarize(frames["jobs"], frames["gpu_timeline"], sim.world.cluster.total_gpus,
                        end_s, extra, frames["links"])
    run = {
        "dcsim_version": __version__,
        "scenario": sim.scenario.model_dump(mode="json"),
        "seed": sim.scenario.seed,
        "wall_s": wall_s,
        "skipped_rows": [str(p) for p in sim.world.workload.skipped],
        "throughput_tables": sim.world.table_counts,
    }
    return Results(**frames, run=run, _summary=summary)


def power_frames(sim: Finished, frames: dict[str, pd.DataFrame], end_s: float
                 ) -> tuple[pd.DataFrame, dict]:
    """The power table, the jobs' energy columns (added in place) and the summary's power
    keys (docs/energy.md)."""
    world = sim.world
    servers = world.cluster.servers
    downtime = pd.DataFrame(sim.records.all_outages(), columns=["server_id", "start_s", "end_s"])
    for rate in (world.grid.carbon, world.grid.price):
        try:
            if rate is not None:
                rate.check_covers(end_s)
        except ScenarioError as exc:
            raise SimulationError(str(exc.problems[0])) from None
    spans = sim.records.power_spans(world.power)
    serving = getattr(sim, "serving", None)
    if serving is not None:  # the services' GPUs (job ids < 0)
        spans += serving.power_spans(world.power)
    table, summary, columns = power_results(
        spans, frames["segments"], frames["jobs"], servers,
        world.server_types(), downtime, world.network_power_w(), world.power, world.grid,
        sim.scenario.power.storage_w, end_s)
    for name, values in columns.items():
        frames["jobs"][name] = values
    # per unit of work: each sample (a sequence for transformers) and each token
    samples = np.array([j.iterations_done * j.spec.global_batch for j in sim.jobs], dtype=float)
    seq = np.array([float(getattr(j.spec.model, "seq_len", math.nan)) for j in sim.jobs])
    joules = columns["energy_kwh"] * 3.6e6
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sample = np.where(samples > 0, joules / samples, math.nan)
    frames["jobs"]["energy_j_per_sample"] = per_sample
    frames["jobs"]["energy_j_per_token"] = per_sample / seq
    # what the jobs drew (their held GPUs and their hosts' busy increments), the rest being
    # the idle cluster's, the network's and storage's
    summary["energy_jobs_kwh"] = float(np.nansum(columns["energy_kwh"]))
    summary["carbon_jobs_kg"] = (float(np.nansum(columns["carbon_kg"]))
                                 if "carbon_kg" in columns else math.nan)
    return table, summary


def cost_frames(sim: Finished, jobs: pd.DataFrame, power_summary: dict, end_s: float) -> dict:
    """The jobs' `cost_usd` column (added in place) and the summary's cost keys
    (docs/energy.md#total-cost-of-ownership)."""
    world = sim.world
    assert world.cost is not None
    gpu_hours = jobs["num_gpus"].to_numpy(float) * jobs["run_s"].to_numpy(float) / 3600.0
    summary, cost = tco_results(
        world.cost, world.capex(), world.cluster.total_gpus, end_s,
        power_summary["energy_cost_usd"], gpu_hours, jobs["energy_cost_usd"].to_numpy(float),
        (jobs["status"] == "completed").to_numpy())
    jobs["cost_usd"] = cost
    return summary


def gpu_hour_rates(world: World) -> dict[str, float]:
    """Capital and maintenance per GPU-hour, by GPU type (USD): the servers with that GPU
    type's (their price over the servers' lifetime, plus maintenance) over their GPUs, plus
    an equal share per GPU of the network, storage and building."""
    model = world.cost
    assert model is not None
    capex = world.capex()
    shared, shared_maint = model.fixed_per_year(Capex(0.0, capex.network, capex.storage,
                                                      capex.facility))
    total = world.cluster.total_gpus
    server_usd: dict[str, float] = {}
    gpus: dict[str, int] = {}
    for s, kind in zip(world.cluster.servers, world.server_types(), strict=True):
        g = s.gpu.name
        server_usd[g] = server_usd.get(g, 0.0) + model.server_usd(kind, g, s.num_gpus)
        gpus[g] = gpus.get(g, 0) + s.num_gpus
    hours = YEAR_S / 3600.0
    out = {}
    for g, usd in server_usd.items():
        own, maint = model.fixed_per_year(Capex(usd, 0.0, 0.0, 0.0))
        out[g] = ((own + maint) / gpus[g] + (shared + shared_maint) / total) / hours
    return out


def serving_cost(services: pd.DataFrame, serving_summary: dict, rates: dict[str, float]
                 ) -> None:
    """Each service's `cost_usd` (its GPU-hours at its GPU type's capital and maintenance per
    GPU-hour, `gpu_hour_rates`; its GPUs' energy is not counted apart: serving power is not
    modelled) and `usd_per_m_output_tokens`, in services.csv and the summary's
    service_results (in place)."""
    services["cost_usd"] = services["gpu_hours"] * services["gpu_type"].map(rates)
    tokens = services["output_tokens"].astype(float)
    services["usd_per_m_output_tokens"] = (services["cost_usd"] / (tokens / 1e6)).where(
        tokens > 0)
    for row in services.to_dict("records"):
        entry = serving_summary["service_results"][str(row["service"])]
        entry["cost_usd"] = row["cost_usd"]
        entry["usd_per_m_output_tokens"] = row["usd_per_m_output_tokens"]


def storage_results(sim: Finished, jobs: pd.DataFrame) -> dict:
    """Storage columns of the jobs table (added in place) and summary keys
    (docs/metrics.md#storage)."""
    tiers = ("dram", "nvme", "pfs", "object")
    ids = jobs["job_id"].to_numpy()
    io = [sim.ledger.totals(int(i)) for i in ids]
    jobs["data_stall_s"] = [d.get("data_stall_s", 0.0) for d in io]
    jobs["checkpoint_s"] = [d.get("checkpoint_s", 0.0) for d in io]
    jobs["checkpoints"] = [int(d.get("checkpoints", 0)) for d in io]
    jobs["gb_read"] = [sum(d.get(f"read_{t}", 0.0) for t in tiers) / 1e9 for d in io]
    jobs["gb_written"] = [sum(d.get(f"write_{t}", 0.0) for t in tiers) / 1e9 for d in io]
    est = {j.job_id: j.estimate for j in sim.jobs}
    jobs["step_checkpoint_s"] = [est[int(i)].checkpoint_s if est.get(int(i)) else math.nan
                                 for i in ids]
    run_s = float(jobs["run_s"].sum()) if len(jobs) else 0.0
    ckpt_s = float(jobs["checkpoint_s"].sum()) if len(jobs) else 0.0
    return {
        "data_stall_s_total": float(jobs["data_stall_s"].sum()) if len(jobs) else 0.0,
        "checkpoint_overhead_s_total": ckpt_s,
        "checkpoint_overhead_fraction": ckpt_s / run_s if run_s > 0 else 0.0,
        "checkpoints_total": int(jobs["checkpoints"].sum()) if len(jobs) else 0,
        "storage_bytes_read": {t: sum(d.get(f"read_{t}", 0.0) for d in io) for t in tiers},
        "storage_bytes_written": {t: sum(d.get(f"write_{t}", 0.0) for d in io)
                                  for t in tiers},
    }
