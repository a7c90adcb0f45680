"""Workload sources: the dcsim CSV trace (with row errors) and the Poisson generator."""

from __future__ import annotations

import pytest

import dcsim
from dcsim.errors import ScenarioError
from dcsim.rng import RandomStreams
from tests.conftest import small_job, small_scenario

HEADER = "name,arrival_s,model,global_batch,iterations,dp,precision,priority\n"


def trace_scenario(write_yaml, tmp_path, rows: str, **trace):
    (tmp_path / "jobs.csv").write_text(HEADER + rows)
    return write_yaml(small_scenario(workload={"trace": {"path": "jobs.csv", **trace}}))


def test_trace_loads_relative_to_the_scenario(write_yaml, tmp_path):
    rows = "a,0,resnet50,256,10,4,fp16,\nb,5,bert-base,64,5,,,2\n"
    path = trace_scenario(write_yaml, tmp_path, rows)
    res = dcsim.simulate(dcsim.load_scenario(path))
    j = res.jobs.set_index("name")
    assert list(j.index) == ["a", "b"]
    assert j.loc["a", "num_gpus"] == 4 and j.loc["b", "num_gpus"] == 1
    assert j.loc["b", "precision"] == "bf16"  # empty cell = default
    assert res.summary()["jobs_read"] == 2


def test_bad_trace_rows_are_located_at_validation(write_yaml, tmp_path):
    path = trace_scenario(write_yaml, tmp_path,
                          "a,0,resnet50,256,10,4,fp16,\nb,-5,resnet50,256,10,0,fp16,\n")
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(path)
    found = [str(p) for p in info.value.problems]
    csv_path = tmp_path / "jobs.csv"
    assert f"{csv_path}:3:arrival_s: Input should be greater than or equal to 0" in found
    assert f"{csv_path}:3:dp: Input should be greater than 0" in found


def test_bad_rows_can_be_skipped_and_are_counted(write_yaml, tmp_path):
    path = trace_scenario(write_yaml, tmp_path,
                          "a,0,resnet50,256,10,4,fp16,\nb,-5,resnet50,256,10,0,fp16,\n"
                          "c,1,nosuchmodel,8,1,,,\n", skip_bad_rows=True)
    res = dcsim.simulate(dcsim.load_scenario(path))
    s = res.summary()
    assert (s["jobs_read"], s["rows_skipped"], s["jobs_submitted"]) == (3, 2, 1)
    assert len(res.run["skipped_rows"]) == 3  # two problems in row 3, one in row 4


def test_trace_header_errors(write_yaml, tmp_path):
    (tmp_path / "jobs.csv").write_text("name,arrival\nx,1\n")
    path = write_yaml(small_scenario(workload={"trace": {"path": "jobs.csv"}}))
    with pytest.raises(ScenarioError, match="missing columns"):
        dcsim.load_scenario(path)


def test_generator_is_seeded_and_follows_its_mix():
    mix = [{"weight": 3, "job": small_job("a", iterations=100)},
           {"weight": 1, "job": small_job("b", iterations=100)}]
    data = small_scenario(workload={"generator": {"num_jobs": 400, "mean_interarrival_s": 10,
                                                  "iterations_sigma": 0.3, "mix": mix}})
    sc = dcsim.scenario_from_dict(data)
    from dcsim.workload import build_workload

    one = build_workload(sc, RandomStreams(1)).jobs
    again = build_workload(sc, RandomStreams(1)).jobs
    other = build_workload(sc, RandomStreams(2)).jobs
    assert one == again and one != other
    names = [j.name.rsplit("-", 1)[0] for j in one]
    assert 0.65 < names.count("a") / len(names) < 0.85
    gaps = [b.arrival_s - a.arrival_s for a, b in zip(one, one[1:], strict=False)]
    assert 8 < sum(gaps) / len(gaps) < 12
    assert len({j.iterations for j in one}) > 10


def test_streams_are_independent_of_each_other():
    a = RandomStreams(5)
    first = a.stream("x").random(3)
    b = RandomStreams(5)
    b.stream("y").random(100)  # another consumer draws first
    assert (b.stream("x").random(3) == first).all()
    with pytest.raises(ValueError, match="seed must be >= 0"):
        RandomStreams(-1)
