"""The calibrated step-time model: schedules, parallelism, precision, sparsity, memory."""

from __future__ import annotations

import pytest

from dcsim import catalog
from dcsim.fabric.network import RingPath
from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.memory import memory_breakdown
from dcsim.perf.schedule import device_orders, run_schedule
from dcsim.scenario import JobSpec

A100, H100, V100 = (catalog.gpus()[n] for n in ("a100-sxm4-80gb", "h100-sxm5-80gb",
                                                "v100-sxm2-32gb"))
ONE_NODE = RingPath(300e9 * 0.77, 1e-6, 300e9, 1e-6, 1)
TWO_NODES = RingPath(24e9, 2e-6, 300e9, 1e-6, 2)


def job(model=None, precision="bf16", batch=32, **par) -> JobSpec:
    model = model or {"kind": "gpt", "layers": 8, "hidden": 4096, "heads": 32, "seq_len": 2048,
                      "vocab": 50000}
    extra = {k: par.pop(k) for k in ("sparsity", "prune_fraction") if k in par}
    return JobSpec.model_validate({"name": "j", "model": model, "parallelism": par,
                                   "global_batch": batch, "precision": precision,
                                   "iterations": 1, **extra})


def est(j, gpu=A100, ring=ONE_NODE):
    return CalibratedStepModel().estimate(j, gpu, ring)


# ----------------------------------------------------------------------------- schedules
@pytest.mark.parametrize(("schedule", "p", "m", "v"), [
    ("gpipe", 4, 8, 1), ("1f1b", 4, 8, 1), ("1f1b", 8, 64, 1), ("interleaved", 4, 8, 2),
    ("interleaved", 8, 32, 4), ("1f1b", 6, 5, 1)])
def test_uniform_bubble_matches_the_closed_form(schedule, p, m, v):
    """With equal stages and free transfers the bubble is (p - 1) / (v m) (Narayanan et al.)."""
    t_f, t_b = 1.0 / v, 2.0 / v
    makespan = run_schedule(schedule, p, m, v, t_f, t_b)
    ideal = m * v * (t_f + t_b)
    assert (makespan - ideal) / ideal == pytest.approx((p - 1) / (v * m))


def test_schedule_orders_are_complete_and_compiled_agrees():
    for schedule, p, m, v in [("1f1b", 4, 6, 1), ("interleaved", 2, 4, 3), ("gpipe", 3, 2, 1)]:
        orders = device_orders(schedule, p, m, v)
        for ops in orders:
            assert sorted(ops) == sorted({(k, c, i) for k in (0, 1) for c in range(v)
                                          for i in range(m)})
        assert run_schedule(schedule, p, m, v, 1.0, 2.0, 0.1) == pytest.approx(
            run_schedule(schedule, p, m, v, 1.0, 2.0, 0.1, compiled=False))


def test_schedule_errors():
    with pytest.raises(ValueError, match="divisible by pp"):
        device_orders("interleaved", 4, 6, 2)
    with pytest.raises(ValueError, match="unknown pipeline schedule"):
        device_orders("zigzag", 2, 2)


def test_transfers_and_a_slow_last_stage_lengthen_the_pipeline():
    base = run_schedule("1f1b", 4, 8, 1, 1.0, 2.0)
    assert run_schedule("1f1b", 4, 8, 1, 1.0, 2.0, t_p2p=0.1) > base
    assert run_schedule("1f1b", 4, 8, 1, [1, 1, 1, 1.5], [2, 2, 2, 3]) > base + 8 * 1.5 - 1e-9


# ----------------------------------------------------------------------------- parallelism
def test_pipeline_bubble_shrinks_with_more_micro_batches_and_interleaving():
    few = est(job(tp=1, pp=4, batch=8))
    many = est(job(tp=1, pp=4, batch=64))
    inter = est(job(tp=1, pp=4, batch=64, virtual_stages=2))
    assert few.bubble_s / few.iteration_s > many.bubble_s / many.iteration_s
    assert inter.bubble_s < many.bubble_s


# 10 layers on 4 stages: 2 + 3 + 3 + 2 (the embedding and output layer on the light ends)
TEN = {"kind": "gpt", "layers": 10, "hidden": 4096, "heads": 32, "seq_len": 2048,
       "vocab": 50000}


