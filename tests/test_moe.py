"""Mixture of experts and latent attention: DeepSeek-V3 and Mixtral shapes, routing load,
node-limited all-to-alls, dense first layers, and the bad input each gets."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from dcsim import catalog
from dcsim.fabric.network import RingPath
from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.memory import local_param_split, memory_breakdown
from dcsim.perf.transformer import ExpertLinks, activation_bytes
from dcsim.perf.zoo import attention_shape, model_stats
from dcsim.scenario import JobSpec
from dcsim.scenario.models import ModelSpec

H100, H800 = catalog.gpus()["h100-sxm5-80gb"], catalog.gpus()["h800-sxm5-80gb"]
# 16 servers of 8 GPUs, 50 GB/s a GPU off its server, NVLink inside
CLUSTER = RingPath(47e9, 3e-6, 200e9, 1e-6, 16, min_gpus_per_server=8, shape=(8,) * 16)
SMALL_MOE = {"kind": "gpt", "layers": 4, "hidden": 2048, "heads": 16, "seq_len": 1024,
             "vocab": 32000, "gated_mlp": True, "moe_experts": 64, "moe_top_k": 8,
             "moe_ffn_hidden": 512}


def preset(name: str, **update):
    spec = {**catalog.model_presets()[name], **update}
    return TypeAdapter(ModelSpec).validate_python(spec)


def job(model=None, batch=128, precision="bf16", **par) -> JobSpec:
    return JobSpec.model_validate({"name": "j", "model": model or SMALL_MOE, "parallelism": par,
                                   "global_batch": batch, "precision": precision,
                                   "iterations": 1})


def est(j, gpu=H100, ring=CLUSTER):
    return CalibratedStepModel().estimate(j, gpu, ring)


# ----------------------------------------------------------------------------- shapes
def test_deepseek_v3_has_its_published_parameters():
    """671B without the multi-token-prediction module, 37B activated per token (DeepSeek-V3
    report, section 4.2); MLA's attention: 187M parameters a layer."""
    total = model_stats(preset("deepseek-v3", mtp_depth=0))
    assert total.params == pytest.approx(671e9, rel=0.002)
    m = preset("deepseek-v3")
    att = attention_shape(m)
    out = m.heads * m.mla.v_head_dim * m.hidden
    assert att.in_weights + out == pytest.approx(187.1e6, rel=0.001)
    # activated: forward FLOPs per token less the attention scores and the MTP module, / 2
    no_mtp = model_stats(preset("deepseek-v3", mtp_depth=0))
    scores = no_mtp.attention_flop_per_sample / m.seq_len
    activated = (no_mtp.forward_flop_per_sample / m.seq_len - scores) / 2
    assert activated == pytest.approx(37e9, rel=0.03)
    # the MTP module is one more MoE layer: ~11.5B of the 685B checkpoint's 14B (the rest are
    # its copies of the embedding and output head, shared in training)
    assert 11e9 < model_stats(m).params - total.params < 14e9


def test_mixtral_counts_its_router():
    stats = model_stats(preset("mixtral-8x7b"))
    assert stats.params == pytest.approx(46.7e9, rel=0.005)  # Jiang et al. 2024: 46.7B
    assert stats.expert_params == pytest.approx(32 * 8 * 3 * 4096 * 14336)


def test_gpt_activations_are_korthikanti_eq_2_and_4():
    """Full-width K and V, f = 4h, one up product: s b h (34 + 5 a s / h) / t with sequence
    parallelism and s b h (10 + 24 / t + 5 a s / (h t)) without."""
    gpt = {"kind": "gpt", "layers": 8, "hidden": 4096, "heads": 32, "seq_len": 2048,
           "vocab": 50000, "flash_attention": False}
    s, b, h, a, t = 2048, 1, 4096, 32, 8
    sp = job(gpt, batch=8, tp=t, sequence_parallel=True)
    assert activation_bytes(sp.model, sp) == pytest.approx(s * b * h * (34 + 5 * a * s / h) / t)
    plain = job(gpt, batch=8, tp=t)
    assert activation_bytes(plain.model, plain) == pytest.approx(
        s * b * h * (10 + 24 / t + 5 * a * s / (h * t)))


