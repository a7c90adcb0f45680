"""Jobs whose length is a run time on a reference GPU (how traces give it)."""

from __future__ import annotations

import pytest

from dcsim import ScenarioError, scenario_from_dict, simulate
from tests.conftest import small_job, small_scenario


def _run(**job):
    base = small_job()
    base.pop("iterations")
    base.update(job)
    return simulate(scenario_from_dict(small_scenario([base]))).jobs.iloc[0]


def test_duration_on_the_cluster_gpu_runs_for_that_long():
    row = _run(duration_s=1000.0)
    assert row.iterations > 1
    assert row.run_s == pytest.approx(1000.0, rel=0.01)  # rounding to whole iterations


def test_same_work_runs_faster_on_a_faster_gpu():
    row = _run(duration_s=1000.0, reference_gpu="v100-sxm2-32gb", precision="fp16")
    assert 250.0 < row.run_s < 900.0  # the A100 does the V100's 1000 s of work in less


def test_exactly_one_of_iterations_and_duration():
    both = small_job(duration_s=10.0)
    with pytest.raises(ScenarioError, match="exactly one of iterations and duration_s"):
        scenario_from_dict(small_scenario([both]))
    neither = small_job()
    neither.pop("iterations")
    with pytest.raises(ScenarioError, match="exactly one of iterations and duration_s"):
        scenario_from_dict(small_scenario([neither]))


def test_reference_gpu_needs_duration_and_the_precision():
    with pytest.raises(ScenarioError, match="it needs duration_s"):
        scenario_from_dict(small_scenario([small_job(reference_gpu="v100-sxm2-32gb",
                                                     precision="fp16")]))
    job = small_job(duration_s=5.0, reference_gpu="v100-sxm2-32gb")  # bf16: not on a V100
    job.pop("iterations")
    with pytest.raises(ScenarioError, match="has no bf16 support"):
        scenario_from_dict(small_scenario([job]))
