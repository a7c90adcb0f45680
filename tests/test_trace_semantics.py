"""Each cluster-trace format against its SOURCE's own accounting (docs/traces.md).

tests/test_traces.py checks that the readers parse; this file checks that what they make of a
row is what the trace's source meant by it, on the real rows shipped in data/traces/ (or, for
PAI and Helios, which are too big to ship, on hand-made excerpts in their published schemas).
Expected values are computed here from the raw files with the source's own rules, not from
dcsim's reading of them.
"""

from __future__ import annotations

import ast
import csv
import json
import math
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

import dcsim
from dcsim.perf.measured import ThroughputTable
from dcsim.perf.tables import read_table
from dcsim.workload.formats import FORMATS
from dcsim.workload.mapping import JOB_TYPES
from dcsim.workload.traces import load_trace
from tests.conftest import REPO, small_scenario
from tests.test_traces import DATA, TRACES, trace_scenario, workload

GAVEL_TRACE = TRACES / "gavel" / "msr_seed0" / "2869ce.trace"
GAVEL_JSON = TRACES / "gavel" / "simulation_throughputs.json"
POLLUX_PROFILES = TRACES / "pollux" / "profiles"
EPOCH = datetime(1970, 1, 1)  # naive: the traces give no time zone
P100_SERVERS = {"servers": [{"type": "dgx-1-p100", "count": 16}]}  # the P100 reference GPU


