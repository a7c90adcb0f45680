"""Parameter sweeps (dcsim/sweep, docs/sweeps.md): the sweep file's schema and its errors, the
designs, running in parallel and on Ray with the same table, resuming after a kill, failed
points, the CLI, the response plot, and the example sweeps in sweeps/."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import dcsim
from dcsim.cli import main
from dcsim.errors import ScenarioError
from dcsim.sweep import (
    TIMING_COLUMNS,
    load_sweep,
    plan_sweep,
    read_sweep,
    run_sweep,
    sweep_from_dict,
)
from dcsim.sweep.design import design_points
from tests.conftest import REPO, small_job, small_scenario

SWEEPS = sorted((REPO / "sweeps").glob("*.yaml"))


@pytest.fixture
def base(write_yaml) -> Path:
    """A tiny scenario (3 small jobs, ~0.05 s a run) to sweep over."""
    jobs = [small_job(f"j{i}", arrival_s=10.0 * i, iterations=200 * (i + 1),
                      parallelism={"dp": 8}, global_batch=64) for i in range(3)]
    return write_yaml(small_scenario(jobs), "base.yaml")


@pytest.fixture
def sweep_file(tmp_path: Path, base: Path):
    def write(**fields) -> Path:
        data = {"name": "tiny", "base": base.name,
                "factors": {"scheduler.kind": ["fifo", "sjf"],
                            "cluster.servers.0.count": {"start": 1, "stop": 2, "step": 1}},
                "seeds": [1, 2], **fields}
        path = tmp_path / "tiny.sweep.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write


def same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal in every column but the timings of the machine."""
    keep = [c for c in a.columns if c not in TIMING_COLUMNS]
    assert keep == [c for c in b.columns if c not in TIMING_COLUMNS]
    pd.testing.assert_frame_equal(a[keep].reset_index(drop=True),
                                  b[keep].reset_index(drop=True))


# ----------------------------------------------------------------------------- the schema
BAD = [
    ("bogus: 1\n", "bogus", "unknown key"),
    ("factors: {}\n", "factors", "at least 1 item"),
    ("factors: {scheduler.kind: 5}\n", "factors[scheduler.kind]", "expected a list of values"),
    ("factors: {scheduler.kind: []}\n", "factors[scheduler.kind]", "at least 1 item"),
    ("factors: {seed: [1, 2]}\n", "factors.seed", "replicate seeds are given by `seeds`"),
    ("factors: {cluster.servers.0.count: {start: 1, stop: 4, step: 0}}\n",
     "factors[cluster.servers.0.count]", "step must be > 0"),
    ("factors: {x.y: {start: 1, stop: 4, step: 1, by: 2}}\n", "factors[x.y].by", "unknown key"),
    ("factors: {topology.params.oversubscription: {low: 1, high: 4}}\n",
     "factors[topology.params.oversubscription]", "needs design random or lhs"),
    ("design: lhs\nfactors: {scheduler.kind: [fifo]}\n", "samples", "required for design lhs"),
    ("samples: 4\nfactors: {scheduler.kind: [fifo]}\n", "samples", "only for the random"),
    ("factors: {scheduler.kind: [fifo, fifo]}\n", "factors[scheduler.kind]", "repeats a value"),
    ("factors: {scheduler.kind: [fifo]}\nseeds: {count: 0}\n", "seeds.count", "greater than 0"),
]


