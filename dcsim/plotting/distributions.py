"""Distributions: empirical CDFs of job completion time, of one run or several."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _cdf_line(ax: Axes, jobs: pd.DataFrame, label: str) -> None:
    """One empirical-CDF step line of the completed jobs' JCT (nothing if none completed)."""
    x = np.sort(jobs.loc[jobs["status"] == "completed", "jct_s"].to_numpy(dtype=float) / 3600.0)
    if x.size:
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=label)


def _cdf_axes(ax: Axes, logx: bool, title: str) -> Axes:
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel("job completion time (h)")
    ax.set_ylabel("fraction of jobs")
    ax.set_ylim(0, 1.02)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    else:  # no job completed: say so instead of an empty legend
        ax.text(0.5, 0.5, "no job completed", transform=ax.transAxes, ha="center",
                va="center", color="grey")
    ax.set_title(title)
    return ax


def jct_cdf(jobs: pd.DataFrame, ax: Axes | None = None, by: str | None = None,
            logx: bool = False) -> Axes:
    """Empirical CDF of job completion time (completed jobs), optionally one line per `by`."""
    ax = _axes(ax)
    groups = jobs.groupby(by) if by else [("all jobs", jobs)]
    for label, group in groups:
        _cdf_line(ax, group, str(label))
    return _cdf_axes(ax, logx, "JCT CDF")


def jct_cdf_compare(runs: Mapping[str, pd.DataFrame], ax: Axes | None = None,
                    logx: bool = False) -> Axes:
    """JCT CDFs of several runs (label -> jobs table, e.g. one per scheduler) on one axes."""
    ax = _axes(ax)
    for label, jobs in runs.items():
        _cdf_line(ax, jobs, str(label))
    return _cdf_axes(ax, logx, "JCT CDF by run")