def test_uneven_stages_run_as_given_and_the_bubble_follows():
    even = est(job(tp=1, pp=2, batch=16))  # 4 + 4 of the default 8 layers
    lopsided = est(job(tp=1, pp=2, batch=16, stage_layers=[2, 6]))
    # the 6-layer stage paces the pipeline: its 16 micro-batches take 1.5x as long
    assert lopsided.iteration_s > 1.3 * even.iteration_s
    ends = est(job(TEN, tp=1, pp=4, batch=32, first_stage_layers=2, last_stage_layers=2))
    same = est(job(TEN, tp=1, pp=4, batch=32, stage_layers=[2, 3, 3, 2]))
    assert ends.iteration_s == same.iteration_s
    # interleaved: virtual stage c x pp + d on stage d
    inter = job(TEN, tp=1, pp=2, batch=32, virtual_stages=2, stage_layers=[2, 3, 3, 2])
    assert inter.parallelism.chunk_layers(10) == [2, 3, 3, 2] and est(inter).iteration_s > 0


def test_uneven_stage_memory_is_the_fullest_stage():
    base = dict(tp=1, pp=4, batch=32)
    even = memory_breakdown(job(**base))  # 2 layers a stage; stage 0 holds 4 micro-batches
    # 1 + 3 + 2 + 2: stage 1 holds 3 layers x 3 micro-batches in flight (> stage 0's 1 x 4)
    uneven = memory_breakdown(job(**base, stage_layers=[1, 3, 2, 2]))
    assert uneven.activations == pytest.approx(even.activations * (3 * 3) / (2 * 4))
    assert uneven.weights == pytest.approx(even.weights * 3 / 2)


@pytest.mark.parametrize(("par", "message"), [
    ({"pp": 2, "stage_layers": [3, 4, 1]}, r"stage_layers has 3 entries; pp x virtual_stages"
                                           r" = 2 x 1 = 2"),
    ({"pp": 2, "stage_layers": [3, 4]}, "stage_layers add up to 7 layers; the model has 8"),
    ({"pp": 3}, r"layers \(8\) must be divisible by pp x virtual_stages \(3 x 1 = 3\); or "
                "give stage_layers"),
    ({"pp": 4, "first_stage_layers": 1}, "first_stage_layers 1 leave 7 of the model's 8 "
                                         "layers for the other 3 virtual stages"),
    ({"pp": 2, "first_stage_layers": 2, "stage_layers": [4, 4]}, "not both"),
    ({"pp": 1, "stage_layers": [4, 4]}, "need pipeline parallelism"),
])
def test_stage_layer_counts_that_do_not_add_up_are_refused(par, message):
    with pytest.raises(ValueError, match=message):
        job(tp=1, batch=16, **par)


def test_llama3_405b_on_16_stages_as_meta_ran_it():
    j = job("llama3-405b", tp=8, pp=16, dp=64, batch=2048, sequence_parallel=True,
            first_stage_layers=7, last_stage_layers=7)
    assert j.parallelism.chunk_layers(126) == [7] + [8] * 14 + [7]
    e = est(j, gpu=H100)
    assert 0.2 < e.mfu < 0.7 and e.bubble_s > 0


def test_mixtral_8x7b_has_its_published_size_and_routes_two_of_eight():
    from dcsim.perf.zoo import model_stats
    from dcsim.scenario import GptModel

    m = GptModel(**catalog.model_presets()["mixtral-8x7b"], name="mixtral-8x7b")
    st = model_stats(m)
    # 46.7B in all (dcsim ties the output layer to the embedding: + vocab x hidden untied)
    assert st.params + m.vocab * m.hidden == pytest.approx(46.7e9, rel=0.005)
    j = job("mixtral-8x7b", tp=2, pp=2, dp=8, ep=8, batch=64, sequence_parallel=True)
    e = est(j, gpu=H100, ring=TWO_NODES)
    assert e.tp_comm_s > 0 and 0.1 < e.mfu < 0.8  # the experts' all-to-all is in tp_comm


# ------------------------------------------------------------------- context parallelism
LONG = {"kind": "gpt", "layers": 8, "hidden": 4096, "heads": 32, "kv_heads": 8,
        "seq_len": 65536, "vocab": 50000, "flash_attention": True}


