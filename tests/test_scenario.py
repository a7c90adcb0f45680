"""The scenario schema: valid files load; every kind of bad input names file, line and key."""

from __future__ import annotations

import pytest

import dcsim
from dcsim.errors import ScenarioError
from tests.conftest import small_job, small_scenario

BROKEN = """\
name: broken
seed: 1
cluster:
  servers:
    - type: dgx-a100-80gb
      count: 0
workload:
  jobs:
    - name: a
      model: gpt-22b
      parallelism: {tp: 3}
      global_batch: 4
      iterations: 10
      colour: blue
scheduler: {kind: lottery}
"""


def problems(path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(path)
    return [str(p) for p in info.value.problems]


def test_issue_job_shape_loads(write_yaml):
    job = {
        "name": "gpt-1t", "arrival_s": 0,
        "model": {"kind": "gpt", "layers": 128, "hidden": 25600, "heads": 160,
                  "seq_len": 2048, "vocab": 51200},
        "parallelism": {"tp": 8, "pp": 64, "dp": 6, "micro_batch": 1, "virtual_stages": 1,
                        "recompute": "full"},
        "global_batch": 3072, "precision": "fp16", "iterations": 10,
    }
    sc = dcsim.load_scenario(write_yaml(small_scenario([job])))
    spec = sc.workload.jobs[0]
    assert spec.num_gpus == 3072
    assert spec.parallelism.recompute == "full"


def test_errors_name_file_line_and_key(write_yaml):
    path = write_yaml(BROKEN)
    found = problems(path)
    assert f"{path}:6: cluster.servers[0].count: Input should be greater than 0" in found
    assert f"{path}:14: workload.jobs[0].colour: unknown key" in found
    assert len(found) == 2  # the schema stops before semantic checks when the shape is wrong


def test_semantic_errors_after_shape(write_yaml):
    text = BROKEN.replace("count: 0", "count: 1").replace("      colour: blue\n", "")
    path = write_yaml(text)
    found = problems(path)
    assert any(p.startswith(f"{path}:9: workload.jobs[0]: ") and "tp (3) must divide" in p
               for p in found), found


def test_unknown_kind_lists_valid_names(write_yaml):
    path = write_yaml(small_scenario(scheduler={"kind": "lottery"}))
    (msg,) = problems(path)
    assert ("scheduler.kind: unknown scheduler 'lottery'; valid: carbon-aware, easy, fifo, "
            "las, power-capped, priority, sjf, srtf, themis") in msg


def test_bad_params_are_located(write_yaml):
    path = write_yaml(small_scenario(topology={"kind": "leaf-spine",
                                               "params": {"oversubscription": 0.5}}))
    (msg,) = problems(path)
    assert "topology.params.oversubscription: Input should be greater than or equal to 1" in msg


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cluster": {"servers": [{"type": "dgx-z9000", "count": 1}]}},
         "unknown server type 'dgx-z9000'"),
        ({"cluster": {"servers": [{"count": 1, "gpu": "a100-sxm4-80gb"}]}},
         "give a catalog server `type`, or `gpus_per_server` and `gpu` inline"),
        ({"workload": {"jobs": [small_job(model="gpt-9000")]}}, "unknown model preset 'gpt-9000'"),
        ({"workload": {"jobs": [small_job(precision="fp4")]}}, "Input should be 'fp32'"),
        ({"workload": {"jobs": [small_job(iterations=-1)]}}, "greater than 0"),
        ({"workload": {"jobs": [small_job(gpu_type="tpu-v5")]}}, "unknown GPU type 'tpu-v5'"),
        ({"workload": {"jobs": [small_job(global_batch=6, parallelism={"dp": 4})]}},
         "global_batch (6) must be divisible by dp x micro_batch"),
        ({"workload": {}}, "give exactly one of jobs, trace, generator"),
        ({"workload": {"trace": {"path": "nowhere.csv"}}}, "trace file not found"),
        ({"seed": -3}, "greater than or equal to 0"),
        ({"horizon_s": 0}, "greater than 0"),
    ],
)
def test_bad_input_messages(write_yaml, change, expected):
    found = problems(write_yaml(small_scenario(**change)))
    assert any(expected in p for p in found), found


def test_yaml_syntax_error_has_line(write_yaml):
    path = write_yaml("name: x\ncluster: [unclosed\n")
    (msg,) = problems(path)
    assert msg.startswith(f"{path}:") and "invalid YAML" in msg


def test_missing_file():
    (msg,) = [str(p) for p in pytest.raises(ScenarioError, dcsim.load_scenario,
                                            "no/such.yaml").value.problems]
    assert msg.startswith("no/such.yaml: cannot read")


