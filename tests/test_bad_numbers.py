"""Numbers (issue 14): infinity and NaN are refused wherever a finite value is meant, and
absurd finite sizes are refused with the bound in the message, before anything is built."""

from __future__ import annotations

import pytest

import dcsim
from dcsim.errors import ScenarioError
from tests.conftest import small_job, small_scenario


def _problem(write_yaml, text: str) -> str:
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(write_yaml(text))
    return str(info.value)


BASE = """name: t
cluster: {servers: [{type: dgx-a100-80gb, count: 2}]}
workload:
  jobs:
    - {name: j, model: {kind: custom, params: 1.0e8, forward_flop_per_sample: 1.0e11},
       global_batch: 8, iterations: 100}
"""


@pytest.mark.parametrize(("extra", "message"), [
    ("engine: {preemption_overhead_s: .inf}", "engine.preemption_overhead_s: Input should be "
                                              "a finite number"),
    ("horizon_s: .nan", "horizon_s: Input should be a finite number"),
    ("faults: {components: {gpu: {mtbf_hours: .inf}}}", "mtbf_hours: Input should be a "
                                                          "finite number"),
    ("faults: {components: {gpu: {mtbf_hours: 1, distribution: weibull, shape: 0.001}}}",
     "shape: Input should be greater than or equal to 0.1"),
    ("faults: {components: {gpu: {mtbf_hours: 1, sigma: 1.0e3}}}",
     "sigma: Input should be less than or equal to 5"),
    ("faults: {preset: llama3, preset_scale: 1.0e30}", "preset_scale: Input should be less than"),
    ("topology: {kind: fat-tree, params: {k: 1000}}", "k: Input should be less than or equal "
                                                      "to 128"),
    ("topology: {kind: dragonfly, params: {groups: 100000000}}", "groups: Input should be "
                                                                 "less than or equal to 4096"),
    ("topology: {kind: rail-optimized, params: {rails: 100000}}", "rails: Input should be "
                                                                  "less than or equal to 64"),
])
def test_infinite_and_absurd_values_are_refused_with_the_bound(write_yaml, extra, message):
    assert message in _problem(write_yaml, BASE + extra + "\n")


def test_cluster_and_generator_sizes_are_bounded(write_yaml):
    big = BASE.replace("count: 2", "count: 1000000000")
    assert "count: Input should be less than or equal to 200000" in _problem(write_yaml, big)
    gen = small_scenario(workload={"generator": {"num_jobs": 10**12, "mean_interarrival_s": 1,
                                                 "mix": [{"weight": 1, "job": small_job()}]}})
    assert "num_jobs: Input should be less than or equal to 10000000" in _problem(write_yaml,
                                                                                  gen)
    inline = BASE.replace("type: dgx-a100-80gb, count: 2",
                          "count: 1, gpus_per_server: 100000, gpu: a100-sxm4-80gb")
    assert "gpus_per_server: Input should be less than or equal to 256" in _problem(
        write_yaml, inline)


def test_sweeps_are_bounded(tmp_path, repo):
    from dcsim.sweep import read_sweep

    base = repo / "scenarios" / "quickstart.yaml"
    many = tmp_path / "many.yaml"
    many.write_text(f"name: m\nbase: {base}\nfactors:\n  seed: {{start: 0, stop: 9999, step: 1}}"
                    f"\n  horizon_s: {{start: 1, stop: 1000, step: 1}}\n")
    with pytest.raises(ScenarioError, match=r"10,000,000 design points x 1 seeds = 10,000,000 "
                                            r"points, more than 100,000"):
        read_sweep(many)
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text(f"name: s\nbase: {base}\nfactors: {{seed: [1]}}\nseeds: {{count: 1.0e9}}\n")
    with pytest.raises(ScenarioError, match="count"):
        read_sweep(seeds)