def test_context_parallel_splits_the_tokens_and_hides_the_kv_ring_in_a_server():
    base = est(job(LONG, tp=2, batch=8, sequence_parallel=True), gpu=H100)
    cp4 = est(job(LONG, tp=2, cp=4, batch=8, sequence_parallel=True), gpu=H100)
    # 4x the GPUs on the same sequences: each does a quarter of every layer
    assert cp4.compute_s == pytest.approx(base.compute_s / 4, rel=0.02)
    # inside one server the KV transfers hide behind the long attention: nothing exposed
    assert cp4.tp_comm_s == pytest.approx(base.tp_comm_s / 4, rel=0.02)
    # across a slow network they do not
    slow = RingPath(1e9, 2e-6, 300e9, 1e-6, 4, 2)
    across = est(job(LONG, tp=2, cp=4, batch=8, sequence_parallel=True), gpu=H100, ring=slow)
    assert across.tp_comm_s > 2 * cp4.tp_comm_s
    mem1 = memory_breakdown(job(LONG, tp=2, batch=8, sequence_parallel=True))
    mem4 = memory_breakdown(job(LONG, tp=2, cp=4, batch=8, sequence_parallel=True))
    assert mem4.activations == pytest.approx(mem1.activations / 4)


def test_llama3_405b_at_128k_with_cp_16_as_meta_ran_it():
    model = {**catalog.model_presets()["llama3-405b"], "kind": "gpt", "seq_len": 131072}
    j = job(model, tp=8, cp=16, pp=16, dp=8, batch=128, sequence_parallel=True,
            first_stage_layers=7, last_stage_layers=7)
    assert j.num_gpus == 16384
    assert memory_breakdown(j).activations < memory_breakdown(
        job({**model, "seq_len": 8192}, tp=8, pp=16, dp=8, batch=128, sequence_parallel=True,
            first_stage_layers=7, last_stage_layers=7)).activations * 1.01


@pytest.mark.parametrize(("model", "par", "message"), [
    ({**LONG, "seq_len": 1000}, {"cp": 16}, r"seq_len \(1000\) must be divisible by 2 x cp "
                                            r"\(2 x 16 = 32\)"),
    ({"kind": "mlp", "inputs": 4, "hidden": [8], "outputs": 2}, {"cp": 2},
     "tensor/pipeline/context parallelism is modelled for transformers, not mlp"),
])
def test_context_parallel_refuses_what_it_cannot_split(model, par, message):
    with pytest.raises(ValueError, match=message):
        job(model, batch=8, **par)


def test_fp8_on_a_gpu_without_it_is_refused_naming_both():
    bad = {"name": "j", "model": "llama3-8b", "global_batch": 8, "iterations": 1,
           "precision": "fp8", "gpu_type": "a100-sxm4-80gb"}
    with pytest.raises(ValueError, match="precision fp8 needs a GPU with fp8 math; gpu_type "
                                         "a100-sxm4-80gb has fp32, tf32"):
        JobSpec.model_validate(bad)
    assert JobSpec.model_validate({**bad, "gpu_type": "h100-sxm5-80gb"}).precision == "fp8"


def test_tensor_parallel_pays_collectives_and_overlap_hides_them():
    plain = est(job(tp=4))
    assert plain.tp_comm_s > 0 and est(job(tp=1)).tp_comm_s == 0
    assert est(job(tp=4, overlap_tp_comm=True)).tp_comm_s < plain.tp_comm_s
    assert est(job(tp=4, sequence_parallel=True)).compute_s < plain.compute_s


def test_recompute_costs_time_and_saves_memory():
    times = [est(job(tp=2, recompute=r)).iteration_s for r in ("none", "selective", "full")]
    assert times[0] <= times[1] < times[2]
    mems = [memory_breakdown(job(tp=2, recompute=r, sequence_parallel=True)).activations
            for r in ("none", "full")]
    assert mems[1] < mems[0] / 5