def excerpt(src: Path, dst: Path, keep) -> Path:
    """`dst`: the header of `src` and its data rows (1-based, file order) where keep(i, row)."""
    with src.open(newline="") as f:
        rows = list(csv.reader(f))
    with dst.open("w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(rows[0])
        out.writerows(r for i, r in enumerate(rows[1:], start=1) if r and keep(i, r))
    return dst


def raw_rows(path: Path) -> dict[str, dict[str, str]]:
    """A headed CSV's rows by the name the formats give them ("<prefix>-<line - 1>")."""
    with path.open(newline="") as f:
        return {str(i - 1): row for i, row in enumerate(csv.DictReader(f), start=2)}


def simulate_alone(path: Path, fmt: str, cluster: dict) -> dcsim.Results:
    """The trace on `cluster` with the network isolated (each job sees it alone) and FIFO (no
    preemption): each job's run_s is its run time alone on the cluster's GPU."""
    data = small_scenario(cluster=cluster, engine={"network": "isolated"},
                          workload={"trace": {"path": path.name, "format": fmt}})
    return dcsim.simulate(dcsim.scenario_from_dict(data, base_dir=str(path.parent)))


# ----------------------------------------------------------------------------- gavel
def gavel_rows() -> list[tuple[int, str, int, float, int]]:
    """(line, job_type, total_steps, arrival_time, scale_factor) of every msr row, read as
    Gavel's legacy msr parser reads the 7 tab-separated fields."""
    out = []
    for i, line in enumerate(GAVEL_TRACE.read_text().splitlines(), start=1):
        job_type, _cmd, _arg, _data_dir, steps, arrival, scale = line.split("\t")
        out.append((i, job_type, int(steps), float(arrival), int(scale)))
    return out


def gavel_p100() -> dict[tuple[str, int], float]:
    """Gavel's isolated ('null') throughputs on p100 by (job_type, scale_factor): worker
    steps per second summed over the job's workers."""
    raw = json.loads(GAVEL_JSON.read_text())["p100"]
    return {ast.literal_eval(k): v["null"] for k, v in raw.items()}


def test_gavel_iterations_times_the_measured_step_is_gavels_run_time():
    thr = gavel_p100()
    table = ThroughputTable(read_table(GAVEL_JSON, "gavel").entries)
    jobs = {j.name: j for j in workload(trace_scenario(GAVEL_TRACE, "gavel")).jobs}
    rows = gavel_rows()
    assert len(jobs) == len(rows) == 533
    checked = fractional = 0
    for line, job_type, steps, arrival, n in rows:
        job = jobs[f"gavel-{line - 1}"]
        assert (job.num_gpus, job.arrival_s, job.duration_s) == (n, arrival, None)
        # total_steps count every worker's steps: N workers do total_steps / N global steps
        assert job.iterations * n == pytest.approx(steps, rel=1e-12)
        fractional += steps % n != 0
        if (job_type, n) not in thr:
            continue
        found = table.lookup(job.job_type, "p100-pcie-16gb", n, job.global_batch / n, (n,))
        assert found is not None and found.source == "measured", (line, job_type, n)
        # Gavel's isolated run time: total_steps / throughput(p100, (type, N))
        assert job.iterations * found.iteration_s == pytest.approx(steps / thr[job_type, n],
                                                                   rel=1e-6)
        checked += 1
    assert checked == 354  # the other 179 rows' (type, N) are not in Gavel's table
    assert fractional > 0  # some N do not divide total_steps: a partial last global step


def test_gavel_msr_steps_are_a_rate_per_job_type_times_the_philly_duration():
    """How the msr traces were made (no generator is published; docs/traces.md): the jobs that
    match a Philly row of their virtual cluster (arrival after a constant shift, same GPUs)
    have total_steps / duration constant per job type whatever the scale factor, and not
    Gavel's table's rate (summed or per worker) at that scale factor."""
    with (TRACES / "philly" / "philly.csv").open(newline="") as f:
        philly = [((datetime.fromisoformat(r["timestamp"]) - EPOCH).total_seconds(),
                   int(r["num_gpus"]), float(r["duration"]))
                  for r in csv.DictReader(f) if r["cluster"] == "2869ce"]
    rows = gavel_rows()
    shift = Counter(round(t - a) for t, _, _ in philly for _, _, _, a, _ in rows
                    ).most_common(1)[0][0]
    by_arrival: dict[int, list[tuple[int, float]]] = {}
    for t, n, d in philly:
        by_arrival.setdefault(round(t - shift), []).append((n, d))
    rates: dict[str, list[tuple[int, float]]] = {}
    for _, job_type, steps, arrival, n in rows:
        match = by_arrival.get(round(arrival), [])
        if len(match) == 1 and match[0][0] == n:
            rates.setdefault(job_type, []).append((n, steps / match[0][1]))
    assert sum(map(len, rates.values())) == 324  # of 533 (adaptdl's Philly copy is filtered)
    v100 = {ast.literal_eval(k): v["null"]
            for k, v in json.loads(GAVEL_JSON.read_text())["v100"].items()}
    for job_type, got in rates.items():
        values = [r for _, r in got]
        assert max(values) == pytest.approx(min(values), rel=2e-3), job_type
        assert (job_type, 1) not in v100 or values[0] != pytest.approx(v100[job_type, 1],
                                                                       rel=0.05)
    multi = {n for got in rates.values() for n, _ in got}
    assert {1, 8, 32} <= multi  # the same rate at 1, 8 and 32 workers


def test_gavel_msr_simulates_at_gavels_throughputs():
    """The issue's acceptance test: scenarios/gavel_msr.yaml (96 P100 PCIe, measured model over
    Gavel's table): each job Gavel has a throughput for runs total_steps / throughput."""
    res = dcsim.simulate(dcsim.load_scenario(REPO / "scenarios" / "gavel_msr.yaml"))
    jobs = res.jobs.set_index("name")
    thr = gavel_p100()
    in_table, not_in_table = set(), set()
    for line, job_type, steps, _arrival, n in gavel_rows():
        name = f"gavel-{line - 1}"
        if (job_type, n) not in thr:
            not_in_table.add(name)
            continue
        in_table.add(name)
        job = jobs.loc[name]
        assert (job["status"], job["step_source"], job["preemptions"]) == ("completed",
                                                                            "measured", 0)
        assert job["run_s"] == pytest.approx(steps / thr[job_type, n], rel=1e-3), name
    measured = set(jobs.index[jobs["step_source"] == "measured"])
    model = set(jobs.index[jobs["step_source"] == "model"])
    never_ran = jobs[jobs["step_source"] == ""]
    assert measured == in_table and len(measured) == 354
    # the other 179 (Gavel itself would fail on them: no throughput) fall back to the
    # calibrated model, unless that model finds they do not fit in memory (then they are
    # rejected and never get a step source)
    assert model | set(never_ran.index) == not_in_table and len(not_in_table) == 179
    assert not model & set(never_ran.index)
    assert (never_ran["status"] == "rejected").all()
    assert never_ran["reason"].str.startswith("out-of-memory").all()
    assert res.summary()["step_sources"] == {"measured": 354, "interpolated": 0,
                                             "model": len(model)}


# ----------------------------------------------------------------------------- philly
@pytest.fixture(scope="module")
def philly_3000(tmp_path_factory) -> Path:
    return excerpt(TRACES / "philly" / "philly.csv",
                   tmp_path_factory.mktemp("philly") / "philly.csv", lambda i, r: i <= 3000)


def test_philly_gpu_time_is_duration_times_gpus_and_arrivals_count_from_the_first(philly_3000):
    raw = raw_rows(philly_3000)
    jobs = workload(trace_scenario(philly_3000, "philly")).jobs
    assert len(jobs) == len(raw) == 3000
    first = min(datetime.fromisoformat(r["timestamp"]) for r in raw.values())
    for job in jobs:
        row = raw[job.name.removeprefix("philly-")]
        # the source's own GPU time: its duration (wall time) on all its GPUs
        assert float(row["gpu_time"]) == job.duration_s * job.num_gpus
        assert (job.num_gpus, job.duration_s) == (int(row["num_gpus"]), float(row["duration"]))
        assert job.arrival_s == (datetime.fromisoformat(row["timestamp"]) - first
                                 ).total_seconds()
        assert (job.reference_gpu, job.iterations) == ("p100-sxm2-16gb", None)
    assert min(j.arrival_s for j in jobs) == 0.0


def test_philly_jobs_run_their_duration_on_the_reference_gpu(tmp_path):
    """On P100 servers (the reference GPU) a job alone runs its trace duration, to within one
    iteration (dcsim runs round(duration / step) whole steps, the step of the job placed on
    an empty cluster; a multi-GPU job placed among others may get other servers, whose ring
    moves its step by a little: 1% allowed there)."""
    big: dict[int, int] = {}

    def keep(i: int, row: list[str]) -> bool:
        g = int(row[2])
        if 2 <= g <= 32 and big.get(g, 0) < 4:  # a few multi-GPU jobs of each size to 32
            big[g] = big.get(g, 0) + 1
            return True
        return i <= 120

    path = excerpt(TRACES / "philly" / "philly.csv", tmp_path / "philly.csv", keep)
    raw = raw_rows(path)
    res = simulate_alone(path, "philly", P100_SERVERS)
    jobs = res.jobs
    assert len(jobs) == len(raw) and set(jobs["num_gpus"]) >= {1, 2, 4, 8, 16, 32}
    assert (jobs["status"] == "completed").all() and (jobs["preemptions"] == 0).all()
    assert (jobs["gpu_type"] == "p100-sxm2-16gb").all()
    for _, job in jobs.iterrows():
        duration = float(raw[job["name"].removeprefix("philly-")]["duration"])
        slack = 0.01 * duration if job["num_gpus"] > 1 else 0.0
        assert abs(job["run_s"] - duration) <= job["iteration_time_s"] * (1 + 1e-9) + slack, \
            job["name"]


# ----------------------------------------------------------------------------- tiresias
def test_tiresias_duration_is_the_service_time_on_p100():
    path = TRACES / "tiresias" / "60_job.csv"
    with path.open(newline="") as f:
        raw = {r["job_id"]: r for r in csv.DictReader(f)}
    jobs = workload(trace_scenario(path, "tiresias")).jobs
    assert len(jobs) == len(raw) == 60
    for job in jobs:
        row = raw[job.name.removeprefix("tiresias-")]
        # Tiresias's simulator runs a job for `duration` s of service; `iterations` is unused
        assert (job.duration_s, job.iterations) == (float(row["duration"]), None)
        assert (job.reference_gpu, job.num_gpus) == ("p100-sxm2-16gb", int(row["num_gpu"]))
        assert job.arrival_s == float(row["submit_time"])
        assert job.job_type == row["model_name"]
    # interval is the gap to the next submission (unused by both)
    rows = list(raw.values())
    assert all(float(a["interval"]) == float(b["submit_time"]) - float(a["submit_time"])
               for a, b in zip(rows, rows[1:], strict=False))


def test_tiresias_jobs_run_their_duration_alone_on_p100(tmp_path):
    path = tmp_path / "60_job.csv"
    path.write_bytes((TRACES / "tiresias" / "60_job.csv").read_bytes())
    raw = raw_rows(path)
    jobs = simulate_alone(path, "tiresias", P100_SERVERS).jobs
    assert len(jobs) == 60 and (jobs["status"] == "completed").all()
    assert (jobs["preemptions"] == 0).all()
    by_id = {r["job_id"]: r for r in raw.values()}
    for _, job in jobs.iterrows():
        duration = float(by_id[job["name"].removeprefix("tiresias-")]["duration"])
        slack = 0.01 * duration if job["num_gpus"] > 1 else 0.0
        assert abs(job["run_s"] - duration) <= job["iteration_time_s"] * (1 + 1e-9) + slack, \
            job["name"]


# ----------------------------------------------------------------------------- pollux
def last_iteration(app: str, batch: int) -> int:
    """Pollux's measured steps to the end of the run: the last row's `iteration` of
    <app>/validation-<batch>.csv (one row per epoch)."""
    path = POLLUX_PROFILES / app / f"validation-{batch}.csv"
    with path.open(newline="") as f:
        return int(list(csv.DictReader(f))[-1]["iteration"])


def test_pollux_jobs_keep_the_samples_of_the_validation_run():
    path = TRACES / "pollux" / "workload-1.csv"
    with path.open(newline="") as f:
        raw = {r["name"]: r for r in csv.DictReader(f)}
    jobs = workload(trace_scenario(path, "pollux")).jobs
    assert len(jobs) == len(raw) == 160
    exact = 0
    for job in jobs:
        row = raw[job.name]
        app, n, batch = row["application"], int(row["num_replicas"]), int(row["batch_size"])
        samples = last_iteration(app, batch) * batch
        assert (job.job_type, job.num_gpus, job.arrival_s) == (app, n, float(row["time"]))
        # the global batch split into whole per-GPU batches: off by at most half a GPU's share
        assert abs(job.global_batch - batch) <= n / 2
        # the same samples, within half a (dcsim) global step
        assert abs(job.iterations * job.global_batch - samples) <= job.global_batch / 2
        if batch % n == 0:
            assert job.iterations == last_iteration(app, batch)
            exact += 1
    assert exact > 100  # most jobs' batches divide evenly: their steps are Pollux's own


def pollux_placements(app: str) -> dict[int, list[tuple[int, float]]]:
    """placements.csv: placement id -> [(local_bsz, step_time)] sorted by local_bsz."""
    out: dict[int, list[tuple[int, float]]] = {}
    with (POLLUX_PROFILES / app / "placements.csv").open(newline="") as f:
        for r in csv.DictReader(f):
            out.setdefault(int(r["placement"]), []).append((int(r["local_bsz"]),
                                                            float(r["step_time"])))
    return {p: sorted(v) for p, v in out.items()}


@pytest.fixture(scope="module")
def pollux_table() -> ThroughputTable:
    return ThroughputTable(read_table(POLLUX_PROFILES, "pollux").entries)


@pytest.mark.parametrize("app", ["bert", "cifar10", "deepspeech2", "imagenet", "ncf", "yolov3"])
def test_pollux_step_time_on_one_node_is_the_profiles(pollux_table, app):
    """Pollux's simulator (Application.get_throughput): a placement id in placements.csv gives
    the step time by linear interpolation over local_bsz (scipy interp1d), none outside."""
    checked = between = 0
    for placement, rows in pollux_placements(app).items():
        if placement >= 10:  # one node: the id is a single digit, the replicas
            continue
        bsz = [b for b, _ in rows]
        times = [t for _, t in rows]
        for b, t in rows:
            found = pollux_table.lookup(app, "t4-16gb", placement, b, (placement,))
            assert found is not None and found.source == "measured"
            assert found.iteration_s == t
            checked += 1
        for lo, hi in zip(bsz, bsz[1:], strict=False):
            if hi - lo < 2:
                continue
            b = (lo + hi) // 2
            found = pollux_table.lookup(app, "t4-16gb", placement, b, (placement,))
            assert found is not None and found.source == "interpolated"
            assert found.iteration_s == pytest.approx(float(np.interp(b, bsz, times)),
                                                      rel=1e-12)
            between += 1
        assert pollux_table.lookup(app, "t4-16gb", placement, bsz[-1] + 1, (placement,)) is None
        assert pollux_table.lookup(app, "t4-16gb", placement, bsz[0] - 1, (placement,)) is None
    assert checked > 0 and between > 0


def test_pollux_profile_step_times_in_a_simulation(tmp_path):
    """cifar10 on one g4dn.12xlarge-like server (4 T4s), step_model measured over the Pollux
    profiles: jobs.csv's iteration time is placements.csv's step_time (listed local_bsz) or its
    linear interpolation (a local_bsz between two listed ones)."""
    rows = dict(pollux_placements("cifar10")[4])  # placement 4: 4 replicas on one node
    job = {"model": "resnet18-cifar", "job_type": "cifar10", "iterations": 100,
           "precision": "fp32"}
    jobs = [{**job, "name": "listed", "parallelism": {"dp": 4, "micro_batch": 64},
             "global_batch": 256},
            {**job, "name": "between", "parallelism": {"dp": 4, "micro_batch": 100},
             "global_batch": 400}]
    cluster = {"servers": [{"name": "g4dn", "count": 1, "gpus_per_server": 4, "gpu": "t4-16gb",
                            "intra_node": "pcie", "nics": [{"type": "edr100", "count": 1}]}]}
    data = small_scenario(jobs=jobs, cluster=cluster, engine={
        "step_model": "measured", "network": "isolated",
        "throughputs": [{"path": str(POLLUX_PROFILES), "format": "pollux"}]})
    res = dcsim.simulate(dcsim.scenario_from_dict(data, base_dir=str(tmp_path)))
    out = res.jobs.set_index("name")
    assert out.loc["listed", "step_source"] == "measured"
    assert out.loc["listed", "iteration_time_s"] == pytest.approx(rows[64], rel=1e-9)
    assert out.loc["between", "step_source"] == "interpolated"
    assert out.loc["between", "iteration_time_s"] == pytest.approx(
        rows[91] + (100 - 91) / (129 - 91) * (rows[129] - rows[91]), rel=1e-9)


# ----------------------------------------------------------------------------- alibaba pai
def pai_jobs(path: Path) -> dict[str, dict]:
    """The release's accounting, from the raw cells: a job's GPUs = sum over its tasks of
    inst_num x ceil(plan_gpu / 100) (plan_gpu is percent of one GPU); a start_time of 0 is
    unset (the authors' get_dfa reads it and its end as NaN); duration = latest end - earliest
    start. Jobs with a malformed cell are left out (dcsim reports them as bad rows)."""
    tasks: dict[str, list[list[str]]] = {}
    with path.open(newline="") as f:
        for row in csv.reader(f):
            tasks.setdefault(row[0], []).append(row)
    out = {}
    for name, rows in tasks.items():
        try:
            cells = [(float(r[2]), float(r[8] or 0), float(r[4]) if r[4] else None,
                      float(r[5]) if r[5] else None) for r in rows]
        except ValueError:
            continue
        cells = [(i, g, None, None) if s == 0 else (i, g, s, e) for i, g, s, e in cells]
        gpus = sum(int(i) * math.ceil(g / 100) for i, g, _, _ in cells)
        starts = [s for _, _, s, _ in cells if s is not None]
        ends = [e for _, _, _, e in cells]
        if gpus and starts and None not in ends:
            out[name] = {"gpus": gpus, "start": min(starts), "end": max(ends)}
    return out


def test_alibaba_pai_gpus_and_duration_follow_the_release(tmp_path):
    path = tmp_path / "pai.csv"
    text = (DATA / "pai_task_handmade.csv").read_text()
    # j7: a task whose start_time is 0 (unset): not a launch at time 0 (that would make it
    # the trace's first arrival and give it a duration of its whole end time)
    path.write_text(text + "j7,worker,1.0,Failed,0.0,1950.0,400.0,20.0,100.0,V100\n")
    expect = pai_jobs(path)
    assert set(expect) == {"j1", "j2", "j5"}
    assert expect["j1"] == {"gpus": 2, "start": 1000.0, "end": 1610.0}  # ps 0% + 2 x 100%
    load = load_trace(trace_scenario(path, "alibaba-pai", skip_bad_rows=True))
    jobs = {j.name.removeprefix("pai-"): j for j in load.jobs}
    assert set(jobs) == set(expect)
    t0 = min(e["start"] for e in expect.values())
    assert t0 == 1000.0
    for name, e in expect.items():
        job = jobs[name]
        assert job.num_gpus == e["gpus"]
        assert job.duration_s == e["end"] - e["start"]
        assert job.arrival_s == e["start"] - t0
    reasons = load.skip_reasons()
    assert reasons["skipped: job j7: no start or end time (status Failed)"] == 1


# ----------------------------------------------------------------------------- helios
def test_helios_duration_is_end_minus_start():
    path = DATA / "helios_handmade.csv"
    with path.open(newline="") as f:
        raw = {r["job_id"]: r for r in csv.DictReader(f)}
    jobs = workload(trace_scenario(path, "helios", skip_bad_rows=True)).jobs
    assert len(jobs) == 4
    kept = [raw[j.name.removeprefix("helios-")] for j in jobs]
    first = min(datetime.fromisoformat(r["submit_time"]) for r in kept)
    for job, row in zip(jobs, kept, strict=True):
        start = datetime.fromisoformat(row["start_time"])
        end = datetime.fromisoformat(row["end_time"])
        # HeliosData README: duration = end_time - start_time, queue = start - submit
        assert float(row["duration"]) == (end - start).total_seconds() == job.duration_s
        assert float(row["queue"]) == (start - datetime.fromisoformat(row["submit_time"])
                                       ).total_seconds()
        assert job.arrival_s == (datetime.fromisoformat(row["submit_time"]) - first
                                 ).total_seconds()
        assert job.num_gpus == int(row["gpu_num"])


# ----------------------------------------------------------------------------- precision
CLUSTER_TRACES = [
    ("philly", TRACES / "philly" / "philly.csv", {}),
    ("gavel", GAVEL_TRACE, {}),
    ("tiresias", TRACES / "tiresias" / "60_job.csv", {}),
    ("pollux", TRACES / "pollux" / "workload-1.csv", {}),
    ("helios", DATA / "helios_handmade.csv", {"skip_bad_rows": True}),
    ("alibaba-pai", DATA / "pai_task_handmade.csv", {"skip_bad_rows": True}),
]


@pytest.mark.parametrize(("fmt", "path", "options"), CLUSTER_TRACES,
                         ids=[c[0] for c in CLUSTER_TRACES])
def test_cluster_traces_train_in_fp32_unless_a_model_entry_says(tmp_path, fmt, path, options):
    if fmt == "philly":  # the first 200 jobs: the whole file takes ~2 s to map
        path = excerpt(path, tmp_path / "philly.csv", lambda i, r: i <= 200)
    assert FORMATS.get(fmt).era_precision == "fp32"
    jobs = workload(trace_scenario(path, fmt, **options)).jobs
    assert jobs
    for job in jobs:  # the built-in type table's precision where it sets one, else fp32
        entry = JOB_TYPES.get((job.job_type or "").lower(), {})
        assert job.precision == entry.get("precision", "fp32"), (job.name, job.job_type)
    assert "fp32" in {j.precision for j in jobs}
    # an explicit precision is kept: the default is the era's, not a forced one
    mix = [{"model": "resnet50", "per_gpu_batch": 32, "precision": "fp16"}]
    types = {t: {"model": "resnet50", "per_gpu_batch": 32, "precision": "fp16"}
             for t in {j.job_type.lower() for j in jobs if j.job_type}}
    explicit = workload(trace_scenario(path, fmt, models=mix, job_types=types, **options)).jobs
    assert {j.precision for j in explicit} == {"fp16"}
