"""The measured-throughput step model (dcsim/perf/measured.py) and its tables
(dcsim/perf/tables/): reading, lookup and interpolation, fallback, per-job selection."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

import dcsim
from dcsim.errors import ScenarioError
from dcsim.perf.measured import Entry, ThroughputTable
from dcsim.perf.tables import read_table
from tests.conftest import REPO, small_job, small_scenario

GAVEL_JSON = REPO / "data" / "traces" / "gavel" / "simulation_throughputs.json"


def table(*entries: Entry) -> ThroughputTable:
    return ThroughputTable(entries)


def e(n: int, t: float, batch: float | None = 32, placement=None, job="resnet-18",
      gpu="v100-sxm2-16gb") -> Entry:
    return Entry(job, gpu, n, batch, t, placement, f"t:{n}:{batch}")


# ----------------------------------------------------------------------------- lookup rules
def test_exact_entry_is_measured_and_names_its_source():
    found = table(e(1, 0.1), e(2, 0.12)).lookup("ResNet-18", "v100-sxm2-16gb", 2, 32)
    assert found is not None
    assert (found.iteration_s, found.source, found.detail) == (0.12, "measured", "t:2:32")


def test_gpu_count_gaps_interpolate_in_log2_of_the_count():
    t = table(e(2, 0.10), e(8, 0.16))
    found = t.lookup("resnet-18", "v100-sxm2-16gb", 4, 32)  # log2: halfway between 2 and 8
    assert found is not None and found.source == "interpolated"
    assert found.iteration_s == pytest.approx(0.13)
    assert t.lookup("resnet-18", "v100-sxm2-16gb", 16, 32) is None  # no extrapolation
    assert t.lookup("resnet-18", "v100-sxm2-16gb", 1, 32) is None


def test_batch_gaps_interpolate_linearly_and_counts_first():
    t = table(e(1, 0.10, batch=16), e(1, 0.30, batch=64), e(4, 0.20, batch=16),
              e(4, 0.50, batch=64))
    assert t.lookup("resnet-18", "v100-sxm2-16gb", 1, 32).iteration_s == pytest.approx(
        0.10 + 0.20 * (32 - 16) / 48)
    both = t.lookup("resnet-18", "v100-sxm2-16gb", 2, 48)  # n: log2 halfway; b: 2/3 of the way
    at16, at64 = 0.15, 0.40
    assert both.iteration_s == pytest.approx(at16 + (at64 - at16) * 2 / 3)
    assert t.lookup("resnet-18", "v100-sxm2-16gb", 1, 128) is None


def test_an_entry_without_batch_matches_every_batch():
    t = table(e(1, 0.2, batch=None, job="a3c"))
    assert t.lookup("A3C", "v100-sxm2-16gb", 1, 4).source == "measured"
    assert t.lookup("A3C", "v100-sxm2-16gb", 1, 999).iteration_s == 0.2


def test_placement_tiers_exact_shape_then_spread_then_any():
    t = table(e(4, 0.10, placement="one"), e(4, 0.25, placement="many"),
              e(4, 0.30, placement=(2, 2)), e(4, 0.40, placement=(3, 1)))
    look = t.lookup
    assert look("resnet-18", "v100-sxm2-16gb", 4, 32, (4,)).iteration_s == 0.10
    assert look("resnet-18", "v100-sxm2-16gb", 4, 32, (2, 2)).iteration_s == 0.30
    assert look("resnet-18", "v100-sxm2-16gb", 4, 32, (1, 3)).iteration_s == 0.40
    assert look("resnet-18", "v100-sxm2-16gb", 4, 32, (2, 1, 1)).iteration_s == 0.25
    # shapes only: another shape with as many servers, the most balanced, is an approximation
    shapes = table(e(4, 0.30, placement=(2, 2)), e(4, 0.40, placement=(3, 1)))
    approx = shapes.lookup("resnet-18", "v100-sxm2-16gb", 4, 32, (1, 1, 2))
    assert approx is None
    other = shapes.lookup("resnet-18", "v100-sxm2-16gb", 4, 32, (2, 2))
    assert other.source == "measured"
    consolidated_only = table(e(4, 0.10, placement="one"))
    spread = consolidated_only.lookup("resnet-18", "v100-sxm2-16gb", 4, 32, (2, 2))
    assert (spread.iteration_s, spread.source) == (0.10, "interpolated")


def test_other_gpu_or_job_type_has_no_answer():
    t = table(e(1, 0.1))
    assert t.lookup("resnet-18", "k80-12gb", 1, 32) is None
    assert t.lookup("lm", "v100-sxm2-16gb", 1, 32) is None


# ----------------------------------------------------------------------------- gavel's table
def test_gavel_json_reads_every_isolated_throughput_as_global_iterations():
    read = read_table(GAVEL_JSON, "gavel")
    raw = json.loads(GAVEL_JSON.read_text())
    values = [v["null"] for jobs in raw.values() for v in jobs.values()]
    assert read.read == len(values)
    assert read.accepted == sum(1 for v in values if v > 0)
    assert read.skipped == {"throughput 0 (did not run in Gavel's measurements)":
                            sum(1 for v in values if v == 0)}
    t = ThroughputTable(read.entries)
    # Gavel sums steps over workers: 4 workers at that rate take 4 / rate per global step
    rate = raw["v100"]["('ResNet-18 (batch size 64)', 4)"]["null"]
    found = t.lookup("resnet-18", "v100-sxm2-16gb", 4, 64, (4,))
    assert found.iteration_s == pytest.approx(4 / rate)
    spread = raw["v100_unconsolidated"]["('ResNet-18 (batch size 64)', 4)"]["null"]
    assert t.lookup("resnet-18", "v100-sxm2-16gb", 4, 64, (2, 2)).iteration_s == \
        pytest.approx(4 / spread)


def test_gavel_json_errors_are_located(tmp_path):
    bad = {"v100": {"('ResNet-18 (batch size 64)', 1)": {"null": -3.0},
                    "('LM (batch size 5)', 1)": {"null": float("inf")},
                    "not a tuple": {"null": 1.0}},
           "tpu": {"('A3C', 1)": {"null": 1.0}}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ScenarioError) as info:
        read_table(path, "gavel")
    text = str(info.value)
    assert "v100.('ResNet-18 (batch size 64)', 1).null: throughput: must be > 0" in text
    assert "must be finite" in text
    assert "not a tuple: expected a key like" in text
    assert "tpu: unknown GPU type 'tpu'" in text and "`gpus` option" in text
    # mapped, the unknown worker type is fine
    path.write_text(json.dumps({"tpu": {"('A3C', 1)": {"null": 2.0}}}))
    assert read_table(path, "gavel", {"tpu": "t4-16gb"}).entries[0].gpu == "t4-16gb"
    path.write_text("{\n  \"v100\": \n")
    with pytest.raises(ScenarioError, match=r"t.json:3: invalid JSON"):
        read_table(path, "gavel")


# ----------------------------------------------------------------------------- dcsim tables
def test_dcsim_csv_units_and_conversions(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("job_type,gpu,num_gpus,batch_per_gpu,samples_per_s\n"
                    "bert,a100-sxm4-80gb,8,32,2560\n"
                    "bert,a100-sxm4-80gb,1,32,400\n")
    read = read_table(path)
    assert [x.iteration_s for x in read.entries] == pytest.approx([8 * 32 / 2560, 32 / 400])
    path.write_text("job_type,gpu,num_gpus,global_batch,iterations_per_s,placement\n"
                    "gpt,h100-sxm5-80gb,16,512,2.0,8+8\n")
    (x,) = read_table(path).entries
    assert (x.batch_per_gpu, x.iteration_s, x.placement) == (32, 0.5, (8, 8))
    path.write_text("job_type,gpu,num_gpus,iteration_s\nA3C,v100-sxm2-16gb,1,0.14\n")
    (x,) = read_table(path).entries
    assert (x.batch_per_gpu, x.iteration_s) == (None, 0.14)


@pytest.mark.parametrize(("text", "expect"), [
    ("job_type,gpu,num_gpus,throughput\nx,t4-16gb,1,3\n",
     "t.csv:1:throughput: its unit cannot be told apart; name the value column one of"),
    ("job_type,gpu,num_gpus,iteration_s,iteration_s\nx,t4-16gb,1,3,3\n",
     "duplicate columns ['iteration_s']"),
    ("job_type,gpu,iteration_s\nx,t4-16gb,3\n", "missing columns ['num_gpus']"),
    ("job_type,gpu,num_gpus,iteration_s\nx,h300,1,3\n", "t.csv:2:gpu: unknown GPU type 'h300'"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,0\n", "t.csv:2:iteration_s: must be > 0"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,-2\n", "iteration_s: must be > 0"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,inf\n", "iteration_s: must be finite"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,1e30\n", "iteration_s: must be <= 1e+07"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,\n", "give exactly one of samples_per_s"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1.5,2\n", "num_gpus: expected a whole"),
    ("job_type,gpu,num_gpus,samples_per_s\nx,t4-16gb,1,2\n", "needs batch_per_gpu or global"),
    ("job_type,gpu,num_gpus,iteration_s,placement\nx,t4-16gb,4,2,3+3\n", "must be positive "
     "counts that add up to num_gpus (4)"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,2\nX,t4-16gb,1,3\n",
     "t.csv:3: duplicate entry: x on 1 x t4-16gb (batch None, placement None) is also at"),
    ("job_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1\n", "t.csv:2: expected 4 fields, got 3"),
    (",gpu,num_gpus,iteration_s\n", "missing columns ['job_type']"),
])
def test_dcsim_csv_bad_tables_are_located_errors(tmp_path, text, expect):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        read_table(path)
    assert expect in str(info.value)


def test_dcsim_yaml_table_and_its_located_errors(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("entries:\n"
                    "  - {job_type: bert, gpu: t4-16gb, num_gpus: 1, batch_per_gpu: 8,\n"
                    "     samples_per_s: 40}\n"
                    "  - {job_type: bert, gpu: t4-16gb, num_gpus: 2, batch_per_gpu: 8,\n"
                    "     samples_per_s: 75}\n")
    read = read_table(path)
    assert [x.iteration_s for x in read.entries] == pytest.approx([0.2, 16 / 75])
    path.write_text("- {job_type: bert, gpu: t4-16gb, num_gpus: 1, speed: 40}\n"
                    "- {job_type: bert, gpu: t4-16gb, num_gpus: 2,\n"
                    "   iteration_s: .nan}\n")
    with pytest.raises(ScenarioError) as info:
        read_table(path)
    text = str(info.value)
    assert "t.yaml:1: entries[0].speed: its unit cannot be told apart" in text
    assert "t.yaml:3: entries[1].iteration_s: must be finite" in text


def test_table_files_that_are_not_text_are_located_errors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"job_type,gpu,num_gpus,iteration_s\nr\xe9s,t4-16gb,1,2\n")
    with pytest.raises(ScenarioError, match=r"t.csv:2: not UTF-8 text: byte 0xe9 at byte "
                                            r"offset 35"):
        read_table(path)
    path.write_bytes(b"\xef\xbb\xbfjob_type,gpu,num_gpus,iteration_s\nx,t4-16gb,1,2\n")
    assert read_table(path).accepted == 1  # a UTF-8 byte-order mark is fine
    with pytest.raises(ScenarioError, match="a directory"):
        read_table(tmp_path)


# ----------------------------------------------------------------------------- in a simulation
def measured_scenario(tmp_path, jobs, rows: str, **engine):
    (tmp_path / "thr.csv").write_text("job_type,gpu,num_gpus,batch_per_gpu,iteration_s\n" + rows)
    data = small_scenario(jobs=jobs, engine={"step_model": "measured",
                                             "throughputs": [{"path": "thr.csv"}], **engine})
    return dcsim.scenario_from_dict(data, base_dir=str(tmp_path))


def test_jobs_run_at_the_measured_speed_and_say_where_it_came_from(tmp_path):
    jobs = [small_job("a", job_type="resnet", iterations=1000, global_batch=8),
            small_job("b", job_type="resnet", iterations=1000, global_batch=16,
                      parallelism={"dp": 2}),
            small_job("c", job_type="other", iterations=1000),
            small_job("d", job_type="resnet", iterations=1000, step_model="calibrated")]
    sc = measured_scenario(tmp_path, jobs, "resnet,a100-sxm4-80gb,1,8,0.25\n"
                                           "resnet,a100-sxm4-80gb,4,8,0.40\n")
    res = dcsim.simulate(sc)
    jobs_df = res.jobs.set_index("name")
    assert jobs_df.loc["a", "run_s"] == pytest.approx(250.0)
    assert jobs_df.loc["a", "step_source"] == "measured"
    assert jobs_df.loc["b", "step_source"] == "interpolated"  # 2 GPUs: between 1 and 4
    assert jobs_df.loc["b", "iteration_time_s"] == pytest.approx(0.325)
    assert jobs_df.loc["c", "step_source"] == "model"
    assert jobs_df.loc["d", "step_source"] == "model"
    assert jobs_df.loc["d", "run_s"] != pytest.approx(250.0)
    assert res.summary()["step_sources"] == {"measured": 1, "interpolated": 1, "model": 2}
    log = res.events[res.events["event"] == "step-source"].set_index("job_id")["detail"]
    assert len(log) == 3  # the jobs on the measured model, once each
    assert "a100-sxm4-80gb: model (calibrated; job type 'other' is not in the throughput " \
           "tables)" in log.tolist()
    assert res.run["throughput_tables"][0]["accepted"] == 2
    assert res.summary()["throughput_entries"] == {"read": 2, "accepted": 2, "skipped": 0}
    from dcsim.cli import format_summary

    assert ("step times: 1 jobs measured, 1 interpolated, 2 from the model (throughput tables: "
            "2 entries read, 2 accepted, 0 skipped)") in format_summary("t", res.summary())


def test_a_measurement_admits_a_job_the_memory_model_would_reject(tmp_path):
    big = {"kind": "custom", "params": 3e10, "forward_flop_per_sample": 1e9}
    jobs = [small_job("big", model=big, job_type="big", precision="fp32")]
    sc = measured_scenario(tmp_path, jobs, "big,a100-sxm4-80gb,1,8,1.0\n")
    assert dcsim.simulate(sc).jobs.loc[0, "status"] == "completed"
    calibrated = sc.model_copy(update={"engine": sc.engine.model_copy(
        update={"step_model": "calibrated"})})
    assert dcsim.simulate(calibrated).jobs.loc[0, "reason"].startswith("out-of-memory")


def test_measured_without_a_table_is_a_located_error(write_yaml):
    path = write_yaml(small_scenario(engine={"step_model": "measured"}))
    with pytest.raises(ScenarioError, match=r"yaml:\d+: engine.step_model: step model "
                                            r"'measured' needs engine.throughputs"):
        dcsim.load_scenario(path)
    path = write_yaml(small_scenario(jobs=[small_job(step_model="measured")]))
    with pytest.raises(ScenarioError, match=r"yaml:\d+: workload.jobs\[0\].step_model: step "
                                            r"model 'measured' needs"):
        dcsim.load_scenario(path)


def test_step_models_and_flow_fabrics_are_checked_against_their_registries(write_yaml):
    path = write_yaml(small_scenario(engine={"step_model": "exact", "network": "ideal"}))
    with pytest.raises(ScenarioError) as err:
        dcsim.load_scenario(path)
    text = str(err.value)
    assert ("engine.network: unknown flow fabric 'ideal'; valid: isolated, shared, timed"
            in text)
    assert ("engine.step_model: unknown step model 'exact'; valid: calibrated, first-order, "
            "measured" in text)
    path = write_yaml(small_scenario(jobs=[small_job(step_model="exact")]))
    with pytest.raises(ScenarioError, match=r"workload.jobs\[0\].step_model: unknown step "
                                            r"model 'exact'"):
        dcsim.load_scenario(path)


def test_a_missing_or_bad_table_is_reported_at_validation(write_yaml, tmp_path):
    path = write_yaml(small_scenario(engine={"step_model": "measured",
                                             "throughputs": [{"path": "nope.csv"}]}))
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(path)
    assert "engine.throughputs[0].path: throughput table not found" in str(info.value)
    (tmp_path / "bad.csv").write_text("job_type,gpu,num_gpus,iteration_s\nx,a100,1,1\n")
    path = write_yaml(small_scenario(engine={"step_model": "measured",
                                             "throughputs": [{"path": "bad.csv"}]}))
    with pytest.raises(ScenarioError, match=r"bad.csv:2:gpu: unknown GPU type 'a100'"):
        dcsim.load_scenario(path)


def test_heterogeneous_cluster_uses_each_types_measured_speed(tmp_path):
    jobs = [small_job(f"j{i}", job_type="resnet", iterations=100, gpu_type=g)
            for i, g in enumerate(("a100-sxm4-80gb", "h100-sxm5-80gb"))]
    sc = measured_scenario(tmp_path, jobs, "resnet,a100-sxm4-80gb,1,8,0.3\n"
                                           "resnet,h100-sxm5-80gb,1,8,0.1\n",
                           network="isolated")
    sc = sc.model_copy(update={"cluster": dcsim.scenario_from_dict(small_scenario(
        cluster={"servers": [{"type": "dgx-a100-80gb", "count": 1},
                             {"type": "dgx-h100", "count": 1}]})).cluster})
    runs = dcsim.simulate(sc).jobs.set_index("name")["run_s"]
    assert runs["j0"] == pytest.approx(30.0) and runs["j1"] == pytest.approx(10.0)


def test_step_source_is_empty_for_jobs_that_never_ran(tmp_path):
    jobs = [small_job("huge", job_type="resnet", parallelism={"dp": 64}, global_batch=512)]
    sc = measured_scenario(tmp_path, jobs, "resnet,a100-sxm4-80gb,1,8,0.3\n")
    df = dcsim.simulate(sc).jobs
    assert df.loc[0, "status"] == "rejected" and df.loc[0, "step_source"] == ""
    assert isinstance(df, pd.DataFrame) and not math.isnan(df.loc[0, "submit_s"])
