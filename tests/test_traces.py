"""Cluster-trace loaders (dcsim/workload/formats/) and their mapping to jobs."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

import dcsim
from dcsim.errors import ScenarioError
from dcsim.registry import Registry
from dcsim.rng import RandomStreams
from dcsim.workload import build_workload
from dcsim.workload.formats import FORMATS, TraceFormat
from dcsim.workload.traces import load_trace
from tests.conftest import REPO, small_scenario

TRACES = REPO / "data" / "traces"
DATA = REPO / "tests" / "data"


def parse(fmt: str, path: Path):
    return FORMATS.get(fmt)().parse(path)


def trace_scenario(path: Path | str, fmt: str, seed: int = 1, **trace) -> dcsim.Scenario:
    data = small_scenario(workload={"trace": {"path": str(path), "format": fmt, **trace}})
    data["seed"] = seed
    return dcsim.scenario_from_dict(data, base_dir=str(REPO))


def workload(sc: dcsim.Scenario):
    return build_workload(sc, RandomStreams(sc.seed))


@pytest.fixture(scope="module")
def philly_excerpt(tmp_path_factory) -> Path:
    """The first 3,000 jobs of the Philly trace (the whole file takes ~2 s a load)."""
    path = tmp_path_factory.mktemp("philly") / "philly.csv"
    lines = (TRACES / "philly/philly.csv").read_text().splitlines()[:3001]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- the registry
def test_formats_are_registered_and_duplicates_fail():
    assert {"dcsim-csv", "dcsim-parquet", "philly", "gavel", "tiresias", "pollux",
            "alibaba-pai", "helios"} <= set(FORMATS.names())
    with pytest.raises(ValueError, match="duplicate trace format name 'philly'"):
        FORMATS.register("philly")(type("Again", (TraceFormat,), {}))
    assert isinstance(FORMATS, Registry)


def test_unknown_format_is_a_located_error_listing_the_valid_ones(write_yaml, tmp_path):
    (tmp_path / "t.csv").write_text("x\n")
    path = write_yaml(small_scenario(workload={"trace": {"path": "t.csv", "format": "slurm"}}))
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(path)
    (p,) = info.value.problems
    assert p.key == "workload.trace.format" and p.line is not None
    assert "unknown trace format 'slurm'; valid: alibaba-pai, dcsim-csv" in p.message


def test_mapping_options_need_a_cluster_trace(tmp_path):
    (tmp_path / "jobs.csv").write_text("name,arrival_s,model,global_batch,iterations\n")
    data = small_scenario(workload={"trace": {"path": "jobs.csv",
                                              "reference_gpu": "v100-sxm2-32gb"}})
    with pytest.raises(ScenarioError, match="mapping options of the cluster-trace formats"):
        dcsim.scenario_from_dict(data, base_dir=str(tmp_path))


# ----------------------------------------------------------------------------- the copied traces
@pytest.fixture(scope="module")
def philly_full():
    start = time.perf_counter()
    sc = trace_scenario(TRACES / "philly/philly.csv", "philly")
    w = workload(sc)
    return sc, w, time.perf_counter() - start


def test_philly_reads_every_job_fast_and_once(philly_full):
    sc, w, elapsed = philly_full
    assert (w.rows_read, len(w.jobs), w.rows_skipped) == (82_247, 82_247, 0)
    assert elapsed < 15.0  # about 2 s on the development machine (validate, parse, map)
    # validation read the trace and the build reused it (the same objects: nothing re-read)
    assert {id(j) for j in w.jobs} == {id(j) for j in load_trace(sc).jobs}
    assert w.jobs[0].arrival_s == 0.0
    gpus = pd.Series([j.num_gpus for j in w.jobs]).value_counts()
    assert gpus[1] == 76_627 and gpus[128] == 3  # as in data/traces/README.md


def test_a_philly_duration_becomes_duration_on_the_reference_gpu(philly_full):
    w = philly_full[1]
    first = next(j for j in w.jobs if j.name == "philly-1")  # line 2 of the file
    assert first.duration_s == 66.0 and first.iterations is None
    assert first.reference_gpu == "p100-sxm2-16gb"  # the format's default
    assert first.arrival_s == pytest.approx(
        (pd.Timestamp("2017-10-09 07:01:55") - pd.Timestamp("2017-09-04 10:30:41")).total_seconds())
    assert first.parallelism.dp == 1 and first.global_batch == first.parallelism.micro_batch
    eight = next(j for j in w.jobs if j.num_gpus == 8)
    assert eight.global_batch == 8 * eight.parallelism.micro_batch


def test_the_reference_gpu_is_a_scenario_option(philly_excerpt):
    w = workload(trace_scenario(philly_excerpt, "philly", reference_gpu="v100-sxm2-32gb"))
    assert {j.reference_gpu for j in w.jobs} == {"v100-sxm2-32gb"}


@pytest.mark.parametrize("name, count", [("23dbec", 9), ("51b7ef", 18), ("2869ce", 533)])
def test_gavel_msr_traces(name, count):
    p = parse("gavel", TRACES / f"gavel/msr_seed0/{name}.trace")
    assert (len(p.records), len(p.bad), len(p.excluded)) == (count, 0, 0)


def test_gavel_physical_cluster_traces_and_job_types():
    counts = {f.stem: len(parse("gavel", f).records)
              for f in sorted((TRACES / "gavel/physical_cluster").glob("*.trace"))}
    assert counts == {"artifact_evaluation": 15, "debug": 14, "debug_v2": 14, "highmem_test": 8,
                      "max_min_fairness": 96, "medium_test": 20, "minimize_makespan": 100,
                      "small_test": 20}
    w = workload(trace_scenario(TRACES / "gavel/physical_cluster/small_test.trace", "gavel"))
    # ResNet-18 (batch size 32), 3948 steps summed over its 2 workers: 1974 global steps of 64
    job = next(j for j in w.jobs if j.name == "gavel-3")
    assert (job.model.name, job.parallelism.micro_batch, job.iterations, job.num_gpus) == (
        "resnet18-cifar", 32, 1974, 2)
    assert job.global_batch == 32 * job.num_gpus and job.duration_s is None
    assert (job.job_type, job.precision) == ("ResNet-18", "fp32")  # a 2019 trace: fp32


def test_gavel_scale_factor_zero_is_skipped_and_a_bad_row_located(tmp_path):
    src = (TRACES / "gavel/msr_seed0/23dbec.trace").read_text().splitlines()
    fields = src[1].split("\t")
    zero = "\t".join([*fields[:6], "0"])
    bad = "\t".join([*fields[:4], "many", *fields[5:]])
    (tmp_path / "g.trace").write_text("\n".join([src[0], zero, bad, src[2]]) + "\n")
    p = parse("gavel", tmp_path / "g.trace")
    assert len(p.records) == 2
    assert [str(e) for e in p.excluded] == [
        f"{tmp_path / 'g.trace'}:2: skipped: scale_factor 0 (Gavel skips these jobs)"]
    assert [str(b) for b in p.bad] == [
        f"{tmp_path / 'g.trace'}:3:total_steps: expected a whole number, got 'many'"]


def test_tiresias_trace():
    # Tiresias's simulator runs a job for its `duration`: dcsim's default length too
    w = workload(trace_scenario(TRACES / "tiresias/60_job.csv", "tiresias"))
    assert (w.rows_read, len(w.jobs)) == (60, 60)
    job = next(j for j in w.jobs if j.name == "tiresias-0")  # 0,1,0,606,vgg19,164,30
    assert (job.model.name, job.num_gpus, job.precision) == ("vgg19", 1, "fp32")
    assert (job.duration_s, job.reference_gpu, job.iterations) == (164.0, "p100-sxm2-16gb", None)
    by_steps = workload(trace_scenario(TRACES / "tiresias/60_job.csv", "tiresias",
                                       length="iterations"))
    job = next(j for j in by_steps.jobs if j.name == "tiresias-0")
    assert (job.iterations, job.duration_s) == (606, None)


@pytest.mark.parametrize("n", range(1, 9))
def test_pollux_workloads(n):
    w = workload(trace_scenario(TRACES / f"pollux/workload-{n}.csv", "pollux"))
    assert (w.rows_read, len(w.jobs)) == (160, 160)
    assert all(j.iterations is not None and j.duration_s is None for j in w.jobs)


def test_pollux_length_is_the_measured_steps_at_that_batch():
    w = workload(trace_scenario(TRACES / "pollux/workload-1.csv", "pollux"))
    job = next(j for j in w.jobs if j.name == "ncf-2")  # ncf-2,135,ncf,1,32768
    assert (job.model.name, job.global_batch, job.iterations) == ("ncf-ml1m", 32768, 1548)
    job = next(j for j in w.jobs if j.name == "cifar10-0")  # 2048 over 6 GPUs: 341 each
    assert (job.parallelism.dp, job.parallelism.micro_batch) == (6, 341)
    assert job.iterations == round(3178 * 2048 / (341 * 6))  # the same samples


# ----------------------------------------------------------------------------- hand-made excerpts
def test_helios_excerpt_skips_cpu_and_never_run_jobs_with_reasons():
    path = DATA / "helios_handmade.csv"
    with pytest.raises(ScenarioError) as info:
        trace_scenario(path, "helios")
    assert [str(p) for p in info.value.problems] == [
        f"{path}:7:gpu_num: expected a whole number, got 'two'"]
    w = workload(trace_scenario(path, "helios", skip_bad_rows=True))
    assert (w.rows_read, len(w.jobs), w.rows_skipped) == (7, 4, 3)
    msgs = sorted(str(p) for p in w.skipped)
    assert f"{path}:3: skipped: gpu_num 0 (a CPU job)" in msgs
    assert f"{path}:6: skipped: duration 0 (state CANCELLED: never ran)" in msgs
    jobs = {j.name: j for j in w.jobs}
    assert jobs["helios-1004"].num_gpus == 16 and jobs["helios-1004"].duration_s == 21600
    assert jobs["helios-1004"].arrival_s == 19 * 60 - 1  # after 18:41:01
    assert jobs["helios-1001"].user == "uA"
    done = workload(trace_scenario(path, "helios", skip_bad_rows=True, statuses=["COMPLETED"]))
    assert {j.name for j in done.jobs} == {"helios-1001", "helios-1004", "helios-1007"}
    assert done.rows_read == 7


def test_alibaba_pai_excerpt_groups_tasks_into_jobs():
    path = DATA / "pai_task_handmade.csv"
    with pytest.raises(ScenarioError, match=r"pai_task_handmade.csv:7:start_time: expected a "
                                            r"number, got 'soon'"):
        trace_scenario(path, "alibaba-pai")
    sc = trace_scenario(path, "alibaba-pai", skip_bad_rows=True)
    load = load_trace(sc)
    jobs = {j.name: j for j in load.jobs}
    assert set(jobs) == {"pai-j1", "pai-j2", "pai-j5"}
    assert jobs["pai-j1"].num_gpus == 2  # ps asks no GPU; 2 workers x 100%
    assert jobs["pai-j1"].duration_s == 610.0 and jobs["pai-j1"].arrival_s == 0.0
    assert jobs["pai-j2"].num_gpus == 1  # 50% of a GPU takes a whole one
    assert jobs["pai-j5"].num_gpus == 2  # 200% = two GPUs
    reasons = load.skip_reasons()
    assert reasons["skipped: job j3: no GPU requested (a CPU job)"] == 1
    assert reasons["skipped: job j4: no start or end time (status Running)"] == 1
    assert load.rows_read == len(load.jobs) + 3 == 6  # 6 jobs in 7 task rows
    kept = trace_scenario(path, "alibaba-pai", skip_bad_rows=True, statuses=["Terminated"])
    assert {j.name for j in load_trace(kept).jobs} == {"pai-j1", "pai-j2"}


# ----------------------------------------------------------------------------- mapping
def test_mapping_is_seeded(philly_excerpt):
    path = philly_excerpt

    def models(seed):
        return [j.model.name for j in workload(trace_scenario(path, "philly", seed=seed)).jobs]

    one, again, other = models(1), models(1), models(2)
    assert one == again
    assert one != other
    share = pd.Series(one).value_counts(normalize=True)
    assert 0.37 < share["resnet50"] < 0.43  # the default mix gives image recognition 0.4


def test_a_mix_and_job_types_from_the_scenario(philly_excerpt):
    mix = [{"weight": 1, "model": "vgg16", "per_gpu_batch": 16, "precision": "fp32"}]
    w = workload(trace_scenario(TRACES / "tiresias/60_job.csv", "tiresias", models=mix,
                                job_types={"vgg19": {"model": "resnet18",
                                                     "per_gpu_batch": 8}}))
    names = {j.model.name for j in w.jobs}
    assert "vgg19" not in names and "resnet18" in names
    w = workload(trace_scenario(philly_excerpt, "philly", models=mix))
    assert {(j.model.name, j.precision, j.parallelism.micro_batch) for j in w.jobs} == {
        ("vgg16", "fp32", 16)}


def test_a_precision_the_reference_gpu_lacks_is_reported(philly_excerpt):
    with pytest.raises(ScenarioError, match="k80-12gb has no fp16 support"):
        trace_scenario(philly_excerpt, "philly", reference_gpu="k80-12gb",
                       models=[{"model": "resnet50", "per_gpu_batch": 32, "precision": "fp16"}])
    w = workload(trace_scenario(philly_excerpt, "philly", reference_gpu="k80-12gb",
                                models=[{"model": "resnet50", "per_gpu_batch": 32}]))
    assert {j.precision for j in w.jobs} == {"fp32"}  # auto: the K80 has no fp16


# ----------------------------------------------------------------------------- native formats
def test_dcsim_parquet_reads_the_csv_columns(tmp_path):
    frame = pd.DataFrame({"name": ["a", "b"], "arrival_s": [0.0, 5.0],
                          "model": ["resnet50", "bert-base"], "global_batch": [256, 64],
                          "iterations": [10, 5], "dp": [4.0, None]})
    frame.to_parquet(tmp_path / "jobs.parquet")
    frame.assign(dp=[0.0, None]).to_parquet(tmp_path / "bad.parquet")
    w = workload(trace_scenario(tmp_path / "jobs.parquet", "dcsim-parquet"))
    assert [(j.name, j.num_gpus) for j in w.jobs] == [("a", 4), ("b", 1)]
    with pytest.raises(ScenarioError, match=r"bad.parquet:1:dp: Input should be greater than 0"):
        trace_scenario(tmp_path / "bad.parquet", "dcsim-parquet")


# ----------------------------------------------------------------------------- end to end
def test_a_trace_excerpt_simulates_end_to_end(tmp_path):
    lines = (TRACES / "philly/philly.csv").read_text().splitlines()[:31]  # header + 30 jobs
    (tmp_path / "philly.csv").write_text("\n".join(lines) + "\n")
    mix = [{"model": "resnet50", "per_gpu_batch": 64}]
    data = small_scenario(workload={"trace": {"path": "philly.csv", "format": "philly",
                                              "models": mix}})
    res = dcsim.simulate(dcsim.scenario_from_dict(data, base_dir=str(tmp_path)))
    s = res.summary()
    assert s["jobs_read"] == s["jobs_submitted"] == 30
    assert s["jobs_completed"] == 30
    jobs = res.jobs.set_index("name")
    # 66 s of P100 work (line 2) takes less on the cluster's A100
    assert 0 < jobs.loc["philly-1", "run_s"] < 66.0


def test_the_copied_traces_are_the_shared_ones():
    shared = REPO.parent / "shared" / "data" / "traces"
    if not shared.is_dir():
        pytest.skip("no ../shared checkout")
    for path in TRACES.rglob("*"):
        if path.is_file() and path.name != "README.md":
            rel = path.relative_to(TRACES)
            workload = rel.parts[0] == "pollux" and rel.name.startswith("workload-")
            origin = shared / ("pollux/workloads" if workload else "") / (
                rel.name if workload else rel)
            assert path.read_bytes() == origin.read_bytes(), rel


def test_a_trace_file_is_parsed_once_per_process_until_it_changes(tmp_path, monkeypatch):
    from dcsim.workload import traces

    path = tmp_path / "t.csv"
    path.write_text("timestamp,duration,num_gpus,gpu_time,cluster\n"
                    "2017-10-09 07:01:55,66.0,1,66.0,a\n")
    calls = []
    real = FORMATS.get("philly").parse
    monkeypatch.setattr(FORMATS.get("philly"), "parse",
                        lambda self, p: calls.append(p) or real(self, p))
    first, second = traces.parse_file("philly", path), traces.parse_file("philly", path)
    assert len(calls) == 1 and first.records == second.records
    first.records.clear()  # a caller's copy: the remembered parse is untouched
    assert len(traces.parse_file("philly", path).records) == 1
    with path.open("a") as f:
        f.write("2017-10-09 07:02:55,60.0,2,120.0,a\n")
    assert len(traces.parse_file("philly", path).records) == 2 and len(calls) == 2


def test_native_trace_step_model_is_a_registered_one(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("name,arrival_s,model,global_batch,iterations,step_model\n"
                    "a,0,gpt2-1.5b,8,10,first-order\n"
                    "b,0,gpt2-1.5b,8,10,exact\n")
    with pytest.raises(ScenarioError, match=r"jobs.csv:3:step_model: unknown step model "
                                            r"'exact'; valid: calibrated, first-order"):
        trace_scenario(path, "dcsim-csv")
    load = load_trace(trace_scenario(path, "dcsim-csv", skip_bad_rows=True))
    assert [j.step_model for j in load.jobs] == ["first-order"] and load.rows_read == 2


def test_native_trace_carries_context_expert_and_zero_columns(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("name,arrival_s,model,global_batch,iterations,tp,cp,dp,ep,zero\n"
                    "long,0,llama3-8b,8,10,2,2,2,,1\n"
                    "moe,0,mixtral-8x7b,16,10,,,8,8,\n"
                    "bad,0,llama3-8b,8,10,,3,1,,\n")
    with pytest.raises(ScenarioError, match=r"jobs.csv:4: seq_len \(8192\) must be divisible "
                                            r"by 2 x cp"):
        trace_scenario(path, "dcsim-csv")
    load = load_trace(trace_scenario(path, "dcsim-csv", skip_bad_rows=True))
    long, moe = load.jobs
    assert (long.parallelism.cp, long.parallelism.zero, moe.parallelism.ep) == (2, 1, 8)
