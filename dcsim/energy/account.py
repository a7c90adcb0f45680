"""A finished run's power, energy, carbon and cost (docs/energy.md), from what it recorded:
each job's power spans (its GPUs' running and waiting watts over each stretch of constant
speed), the per-server segments (busy GPUs per server), the servers that went down and came
back, and the constant parts (switches, storage).

Cluster IT power at time t = the GPUs (idle power of every GPU in service, plus each held
GPU's power above idle) + the hosts (idle power of every server in service, plus the busy
increment of each busy GPU) + the switches + storage; facility power = IT x PUE(t). A job's
energy is its held GPUs' whole power plus its hosts' busy increments (the hosts' idle power
and the unheld GPUs are the cluster's, not a job's); its carbon and cost integrate its power
against the hourly carbon intensity and price times PUE. Nothing here adds events to the run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from dcsim.energy.grid import HOUR, HourlyRate, read_series
from dcsim.energy.model import PowerModel
from dcsim.scenario.power import PowerSpec

__all__ = ["PowerSpan", "Grid", "build_grid", "power_results", "POWER_COLUMNS"]

J_PER_KWH = 3.6e6
MAX_HOUR_ROWS = 1_000_000  # hourly-PUE rows in the power table (114 years of hours)
POWER_COLUMNS = ["time_s", "gpu_w", "host_w", "network_w", "storage_w", "it_w", "facility_w"]


@dataclass(frozen=True, slots=True)
class PowerSpan:
    """A job's GPUs over [start_s, end_s): waiting (restore) until hold_end_s, then running."""

    job_id: int
    start_s: float
    hold_end_s: float
    end_s: float
    num_gpus: int
    idle_w: float  # per GPU
    waiting_w: float  # per GPU
    running_w: float  # per GPU


@dataclass(frozen=True)
class Grid:
    """PUE, carbon intensity (g/kWh) and price (USD/MWh) as hourly rates of run time; the
    carbon and price rates are multiplied by PUE (they apply to facility energy)."""

    pue: HourlyRate
    carbon: HourlyRate | None  # g/kWh x PUE
    price: HourlyRate | None  # USD/MWh x PUE
    sources: dict[str, str]


def _pue_rate(spec: PowerSpec, start: datetime) -> HourlyRate:
    if isinstance(spec.pue, float | int):
        return HourlyRate.flat(float(spec.pue))
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    return HourlyRate(spec.pue, (start - midnight).total_seconds(), wrap=True)


