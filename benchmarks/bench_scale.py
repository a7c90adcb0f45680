"""Whole-trace scale: the Philly trace on 2,048 GPUs with the fabric and failures on, and wall
time against the number of jobs and of GPUs; frontier scale (issue 19): wall per event for the
same jobs on 2k to 128k GPUs, 200k jobs on 16,384 GPUs, and scenarios/frontier_100k.yaml.

Every run is a child process, `python -m dcsim run SCENARIO --quiet --no-plots --out DIR --set
...` (what the `dcsim` command runs), so that its wall time counts imports, loading the trace,
building, simulating, collecting and writing results, and its peak RSS (os.wait4's
ru_maxrss) is its own. `events` and `sim_wall_s` come from its summary.json
(`events_processed`; `wall_s`: `Simulation.run`, the simulation proper).

Overrides (docs/performance.md lists them): `PHILLY_SET` on scenarios/philly.yaml (256 DGX-1,
leaf-spine 16 servers per leaf, 8 spines; FIFO, packed).
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.bench_reference import ROOT, Figure, References, run_child

__all__ = ["PHILLY", "PHILLY_SET", "FAULTS_SET", "first_jobs", "philly", "scaling",
           "plot_scaling", "frontier", "fat_tree_k"]

PHILLY = ROOT / "scenarios" / "philly.yaml"
TRACE = ROOT / "data" / "traces" / "philly" / "philly.csv"
RESULTS = ROOT / "benchmarks" / "results"
DOCS_IMG = ROOT / "docs" / "img"
# the fabric: jobs' data-parallel rings are flows on the leaf-spine, shared max-min fairly
# while they run (engine.network: shared, the default; `timed` would add an event per
# iteration of every multi-server job)
PHILLY_SET = ["engine.network=shared"]
# failures: the Llama 3 per-GPU-hour cause mix (dcsim/faults/llama3.py) at its published rate,
# repairs exponential, 24 h mean (the default); no spares, retries for ever
FAULTS_SET = ["faults.preset=llama3", "faults.preset_scale=1.0"]
REPEATS = 3  # runs per scaling point (the best counts)


def first_jobs(n: int, directory: Path) -> Path:
    """The first n jobs of the Philly trace by submission time, as a trace file."""
    path = directory / f"philly_first_{n}.csv"
    if not path.exists():
        with TRACE.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        header, body = rows[0], sorted(rows[1:], key=lambda r: r[0])  # ISO timestamps
        with path.open("w", newline="") as f:
            csv.writer(f).writerows([header, *body[:n]])
    return path


@dataclass(frozen=True, slots=True)
class ScaleRun:
    jobs: int  # jobs submitted
    servers: int
    wall_s: float  # the whole child process
    sim_wall_s: float  # Simulation.run
    events: int
    max_rss_bytes: int
    summary: dict


def run_philly(overrides: list[str], servers: int, jobs: int | None, work: Path) -> ScaleRun:
    out = work / f"run_{servers}_{jobs}"
    sets = [*PHILLY_SET, f"cluster.servers.0.count={servers}", *overrides]
    if jobs is not None:
        sets.append(f"workload.trace.path={first_jobs(jobs, work)}")
    argv = [sys.executable, "-m", "dcsim", "run", str(PHILLY), "--quiet", "--no-plots",
            "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    child = run_child(argv)
    summary = json.loads((out / "summary.json").read_text())
    shutil.rmtree(out)
    return ScaleRun(summary["jobs_submitted"], servers, child.wall_s, summary["wall_s"],
                    summary["events_processed"], child.max_rss_bytes, summary)


def philly(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    servers, jobs = (64, 500) if quick else (256, None)
    with tempfile.TemporaryDirectory() as tmp:
        r = run_philly(FAULTS_SET, servers, jobs, Path(tmp))
    what = f"{r.jobs} jobs on {servers * 8} GPUs, fabric + failures"
    s = r.summary
    return [
        Figure("philly", "wall_s", r.wall_s, "s", r.wall_s / refs.cpu_s, "cpu", target=60.0,
               counts=f"child `dcsim run`: {what}"),
        Figure("philly", "peak_rss_gb", r.max_rss_bytes / 1e9, "GB",
               r.max_rss_bytes / refs.rss_base_bytes, "rss_base", target=2.0,
               counts="ru_maxrss of the child"),
        Figure("philly", "sim_wall_s", r.sim_wall_s, "s", r.sim_wall_s / refs.cpu_s, "cpu",
               counts=f"Simulation.run: {r.events} events, {s['failures']} failures, "
               f"{s['interruptions']} interruptions"),
        Figure("philly", "events_per_s", r.events / r.sim_wall_s, "1/s",
               r.events / r.sim_wall_s * refs.cpu_s, "cpu", better="higher",
               counts="events_processed / Simulation.run wall"),
    ]


def scaling_points(quick: bool) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(servers, jobs) of the jobs series and of the servers series."""
    if quick:
        return [(32, 200), (32, 400)], [(16, 400), (32, 400)]
    return ([(256, 10_000), (256, 20_000), (256, 40_000)],
            [(64, 20_000), (128, 20_000), (256, 20_000)])


