"""`save_plots`: the standard plots of a run, drawn into PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dcsim.plotting.breakdowns import breakdown, training_curves
from dcsim.plotting.common import _new_axes
from dcsim.plotting.distributions import jct_cdf
from dcsim.plotting.network import link_heatmap
from dcsim.plotting.power import power
from dcsim.plotting.serving import gpu_split, latency_cdf, service_load
from dcsim.plotting.timelines import failure_timeline, gantt, queue_length, utilization

if TYPE_CHECKING:
    from dcsim.results import Results


def save_plots(results: Results, out_dir: str | Path) -> list[Path]:
    """Draw the standard plots of a run into PNG files; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawings = {
        "utilization.png": lambda: utilization(results.gpu_timeline, ax=_new_axes()),
        "queue_length.png": lambda: queue_length(results.gpu_timeline, ax=_new_axes()),
        "jct_cdf.png": lambda: jct_cdf(results.jobs, ax=_new_axes()),
        "gantt.png": lambda: gantt(results.segments, results.jobs, ax=_new_axes()),
        "breakdown.png": lambda: breakdown(results.jobs, ax=_new_axes()),
    }
    if len(results.links):
        end = float(results.summary()["sim_end_s"])
        drawings["links.png"] = lambda: link_heatmap(results.links, end, ax=_new_axes())
    if len(results.power):
        end = float(results.summary()["sim_end_s"])
        drawings["power.png"] = lambda: power(results.power, end, ax=_new_axes())
    if len(results.failures):
        drawings["failures.png"] = lambda: failure_timeline(results.failures,
                                                            results.gpu_timeline, ax=_new_axes())
    if len(results.training):
        drawings["training.png"] = lambda: training_curves(results.training, results.jobs,
                                                           ax=_new_axes())
    if len(results.requests):
        drawings["latency_cdf.png"] = lambda: latency_cdf(results.requests, ax=_new_axes())
        drawings["service_load.png"] = lambda: service_load(results.service_timeline,
                                                            ax=_new_axes())
        drawings["gpu_split.png"] = lambda: gpu_split(results.service_timeline,
                                                      results.gpu_timeline, ax=_new_axes())
    paths = []
    for name, draw in drawings.items():
        ax = draw()
        ax.figure.savefig(out / name, dpi=110)
        paths.append(out / name)
    return paths