def test_overrides_and_seed_are_revalidated(write_yaml):
    path = write_yaml(small_scenario())
    sc = dcsim.load_scenario(path, ["workload.jobs.0.iterations=7", "placement.kind=first-fit"],
                             seed=99)
    assert sc.workload.jobs[0].iterations == 7
    assert sc.placement.kind == "first-fit"
    assert sc.seed == 99
    with pytest.raises(ScenarioError) as e:
        dcsim.load_scenario(path, ["workload.jobs.0.iterations=0"])
    assert str(e.value) == ("--set workload.jobs.0.iterations=0: workload.jobs[0].iterations: "
                            "Input should be greater than 0")
    with pytest.raises(ScenarioError, match="--set nope.x=1: nope: unknown key"):
        dcsim.load_scenario(path, ["nope.x=1"])
    with pytest.raises(ScenarioError, match="no such key '5'"):
        dcsim.load_scenario(path, ["workload.jobs.5.iterations=1"])
    with pytest.raises(ScenarioError, match="expected key.path=value"):
        dcsim.load_scenario(path, ["seed"])


def test_scenario_is_frozen(write_yaml):
    sc = dcsim.load_scenario(write_yaml(small_scenario()))
    with pytest.raises(Exception, match="frozen"):
        sc.seed = 5  # type: ignore[misc]


def test_model_presets_all_valid(write_yaml):
    from dcsim import catalog

    jobs = [small_job(f"j{i}", model=name, global_batch=8) for i, name in
            enumerate(catalog.model_presets())]
    sc = dcsim.load_scenario(write_yaml(small_scenario(jobs)))
    assert [j.model.name for j in sc.workload.jobs] == list(catalog.model_presets())


def test_internal_fields_are_not_yaml_keys(write_yaml):
    found = problems(write_yaml({**small_scenario(), "base_dir": "/etc"}))
    assert any("base_dir: unknown key" in p for p in found)


def test_override_list_index_out_of_range(write_yaml):
    with pytest.raises(ScenarioError, match="no such item 5"):
        dcsim.load_scenario(write_yaml(small_scenario()), ["cluster.servers.5=1"])


def test_seed_override_errors_name_the_flag(write_yaml):
    with pytest.raises(ScenarioError, match="--seed -1: seed: Input should be greater"):
        dcsim.load_scenario(write_yaml(small_scenario()), seed=-1)


def test_servers_without_network_are_rejected_at_validation(write_yaml):
    group = {"name": "bare", "count": 2, "gpus_per_server": 4, "gpu": "a100-sxm4-80gb",
             "nics": []}
    found = problems(write_yaml(small_scenario(cluster={"servers": [group]})))
    assert any("cluster.servers.0.nics: servers of this group have no NICs, so their 4 GPUs "
               "each cannot reach the other servers" in p for p in found), found
    alone = dict(group, count=1)  # one server needs no network
    dcsim.load_scenario(write_yaml(small_scenario(cluster={"servers": [alone]})))


def test_dlrm_shapes_are_checked(write_yaml):
    model = {"kind": "dlrm", "dense_features": 13, "embedding_rows": [10], "embedding_dim": 16,
             "bottom_mlp": [64, 32], "top_mlp": [1]}
    found = problems(write_yaml(small_scenario([small_job(model=model)])))
    assert any("must equal embedding_dim (16)" in p for p in found)


@pytest.mark.parametrize(("text", "expected"), [
    ("host-cpu: [unclosed\n", "p.yaml:2: invalid YAML"),
    ("host-cpu: {gemm_efficiency: 0.5}\n", "host-cpu: missing gemm_half_gflop"),
    ("tpu-v9: {}\n", "tpu-v9: unknown device"),
    ("host-cpu: {gemm_efficiency: 1.5, gemm_half_gflop: 1, memory_efficiency: 0.5, "
     "kernel_overhead_s: 1.0e-6, nvlink_efficiency: 1, network_efficiency: 1}\n",
     "host-cpu.gemm_efficiency: must be a number in (0, 1], got 1.5"),
])
def test_bad_profile_files_are_located(write_yaml, tmp_path, text, expected):
    (tmp_path / "p.yaml").write_text(text)
    found = problems(write_yaml({**small_scenario(), "engine": {"profiles": ["p.yaml"]}}))
    assert any("engine.profiles[0]:" in p and expected in p for p in found), found


def test_too_small_images_are_rejected(write_yaml):
    found = problems(write_yaml(small_scenario([small_job(
        model={"kind": "cnn", "arch": "resnet50", "image_size": 16})])))
    assert any("resnet50 needs image_size >= 32" in p for p in found), found


def test_profile_files_reject_unknown_keys(write_yaml, tmp_path):
    (tmp_path / "p.yaml").write_text(
        "host-cpu: {gemm_efficiency: 0.5, gemm_half_gflop: 1, memory_efficiency: 0.5, "
        "kernel_overhead_s: 1.0e-6, nvlink_efficiency: 1, network_efficiency: 1, "
        "step_overhead: 0.5}\n")
    found = problems(write_yaml({**small_scenario(), "engine": {"profiles": ["p.yaml"]}}))
    assert any("host-cpu: unknown keys step_overhead" in p for p in found), found
