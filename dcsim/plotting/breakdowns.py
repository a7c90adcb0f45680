"""Per-job plots: where an iteration's time goes, and the loss and accuracy of executed jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes, job_colors

if TYPE_CHECKING:
    from matplotlib.axes import Axes


BREAKDOWN = (("step_compute_s", "compute"), ("step_tp_comm_s", "TP/EP comm"),
             ("step_bubble_s", "pipeline bubble"), ("step_dp_comm_s", "DP comm (exposed)"),
             ("step_optimizer_s", "optimizer"), ("step_data_stall_s", "data stall"),
             ("step_checkpoint_s", "checkpoint"), ("step_overhead_s", "framework overhead"))


def breakdown(jobs: pd.DataFrame, ax: Axes | None = None, max_jobs: int = 30) -> Axes:
    """Stacked bars: one iteration of each job that ran (the first `max_jobs`), split by the
    step-time model's `step_*_s` columns (those the table has: older results folders lack
    `step_checkpoint_s`)."""
    ax = _axes(ax)
    ran_all = jobs[jobs["step_compute_s"].notna()]
    ran = ran_all.head(max_jobs)
    left = np.zeros(len(ran))
    for column, label in BREAKDOWN:
        if column not in ran:
            continue
        values = ran[column].fillna(0.0).to_numpy(dtype=float)
        ax.barh(ran["name"], values, left=left, label=label)
        left += values
    ax.set_xlabel("seconds per iteration")
    ax.invert_yaxis()
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Where an iteration's time goes" + (
        f" (first {len(ran)} of {len(ran_all)} jobs)" if len(ran_all) > len(ran) else ""))
    return ax


def training_curves(training: pd.DataFrame, jobs: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Loss (left axis) and held-out accuracy (right axis, markers) per iteration of each job
    that really trained (`execute`), one colour per job."""
    ax = _axes(ax)
    names = jobs.set_index("job_id")["name"]
    twin = ax.twinx()
    colors = job_colors(training["job_id"])
    for job_id, rows in training.groupby("job_id"):
        color = colors[int(job_id)]
        ax.plot(rows["iteration"], rows["loss"], color=color, linewidth=0.8, alpha=0.7,
                label=str(names.get(job_id, job_id)))
        evaluated = rows[rows["accuracy"].notna()]
        twin.plot(evaluated["iteration"], evaluated["accuracy"], color=color, marker="o",
                  linestyle="--", markersize=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (lines)")
    twin.set_ylabel("held-out accuracy (markers)")
    twin.set_ylim(0, 1.02)
    ax.legend(fontsize="x-small", loc="center right")
    ax.set_title("Executed jobs: loss and accuracy")
    return ax
