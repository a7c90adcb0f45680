"""Plots: each is f(df, ax=None) -> Axes and computes no metrics. Given no `ax`, a function
draws on a new pyplot figure (so notebooks show it); `save_plots` draws on figures that pyplot
does not track, so writing files leaves no global state behind."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from dcsim.results import Results

__all__ = ["utilization", "jct_cdf", "gantt", "breakdown", "training_curves", "topology",
           "link_heatmap", "failure_timeline", "save_plots"]


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


def jct_cdf(jobs: pd.DataFrame, ax: Axes | None = None, by: str | None = None) -> Axes:
    """Empirical CDF of job completion time (completed jobs), optionally one line per `by`."""
    ax = _axes(ax)
    done = jobs[jobs["status"] == "completed"]
    groups = done.groupby(by) if by else [("all jobs", done)]
    for label, group in groups:
        x = np.sort(group["jct_s"].to_numpy() / 3600.0)
        if x.size:
            ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=str(label))
    ax.set_xlabel("job completion time (h)")
    ax.set_ylabel("fraction of jobs")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize="small")
    ax.set_title("JCT CDF")
    return ax


def gantt(segments: pd.DataFrame, jobs: pd.DataFrame, ax: Axes | None = None,
          max_servers: int = 64) -> Axes:
    """Which job ran on which server when (one row per server, colour per job)."""
    ax = _axes(ax)
    names = jobs.set_index("job_id")["name"]
    shown = segments[segments["server_id"] < max_servers]
    colors = [f"C{j % 10}" for j in shown["job_id"]]
    ax.barh(shown["server_id"], (shown["end_s"] - shown["start_s"]) / 3600.0,
            left=shown["start_s"] / 3600.0, color=colors, height=0.8, edgecolor="black",
            linewidth=0.3)
    if 0 < len(shown["job_id"].unique()) <= 12:
        from matplotlib.patches import Patch

        handles = [Patch(color=f"C{j % 10}", label=str(names.get(j, j)))
                   for j in shown["job_id"].unique()]
        ax.legend(handles=handles, fontsize="x-small", loc="upper right")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("time (h)")
    ax.set_ylabel("server")
    ax.invert_yaxis()
    ax.set_title("Jobs on servers")
    return ax


BREAKDOWN = (("step_compute_s", "compute"), ("step_tp_comm_s", "TP/EP comm"),
             ("step_bubble_s", "pipeline bubble"), ("step_dp_comm_s", "DP comm (exposed)"),
             ("step_optimizer_s", "optimizer"), ("step_data_stall_s", "data stall"),
             ("step_overhead_s", "framework overhead"))


def breakdown(jobs: pd.DataFrame, ax: Axes | None = None, max_jobs: int = 30) -> Axes:
    """Stacked bars: one iteration of each job that ran, split by the step-time model."""
    ax = _axes(ax)
    ran = jobs[jobs["step_compute_s"].notna()].head(max_jobs)
    left = np.zeros(len(ran))
    for column, label in BREAKDOWN:
        values = ran[column].to_numpy(dtype=float)
        ax.barh(ran["name"], values, left=left, label=label)
        left += values
    ax.set_xlabel("seconds per iteration")
    ax.invert_yaxis()
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("Where an iteration's time goes")
    return ax


def training_curves(training: pd.DataFrame, jobs: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Loss (left axis) and held-out accuracy (right axis, markers) per iteration of each job
    that really trained (`execute`), one colour per job."""
    ax = _axes(ax)
    names = jobs.set_index("job_id")["name"]
    twin = ax.twinx()
    for i, (job_id, rows) in enumerate(training.groupby("job_id")):
        color = f"C{i % 10}"
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
    ax.legend(fontsize="small", loc="upper right")
    ax.set_axis_off()
    ax.set_title(f"Topology: {graph.number_of_edges()} links")
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


def save_plots(results: Results, out_dir: str | Path) -> list[Path]:
    """Draw the standard plots of a run into PNG files; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    drawings = {
        "utilization.png": lambda: utilization(results.gpu_timeline, ax=_new_axes()),
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
