"""Plots draw what their tables hold (lines, bars, labels), and `compare` puts runs side by side."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

import dcsim  # noqa: E402
from dcsim import plotting  # noqa: E402
from dcsim.results import compare  # noqa: E402
from tests.conftest import REPO, small_job, small_scenario  # noqa: E402


def _ax():
    return Figure().add_subplot()


def _timeline(queued=(0, 2, 1, 0)) -> pd.DataFrame:
    n = len(queued)
    return pd.DataFrame({"time_s": [3600.0 * i for i in range(n)],
                         "allocated_gpus": [8 * (i % 2) for i in range(n)],
                         "total_gpus": [16] * n, "running_jobs": [i % 2 for i in range(n)],
                         "queued_jobs": list(queued)})


def _jobs(jct_h=(1.0, 2.0, 3.0), status=None) -> pd.DataFrame:
    n = len(jct_h)
    return pd.DataFrame({"job_id": range(n), "name": [f"j{i}" for i in range(n)],
                         "status": status or ["completed"] * n,
                         "jct_s": [3600.0 * h for h in jct_h], "user": ["a", "b", "a"][:n]})


@pytest.fixture(scope="module")
def tiny() -> dcsim.Results:
    """Three jobs on two servers, the third queueing behind the first two."""
    jobs = [small_job("a", parallelism={"dp": 8}, global_batch=64, iterations=2000),
            small_job("b", parallelism={"dp": 8}, global_batch=64, iterations=1000),
            small_job("c", arrival_s=10.0, parallelism={"dp": 16}, global_batch=128)]
    return dcsim.simulate(dcsim.scenario_from_dict(small_scenario(jobs)))


def test_queue_length_draws_queued_and_running_steps():
    ax = plotting.queue_length(_timeline(), ax=_ax())
    assert [line.get_label() for line in ax.get_lines()] == ["queued jobs", "running jobs"]
    assert list(ax.get_lines()[0].get_ydata()) == [0, 2, 1, 0]
    assert list(ax.get_lines()[0].get_xdata()) == [0.0, 1.0, 2.0, 3.0]  # hours
    assert ax.get_ylabel() == "jobs" and ax.get_xlabel() == "time (h)"


def test_timeline_compare_draws_one_line_per_run():
    runs = {"fifo": _timeline(), "las": _timeline((0, 0, 1, 0)), "srtf": _timeline()}
    ax = plotting.timeline_compare(runs, "queued_jobs", ax=_ax())
    assert [line.get_label() for line in ax.get_lines()] == ["fifo", "las", "srtf"]
    assert list(ax.get_lines()[1].get_ydata()) == [0, 0, 1, 0]
    assert ax.get_ylabel() == "queued jobs"
    ax = plotting.timeline_compare(runs, ax=_ax())
    assert ax.get_ylabel() == "allocated GPUs" and len(ax.get_lines()) == 3


def test_timeline_compare_names_the_valid_columns():
    with pytest.raises(ValueError, match="queued_jobs"):
        plotting.timeline_compare({"a": _timeline()}, "queue", ax=_ax())


def test_jct_cdf_compare_one_line_per_run_with_completed_jobs():
    runs = {"fifo": _jobs(), "sjf": _jobs((0.5, 1.0, 1.5)),
            "none": _jobs(status=["rejected"] * 3)}  # nothing completed: no line
    ax = plotting.jct_cdf_compare(runs, ax=_ax(), logx=True)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["fifo", "sjf"]
    assert list(lines[1].get_xdata()) == [0.5, 1.0, 1.5]
    assert list(lines[0].get_ydata()) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fifo", "sjf"]


def test_jct_cdf_by_group_and_only_completed_jobs():
    jobs = _jobs(status=["completed", "completed", "failed"])
    ax = plotting.jct_cdf(jobs, ax=_ax(), by="user")
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    assert list(ax.get_lines()[0].get_xdata()) == [1.0]  # job 2 (user a) failed
    assert ax.get_xscale() == "linear"


def test_breakdown_stacks_every_step_column_the_table_has(tiny):
    ran = tiny.jobs["step_compute_s"].notna().sum()
    ax = plotting.breakdown(tiny.jobs, ax=_ax())
    labels = [label for _, label in plotting.BREAKDOWN]
    assert "checkpoint" in labels and "data stall" in labels and "pipeline bubble" in labels
    assert len(ax.patches) == ran * len(plotting.BREAKDOWN)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == labels
    # a results folder saved before step_checkpoint_s: that segment is left out
    ax = plotting.breakdown(tiny.jobs.drop(columns="step_checkpoint_s"), ax=_ax())
    assert len(ax.patches) == ran * (len(plotting.BREAKDOWN) - 1)


def test_breakdown_bars_add_up_to_the_iteration_time(tiny):
    ax = plotting.breakdown(tiny.jobs, ax=_ax())
    ran = tiny.jobs[tiny.jobs["step_compute_s"].notna()]
    n = len(ran)
    ends = [max(p.get_x() + p.get_width() for p in ax.patches[i::n]) for i in range(n)]
    assert ends == pytest.approx(list(ran["iteration_time_s"]), rel=1e-9)


def _segments(servers: int, per_server: int) -> pd.DataFrame:
    rows = [(s * per_server + k, s, 8, 100.0 * k, 100.0 * k + 90.0)
            for s in range(servers) for k in range(per_server)]
    return pd.DataFrame(rows, columns=["job_id", "server_id", "num_gpus", "start_s", "end_s"])


def test_gantt_one_bar_collection_per_server_and_a_legend_for_few_jobs():
    segments = _segments(servers=3, per_server=2)
    jobs = pd.DataFrame({"job_id": range(6), "name": [f"job{i}" for i in range(6)]})
    ax = plotting.gantt(segments, jobs, ax=_ax())
    assert len(ax.collections) == 3
    assert [len(c.get_paths()) for c in ax.collections] == [2, 2, 2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"job{i}" for i in range(6)]
    assert ax.get_title() == "Jobs on servers"


def test_gantt_many_jobs_and_servers_cut_to_max_servers():
    segments = _segments(servers=100, per_server=30)  # 3,000 jobs
    jobs = pd.DataFrame({"job_id": range(3000), "name": [f"j{i}" for i in range(3000)]})
    ax = plotting.gantt(segments, jobs, ax=_ax(), max_servers=64)
    assert len(ax.collections) == 64
    assert sum(len(c.get_paths()) for c in ax.collections) == 64 * 30
    names = [t.get_text() for t in ax.get_legend().get_texts()]  # the first 12, and a count
    assert names == [f"j{i}" for i in range(12)] + ["... 1908 more jobs"]
    faces = {tuple(f) for c in ax.collections for f in c.get_facecolors()}
    assert len(faces) > 1000  # every job its own colour, not 10 recycled
    assert ax.get_title() == "Jobs on servers (0-63 of 100)"


def test_gantt_jobs_sharing_a_server_do_not_overlap():
    segments = pd.DataFrame({"job_id": [0, 1, 2, 3], "server_id": [0, 0, 0, 0],
                             "num_gpus": [4, 2, 2, 8], "start_s": [0.0, 0.0, 100.0, 7200.0],
                             "end_s": [3600.0, 7200.0, 3000.0, 9000.0]})
    jobs = pd.DataFrame({"job_id": range(4), "name": [f"j{i}" for i in range(4)]})
    ax = plotting.gantt(segments, jobs, ax=_ax())
    boxes = [p.get_extents() for c in ax.collections for p in c.get_paths()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
            overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
            assert overlap_x <= 1e-9 or overlap_y <= 1e-9, (a, b)


def test_parity_one_scatter_per_metric_and_the_guides():
    rows = pd.DataFrame({"metric": ["iteration s", "iteration s", "busbw GB/s"],
                         "measured": [1.4, 2.0, 230.0], "predicted": [1.5, 1.9, 229.0]})
    ax = plotting.parity(rows, ax=_ax())
    assert len(ax.collections) == 2  # one scatter per metric
    assert [c.get_label() for c in ax.collections] == ["busbw GB/s", "iteration s"]
    assert len(ax.get_lines()) == 3  # predicted = measured, and +-10%
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlabel() == "measured (published)"


def test_save_plots_writes_the_queue_length_plot(tiny, tmp_path):
    names = {p.name for p in plotting.save_plots(tiny, tmp_path)}
    assert {"utilization.png", "queue_length.png", "jct_cdf.png", "gantt.png",
            "breakdown.png"} <= names
    assert all((tmp_path / n).stat().st_size > 0 for n in names)


def test_plots_of_a_simulated_run(tiny):
    ax = plotting.queue_length(tiny.gpu_timeline, ax=_ax())
    assert max(ax.get_lines()[0].get_ydata()) == 1  # job c queued behind a and b
    ax = plotting.gantt(tiny.segments, tiny.jobs, ax=_ax())
    assert len(ax.collections) == tiny.segments["server_id"].nunique()
    ax = plotting.jct_cdf_compare({"one": tiny.jobs, "two": tiny.jobs}, ax=_ax())
    assert len(ax.get_lines()) == 2


def test_compare_one_row_per_run_with_flattened_summaries(tiny):
    other = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(
        [small_job("x"), small_job("big", parallelism={"dp": 64}, global_batch=64)])))
    table = compare({"three jobs": tiny, "one rejected": other})
    assert list(table.index) == ["three jobs", "one rejected"] and table.index.name == "run"
    assert table.loc["three jobs", "jct_mean_s"] == tiny.summary()["jct_mean_s"]
    assert table.loc["one rejected", "jobs_rejected"] == 1
    # nested dicts become key.subkey columns; a key one run lacks is NaN there
    reason = "rejection_reasons.insufficient-gpus"
    assert table.loc["one rejected", reason] == 1 and math.isnan(table.loc["three jobs", reason])
    assert "storage_bytes_read.pfs" in table and "rejection_reasons" not in table
    assert not any(isinstance(v, dict) for v in table.to_numpy().ravel())


def test_compare_is_public_and_needs_runs():
    assert dcsim.compare is compare and "compare" in dcsim.__all__
    with pytest.raises(ValueError, match="no runs"):
        compare({})


def test_the_analysis_doc_snippet_runs(monkeypatch):
    """docs/analysis.md's example runs as written (from the repo root)."""
    repo = Path(__file__).resolve().parent.parent
    (block,) = re.findall(r"```python\n(.*?)```", (repo / "docs/analysis.md").read_text(),
                          flags=re.S)
    monkeypatch.chdir(repo)
    names: dict = {}
    exec(compile(block, "docs/analysis.md", "exec"), names)
    assert list(names["table"].index) == ["isolated", "shared", "timed"]
    assert len(names["ax"].get_lines()) == 3
    import matplotlib.pyplot as plt

    plt.close(names["ax"].figure)