# ----------------------------------------------------------------------------- routing
def test_capacity_and_imbalance_slow_the_experts_not_the_model_flops():
    even = est(job(dp=16, ep=16))
    skewed = est(job({**SMALL_MOE, "moe_imbalance": 1.5}, dp=16, ep=16))
    padded = est(job({**SMALL_MOE, "moe_capacity_factor": 1.25}, dp=16, ep=16))
    assert even.iteration_s < padded.iteration_s < skewed.iteration_s
    assert even.model_flop == skewed.model_flop == padded.model_flop
    # the busiest rank holds the skew's routed activations
    assert memory_breakdown(job({**SMALL_MOE, "moe_imbalance": 1.5}, dp=16, ep=16)
                            ).activations > memory_breakdown(job(dp=16, ep=16)).activations


def test_node_limited_routing_cuts_what_crosses_servers():
    links = ExpertLinks(ep=64, nodes=8, network=50e9, intra=160e9, latency=0.0)
    free = links.all_to_all(1e9, copies=8, node_limit=None)
    limited = links.all_to_all(1e9, copies=8, node_limit=4)
    assert free == pytest.approx(1e9 * 8 * 7 / 8 / 50e9)  # 7 of 8 copies leave the server
    assert limited == pytest.approx(1e9 * 4 * 7 / 8 / 50e9)  # once per server, 4 at most
    one_node = ExpertLinks(ep=8, nodes=1, network=50e9, intra=160e9, latency=0.0)
    assert one_node.all_to_all(1e9, 8, 4) == one_node.all_to_all(1e9, 8, None)
    assert one_node.all_to_all(1e9, 8, None) == pytest.approx(1e9 * 8 * 7 / 8 / 160e9)
    m = {**SMALL_MOE, "moe_node_limit": 2}
    assert est(job(m, dp=64, ep=64)).tp_comm_s < est(job(dp=64, ep=64)).tp_comm_s


def test_overlapped_all_to_alls_hide_behind_compute():
    plain, hidden = est(job(dp=64, ep=64)), est(job(dp=64, ep=64, overlap_ep_comm=True))
    assert 0 <= hidden.tp_comm_s < plain.tp_comm_s
    assert hidden.compute_s == pytest.approx(plain.compute_s)


def test_expert_groups_inside_a_server_use_nvlink():
    """ep ranks stride over tp: with tp 8 an expert group has one rank per server."""
    model = CalibratedStepModel()
    inside_job, across_job = job(dp=8, ep=8), job(dp=8, ep=8, tp=8, batch=64)
    inside = model._expert_links(inside_job, model.device(inside_job, H100), CLUSTER)
    across = model._expert_links(across_job, model.device(across_job, H100), CLUSTER)
    assert (inside.nodes, across.nodes) == (1, 8)
    assert across.all_to_all(1e9, 8, None) > 3 * inside.all_to_all(1e9, 8, None)


# ----------------------------------------------------------------------------- dense layers
def test_dense_first_layers_hold_no_experts_and_cost_their_own():
    dense1 = {**SMALL_MOE, "moe_dense_layers": 1, "ffn_hidden": 8192}
    stats = model_stats(TypeAdapter(ModelSpec).validate_python(dense1))
    full = model_stats(TypeAdapter(ModelSpec).validate_python(SMALL_MOE))
    assert stats.expert_params == pytest.approx(full.expert_params * 3 / 4)
    # on 2 stages the first holds the dense layer: the second has the most experts
    j = job(dense1, pp=2, dp=8, ep=8)
    _, experts = local_param_split(j, stats)
    assert experts == pytest.approx(stats.expert_params / 3 * 2 / 8)
    assert est(j).iteration_s != est(job(SMALL_MOE, pp=2, dp=8, ep=8)).iteration_s


def test_mtp_adds_a_layer_and_a_head_on_the_last_stage():
    base = {**SMALL_MOE, "layers": 8}
    with_mtp = {**base, "mtp_depth": 1}
    a, b = est(job(base, pp=2, dp=8, ep=8)), est(job(with_mtp, pp=2, dp=8, ep=8))
    assert b.iteration_s > a.iteration_s and b.model_flop > a.model_flop


