"""The cost model's accuracy: predicted against measured (published) values."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def parity(rows: pd.DataFrame, ax: Axes | None = None, band: float = 0.1) -> Axes:
    """Predicted (y) against measured (x) on log-log axes, one colour per `metric` (the rows of
    `dcsim.tools.validation.reference_table` / `collective_table` as a DataFrame), with the line
    predicted = measured and dotted lines at +-`band` (default 10%)."""
    ax = _axes(ax)
    for metric, group in rows.groupby("metric", sort=True):
        ax.scatter(group["measured"], group["predicted"], s=18, label=str(metric))
    values = rows[["measured", "predicted"]].to_numpy(dtype=float)
    low, high = (values.min() / 1.5, values.max() * 1.5) if values.size else (0.1, 10.0)
    ends = np.array([low, high])
    ax.plot(ends, ends, color="black", linewidth=0.8, label="predicted = measured")
    for factor in (1 - band, 1 + band):
        ax.plot(ends, ends * factor, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("measured (published)")
    ax.set_ylabel("predicted (dcsim)")
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"Predicted vs measured ({len(rows)} rows; dotted: ±{band:.0%})")
    return ax
