"""The network: its graph, and the utilization of its busiest links over time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dcsim.plotting.common import _axes

if TYPE_CHECKING:
    from matplotlib.axes import Axes


MAX_NODE_LABELS = 64


def layered_layout(graph, layer_of: dict) -> dict:
    """Positions with each node's layer (`layer_of`, 0 if absent) as its height, the nodes of
    a layer side by side in the graph's node order, centred, one spacing for all layers (the
    widest spans [-1, 1]): the same picture on every run (networkx's multipartite_layout
    orders a layer by string hashes)."""
    layers: dict[int, list] = {}
    for n in graph:
        layers.setdefault(layer_of.get(n, 0), []).append(n)
    top = max(layers) or 1
    step = 2.0 / max(1, max(len(nodes) for nodes in layers.values()) - 1)
    pos = {}
    for layer, nodes in sorted(layers.items()):
        for i, n in enumerate(nodes):
            pos[n] = np.array([(i - (len(nodes) - 1) / 2) * step, layer / top])
    return pos


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
    if switches or "gpu" in by_kind:
        pos = layered_layout(graph, nx.multi_source_dijkstra_path_length(graph, bottom,
                                                                          weight=None))
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