def test_deepseek_v3_runs_its_published_layout():
    """PP 16 x EP 64 x ZeRO-1 DP on 2,048 H800s (report section 3.2), FP8, an estimate."""
    m = preset("deepseek-v3")
    j = JobSpec.model_validate({
        "name": "v3", "model": m.model_dump(), "precision": "fp8", "global_batch": 15360,
        "iterations": 1, "parallelism": {"pp": 16, "dp": 128, "ep": 64, "zero": 1,
                                         "first_stage_layers": 4, "last_stage_layers": 1,
                                         "recompute": "full", "overlap_ep_comm": True}})
    ring = RingPath(47e9, 3e-6, 160e9, 1e-6, 256, min_gpus_per_server=8, shape=(8,) * 256)
    e = est(j, H800, ring)
    tokens_per_gpu_s = j.global_batch * m.seq_len / e.iteration_s / j.num_gpus
    assert 1000 < tokens_per_gpu_s < 3000  # the report: 1,543 (180K GPU-hours per 1T tokens)
    assert memory_breakdown(j).total < H800.memory_bytes


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("change", "message"), [
    ({"moe_experts": None, "moe_top_k": 2}, "moe_ffn_hidden need moe_experts"),
    ({"moe_dense_layers": 4}, r"moe_dense_layers \(4\) must be fewer than layers \(4\)"),
    ({"moe_capacity_factor": 9.0}, r"moe_capacity_factor \(9.0\) x moe_top_k \(8\) exceeds "
                                   r"moe_experts \(64\)"),
    ({"moe_imbalance": 0.5}, "greater than or equal to 1"),
    ({"kv_heads": 4, "mla": {"kv_lora_rank": 64, "qk_nope_head_dim": 32, "v_head_dim": 32}},
     "kv_heads is for grouped-query attention"),
])
def test_bad_moe_models_are_refused_naming_the_values(change, message):
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(ModelSpec).validate_python({**SMALL_MOE, **change})


def test_ep_must_divide_the_experts():
    with pytest.raises(ValidationError, match=r"ep \(48\) must divide moe_experts \(64\)"):
        job(dp=48, ep=48, batch=48)


