"""Cluster power over time, stacked by component (docs/energy.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

POWER_PARTS = (("gpu_w", "GPUs", "tab:green"), ("host_w", "hosts (CPUs, memory, NICs, fans)",
                                                    "tab:blue"),
               ("network_w", "switches", "tab:purple"), ("storage_w", "storage", "tab:grey"))


def power(table: pd.DataFrame, end_s: float | None = None, ax: Axes | None = None) -> Axes:
    """IT power stacked by component, with the facility's overhead (PUE) on top, from the
    power table's level changes (kW against hours). Failures and idle stretches show as
    dips."""
    ax = _axes(ax)
    if not len(table):
        ax.text(0.5, 0.5, "no power table", ha="center", va="center", transform=ax.transAxes)
        return ax
    times = table["time_s"].to_numpy(float)
    last = end_s if end_s is not None and end_s > times[-1] else times[-1]
    hours = np.append(times, last) / 3600.0
    levels = [np.append(table[c].to_numpy(float), table[c].iloc[-1]) / 1e3
              for c, _, _ in POWER_PARTS]
    overhead = (table["facility_w"] - table["it_w"]).to_numpy(float)
    levels.append(np.append(overhead, overhead[-1]) / 1e3)
    labels = [label for _, label, _ in POWER_PARTS] + ["facility overhead (PUE)"]
    colors = [color for _, _, color in POWER_PARTS] + ["tab:orange"]
    ax.stackplot(hours, *levels, labels=labels, colors=colors, step="post", alpha=0.8)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("power (kW)")
    ax.set_xlim(hours[0], hours[-1] if hours[-1] > hours[0] else hours[0] + 1e-9)
    ax.legend(loc="lower right", fontsize="small")
    peak = float(table["facility_w"].max()) / 1e3
    ax.set_title(f"Cluster power (peak {peak:,.1f} kW facility)")
    return ax
