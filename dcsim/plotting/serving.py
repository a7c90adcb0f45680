"""Inference services (docs/serving.md): request latency distributions and each service's
load over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LATENCIES = (("ttft_s", "time to first token", "-"), ("tpot_s", "time per output token", ":"),
             ("e2e_s", "end to end", "--"))


def latency_cdf(requests: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """CDFs of the served requests' TTFT, TPOT and end-to-end latency, per service (log time
    axis)."""
    ax = _axes(ax)
    served = requests[requests["status"] == "served"] if len(requests) else requests
    if not len(served):
        ax.text(0.5, 0.5, "no served requests", ha="center", va="center",
                transform=ax.transAxes)
        return ax
    for i, (name, rows) in enumerate(served.groupby("service", sort=True, observed=True)):
        color = f"C{i}"
        for col, label, style in LATENCIES:
            v = np.sort(rows[col].dropna().to_numpy(float))
            v = v[v > 0]
            if v.size:
                ax.plot(v, np.arange(1, v.size + 1) / v.size, style, color=color,
                        label=f"{name}: {label}")
    ax.set_xscale("log")
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("fraction of served requests")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title("Request latency")
    return ax


def service_load(timeline: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Per service: arrivals per second and queued requests (left axis), and the KV cache's
    use (right axis), against hours."""
    ax = _axes(ax)
    if not len(timeline):
        ax.text(0.5, 0.5, "no services", ha="center", va="center", transform=ax.transAxes)
        return ax
    kv = ax.twinx()
    for i, (name, rows) in enumerate(timeline.groupby("service", sort=True)):
        hours = rows["time_s"].to_numpy(float) / 3600.0
        color = f"C{i}"
        ax.step(hours, rows["arrival_rate_per_s"], where="pre", color=color,
                label=f"{name}: arrivals/s")
        ax.step(hours, rows["queued"], where="post", color=color, linestyle=":",
                label=f"{name}: queued")
        kv.step(hours, 100 * rows["kv_used_fraction"], where="post", color=color,
                linestyle="--", alpha=0.6, label=f"{name}: KV cache used (%)")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("requests/s, queued requests")
    kv.set_ylabel("KV cache used (%)")
    kv.set_ylim(0, 105)
    lines = ax.get_legend_handles_labels()
    more = kv.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize="small", loc="upper right")
    ax.set_title("Service load")
    return ax


def gpu_split(timeline: pd.DataFrame, gpu_timeline: pd.DataFrame,
              ax: Axes | None = None) -> Axes:
    """The cluster's GPUs over time, stacked: held by each service (its replicas, starting
    and draining ones included), running training jobs (the rest of the allocated GPUs), and
    idle. With autoscaling, the training band grows into the GPUs a service lends."""
    ax = _axes(ax)
    if not len(timeline) or not len(gpu_timeline):
        ax.text(0.5, 0.5, "no services", ha="center", va="center", transform=ax.transAxes)
        return ax
    held = timeline.pivot_table(index="time_s", columns="service", values="gpus",
                                aggfunc="last")
    alloc = gpu_timeline.drop_duplicates("time_s", keep="last").set_index("time_s")
    t = np.union1d(held.index.to_numpy(float), alloc.index.to_numpy(float))
    held = held.reindex(t, method="ffill").fillna(0)
    allocated = alloc["allocated_gpus"].reindex(t, method="ffill").fillna(0).to_numpy(float)
    total = alloc["total_gpus"].reindex(t, method="ffill").fillna(0).to_numpy(float)
    serving = held.sum(axis=1).to_numpy(float)
    training = np.clip(allocated - serving, 0, None)
    idle = np.clip(total - allocated, 0, None)
    bands = [held[name].to_numpy(float) for name in held.columns] + [training, idle]
    labels = [f"{name} (service)" for name in held.columns] + ["training", "idle"]
    colors = [f"C{i}" for i in range(len(held.columns))] + ["0.55", "0.9"]
    ax.stackplot(t / 3600.0, *bands, labels=labels, colors=colors, step="post")
    ax.set_xlabel("time (h)")
    ax.set_ylabel("GPUs")
    ax.set_ylim(0, max(float(total.max()), 1.0) * 1.02)
    ax.legend(fontsize="small", loc="upper right")
    ax.set_title("GPUs: services, training, idle")
    return ax
