"""Plots over time: GPU allocation, queue length, a level of several runs, jobs on servers
(Gantt) and failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes, job_colors

if TYPE_CHECKING:
    from matplotlib.axes import Axes


LEGEND_JOBS = 12  # jobs named in a legend; the rest are counted in a last entry


def utilization(timeline: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Allocated GPUs (and queued jobs on a second axis) over time, from the level changes."""
    ax = _axes(ax)
    hours = timeline["time_s"] / 3600.0
    ax.step(hours, timeline["allocated_gpus"], where="post", label="allocated GPUs")
    ax.step(hours, timeline["total_gpus"], where="post", color="grey", linestyle="--",
            linewidth=1, label="capacity")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("GPUs")
    ax.set_ylim(0, max(1, timeline["total_gpus"].max()) * 1.05 if len(timeline) else 1)
    twin = ax.twinx()
    twin.step(hours, timeline["queued_jobs"], where="post", color="tab:orange", alpha=0.6,
              label="queued jobs")
    twin.set_ylabel("queued jobs")
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right", fontsize="small")
    ax.set_title("GPU allocation over time")
    return ax


def queue_length(timeline: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Queued and running jobs over time, from the GPU timeline's level changes."""
    ax = _axes(ax)
    hours = timeline["time_s"] / 3600.0
    ax.step(hours, timeline["queued_jobs"], where="post", color="tab:orange", label="queued jobs")
    ax.step(hours, timeline["running_jobs"], where="post", color="tab:blue", linewidth=1,
            alpha=0.7, label="running jobs")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("jobs")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="upper right")
    ax.set_title("Queue length over time")
    return ax


TIMELINE_LABELS = {"allocated_gpus": "allocated GPUs", "total_gpus": "GPUs in service",
                   "running_jobs": "running jobs", "queued_jobs": "queued jobs"}


def timeline_compare(timelines: Mapping[str, pd.DataFrame], column: str = "allocated_gpus",
                     ax: Axes | None = None) -> Axes:
    """One step line per run (label -> gpu_timeline) of one timeline column over time:
    `allocated_gpus` (the default), `queued_jobs`, `running_jobs` or `total_gpus`."""
    if column not in TIMELINE_LABELS:
        raise ValueError(f"column {column!r}: not a gpu_timeline level; valid: "
                         f"{', '.join(TIMELINE_LABELS)}")
    ax = _axes(ax)
    for label, timeline in timelines.items():
        ax.step(timeline["time_s"] / 3600.0, timeline[column], where="post", linewidth=1,
                label=str(label))
    ax.set_xlabel("time (h)")
    ax.set_ylabel(TIMELINE_LABELS[column])
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="upper right")
    ax.set_title(f"{TIMELINE_LABELS[column].capitalize()} over time, by run")
    return ax