def test_breakdown_says_when_it_shows_only_the_first_jobs():
    jobs = pd.DataFrame({"name": [f"j{i}" for i in range(40)], "step_compute_s": 1.0,
                         "step_dp_comm_s": 0.5})
    ax = plotting.breakdown(jobs, ax=_ax(), max_jobs=30)
    assert ax.get_title() == "Where an iteration's time goes (first 30 of 40 jobs)"
    assert plotting.breakdown(jobs.head(5), ax=_ax()).get_title() == (
        "Where an iteration's time goes")


def test_topology_names_its_nodes_while_they_fit():
    from dcsim.fabric.topology import TOPOLOGIES, ServerPort

    ports = [ServerPort(server_id=i, nic_byte_s=1e9, nic_latency_s=0.0) for i in range(4)]
    topo = TOPOLOGIES.get("leaf-spine")
    graph = topo(topo.Params(servers_per_leaf=2, spines=2)).build(ports)
    ax = plotting.topology(graph, ax=_ax())
    assert {t.get_text() for t in ax.texts} >= {"server0", "server3"}
    assert len(ax.texts) == graph.number_of_nodes()


def test_topology_picture_is_the_same_on_every_run(tmp_path):
    """The layered layout does not depend on Python's string hashing (same seed, same
    bytes out, plots included)."""
    code = ("import sys; from dcsim.cli import main; sys.exit(main(['topology', "
            "'scenarios/mixed_datacenter.yaml', '--plot', sys.argv[1]]))")
    pngs = []
    for seed in ("1", "2"):
        out = tmp_path / f"topology{seed}.png"
        proc = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, timeout=120,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": seed})
        assert proc.returncode == 0, proc.stderr
        pngs.append(out.read_bytes())
    assert pngs[0] == pngs[1]
