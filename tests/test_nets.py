"""Networks op by op (dcsim/perf/nets) and their cost (dcsim/perf/netcost.py): published
totals, the schema's `kind: net`, and the step model's structure for small jobs."""

from __future__ import annotations

from dataclasses import replace

import pytest

import dcsim
from dcsim import catalog
from dcsim.errors import ScenarioError
from dcsim.fabric.network import RingPath
from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.memory import memory_breakdown
from dcsim.perf.nets import NETS
from dcsim.perf.profile import profile_for
from dcsim.perf.zoo import model_stats
from dcsim.scenario import JobSpec
from tests.conftest import small_job, small_scenario

ONE_GPU = RingPath(10e9, 5e-6, 10e9, 5e-6, 1, 1, shape=(1,))
V100 = catalog.gpus()["v100-sxm2-16gb"]


def build(arch: str, **params):
    builder = NETS.get(arch)()
    return builder.build(builder.Params(**params))


def job(model, batch: int = 32, precision: str = "fp32", dp: int = 1, **kw) -> JobSpec:
    return JobSpec.model_validate({
        "name": "j", "model": model, "parallelism": {"dp": dp, "micro_batch": batch},
        "global_batch": batch * dp, "precision": precision, "iterations": 1, **kw})


# (arch, params, published GMACs, published parameters): torchvision model cards (ResNets,
# ResNeXt, VGG), Tan & Le 2019 (EfficientNet-B0), Redmon & Farhadi 2018 (YOLOv3-416,
# 65.86 BFLOPs as darknet counts them = 2 x 32.93 GMACs; 61.9M parameters)
PUBLISHED = [
    ("resnet", {"depth": "resnet18"}, 1.814, 11.69e6),
    ("resnet", {"depth": "resnet50"}, 4.089, 25.557e6),
    ("resnet", {"depth": "resnet101"}, 7.80, 44.55e6),
    ("resnet", {"depth": "resnet152"}, 11.51, 60.19e6),
    ("resnet", {"depth": "resnext50-32x4d"}, 4.26, 25.03e6),
    ("resnet", {"depth": "resnext101-32x8d"}, 16.41, 88.79e6),
    ("vgg", {"depth": "vgg16"}, 15.47, 138.36e6),
    ("efficientnet", {"variant": "b0"}, 0.39, 5.29e6),
    ("yolov3", {"image_size": 416}, 32.93, 61.9e6),
]


@pytest.mark.parametrize(("arch", "params", "gmacs", "weights"), PUBLISHED)
def test_layer_lists_reproduce_published_totals(arch, params, gmacs, weights):
    net = build(arch, **params)
    assert net.forward_flop / 2e9 == pytest.approx(gmacs, rel=0.02)
    assert net.params == pytest.approx(weights, rel=0.02)


def test_cyclegan_runs_its_networks_several_times_on_the_same_weights():
    once = build("cyclegan", residual_blocks=9)
    ops = [replace(op, reuse=1) for op in once.ops]
    assert sum(op.flop for op in once.ops) == pytest.approx(3 * sum(op.flop for op in ops))
    assert once.params == pytest.approx(sum(op.weights * op.count for op in ops))
    assert 25e6 < once.params < 32e6  # 2 x 11.4M generators + 2 x 2.8M discriminators


def test_unknown_arch_and_bad_params_are_located_errors(write_yaml):
    bad = small_job(model={"kind": "net", "arch": "resnt"})
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(write_yaml(small_scenario(jobs=[bad])))
    assert "workload.jobs[0].model: unknown net arch 'resnt'; valid: a3c, cyclegan" in str(
        info.value)
    mix = {"num_jobs": 2, "mean_interarrival_s": 1, "mix": [{"weight": 1, "job": bad}]}
    with pytest.raises(ScenarioError, match=r"workload.generator.mix\[0\].job.model: unknown "
                                            r"net arch 'resnt'"):
        dcsim.load_scenario(write_yaml(small_scenario(workload={"generator": mix})))
    bad = small_job(model={"kind": "net", "arch": "resnet", "params": {"depth": "resnet7"}})
    with pytest.raises(ScenarioError, match=r"params.depth: Input should be"):
        dcsim.load_scenario(write_yaml(small_scenario(jobs=[bad])))
    bad = small_job(model={"kind": "net", "arch": "unet", "params": {"image_size": 1e9}})
    with pytest.raises(ScenarioError, match=r"params.image_size: Input should be less than"):
        dcsim.load_scenario(write_yaml(small_scenario(jobs=[bad])))
    bad = small_job(model={"kind": "net", "arch": "unet", "params": {"filters": [32, 10**9]}})
    with pytest.raises(ScenarioError, match=r"params.filters.1: Input should be less than"):
        dcsim.load_scenario(write_yaml(small_scenario(jobs=[bad])))