def scaling(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    by_jobs, by_servers = scaling_points(quick)
    runs: dict[tuple[int, int], ScaleRun] = {}
    repeats = 1 if quick else REPEATS
    with tempfile.TemporaryDirectory() as tmp:
        for servers, jobs in dict.fromkeys(by_jobs + by_servers):
            # the best of a few runs: the same events each time, so the fastest is the one
            # least disturbed by other work on the machine
            runs[servers, jobs] = min((run_philly([], servers, jobs, Path(tmp))
                                       for _ in range(repeats)), key=lambda r: r.sim_wall_s)
    figures = []
    for (servers, jobs), r in runs.items():
        us = r.sim_wall_s / r.events * 1e6
        figures.append(Figure("scaling", f"jobs={jobs},gpus={servers * 8}.sim_wall_s",
                              r.sim_wall_s, "s", r.sim_wall_s / refs.cpu_s, "cpu",
                              counts=f"{r.events} events, {us:.1f} us/event; process "
                              f"{r.wall_s:.1f} s"))
    for series, points in (("jobs", by_jobs), ("gpus", by_servers)):
        per_event = [runs[p].sim_wall_s / runs[p].events for p in points]
        spread = max(per_event) / min(per_event)  # 1: wall time exactly linear in events
        figures.append(Figure("scaling", f"{series}.per_event_spread", spread, "x", spread,
                              "cheapest point", target=1.5,
                              counts="wall per event: costliest / cheapest point"))
    path = out_dir / ("scaling-quick.png" if quick else "scaling.png")
    plot_scaling(runs, by_jobs, by_servers, path)
    if not quick and out_dir == RESULTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / "scaling.png")
    return figures


