"""Plots: each is f(df, ax=None) -> Axes and computes no metrics. Given no `ax`, a function
draws on a new pyplot figure (so notebooks show it); `save_plots` draws on figures that pyplot
does not track, so writing files leaves no global state behind."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from dcsim.results import Results

__all__ = ["utilization", "queue_length", "timeline_compare", "jct_cdf", "jct_cdf_compare",
           "gantt", "breakdown", "training_curves", "topology", "link_heatmap",
           "failure_timeline", "parity", "save_plots", "job_colors"]


LEGEND_JOBS = 12  # jobs named in a legend; the rest are counted in a last entry


def job_colors(job_ids) -> dict:
    """A distinct colour per job: matplotlib's 10-colour cycle for up to 10 jobs, tab20 for up
    to 20, beyond that hues spaced by the golden ratio (neighbours stay far apart)."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb

    ids = sorted({int(j) for j in job_ids})
    if len(ids) <= 10:
        return {j: f"C{i}" for i, j in enumerate(ids)}
    if len(ids) <= 20:
        cmap = colormaps["tab20"]
        return {j: cmap(i) for i, j in enumerate(ids)}
    golden = 0.618033988749895
    return {j: tuple(hsv_to_rgb(((i * golden) % 1.0, 0.65 if i % 2 else 0.85,
                                 0.95 if i % 3 else 0.75)))
            for i, j in enumerate(ids)}


def _axes(ax: Axes | None) -> Axes:
    """The given axes, or new ones on a new pyplot figure (which notebooks display)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(8, 4), layout="constrained")[1]


def _new_axes() -> Axes:
    """Axes on a figure that pyplot does not track (for files: no global state, no leaks)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(8, 4), layout="constrained").add_subplot()


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


MAX_NODE_LABELS = 64


def topology(graph, ax: Axes | None = None) -> Axes:
    """The network graph: servers (blue) and switches (orange), and with a server's insides
    (`Network.detailed`) GPUs (green), NICs (purple) and PCIe switches / NVSwitches / CPUs
    (grey); links drawn thicker the more bandwidth they have. Layout: layered by distance from
    the servers (or GPUs; at the bottom) for switched networks, a seeded spring layout for
    direct ones (torus)."""
    import networkx as nx

    ax = _axes(ax)
    by_kind: dict[str, list] = {}
    for n, k in graph.nodes(data="kind"):
        by_kind.setdefault(k, []).append(n)
    servers = by_kind.get("server", [])
    switches = by_kind.get("switch", [])
    bottom = by_kind.get("gpu") or servers
    if switches or "gpu" in by_kind:  # on a copy: the caller's graph keeps its attributes
        hops = nx.multi_source_dijkstra_path_length(graph, bottom, weight=None)
        layered = nx.Graph()
        layered.add_nodes_from((n, {"layer": hops.get(n, 0)}) for n in graph)
        pos = nx.multipartite_layout(layered, subset_key="layer", align="horizontal")
    else:
        pos = nx.spring_layout(graph, seed=0)
    widths = np.array([d["bandwidth_byte_s"] for _, _, d in graph.edges(data=True)], dtype=float)
    widths = 0.5 + 2.5 * widths / widths.max() if len(widths) else widths
    nx.draw_networkx_edges(graph, pos, ax=ax, width=widths, alpha=0.5)
    size = max(4, 200 / max(1, len(graph)) ** 0.5)
    nx.draw_networkx_nodes(graph, pos, nodelist=servers, ax=ax, node_size=size * 4,
                           node_color="tab:blue", label=f"{len(servers)} servers")
    nx.draw_networkx_nodes(graph, pos, nodelist=switches, ax=ax, node_size=size * 6,
                           node_color="tab:orange", node_shape="s",
                           label=f"{len(switches)} switches")
    inside = [n for k in ("pcie-switch", "nvswitch", "cpu") for n in by_kind.get(k, [])]
    for nodes, color, label in ((by_kind.get("gpu", []), "tab:green", "GPUs"),
                                (by_kind.get("nic", []), "tab:purple", "NICs"),
                                (inside, "tab:grey", "PCIe switches, NVSwitches, CPUs")):
        if nodes:
            nx.draw_networkx_nodes(graph, pos, nodelist=nodes, ax=ax, node_size=size * 2,
                                   node_color=color, label=f"{len(nodes)} {label}")
    # names: every server and switch while they fit, else the switches, else none (counted)
    named = [*servers, *switches]
    if len(named) > MAX_NODE_LABELS:
        named = switches if len(switches) <= MAX_NODE_LABELS else []
    if named:
        nx.draw_networkx_labels(graph, pos, labels={n: str(n) for n in named}, ax=ax,
                                font_size=6 if len(named) > 16 else 8,
                                verticalalignment="bottom")
    ax.legend(fontsize="small", loc="upper right")
    ax.set_axis_off()
    unnamed = len(servers) + len(switches) - len(named)
    ax.set_title(f"Topology: {graph.number_of_edges()} links"
                 + (f" ({unnamed} nodes too many to name)" if unnamed else ""))
    return ax


def link_heatmap(links: pd.DataFrame, end_s: float, ax: Axes | None = None,
                 max_links: int = 40, bins: int = 100) -> Axes:
    """Utilization of the busiest links over time (rows: links, columns: time bins), sampled
    from the level changes at the middle of each bin."""
    ax = _axes(ax)
    if links.empty:
        ax.set_title("Link utilization: no network flows")
        return ax
    start = float(links["time_s"].min())
    edges = np.linspace(start, max(end_s, start + 1e-9), bins + 1)
    middles = (edges[:-1] + edges[1:]) / 2
    grid, names = [], []
    for name, rows in links.groupby("link", sort=True):
        t, u = rows["time_s"].to_numpy(), rows["utilization"].to_numpy()
        idx = np.searchsorted(t, middles, side="right") - 1
        grid.append(np.where(idx >= 0, u[np.clip(idx, 0, None)], 0.0))
        names.append(str(name))
    grid_arr = np.array(grid)
    order = np.argsort(-grid_arr.mean(axis=1), kind="stable")[:max_links]
    image = ax.imshow(grid_arr[order], aspect="auto", vmin=0, vmax=1, cmap="viridis",
                      extent=(edges[0] / 3600, edges[-1] / 3600, len(order), 0))
    ax.set_yticks(np.arange(len(order)) + 0.5, [names[i] for i in order], fontsize="x-small")
    ax.set_xlabel("time (h)")
    ax.figure.colorbar(image, ax=ax, label="utilization")
    ax.set_title("Busiest links")
    return ax


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
    if len(results.failures):
        drawings["failures.png"] = lambda: failure_timeline(results.failures,
                                                            results.gpu_timeline, ax=_new_axes())
    if len(results.training):
        drawings["training.png"] = lambda: training_curves(results.training, results.jobs,
                                                           ax=_new_axes())
    paths = []
    for name, draw in drawings.items():
        ax = draw()
        ax.figure.savefig(out / name, dpi=110)
        paths.append(out / name)
    return paths