def test_every_preset_builds_and_trains_somewhere():
    model = CalibratedStepModel()
    for name in catalog.model_presets():
        spec = job(name, batch=1, precision="fp16" if name.startswith("gpt") else "fp32")
        stats = model_stats(spec.model)
        assert stats.params > 0 and stats.forward_flop_per_sample > 0, name
        if stats.net is not None:
            assert model.estimate(spec, V100, ONE_GPU).iteration_s > 0, name


# ----------------------------------------------------------------------------- the step cost
def test_small_batches_are_bound_by_the_host_and_large_ones_by_the_gpu():
    model = CalibratedStepModel()
    small = model.estimate(job("resnet18-cifar", batch=1), V100, ONE_GPU)
    large = model.estimate(job("resnet18-cifar", batch=512), V100, ONE_GPU)
    assert small.overhead_s > small.compute_s  # framework calls outlast the kernels
    assert large.compute_s > 5 * large.overhead_s
    # the floor is what the framework calls and the fixed step cost add up to
    prof = profile_for(V100.name, V100.first_order_efficiency)
    calls = build("resnet", depth="resnet18", cifar_stem=True, image_size=32, classes=10)
    n_calls = sum(op.host_ops * op.count * (2 if op.backward else 1) for op in calls.ops)
    assert small.iteration_s > n_calls * prof.op_overhead_s


def test_recurrent_layers_pay_one_kernel_per_time_step():
    model = CalibratedStepModel()
    short = model.estimate(job({"kind": "net", "arch": "rnn-lm", "params": {"bptt": 10}},
                               batch=4), V100, ONE_GPU)
    long = model.estimate(job({"kind": "net", "arch": "rnn-lm", "params": {"bptt": 80}},
                              batch=4), V100, ONE_GPU)
    # 8x the steps: the per-step kernels dominate at batch 4, so time grows ~linearly
    assert long.compute_s > 5 * short.compute_s


def test_input_decoding_bounds_a_fast_gpu_with_few_loader_cores():
    slow_host = replace(profile_for(V100.name, 0.55), loader_cores=0.25)
    fast_host = replace(slow_host, loader_cores=64.0)
    spec = job("resnet50", batch=64)
    starved = CalibratedStepModel({V100.name: slow_host}).estimate(spec, V100, ONE_GPU)
    fed = CalibratedStepModel({V100.name: fast_host}).estimate(spec, V100, ONE_GPU)
    decode = 64 * build("resnet", depth="resnet50").decode_s_per_sample / 0.25
    assert starved.iteration_s == pytest.approx(decode / slow_host.host_speed, rel=1e-6)
    assert fed.iteration_s < starved.iteration_s / 2


def test_sparse_embedding_gradients_update_only_the_rows_looked_up():
    model = CalibratedStepModel()
    a100 = catalog.gpus()["a100-sxm4-80gb"]
    dlrm = model.estimate(job("dlrm-criteo", batch=8192), a100, ONE_GPU)
    dense = model.estimate(job("ncf", batch=8192), a100, ONE_GPU)
    stats = model_stats(job("dlrm-criteo").model)
    assert stats.sharded_params > 20e9 and stats.params < 5e6  # tables apart from the MLPs
    # the optimizer sweeps NCF's whole 31.8M-parameter tables; DLRM only 8192 x 26 rows
    table_bytes = stats.sharded_params * 20.0
    assert dlrm.optimizer_s < table_bytes / a100.hbm_bandwidth_byte_s / 10
    assert dense.optimizer_s > 31e6 * 32.0 / a100.hbm_bandwidth_byte_s


def test_rl_rollouts_run_batch_one_forward_passes_and_the_environment():
    model = CalibratedStepModel()
    base = {"kind": "net", "arch": "a3c", "params": {"rollout": 20}}
    slow_env = {"kind": "net", "arch": "a3c", "params": {"rollout": 20, "env_step_s": 0.01}}
    t1 = model.estimate(job(base, batch=1), V100, ONE_GPU).iteration_s
    t2 = model.estimate(job(slow_env, batch=1), V100, ONE_GPU).iteration_s
    host = profile_for(V100.name, V100.first_order_efficiency).host_speed
    assert t2 - t1 == pytest.approx(20 * (0.01 - 0.001) / host, rel=0.05)
    # the job's batch does not change a rollout
    assert model.estimate(job(base, batch=8), V100, ONE_GPU).iteration_s == pytest.approx(t1)


# ----------------------------------------------------------------------------- memory
def test_memory_fits_what_ran_on_12_and_16_gb_gpus():
    """Gavel measured ResNet-50 at batch 128 in fp32 on a 12 GB K80 and 16 GB P100, and the
    Transformer at batch 256: both fit; twice the batch does not fit a K80."""
    k80, p100 = catalog.gpus()["k80-12gb"], catalog.gpus()["p100-pcie-16gb"]
    rn50 = memory_breakdown(job("resnet50", batch=128)).total
    assert rn50 < k80.memory_bytes < p100.memory_bytes
    assert memory_breakdown(job("resnet50", batch=256)).total > k80.memory_bytes
    assert memory_breakdown(job("transformer-multi30k", batch=256)).total < p100.memory_bytes