def plot_scaling(runs: dict[tuple[int, int], ScaleRun], by_jobs: list[tuple[int, int]],
                 by_servers: list[tuple[int, int]], path: Path) -> None:
    """Simulation wall time against events, one panel per series, with the line through the
    origin and the smallest point (what linear in events would give)."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, points, label, title in (
            (axes[0], by_jobs, lambda s, j: f"{j:,} jobs", "first N Philly jobs"),
            (axes[1], by_servers, lambda s, j: f"{s * 8:,} GPUs", "GPUs (servers x 8)")):
        events = [runs[p].events for p in points]
        walls = [runs[p].sim_wall_s for p in points]
        ax.plot(events, walls, "o-", label="measured")
        slope = walls[0] / events[0]
        ax.plot([0, max(events)], [0, slope * max(events)], "--", color="grey",
                label="linear in events")
        for p, x, y in zip(points, events, walls, strict=True):
            ax.annotate(label(*p), (x, y), textcoords="offset points", xytext=(4, -12),
                        fontsize=8)
        ax.set(xlabel="events processed", ylabel="simulation wall time (s)", title=title)
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


# --- frontier scale (issue 19): cost per event against cluster size, and the big runs -------

FRONTIER = ROOT / "scenarios" / "frontier_100k.yaml"
BIG_H100 = ["cluster.servers.0.type=dgx-h100", "topology.kind=leaf-spine",
            "topology.params={servers_per_leaf: 32, spines: 16}"]


def fat_tree_k(servers: int) -> int:
    """The smallest even k whose fat-tree holds `servers` hosts (k^3/4): the fabric grows
    with the cluster."""
    k = 4
    while k ** 3 // 4 < servers:
        k += 2
    return k


def run_frontier(sets: list[str], work: Path, name: str) -> ScaleRun:
    """scenarios/frontier_100k.yaml as a child `dcsim run` with these overrides."""
    out = work / name
    argv = [sys.executable, "-m", "dcsim", "run", str(FRONTIER), "--quiet", "--no-plots",
            "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    child = run_child(argv, timeout_s=1800.0)
    summary = json.loads((out / "summary.json").read_text())
    shutil.rmtree(out)
    servers = summary["total_gpus"] // 8
    return ScaleRun(summary["jobs_submitted"], servers, child.wall_s, summary["wall_s"],
                    summary["events_processed"], child.max_rss_bytes, summary)


def cluster_points(quick: bool) -> tuple[int, list[int]]:
    """(jobs, servers of each point) of the cluster-size series: 2k to 128k GPUs."""
    if quick:
        return 300, [16, 64]
    return 20_000, [256, 2048, 8000, 16000]


def cluster_series(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    """The same jobs (the frontier scenario's generator at Philly's own rate, failures on) on
    clusters of 2k to 128k GPUs, each on a fat-tree sized to it."""
    jobs, sizes = cluster_points(quick)
    runs: dict[int, ScaleRun] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for servers in sizes:
            sets = [f"cluster.servers.0.count={servers}",
                    f"topology.params.k={fat_tree_k(servers)}",
                    f"workload.generator.num_jobs={jobs}", "workload.generator.load=1",
                    f"faults.spares={max(1, servers // 100)}"]
            runs[servers] = min((run_frontier(sets, Path(tmp), f"size_{servers}")
                                 for _ in range(1 if quick else 2)),
                                key=lambda r: r.sim_wall_s)
    figures = []
    for servers, r in runs.items():
        us = r.sim_wall_s / r.events * 1e6
        figures.append(Figure("frontier", f"gpus={servers * 8}.us_per_event", us, "us",
                              r.sim_wall_s / r.events / refs.cpu_s, "cpu",
                              counts=f"{r.jobs} jobs, fat-tree k={fat_tree_k(servers)}: "
                              f"Simulation.run {r.sim_wall_s:.1f} s over {r.events} events; "
                              f"process {r.wall_s:.1f} s, {r.max_rss_bytes / 1e9:.2f} GB"))
    per_event = [r.sim_wall_s / r.events for r in runs.values()]
    spread = max(per_event) / min(per_event)
    figures.append(Figure("frontier", "cluster.per_event_spread", spread, "x", spread,
                          "cheapest point", target=1.3,
                          counts=f"wall per event, {sizes[0] * 8:,} to {sizes[-1] * 8:,} GPUs: "
                          "costliest / cheapest point"))
    path = out_dir / ("scaling-cluster-quick.png" if quick else "scaling-cluster.png")
    plot_cluster_series(runs, path)
    if not quick and out_dir == RESULTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / "scaling-cluster.png")
    return figures


def plot_cluster_series(runs: dict[int, ScaleRun], path: Path) -> None:
    """Wall per event (Simulation.run) and whole-process wall against GPUs, log x."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(9, 3.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    gpus = [s * 8 for s in runs]
    left.plot(gpus, [r.sim_wall_s / r.events * 1e6 for r in runs.values()], "o-",
              label="Simulation.run / events")
    left.set(xscale="log", xlabel="GPUs", ylabel="wall per event (us)",
             title=f"the same {next(iter(runs.values())).jobs:,} jobs")
    left.set_ylim(bottom=0)
    left.legend(fontsize=8)
    right.plot(gpus, [r.wall_s for r in runs.values()], "o-", label="whole process")
    right.plot(gpus, [r.sim_wall_s for r in runs.values()], "s--", label="Simulation.run")
    right.set(xscale="log", xlabel="GPUs", ylabel="wall (s)", title="building included")
    right.set_ylim(bottom=0)
    right.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def frontier(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    """Issue 19's figures: cost per event against cluster size; 200k jobs on 16,384 GPUs
    with the fabric and failures; the frontier scenario in full (quick: small copies)."""
    figures = cluster_series(refs, quick, out_dir)
    with tempfile.TemporaryDirectory() as tmp:
        # 200k Philly-like jobs at Philly's rate on 2,048 DGX H100, leaf-spine, failures
        jobs_16k, servers_16k = (500, 64) if quick else (200_000, 2048)
        r = run_frontier(BIG_H100 + [f"cluster.servers.0.count={servers_16k}",
                                     f"workload.generator.num_jobs={jobs_16k}",
                                     "workload.generator.load=1", "faults.spares=20"],
                         Path(tmp), "h100_16k")
        figures += [
            Figure("frontier", "jobs_200k_gpus_16k.wall_s", r.wall_s, "s", r.wall_s / refs.cpu_s,
                   "cpu", target=30.0,
                   counts=f"child `dcsim run`: {r.jobs} jobs on {servers_16k * 8:,} GPUs, "
                   f"leaf-spine, failures; Simulation.run {r.sim_wall_s:.1f} s, "
                   f"{r.events} events, {r.summary['failures']} failures"),
            Figure("frontier", "jobs_200k_gpus_16k.peak_rss_gb", r.max_rss_bytes / 1e9, "GB",
                   r.max_rss_bytes / refs.rss_base_bytes, "rss_base",
                   counts="ru_maxrss of the child")]
        sets = ([f"cluster.servers.0.count={16 * 8}", "topology.params.k=8",
                 "workload.generator.num_jobs=500", "workload.generator.load=2"]
                if quick else [])
        r = run_frontier(sets, Path(tmp), "frontier")
        figures += [
            Figure("frontier", "frontier_100k.wall_s", r.wall_s, "s", r.wall_s / refs.cpu_s,
                   "cpu", target=90.0,
                   counts=f"child `dcsim run scenarios/frontier_100k.yaml`: {r.jobs} jobs on "
                   f"{r.servers * 8:,} GPUs; Simulation.run {r.sim_wall_s:.1f} s, {r.events} "
                   f"events, {r.summary['failures']} failures, "
                   f"{r.summary['interruptions']} interruptions"),
            Figure("frontier", "frontier_100k.peak_rss_gb", r.max_rss_bytes / 1e9, "GB",
                   r.max_rss_bytes / refs.rss_base_bytes, "rss_base", target=4.0,
                   counts="ru_maxrss of the child")]
    return figures