@pytest.mark.parametrize(("text", "key", "message"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_a_bad_sweep_file_names_file_line_and_key(tmp_path, base, text, key, message):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nbase: {base.name}\n{text}")
    with pytest.raises(ScenarioError) as err:
        read_sweep(path)
    problem = next(p for p in err.value.problems if p.key == key)
    assert problem.source == str(path) and problem.line is not None
    assert message in problem.message, str(err.value)


def test_a_missing_base_scenario_is_named(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nbase: nowhere.yaml\nfactors: {scheduler.kind: [fifo]}\n")
    with pytest.raises(ScenarioError, match=r"s.yaml:2: base: scenario file not found"):
        read_sweep(path)


def test_a_bad_factor_value_fails_before_anything_runs(sweep_file, tmp_path):
    path = sweep_file(factors={"cluster.servers.0.count": [2, 0],
                               "scheduler.kind": ["fifo", "nope"]})
    with pytest.raises(ScenarioError) as err:
        run_sweep(path, tmp_path / "out")
    text = str(err.value)
    assert f"{path}:4: factors[cluster.servers.0.count]: value 0: cluster.servers[0].count" in text
    assert "factors[scheduler.kind]: value nope: scheduler.kind: unknown scheduler 'nope'" in text
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- designs
def test_grid_is_the_cartesian_product_times_the_seeds(sweep_file):
    plan = plan_sweep(read_sweep(sweep_file()))
    assert len(plan.points) == 2 * 2 * 2
    assert [p.factors["cluster.servers.0.count"] for p in plan.points[:4]] == [1, 1, 2, 2]
    assert [p.seed for p in plan.points[:2]] == [1, 2]
    assert len({p.point_id for p in plan.points}) == 8
    assert plan.points[0].overrides() == ["scheduler.kind=fifo", "cluster.servers.0.count=1"]


def test_ranges_are_inclusive():
    from dcsim.sweep.spec import Range

    assert Range(start=6, stop=12, step=2).levels() == [6, 8, 10, 12]
    assert Range(start=0.1, stop=0.5, step=0.1).levels() == [0.1, 0.2, 0.3, 0.4, 0.5]


@pytest.mark.parametrize("design", ["random", "lhs"])
def test_sampled_designs_are_deterministic(sweep_file, design):
    factors = {"cluster.servers.0.count": [1, 2],
               "workload.jobs.0.iterations": {"low": 10, "high": 1000, "log": True,
                                              "integer": True}}
    path = sweep_file(design=design, samples=6, factors=factors, seeds={"count": 3})
    first = plan_sweep(read_sweep(path))
    assert len(first.points) == 6 * 3
    again = plan_sweep(read_sweep(path))
    assert [p.point_id for p in again.points] == [p.point_id for p in first.points]
    values = [f["workload.jobs.0.iterations"] for f in design_points(read_sweep(path))]
    assert all(isinstance(v, int) and 10 <= v <= 1000 for v in values)
    other = plan_sweep(read_sweep(sweep_file(design=design, samples=6, factors=factors,
                                             seeds={"count": 3}, design_seed=1)))
    assert {p.point_id for p in other.points} != {p.point_id for p in first.points}


def test_lhs_puts_one_sample_in_each_stratum(sweep_file):
    path = sweep_file(design="lhs", samples=8, seeds=[1],
                      factors={"workload.jobs.0.global_batch": {"low": 0, "high": 8},
                               "workload.jobs.1.global_batch": {"low": 0, "high": 8}})
    for key in ("workload.jobs.0.global_batch", "workload.jobs.1.global_batch"):
        strata = sorted(int(f[key]) for f in design_points(read_sweep(path)))
        assert strata == list(range(8))


# ----------------------------------------------------------------------------- running
def test_two_workers_give_the_table_of_one(sweep_file, tmp_path):
    one = run_sweep(sweep_file(), tmp_path / "one", workers=1)
    two = run_sweep(sweep_file(), tmp_path / "two", workers=2)
    same_table(one, two)
    assert one.attrs["sweep"]["run"] == 8 and one.attrs["sweep"]["failed"] == 0
    assert list(one.columns[:4]) == ["point_id", "scheduler.kind", "cluster.servers.0.count",
                                     "seed"]
    assert {"jct_mean_s", "storage_bytes_read.pfs", "runtime_s", "error"} <= set(one.columns)
    same_table(one, load_sweep(tmp_path / "one"))
    assert len((tmp_path / "two" / "points.jsonl").read_text().splitlines()) == 8


def test_resume_after_a_kill_gives_the_uninterrupted_table(tmp_path, capsys):
    sweep = tmp_path / "slow.yaml"  # eight points of ~0.3 s: time to kill it halfway
    sweep.write_text(yaml.safe_dump({
        "name": "slow", "base": str(REPO / "scenarios/placement_study.yaml"),
        "set": {"workload.generator.num_jobs": 200},
        "factors": {"placement.kind": ["packed", "spread"]}, "seeds": {"count": 4}}))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dcsim", "sweep", str(sweep), "--out",
                             str(out), "-q"], cwd=REPO)
    journal = out / "points.jsonl"
    while proc.poll() is None and _lines(journal) < 2:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    recorded = _lines(journal)
    assert 0 < recorded < 8, "the sweep ended before it could be killed"
    assert main(["sweep", str(sweep), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert f"8 points, {8 - recorded} run, {recorded} skipped (resumed), 0 failed" in line
    same_table(load_sweep(out), run_sweep(sweep, tmp_path / "whole"))


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.is_file() else 0


def test_a_changed_design_leaves_out_the_old_points(sweep_file, tmp_path):
    out = tmp_path / "out"
    run_sweep(sweep_file(), out)
    table = run_sweep(sweep_file(seeds=[2, 3]), out)
    report = table.attrs["sweep"]
    assert (report["total"], report["skipped"], report["run"]) == (8, 4, 4)
    assert "4 point(s) recorded" in report["notes"][0] and "not in this sweep's design" in \
        report["notes"][0]
    assert sorted(table["seed"].unique()) == [2, 3]


def test_a_failing_point_is_recorded_and_the_others_finish(sweep_file, tmp_path, monkeypatch,
                                                          capsys):
    real = dcsim.engine.simulate

    def flaky(scenario, progress=None):
        if scenario.seed == 2 and scenario.scheduler.kind == "sjf":
            raise RuntimeError("boom")
        return real(scenario, progress)

    monkeypatch.setattr("dcsim.engine.simulate", flaky)
    path = sweep_file()
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 1
    assert "8 points, 8 run, 0 skipped (resumed), 2 failed" in capsys.readouterr().out
    table = load_sweep(tmp_path / "out")
    failed = table[table["error"].notna()]
    assert list(failed["error"]) == ["RuntimeError: boom"] * 2
    assert table.loc[table["error"].isna(), "jct_mean_s"].notna().all()
    monkeypatch.setattr("dcsim.engine.simulate", real)  # failed points are run again
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 0
    assert "2 run, 6 skipped (resumed), 0 failed" in capsys.readouterr().out


def test_a_cut_journal_line_is_dropped(sweep_file, tmp_path):
    out = tmp_path / "out"
    run_sweep(sweep_file(), out)
    journal = out / "points.jsonl"
    journal.write_text(journal.read_text()[:-20])  # killed while writing the last record
    table = run_sweep(sweep_file(), out)
    assert (table.attrs["sweep"]["skipped"], table.attrs["sweep"]["run"]) == (7, 1)
    assert all(line.startswith("{") for line in journal.read_text().splitlines())


def test_saved_runs_load_as_results(sweep_file, tmp_path):
    table = run_sweep(sweep_file(save_runs=True, seeds=[1]), tmp_path / "out")
    first = table.iloc[0]
    results = dcsim.load_results(tmp_path / "out" / "runs" / first["point_id"])
    assert results.summary()["jct_mean_s"] == pytest.approx(first["jct_mean_s"])


def test_cli_exit_codes(sweep_file, tmp_path, capsys):
    assert main(["sweep", str(sweep_file(bogus=1)), "--out", str(tmp_path / "a")]) == 2
    assert "bogus: unknown key" in capsys.readouterr().err
    assert main(["sweep", str(sweep_file()), "--out", str(tmp_path / "b"), "-q"]) == 0
    assert capsys.readouterr().out == ""


def test_ray_missing_says_how_to_install(sweep_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["sweep", str(sweep_file()), "--out", str(tmp_path / "o"),
                 "--backend", "ray"]) == 2
    assert 'pip install "dcsim[ray]"' in capsys.readouterr().err


def test_ray_gives_the_table_of_the_local_backend(sweep_file, tmp_path):
    pytest.importorskip("ray")
    local = run_sweep(sweep_file(), tmp_path / "local", workers=1)
    remote = run_sweep(sweep_file(), tmp_path / "ray", workers=2, backend="ray")
    same_table(local, remote)


# ----------------------------------------------------------------------------- plot, API
def test_response_draws_one_line_per_hue(sweep_file, tmp_path):
    from matplotlib.figure import Figure

    from dcsim.sweep.plots import mean_ci, response

    table = run_sweep(sweep_file(), tmp_path / "out")
    ax = response(table, "cluster.servers.0.count", "jct_mean_s", hue="scheduler.kind",
                  ax=Figure().add_subplot())
    assert len(ax.lines) == 2 and len(ax.collections) == 2
    ax = response(table, "scheduler.kind", "makespan_s", ax=Figure().add_subplot())
    assert len(ax.lines) == 1 and [t.get_text() for t in ax.get_xticklabels()] == ["fifo", "sjf"]
    mean, half = mean_ci(pd.Series([1.0, 2.0, 3.0]))
    assert mean == 2.0 and half == pytest.approx(4.302653 * 1 / 3**0.5, rel=1e-6)


def test_the_api_is_exported():
    assert dcsim.run_sweep is run_sweep and dcsim.load_sweep is load_sweep


# ----------------------------------------------------------------------------- examples
def test_there_are_example_sweeps():
    assert len(SWEEPS) >= 2


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_example_sweep_validates(path):
    plan = plan_sweep(read_sweep(path))  # expands and validates every point's scenario
    assert 1 <= len(plan.points) <= 100


def test_the_smallest_example_runs(tmp_path):
    table = run_sweep(REPO / "sweeps/checkpoint_vs_failures.yaml", tmp_path / "out")
    assert len(table) == 64 and table["error"].isna().all()
    assert table["goodput"].between(0, 1).all()


def test_validate_accepts_sweep_files(capsys):
    assert main(["validate", *map(str, SWEEPS)]) == 0
    out = capsys.readouterr().out
    assert out.count(": ok (sweep ") == len(SWEEPS)


def test_the_documented_sweep_file_is_valid():
    (block,) = re.findall(r"```yaml\n(.*?)```", (REPO / "docs/sweeps.md").read_text(), re.S)
    plan = plan_sweep(sweep_from_dict(yaml.safe_load(block), "docs/sweeps.md", REPO / "sweeps"))
    assert len(plan.points) == 8 * 3


def test_a_changed_trace_file_changes_the_resume_fingerprint(tmp_path):
    """The journal's records are kept only for the same base scenario, `set`, dcsim version
    and contents of the files the scenario reads: edit the trace and the points run again."""
    import shutil

    from dcsim.sweep import plan_sweep, read_sweep

    trace = tmp_path / "jobs.trace"
    shutil.copy(REPO / "data/traces/gavel/msr_seed0/2869ce.trace", trace)
    base = yaml.safe_load((REPO / "scenarios/gavel_msr.yaml").read_text())
    base["workload"]["trace"]["path"] = str(trace)
    table = tmp_path / "throughputs.json"
    shutil.copy(REPO / "data/traces/gavel/simulation_throughputs.json", table)
    base["engine"]["throughputs"][0]["path"] = str(table)
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    (tmp_path / "s.yaml").write_text("name: s\nbase: base.yaml\n"
                                     "factors: {scheduler.kind: [fifo]}\n")
    before = plan_sweep(read_sweep(tmp_path / "s.yaml"), check=False).context
    assert plan_sweep(read_sweep(tmp_path / "s.yaml"), check=False).context == before
    lines = trace.read_text().splitlines()
    trace.write_text("\n".join(lines[:-1]) + "\n")  # one job fewer
    after = plan_sweep(read_sweep(tmp_path / "s.yaml"), check=False).context
    assert after != before
    table.write_text(table.read_text().replace("4.795294551566172", "4.8"))  # a table edit
    assert plan_sweep(read_sweep(tmp_path / "s.yaml"), check=False).context != after


def _die_once(task):
    """A worker that dies (as if killed, out of memory) the first time it runs point p1 or p9
    (the pool breaks: every unfinished point of it is lost)."""
    import os

    marker = Path(task.runs_dir) / f"{task.point_id}.seen"
    if task.point_id in ("p1", "p9") and not marker.exists():
        marker.write_text("")
        os._exit(1)
    return {"point_id": task.point_id, "metrics": {"ok": 1}, "runtime_s": 0.0, "error": None}


def test_a_dead_worker_costs_a_retry_not_the_sweep(tmp_path):
    from dcsim.sweep.runner import Task, run_pool

    tasks = [Task(f"p{i}", "unused.yaml", (), 1, str(tmp_path)) for i in range(3)]
    got: dict[str, dict] = {}
    run_pool(tasks, 2, lambda r: got.update({r["point_id"]: r}), fn=_die_once)
    assert sorted(got) == ["p0", "p1", "p2"]
    assert all(r["error"] is None for r in got.values())
    once = [Task("p9", "unused.yaml", (), 1, str(tmp_path))]
    run_pool(once, 1, lambda r: got.update({r["point_id"]: r}), retries=0, fn=_die_once)
    assert "BrokenProcessPool" in got["p9"]["error"]


def _children(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_killing_a_sweep_leaves_no_workers_behind(tmp_path):
    """Issue 14: workers were orphaned for over a minute at ~265 MB each."""
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "dcsim", "sweep",
                             str(REPO / "sweeps" / "checkpoint_vs_failures.yaml"), "--workers",
                             "2", "--quiet", "--out", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(workers := _children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(workers) >= 2, "the sweep started no workers"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if Path(f"/proc/{w}/stat").exists()
             and Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"workers {alive} outlived the sweep"


def test_zero_counts_are_zero_in_the_table(tmp_path):
    """Issue 14: a reason that never happened at a point is a count of 0 there, not NaN."""
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(small_scenario([small_job("a"), small_job(
        "b", parallelism={"dp": 16}, global_batch=16)])))
    path = tmp_path / "s.yaml"
    path.write_text("name: zeros\nbase: base.yaml\nfactors: {cluster.servers.0.count: [1, 2]}\n")
    table = dcsim.run_sweep(str(path), tmp_path / "out").set_index("cluster.servers.0.count")
    column = "rejection_reasons.insufficient-gpus"
    assert table.loc[1, column] == 1 and table.loc[2, column] == 0