def gantt(segments: pd.DataFrame, jobs: pd.DataFrame, ax: Axes | None = None,
          max_servers: int = 64) -> Axes:
    """Which job ran on which server when (one row per server, colour per job): servers
    0 to max_servers - 1, one bar collection per server, so thousands of segments draw fast."""
    ax = _axes(ax)
    names = jobs.set_index("job_id")["name"]
    shown = segments[segments["server_id"] < max_servers]
    colors = job_colors(shown["job_id"])
    edge = 0.3 if len(shown) <= 200 else 0.0  # outlines would blacken many thin bars
    from matplotlib.collections import PolyCollection

    for server, rows in shown.groupby("server_id", sort=True):
        lanes = np.array(_gpu_lanes(rows), dtype=float)  # sharing jobs side by side
        cap = max(1.0, float((lanes[:, 0] + lanes[:, 1]).max()))
        x0 = rows["start_s"].to_numpy(dtype=float) / 3600.0
        x1 = rows["end_s"].to_numpy(dtype=float) / 3600.0
        y0 = server - 0.4 + 0.8 * lanes[:, 0] / cap
        y1 = y0 + 0.8 * lanes[:, 1] / cap
        boxes = np.stack([np.column_stack(c) for c in ((x0, y0), (x1, y0), (x1, y1),
                                                        (x0, y1))], axis=1)
        ax.add_collection(PolyCollection(  # one collection per server: fast for thousands
            boxes, facecolors=[colors[int(j)] for j in rows["job_id"]], edgecolors="black",
            linewidths=edge))
    if len(shown):
        ax.set_xlim(0, max(float(shown["end_s"].max()) / 3600.0, 1e-9) * 1.02)
        ax.set_ylim(-0.6, float(shown["server_id"].max()) + 0.6)
    job_ids = list(dict.fromkeys(int(j) for j in shown["job_id"]))
    if job_ids:
        from matplotlib.patches import Patch

        handles = [Patch(color=colors[j], label=str(names.get(j, j)))
                   for j in job_ids[:LEGEND_JOBS]]
        if len(job_ids) > LEGEND_JOBS:
            handles.append(Patch(color="white", label=f"... {len(job_ids) - LEGEND_JOBS} "
                                                      f"more jobs"))
        ax.legend(handles=handles, fontsize="x-small", loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("server")
    ax.invert_yaxis()
    servers = segments["server_id"].nunique()
    cut = servers > shown["server_id"].nunique()
    ax.set_title("Jobs on servers" + (f" (0-{max_servers - 1} of {servers})" if cut else ""))
    return ax


def _gpu_lanes(rows: pd.DataFrame) -> list[tuple[int, int]]:
    """(first lane, lanes) of each segment on one server, in row order: a segment of n GPUs
    takes n adjacent lanes free over its whole time (first fit, by start), so segments that
    overlap in time never overlap on the plot."""
    order = np.argsort(rows["start_s"].to_numpy(dtype=float), kind="stable")
    starts = rows["start_s"].to_numpy(dtype=float)
    ends = rows["end_s"].to_numpy(dtype=float)
    gpus = rows["num_gpus"].to_numpy(dtype=int)
    free_at: list[float] = []  # per lane: when it is free again
    out: list[tuple[int, int]] = [(0, 1)] * len(rows)
    for i in order:
        n, t = max(int(gpus[i]), 1), starts[i]
        lo = next((k for k in range(len(free_at) + 1)
                   if all(f <= t + 1e-9 for f in free_at[k:k + n])), len(free_at))
        free_at += [-np.inf] * max(0, lo + n - len(free_at))
        for k in range(lo, lo + n):
            free_at[k] = ends[i]
        out[i] = (lo, n)
    return out


def failure_timeline(failures: pd.DataFrame, timeline: pd.DataFrame,
                     ax: Axes | None = None) -> Axes:
    """GPUs in service over time (the timeline's `total_gpus`: servers out for repair drop
    it) and each failure as a marker at its time, one row and colour per component class;
    filled markers interrupted a job."""
    ax = _axes(ax)
    hours = timeline["time_s"] / 3600.0
    ax.step(hours, timeline["total_gpus"], where="post", color="grey", linewidth=1,
            label="GPUs in service")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("GPUs in service")
    twin = ax.twinx()
    classes = sorted(failures["component"].unique()) if len(failures) else []
    for i, comp in enumerate(classes):
        rows = failures[failures["component"] == comp]
        hit = rows["jobs"].astype(str) != ""
        t = rows["time_s"].to_numpy() / 3600.0
        twin.scatter(t[hit.to_numpy()], np.full(int(hit.sum()), i), color=f"C{i % 10}",
                     marker="o", s=14, label=f"{comp} ({len(rows)})")
        twin.scatter(t[~hit.to_numpy()], np.full(int((~hit).sum()), i), marker="o", s=14,
                     facecolors="none", edgecolors=f"C{i % 10}")
    twin.set_yticks(range(len(classes)), classes, fontsize="small")
    twin.set_ylim(-0.5, max(len(classes), 1) - 0.5)
    twin.legend(fontsize="x-small", loc="lower left")
    ax.set_title(f"Failures: {len(failures)} (filled: interrupted a job)")
    return ax