def test_data_parallel_overlap_and_zero():
    across = dict(dp=8, batch=64)
    plain = est(job(**across, overlap_grad_comm=False), ring=TWO_NODES)
    overlapped = est(job(**across), ring=TWO_NODES)
    assert 0 <= overlapped.dp_comm_s < plain.dp_comm_s
    m0, m1, m3 = (memory_breakdown(job(**across, zero=z)) for z in (0, 1, 3))
    assert m1.optimizer == pytest.approx(m0.optimizer / 8)
    # ZeRO-3: a shard of every layer, plus the layer computing and the one prefetched whole
    # (8 layers here: 2 / 8 of the weights)
    assert m3.weights == pytest.approx(m0.weights / 8 + 2 * m0.weights / 8)
    assert m3.gradients == m0.gradients / 8


def test_fsdp_gathers_every_pass_behind_compute_up_to_its_prefetch():
    """ZeRO-3 gathers each layer's weights in every micro-batch's forward and backward; with
    prefetch they hide behind compute (the first layer's exposed), without it none do. More
    prefetch holds more whole layers."""
    across = dict(dp=8, batch=64, zero=3)
    one = est(job(**across, micro_batch=8), ring=TWO_NODES)  # one micro-batch per rank
    eight = est(job(**across, micro_batch=1), ring=TWO_NODES)  # eight: eight times the gathers
    assert eight.dp_comm_s > one.dp_comm_s
    eager = est(job(**across, micro_batch=8, prefetch=0), ring=TWO_NODES)
    assert eager.dp_comm_s > one.dp_comm_s
    assert memory_breakdown(job(**across, prefetch=3)).weights > memory_breakdown(
        job(**across)).weights


def test_hsdp_shards_within_groups_and_replicates_across():
    full = job(dp=16, batch=64, zero=3)
    hsdp = job(dp=16, batch=64, zero=3, zero_group=8)
    assert memory_breakdown(hsdp).optimizer == pytest.approx(
        2 * memory_breakdown(full).optimizer)
    # gathers over 8 ranks instead of 16, plus an all-reduce of the shards across 2 groups
    assert est(hsdp, ring=TWO_NODES).dp_comm_s != est(full, ring=TWO_NODES).dp_comm_s
    with pytest.raises(ValueError, match=r"zero_group \(5\) must divide dp x cp"):
        job(dp=16, batch=64, zero=3, zero_group=5)
    with pytest.raises(ValueError, match="needs zero >= 1"):
        job(dp=16, batch=64, zero_group=8)


def test_experts_add_all_to_all_and_divide_expert_memory():
    moe = {"kind": "gpt", "layers": 4, "hidden": 2048, "heads": 16, "seq_len": 1024,
           "vocab": 32000, "moe_experts": 8, "moe_top_k": 2}
    one = memory_breakdown(job(moe, dp=8, batch=64))
    split = memory_breakdown(job(moe, dp=8, ep=8, batch=64))
    assert split.weights < one.weights / 3
    split_est = est(job(moe, dp=8, ep=8, batch=64), ring=TWO_NODES)
    one_est = est(job(moe, dp=8, batch=64), ring=TWO_NODES)
    assert split_est.tp_comm_s > 0 == one_est.tp_comm_s  # the all-to-alls
    assert split_est.dp_comm_s < one_est.dp_comm_s  # experts no longer replicated


# ----------------------------------------------------------------------------- precision
def test_precision_sets_the_compute_rate_and_the_bytes():
    bf16, fp8 = est(job(precision="bf16"), H100), est(job(precision="fp8"), H100)
    fp32 = est(job(precision="fp32"), H100)
    assert fp8.iteration_s < bf16.iteration_s < fp32.iteration_s
    assert (fp8.peak_flop_s, bf16.peak_flop_s) == (H100.peak_flop_s["fp8"],
                                                   H100.peak_flop_s["bf16"])
    assert memory_breakdown(job(precision="fp32")).weights == 2 * memory_breakdown(job()).weights


def test_two_four_sparsity_speeds_up_only_on_sparse_tensor_cores():
    dense_a, sparse_a = est(job()), est(job(sparsity="2:4"))
    assert sparse_a.iteration_s < dense_a.iteration_s
    assert sparse_a.model_flop == dense_a.model_flop  # MFU counts dense FLOPs
    dense_v = est(job(precision="fp16"), V100)
    assert est(job(precision="fp16", sparsity="2:4"), V100).iteration_s == pytest.approx(
        dense_v.iteration_s)
    assert memory_breakdown(job(sparsity="2:4")).weights < memory_breakdown(job()).weights


