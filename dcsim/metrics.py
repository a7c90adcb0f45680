"""Typed, append-only records of a run, and the `Results` built from them.

The engine appends records; `Recorder.frames()` turns them into DataFrames and `summarize`
computes the summary from those.
Time-weighted statistics come from level changes (the GPU timeline), never from polling.
See docs/metrics.md for every column and formula.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = ["JobRecord", "Segment", "Level", "Event", "Recorder", "summarize", "TERMINAL",
           "add_fairness", "group_breakdown", "jain_index", "GROUP_COLUMNS"]

TERMINAL = ("completed", "failed", "rejected")


@dataclass(frozen=True, slots=True)
class JobRecord:
    job_id: int
    name: str
    model: str
    user: str
    virtual_cluster: str
    num_gpus: int
    gpu_type: str
    precision: str
    submit_s: float
    start_s: float  # first start; NaN if it never ran
    end_s: float  # NaN unless completed or failed
    jct_s: float  # end - submit
    queue_s: float  # first start - submit
    run_s: float  # time holding GPUs, all segments
    status: str
    reason: str
    iterations: int
    iterations_done: float
    iteration_time_s: float  # run_s / iterations_done
    achieved_tflops_per_gpu: float  # model FLOPs done / (run_s x num_gpus)
    mfu: float
    preemptions: int
    # the step-time model's split of one iteration on the job's last placement (seconds)
    step_compute_s: float
    step_tp_comm_s: float
    step_bubble_s: float
    step_dp_comm_s: float
    step_optimizer_s: float
    step_data_stall_s: float
    step_overhead_s: float
    memory_gb: float  # memory per GPU (weights, gradients, optimizer, activations, buffers)
    alone_s: float  # estimated run time alone: iterations x step time on an empty cluster
    slowdown: float  # jct_s / alone_s
    restore_s: float  # restore delays paid after preemptions (part of run_s)
    interruptions: int = 0  # failures that hit the job (dcsim/faults)
    lost_iterations: float = 0.0  # iterations rolled back to the last checkpoint
    lost_s: float = 0.0  # running time of those iterations
    productive_s: float = 0.0  # running time that produced kept progress (ETTR numerator)
    # where the last placement's step time came from: model, measured or interpolated ("" if
    # the job never ran)
    step_source: str = ""
    # its deadline (`deadline_s` / `deadline_slack`): when it is due (NaN: none), and how late
    # it finished (end_s - due_s, > 0 a miss; inf: it did not complete; NaN: no deadline)
    due_s: float = float("nan")
    late_s: float = float("nan")


class Segment(NamedTuple):
    """A job holding GPUs of one server over [start_s, end_s)."""

    job_id: int
    server_id: int
    num_gpus: int
    start_s: float
    end_s: float


class Level(NamedTuple):
    """Cluster levels from time_s on, until the next row."""

    time_s: float
    allocated_gpus: int
    total_gpus: int  # GPUs in service (constant until failures are modelled)
    running_jobs: int
    queued_jobs: int


class TrainingRow(NamedTuple):
    """One iteration of an executed job's real training (accuracy NaN where not evaluated)."""

    job_id: int
    iteration: int
    loss: float
    accuracy: float
    phase: str


class Execution(NamedTuple):
    """An executed job: its measured wall time beside the simulated time (not deterministic)."""

    job_id: int
    iterations: int
    wall_s: float
    measured_iteration_s: float
    simulated_iteration_s: float
    final_accuracy: float
    sparsity_achieved: float


class LinkLevel(NamedTuple):
    """A directed link's allocated share (max-min rates of the flows present / capacity) from
    time_s on, until its next row; flows are present while their jobs run (see docs/metrics)."""

    time_s: float
    link: str
    utilization: float


class Event(NamedTuple):
    time_s: float
    job_id: int
    event: str
    detail: str


