"""Sweep plots: f(df, ..., ax=None) -> Axes over a sweep table (`run_sweep`, `load_sweep`);
they compute nothing beyond the mean and confidence interval of the column they draw."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["response", "mean_ci"]


def mean_ci(values: pd.Series, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student-t confidence interval (NaN from fewer than 2)."""
    from scipy import stats

    x = values.dropna().to_numpy(dtype=float)
    if len(x) < 2:
        return (float(x.mean()) if len(x) else float("nan")), float("nan")
    sem = x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * sem)


def response(df: pd.DataFrame, x: str, y: str, hue: str | None = None,
             ax: Axes | None = None) -> Axes:
    """`y` against factor `x`: the mean over the rows at each `x` (the replicate seeds and any
    other factors) with a 95% t-interval band; one line per value of `hue`."""
    ax = _axes(ax)
    every = sorted(df[x].dropna().unique().tolist(), key=lambda v: (str(type(v)), v))
    numeric = _numeric(every)
    groups = [(None, df)] if hue is None else list(df.groupby(hue, sort=True))
    for label, part in groups:
        stats = [(level, *mean_ci(rows[y])) for level, rows in part.groupby(x, sort=True)]
        levels, means, half = (np.asarray(col) for col in zip(*stats, strict=True))
        at = levels.astype(float) if numeric else np.array([every.index(v) for v in levels])
        (line,) = ax.plot(at, means, marker="o", label=None if hue is None else str(label))
        ax.fill_between(at, means - half, means + half, color=line.get_color(), alpha=0.2,
                        linewidth=0)
    if not numeric:
        ax.set_xticks(range(len(every)), [str(v) for v in every])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hue is not None:
        ax.legend(title=hue, fontsize="small")
    return ax


def _numeric(levels: list) -> bool:
    return all(isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
               for v in levels)