def _times_pue(rate: HourlyRate, pue: HourlyRate, first: datetime | None) -> HourlyRate:
    """`rate` x PUE, on the rate's hours (PUE by hour of day, UTC)."""
    if pue.n == 1:
        return HourlyRate(rate.values * pue.values[0], rate.offset_s, rate.wrap, rate.source)
    if first is None:  # a flat rate: by hour of day
        return HourlyRate(pue.values * rate.values[0], pue.offset_s, True, rate.source)
    # a series that wraps repeats every n hours, PUE every 24: the product every lcm(n, 24)
    period = math.lcm(rate.n, 24) if rate.wrap else rate.n
    values = np.tile(rate.values, period // rate.n)
    hours = (first.hour + np.arange(period)) % 24
    return HourlyRate(values * np.asarray(pue.values)[hours], rate.offset_s, rate.wrap,
                      rate.source)


def build_grid(spec: PowerSpec, resolve) -> Grid:
    """The scenario's grid rates; `resolve(path)` locates a series file (relative paths: the
    scenario's folder; a zone: the shipped data/grid files)."""
    start = datetime.fromisoformat(spec.start)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    wrap = spec.beyond_series == "wrap"
    pue = _pue_rate(spec, start)
    sources: dict[str, str] = {}
    rates: dict[str, HourlyRate | None] = {}
    for kind, flat, series in (("carbon", spec.carbon_g_per_kwh, spec.carbon),
                               ("price", spec.price_usd_per_mwh, spec.price)):
        if flat is not None:
            rates[kind] = _times_pue(HourlyRate.flat(flat), pue, None)
            sources[kind] = "flat"
            continue
        if series is not None:
            path, column, tcol = resolve(series.path), series.column, series.time_column
            sources[kind] = series.path
        elif spec.zone is not None:
            path, column, tcol = resolve(f"zone:{spec.zone}:{kind}"), None, None
            sources[kind] = f"zone {spec.zone}" + (f" ({spec.carbon_basis})"
                                                   if kind == "carbon" else "")
        else:
            rates[kind] = None
            continue
        s = read_series(path, kind, column, tcol,
                        prefer=spec.carbon_basis if kind == "carbon" else None)
        rates[kind] = _times_pue(HourlyRate.from_series(s, start, wrap), pue, s.first)
    return Grid(pue, rates["carbon"], rates["price"], sources)


def _steps(times: np.ndarray, deltas: np.ndarray, base: float, end_s: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """A piecewise-constant level from `base` plus deltas at times (summed per instant): the
    change times (from 0) and the level from each on, up to end_s."""
    keep = times <= end_s
    times, deltas = times[keep], deltas[keep]
    order = np.argsort(times, kind="stable")
    t, d = times[order], deltas[order]
    uniq, first = np.unique(t, return_index=True)
    sums = np.add.reduceat(d, first) if len(d) else np.zeros(0)
    level = base + np.cumsum(sums)
    if not len(uniq) or uniq[0] > 0:
        uniq = np.concatenate([[0.0], uniq])
        level = np.concatenate([[base], level])
    return uniq, level


def _on(times: np.ndarray, t: np.ndarray, level: np.ndarray) -> np.ndarray:
    """The level of a step function (change times t, levels) at each of `times`."""
    idx = np.searchsorted(t, times, side="right") - 1
    return level[np.clip(idx, 0, len(level) - 1)]


def power_results(spans: Sequence[PowerSpan], segments: pd.DataFrame, jobs: pd.DataFrame,
                  servers: Sequence, server_types: Sequence[str], downtime: pd.DataFrame,
                  network_w: float, model: PowerModel, grid: Grid, storage_w: float,
                  end_s: float) -> tuple[pd.DataFrame, dict, dict[str, np.ndarray]]:
    """(the power table, the summary's power keys, per-job columns by job id order).

    `servers`: the cluster's Server records; `server_types`: each server's catalog type;
    `downtime`: one row per server outage (server_id, start_s, end_s)."""
    gpu_idle = np.array([s.num_gpus * model.gpu(s.gpu.name).idle_w for s in servers])
    hosts = [model.host(t) for t in server_types]
    host_idle = np.array([h.idle_w for h in hosts])
    host_step = np.array([(h.busy_w - h.idle_w) / max(1, s.num_gpus)
                          for h, s in zip(hosts, servers, strict=True)])
    # ---- the level changes: outages (a server down draws nothing), spans, segments
    d_t = downtime["start_s"].to_numpy(float) if len(downtime) else np.zeros(0)
    u_t = downtime["end_s"].to_numpy(float) if len(downtime) else np.zeros(0)
    d_sid = downtime["server_id"].to_numpy(int) if len(downtime) else np.zeros(0, int)
    sp = np.array([(s.start_s, s.hold_end_s, s.end_s, s.num_gpus, s.idle_w, s.waiting_w,
                    s.running_w, s.job_id) for s in spans], dtype=float).reshape(-1, 8)
    s0, s1, s2, n, idle, wait, run, sjob = sp.T
    wait_up, run_up = n * (wait - idle), n * (run - idle)  # above idle, all the span's GPUs
    gpu_t = np.concatenate([d_t, u_t, s0, s1, s2])
    gpu_d = np.concatenate([-gpu_idle[d_sid], gpu_idle[d_sid], wait_up, run_up - wait_up,
                            -run_up])
    seg_start = segments["start_s"].to_numpy(float)
    seg_end = segments["end_s"].to_numpy(float)
    seg_sid = segments["server_id"].to_numpy(int)
    seg_up = segments["num_gpus"].to_numpy(float) * host_step[seg_sid]
    host_t = np.concatenate([d_t, u_t, seg_start, seg_end])
    host_d = np.concatenate([-host_idle[d_sid], host_idle[d_sid], seg_up, -seg_up])
    hours = np.zeros(0)
    first = -grid.pue.offset_s % HOUR
    if grid.pue.n > 1 and (end_s - first) / HOUR < MAX_HOUR_ROWS:
        # facility power changes with PUE on the hour: a row each (the integrals below are
        # exact without them; past MAX_HOUR_ROWS the table gives each row's start PUE)
        hours = np.arange(first, end_s, HOUR) if end_s > first else hours
    times = np.unique(np.concatenate([[0.0], gpu_t, host_t, hours]))
    times = times[times <= end_s]
    gt, gl = _steps(gpu_t, gpu_d, float(gpu_idle.sum()), end_s)
    ht, hl = _steps(host_t, host_d, float(host_idle.sum()), end_s)
    gpu_w, host_w = _on(times, gt, gl), _on(times, ht, hl)
    it_w = gpu_w + host_w + network_w + storage_w
    pue_at = grid.pue.values[(((times + grid.pue.offset_s) // HOUR).astype(np.int64))
                             % grid.pue.n] if grid.pue.n > 1 else np.full(len(times),
                                                                          grid.pue.values[0])
    fac_w = it_w * pue_at
    changed = np.ones(len(times), dtype=bool)  # a row only where a level changes
    changed[1:] = ((np.diff(gpu_w) != 0) | (np.diff(host_w) != 0) | (np.diff(fac_w) != 0))
    table = pd.DataFrame({"time_s": times[changed], "gpu_w": gpu_w[changed],
                          "host_w": host_w[changed], "network_w": network_w,
                          "storage_w": storage_w, "it_w": it_w[changed],
                          "facility_w": fac_w[changed]}, columns=POWER_COLUMNS)
    # ---- energy: the table is piecewise constant; integrate it and its products with rates
    edges = np.concatenate([times, [end_s]])
    dur = np.diff(edges)
    it_j = float((it_w * dur).sum())
    fac_j = _integral(it_w, edges, grid.pue)
    summary = {
        "energy_it_kwh": it_j / J_PER_KWH,
        "energy_facility_kwh": fac_j / J_PER_KWH,
        "energy_gpu_kwh": float((gpu_w * dur).sum()) / J_PER_KWH,
        "energy_host_kwh": float((host_w * dur).sum()) / J_PER_KWH,
        "energy_network_kwh": network_w * end_s / J_PER_KWH,
        "energy_storage_kwh": storage_w * end_s / J_PER_KWH,
        "power_it_mean_kw": it_j / end_s / 1e3 if end_s > 0 else float("nan"),
        "power_it_peak_kw": float(it_w.max()) / 1e3 if len(it_w) else 0.0,
        "power_facility_peak_kw": float(table["facility_w"].max()) / 1e3 if len(it_w) else 0.0,
        "pue_mean": fac_j / it_j if it_j > 0 else float(grid.pue.values.mean()),
        "carbon_kg": (_integral(it_w, edges, grid.carbon) / J_PER_KWH / 1e3
                      if grid.carbon is not None else math.nan),
        "energy_cost_usd": (_integral(it_w, edges, grid.price) / J_PER_KWH / 1e3
                            if grid.price is not None else math.nan),
        "grid_sources": dict(grid.sources),
    }
    # ---- per job: its held GPUs' whole power (waiting, then running) and its hosts' busy
    # increments, each weighted by the rate
    job_ids = jobs["job_id"].to_numpy(int)
    index = {j: i for i, j in enumerate(job_ids)}
    served = sjob < 0  # spans of inference services' GPUs (engine/serve.py): no job's
    summary["energy_serving_kwh"] = float((n * run * (s2 - s1))[served].sum()) / J_PER_KWH
    s0, s1, s2, n, wait, run, sjob = (x[~served] for x in (s0, s1, s2, n, wait, run, sjob))
    rows = np.array([index[int(j)] for j in sjob], dtype=np.int64)
    seg_rows = np.array([index[int(j)] for j in segments["job_id"].to_numpy(int)],
                        dtype=np.int64)
    held_w = [(s0, s1, n * wait), (s1, s2, n * run)]
    host_part = (seg_start, seg_end, seg_up)
    cols = {}
    for name, rate in (("energy_kwh", None), ("energy_facility_kwh", grid.pue),
                       ("carbon_kg", grid.carbon), ("energy_cost_usd", grid.price)):
        if name != "energy_kwh" and rate is None:
            continue
        total = np.zeros(len(job_ids))
        for a, b, w in held_w:
            np.add.at(total, rows, w * _span(a, b, rate))
        np.add.at(total, seg_rows, host_part[2] * _span(host_part[0], host_part[1], rate))
        scale = J_PER_KWH * (1e3 if name in ("carbon_kg", "energy_cost_usd") else 1.0)
        cols[name] = total / scale
    return table, summary, cols


def _span(a: np.ndarray, b: np.ndarray, rate: HourlyRate | None) -> np.ndarray:
    """Seconds of each [a, b), weighted by the rate (None: plain seconds)."""
    if rate is None:
        return b - a
    return rate.cumulative(b) - rate.cumulative(a)


def _integral(level: np.ndarray, edges: np.ndarray, rate: HourlyRate | None) -> float:
    """The integral of a step function (levels between edges) times the rate (None: 1)."""
    return float((level * _span(edges[:-1], edges[1:], rate)).sum())