# ----------------------------------------------------------------------------- on the fabric
def _fabric(servers=4, oversubscription=4.0):
    import dcsim
    from dcsim.engine import Simulation
    from dcsim.fabric.sharing import SharedFabric
    from tests.conftest import small_scenario

    cluster = {"servers": [{"type": "dgx-a100-80gb", "count": servers}]}
    topo = {"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                             "oversubscription": oversubscription}}
    net = Simulation(dcsim.scenario_from_dict(small_scenario(cluster=cluster,
                                                             topology=topo))).network
    return SharedFabric(net.detailed, net.attach)


def test_expert_groups_stride_over_tensor_ranks():
    from dcsim.fabric.sharing import expert_groups

    gpus = {0: (0, 1, 2, 3), 1: (0, 1, 2, 3)}
    # tp 2, ep 4: lanes of every 2nd rank
    assert expert_groups(gpus, 1, 2, 4) == [[(0, 0), (0, 2), (1, 0), (1, 2)],
                                            [(0, 1), (0, 3), (1, 1), (1, 3)]]
    # pp 2: a group per stage, inside its servers
    assert expert_groups(gpus, 2, 1, 4) == [[(0, 0), (0, 1), (0, 2), (0, 3)],
                                            [(1, 0), (1, 1), (1, 2), (1, 3)]]


def test_all_to_all_flows_get_the_nics_alone_and_less_when_shared():
    from dcsim.fabric.sharing import a2a_routes

    fab = _fabric()
    gpus = {0: tuple(range(8)), 1: tuple(range(8))}
    routes, fanout = a2a_routes(fab.router, 1, gpus, 1, 1, 16)
    assert len(routes) == 2 * 8 and fanout == [1.0] * 16  # each GPU to its rail peer, both ways
    fab.add(1, gpus, 1, (1, 16))
    fab.solve()
    alone = fab.a2a_rate(1)
    assert alone == pytest.approx(24e9)  # one HDR NIC a GPU
    # its rings and its all-to-alls take turns on the links: never over capacity
    assert fab.utilization.max() <= 1 + 1e-9
    # a second job across the same 1:4 uplinks: the all-to-all gets less
    fab.add(2, {2: tuple(range(8)), 3: tuple(range(8))}, 1, None)
    cross = {0: tuple(range(8)), 2: tuple(range(8))}
    fab.remove(1)
    fab.add(1, cross, 1, (1, 16))
    fab.solve()
    assert fab.a2a_rate(1) < alone
    # inside one server or without experts: no all-to-all flows
    fab.add(3, {0: tuple(range(8))}, 1, (1, 8))
    fab.add(4, gpus, 1, (8, 1))
    fab.solve()
    assert fab.a2a_rate(3) is None and fab.a2a_rate(4) is None


def test_a_moe_job_slows_when_its_all_to_alls_share_the_uplinks():
    """Two MoE jobs across the same oversubscribed leaf uplinks: the shared fabric's
    all-to-all rate sets their exposed expert traffic, so each is slower than alone (and
    alone, its own rings do not slow its all-to-alls: the same step as `dcsim estimate`)."""
    import dcsim
    from dcsim.engine import Simulation
    from dcsim.world import build_world
    from tests.conftest import small_job, small_scenario

    model = {**SMALL_MOE, "layers": 2}

    def moe(name, gpu):
        return small_job(name, model=model, parallelism={"dp": 16, "ep": 16},
                         global_batch=16, iterations=20, gpu_type=gpu)

    # A100 and H100 servers alternate over two leaves (as in scenarios/contention.yaml): each
    # job's two servers sit on different leaves, so both cross the same 1:8 uplinks
    groups = [{"name": f"{t}-{side}", "type": t, "count": 1} for side in ("l", "r")
              for t in ("dgx-a100-80gb", "dgx-h100")]

    def scenario(jobs):
        return dcsim.scenario_from_dict(small_scenario(
            jobs, cluster={"servers": groups},
            topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                                       "oversubscription": 8.0}},
            engine={"network": "shared"}))

    a, b = moe("a", "a100-sxm4-80gb"), moe("b", "h100-sxm5-80gb")
    alone = Simulation(scenario([a])).run().jobs.set_index("name")
    both = Simulation(scenario([a, b])).run().jobs.set_index("name")
    assert both.loc["a", "iteration_time_s"] > 1.05 * alone.loc["a", "iteration_time_s"]
    world = build_world(scenario([a]))
    est, _ = world.estimate_alone(world.scenario.workload.jobs[0])
    assert alone.loc["a", "iteration_time_s"] == pytest.approx(est.iteration_s, rel=1e-9)


def test_the_solve_on_the_links_in_use_gives_the_full_solves_numbers(monkeypatch):
    """SharedFabric solves on the links its flows cross when the fabric is much larger: rings,
    pipelines, all-to-alls, context rings and a job's removal give the same rates and link
    levels, to the bit, as the solve over every link."""
    from dcsim.fabric.sharing import SharedFabric

    def run(ratio):
        monkeypatch.setattr(SharedFabric, "SPARSE_RATIO", ratio)
        fab = _fabric(servers=8, oversubscription=2.0)
        out = []
        steps = [("add", 1, {0: tuple(range(8)), 2: tuple(range(8))}, 1, (1, 16), None),
                 ("add", 2, {1: tuple(range(4)), 5: tuple(range(4))}, 2, None, None),
                 ("add", 3, {3: tuple(range(8)), 6: tuple(range(8))}, 1, None, (2, 4)),
                 ("remove", 2), ("add", 4, {4: tuple(range(8)), 7: tuple(range(8))}, 1,
                                 (2, 8), None)]
        for step in steps:
            if step[0] == "add":
                fab.add(step[1], step[2], step[3], step[4], step[5])
            else:
                fab.remove(step[1])
            changed = fab.solve()
            out.append((changed, {j: (fab.rate(j), fab.p2p_rate(j), fab.a2a_rate(j),
                                      fab.cp_rate(j)) for j in (1, 2, 3, 4)},
                        fab.utilization.tolist(), sorted(fab.touched.tolist())))
        return out

    full, sparse = run(10**9), run(0)  # (never, always on the links in use)
    for (c1, r1, u1, t1), (c2, r2, u2, t2) in zip(full, sparse, strict=True):
        assert c1 == c2 and r1 == r2 and u1 == u2
        assert set(t2) <= set(t1) and len(t2) < len(t1)  # the sparse one touched fewer