def test_pruning_saves_memory_and_traffic_not_time():
    full, pruned = job(dp=8, batch=64), job(dp=8, batch=64, prune_fraction=0.9)
    assert memory_breakdown(pruned).total < memory_breakdown(full).total
    plain = dict(overlap_grad_comm=False)
    assert est(job(dp=8, batch=64, prune_fraction=0.9, **plain), ring=TWO_NODES).dp_comm_s < \
        est(job(dp=8, batch=64, **plain), ring=TWO_NODES).dp_comm_s
    assert est(pruned).compute_s == pytest.approx(est(full).compute_s, rel=0.02)


def test_non_transformers_are_data_parallel_rooflines():
    res = job("resnet50", precision="fp16", batch=256, dp=4, micro_batch=64)
    e = est(res)
    assert e.bubble_s == 0 and e.tp_comm_s == 0
    assert 0.05 < e.mfu < 0.8  # convolutions at micro-batch 64 are far from peak
    dlrm = est(job("dlrm-criteo", precision="fp32", batch=65536, dp=8, micro_batch=8192))
    assert dlrm.iteration_s > 0


def test_estimates_are_cached_per_job_shape():
    model = CalibratedStepModel()
    a = model.estimate(job(tp=2), A100, ONE_NODE)
    b = model.estimate(job(tp=2).model_copy(update={"name": "other"}), A100, ONE_NODE)
    assert a is b


def test_tensor_parallel_groups_across_servers_pay_the_network():
    inside = RingPath(24e9, 2e-6, 300e9, 1e-6, 2, min_gpus_per_server=8)
    split = RingPath(24e9, 2e-6, 300e9, 1e-6, 2, min_gpus_per_server=4)
    assert est(job(tp=8), ring=split).tp_comm_s > 5 * est(job(tp=8), ring=inside).tp_comm_s


def test_expert_state_is_sharded_only_over_its_replicas():
    moe = {"kind": "gpt", "layers": 4, "hidden": 2048, "heads": 16, "seq_len": 1024,
           "vocab": 32000, "moe_experts": 8, "moe_top_k": 2}
    from dcsim.perf.memory import local_param_split
    from dcsim.perf.zoo import model_stats

    j = job(moe, dp=8, ep=8, batch=64, zero=1)
    shared, experts = local_param_split(j, model_stats(j.model))
    # one replica of each expert (dp / ep = 1): its optimizer state cannot be sharded
    assert memory_breakdown(j).optimizer == pytest.approx((shared / 8 + experts) * 12)


def test_the_fp8_recipe_keeps_attention_and_head_in_bf16_and_pays_for_its_casts():
    """fp8: the layers' products at the FP8 peak, attention, output layer and router at the
    BF16 one, and every product's input and output gradient quantized (CAST_BYTES each)."""
    from dcsim.perf import transformer as T

    big = {"kind": "gpt", "layers": 4, "hidden": 8192, "heads": 64, "seq_len": 8192,
           "vocab": 128000, "ffn_hidden": 28672, "gated_mlp": True}
    bf16, fp8 = job(big, batch=8), job(big, precision="fp8", batch=8)
    model = CalibratedStepModel()
    dev8, dev16 = model.device(fp8, H100), model.device(bf16, H100)
    assert T.wide(dev8).peak == dev16.peak and T.wide(dev16) is dev16
    att8, _ = T._attention(fp8.model, fp8, dev8)
    att16, _ = T._attention(bf16.model, bf16, dev16)
    assert att8.compute_s == pytest.approx(att16.compute_s)
    assert T.head_cost(fp8.model, fp8, dev8)[0].compute_s == pytest.approx(
        T.head_cost(bf16.model, bf16, dev16)[0].compute_s, rel=0.05)  # (1-byte weights)
    assert T._casts(dev16, bf16, (1e9,)) == 0.0
    assert T._casts(dev8, fp8, (1e9,)) == pytest.approx(dev8.memory(T.CAST_BYTES * 1e9))
    # faster than bf16, slower than every product at twice the rate
    e8, e16 = est(fp8, H100), est(bf16, H100)
    assert 0.5 * e16.compute_s < e8.compute_s < 0.8 * e16.compute_s
