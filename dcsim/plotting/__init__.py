"""Plots: each is f(df, ax=None) -> Axes and computes no metrics. Given no `ax`, a function
draws on a new pyplot figure (so notebooks show it); `save_plots` draws on figures that pyplot
does not track, so writing files leaves no global state behind.

The functions live in modules by family: `timelines` (utilization, queue length, runs compared
over time, Gantt, failures), `distributions` (JCT CDFs), `breakdowns` (iteration time, training
curves), `network` (topology, link heatmap), `power` (cluster power by component), `serving`
(request latency CDFs, service load), `accuracy` (parity), `save` (save_plots) and
`common` (axes and job colours); all are importable from here. matplotlib is imported inside
the functions, never at import time."""

from __future__ import annotations

from dcsim.plotting.accuracy import parity
from dcsim.plotting.breakdowns import BREAKDOWN as BREAKDOWN
from dcsim.plotting.breakdowns import breakdown, training_curves
from dcsim.plotting.common import job_colors
from dcsim.plotting.distributions import jct_cdf, jct_cdf_compare
from dcsim.plotting.network import MAX_NODE_LABELS as MAX_NODE_LABELS
from dcsim.plotting.network import link_heatmap, topology
from dcsim.plotting.power import power
from dcsim.plotting.save import save_plots
from dcsim.plotting.serving import gpu_split, latency_cdf, service_load
from dcsim.plotting.timelines import LEGEND_JOBS as LEGEND_JOBS
from dcsim.plotting.timelines import TIMELINE_LABELS as TIMELINE_LABELS
from dcsim.plotting.timelines import (
    failure_timeline,
    gantt,
    queue_length,
    timeline_compare,
    utilization,
)

__all__ = ["utilization", "queue_length", "timeline_compare", "jct_cdf", "jct_cdf_compare",
           "gantt", "breakdown", "training_curves", "topology", "link_heatmap",
           "failure_timeline", "parity", "save_plots", "job_colors", "power", "latency_cdf",
           "service_load", "gpu_split"]