def _columns(record_type: Any) -> list[str]:
    return [f.name for f in fields(record_type)] if hasattr(record_type, "__dataclass_fields__") \
        else list(record_type._fields)


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[JobRecord] = []
        self.segments: list[Segment] = []
        self.levels: list[Level] = []
        self.events: list[Event] = []
        self.training: list[TrainingRow] = []
        self.executions: list[Execution] = []
        self.links: list[LinkLevel] = []

    def frames(self) -> dict[str, pd.DataFrame]:
        columns = _columns(JobRecord)  # flat records: a shallow read (asdict deep-copies)
        jobs = pd.DataFrame([[getattr(j, c) for c in columns] for j in self.jobs],
                            columns=columns)
        return {
            "jobs": jobs.sort_values("job_id", kind="stable").reset_index(drop=True),
            "gpu_timeline": pd.DataFrame(self.levels, columns=Level._fields),
            "segments": pd.DataFrame(self.segments, columns=Segment._fields),
            "events": pd.DataFrame(self.events, columns=Event._fields),
            "training": pd.DataFrame(self.training, columns=TrainingRow._fields),
            "executions": pd.DataFrame(self.executions, columns=Execution._fields),
            "links": pd.DataFrame(self.links, columns=LinkLevel._fields),
        }


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else float("nan")


def gpu_seconds(timeline: pd.DataFrame, end_s: float) -> float:
    """Integral of allocated GPUs over time, from the level changes, up to end_s."""
    if timeline.empty:
        return 0.0
    t = timeline["time_s"].to_numpy()
    # each level holds until the next change or end_s, whichever is first (levels after
    # end_s, e.g. a service that outlives the jobs' makespan, count nothing)
    ends = np.minimum(np.append(t[1:], max(end_s, t[-1])), end_s)
    widths = np.maximum(ends - t, 0.0)
    return float(np.sum(timeline["allocated_gpus"].to_numpy() * widths))


def link_utilization(links: pd.DataFrame, end_s: float) -> pd.Series:
    """Time-weighted mean utilization of each link from its first level change to end_s."""
    if links.empty:
        return pd.Series(dtype=float)
    out = {}
    for name, rows in links.groupby("link", sort=True):
        t = rows["time_s"].to_numpy()
        widths = np.diff(np.append(t, max(end_s, t[-1])))
        span = max(end_s, t[-1]) - t[0]
        out[name] = float(np.sum(rows["utilization"].to_numpy() * widths) / span) if span > 0 \
            else 0.0
    return pd.Series(out).sort_values(ascending=False, kind="stable")


def top_links(links: pd.DataFrame, end_s: float, n: int = 5) -> dict[str, float]:
    """The n most utilized links (time-weighted), for the summary."""
    mean = link_utilization(links, end_s)
    return {str(k): round(float(v), 4) for k, v in mean.head(n).items() if v > 0}


def add_fairness(jobs: pd.DataFrame, timeline: pd.DataFrame, total_gpus: int) -> None:
    """Add the columns `contention` (time-average number of jobs present, queued or running,
    between the job's submission and its end, from the GPU timeline) and `ftf_rho` (Themis'
    finish-time fairness: jct_s / (alone_s x max(1, num_gpus x contention / total_gpus)))."""
    end = jobs["end_s"].to_numpy(dtype=float)
    sub = jobs["submit_s"].to_numpy(dtype=float)
    n_avg = np.full(len(jobs), np.nan)
    if not timeline.empty and len(jobs):
        t = timeline["time_s"].to_numpy(dtype=float)
        n = (timeline["running_jobs"] + timeline["queued_jobs"]).to_numpy(dtype=float)
        area = np.concatenate([[0.0], np.cumsum(n[:-1] * np.diff(t))])

        def integral(x: np.ndarray) -> np.ndarray:
            k = np.clip(np.searchsorted(t, x, side="right") - 1, 0, len(t) - 1)
            return area[k] + n[k] * (x - t[k])

        ok = ~np.isnan(end)
        width = end[ok] - sub[ok]
        k0 = np.clip(np.searchsorted(t, sub[ok], side="right") - 1, 0, len(t) - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            n_avg[ok] = np.where(width > 0, (integral(end[ok]) - integral(sub[ok])) / width,
                                 n[k0])
    share = np.maximum(1.0, jobs["num_gpus"].to_numpy(dtype=float) * n_avg / total_gpus)
    jobs["contention"] = n_avg
    jobs["ftf_rho"] = jobs["jct_s"].to_numpy(dtype=float) / (
        jobs["alone_s"].to_numpy(dtype=float) * share)


def jain_index(values: np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2) of the finite values (NaN if none)."""
    x = values[np.isfinite(values)]
    if not x.size or not np.any(x):
        return float("nan")
    return float(x.sum() ** 2 / (x.size * np.sum(x * x)))


GROUP_COLUMNS = ["group_by", "group", "jobs", "completed", "jct_mean_s", "slowdown_mean",
                 "queue_mean_s", "gpu_hours", "energy_kwh", "carbon_kg", "cost_usd"]


def group_breakdown(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per user and per virtual cluster (only for a column some job fills): jobs, completed
    jobs, mean JCT, mean slowdown and mean queueing delay of completed jobs, GPU-hours held,
    and the jobs' energy, carbon and cost summed (NaN where the run has none)."""
    rows = []
    for by in ("user", "virtual_cluster"):
        if by not in jobs or not (jobs[by] != "").any():
            continue
        for name, g in jobs.groupby(by, sort=True):
            done = g[g["status"] == "completed"]
            rows.append((by, str(name), len(g), len(done),
                         float(done["jct_s"].mean()) if len(done) else float("nan"),
                         float(done["slowdown"].mean()) if len(done) else float("nan"),
                         float(done["queue_s"].mean()) if len(done) else float("nan"),
                         float((g["num_gpus"] * g["run_s"]).sum() / 3600.0),
                         *(float(g[c].sum()) if c in g else float("nan")
                           for c in ("energy_kwh", "carbon_kg", "cost_usd"))))
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def summarize(jobs: pd.DataFrame, timeline: pd.DataFrame, total_gpus: int, end_s: float,
              extra: dict[str, Any], links: pd.DataFrame | None = None) -> dict[str, Any]:
    """The summary dict of a run (formulas in docs/metrics.md)."""
    done = jobs[jobs["status"] == "completed"]
    jct = done["jct_s"].to_numpy(dtype=float)
    started = jobs[jobs["start_s"].notna()]
    start = float(jobs["submit_s"].min()) if len(jobs) else 0.0
    finish = float(jobs["end_s"].max()) if jobs["end_s"].notna().any() else start
    open_jobs = ~jobs["status"].isin(TERMINAL)
    makespan = (max(finish, end_s) if open_jobs.any() else finish) - start
    allocated = gpu_seconds(timeline, start + makespan)
    counts = jobs["status"].value_counts()
    not_arrived = int(counts.get("submitted", 0))  # arrival after the horizon
    summary: dict[str, Any] = {
        "jobs_submitted": int(len(jobs)) - not_arrived,
        "jobs_not_arrived": not_arrived,
        **{f"jobs_{s}": int(counts.get(s, 0)) for s in ("completed", "failed", "rejected")},
        "jobs_unfinished": int(len(jobs) - not_arrived
                               - sum(int(counts.get(s, 0)) for s in TERMINAL)),
        "makespan_s": makespan,
        "jct_mean_s": float(jct.mean()) if jct.size else float("nan"),
        "jct_p50_s": _pct(jct, 50),
        "jct_p95_s": _pct(jct, 95),
        "jct_p99_s": _pct(jct, 99),
        "queue_mean_s": float(started["queue_s"].mean()) if len(started) else float("nan"),
        "total_gpus": total_gpus,
        "gpu_hours_allocated": allocated / 3600.0,
        "gpu_utilization": allocated / (total_gpus * makespan) if makespan > 0 else float("nan"),
        "mfu_mean": float(done["mfu"].mean()) if len(done) else float("nan"),
    }
    slowdown = done["slowdown"].to_numpy(dtype=float) if "slowdown" in done else np.zeros(0)
    slowdown = slowdown[np.isfinite(slowdown)]
    summary.update({
        "slowdown_mean": float(slowdown.mean()) if slowdown.size else float("nan"),
        "slowdown_p50": _pct(slowdown, 50),
        "slowdown_p95": _pct(slowdown, 95),
        "slowdown_max": float(slowdown.max()) if slowdown.size else float("nan"),
    })
    rho = done["ftf_rho"].to_numpy(dtype=float) if "ftf_rho" in done else np.zeros(0)
    rho = rho[np.isfinite(rho)]
    summary["ftf_rho_mean"] = float(rho.mean()) if rho.size else float("nan")
    summary["ftf_rho_max"] = float(rho.max()) if rho.size else float("nan")
    for by, key in (("user", "jain_fairness_users"), ("virtual_cluster", "jain_fairness_vcs")):
        named = done[done[by] != ""] if by in done else done.iloc[0:0]
        means = named.groupby(by)["slowdown"].mean().to_numpy(dtype=float)
        summary[key] = jain_index(means)
    summary["top_links"] = top_links(links, start + makespan) if links is not None else {}
    arrived = jobs[jobs["status"] != "submitted"]
    late = arrived["late_s"].to_numpy(dtype=float) if "late_s" in jobs else np.zeros(0)
    late = late[~np.isnan(late)]
    summary["deadline_jobs"] = int(late.size)
    summary["deadline_misses"] = int((late > 0).sum())
    rejected = jobs[jobs["status"] == "rejected"]
    codes = rejected["reason"].str.split(":", n=1).str[0]
    summary["rejection_reasons"] = {str(k): int(v) for k, v in
                                    codes.value_counts().sort_index().items()}
    summary.update(extra)
    return summary


FAILURE_COLUMNS = ["time_s", "component", "cause", "target", "server_id", "jobs", "downtime_s",
                   "repair_s", "spare", "source"]


def fault_metrics(jobs: pd.DataFrame, failures: pd.DataFrame, events: pd.DataFrame,
                  end_s: float, configured_mtbf_hours: dict[str, float]) -> dict[str, Any]:
    """Reliability metrics (docs/metrics.md#failures): adds the jobs column `ettr` in place and
    returns the summary keys: goodput, ETTR, lost GPU-hours, interruptions by cause, failures by
    component, observed vs configured MTBF, restarts."""
    g = jobs["num_gpus"].to_numpy(dtype=float)
    run = jobs["run_s"].to_numpy(dtype=float)
    productive = jobs["productive_s"].to_numpy(dtype=float)
    end = jobs["end_s"].to_numpy(dtype=float)
    start = jobs["start_s"].to_numpy(dtype=float)
    wall = np.where(np.isnan(end), end_s, end) - start
    with np.errstate(invalid="ignore", divide="ignore"):
        jobs["ettr"] = np.where(wall > 0, productive / wall, np.nan)
    allocated = float(np.sum(g * run))
    ettr = jobs["ettr"].to_numpy(dtype=float)
    ettr = ettr[np.isfinite(ettr)]
    hit = failures[failures["jobs"] != ""] if len(failures) else failures
    by_cause: dict[str, int] = {}
    for cause, ids in zip(hit.get("cause", []), hit.get("jobs", []), strict=True):
        by_cause[str(cause)] = by_cause.get(str(cause), 0) + len(str(ids).split(";"))
    counts = failures["component"].value_counts() if len(failures) else pd.Series(dtype=int)
    hours = end_s / 3600.0
    observed = {str(c): hours / int(n) for c, n in counts.sort_index().items()}
    starts = int((events["event"] == "started").sum()) if len(events) else 0
    return {
        "goodput": float(np.sum(g * productive)) / allocated if allocated > 0 else float("nan"),
        "ettr_mean": float(ettr.mean()) if ettr.size else float("nan"),
        "lost_gpu_hours": float(np.sum(g * jobs["lost_s"].to_numpy(dtype=float))) / 3600.0,
        "lost_iterations": float(jobs["lost_iterations"].sum()),
        "interruptions": int(jobs["interruptions"].sum()),
        "interruptions_by_cause": dict(sorted(by_cause.items())),
        "failures": int(len(failures)),
        "failures_by_component": {str(c): int(n) for c, n in counts.sort_index().items()},
        "mtbf_observed_hours": {k: float(v) for k, v in observed.items()},
        "mtbf_configured_hours": dict(configured_mtbf_hours),
        "restarts": starts - int(jobs["start_s"].notna().sum()),
    }
