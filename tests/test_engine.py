"""The engine: lifecycle, gang scheduling, rejection, horizon, preemption, fast-forward."""

from __future__ import annotations

import dataclasses

import pytest

import dcsim
from dcsim.engine import Simulation
from dcsim.perf.step import StepEstimate
from dcsim.perf.zoo import model_stats
from tests.conftest import REPO, small_job, small_scenario


def run(data: dict, **kw) -> dcsim.Results:
    return dcsim.simulate(dcsim.scenario_from_dict(data), **kw)


class ConstantStep:
    """A stand-in step-time model: every iteration takes `seconds`."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def estimate(self, job, gpu, ring) -> StepEstimate:
        return StepEstimate(self.seconds, self.seconds, 0.0, 0.0, 1e12, 1e12, job.num_gpus,
                            gpu.peak_flop_s[job.precision])


def test_step_model_is_swappable():
    res = run(small_scenario([small_job(iterations=50)]), step_model=ConstantStep(2.0))
    job = res.jobs.iloc[0]
    assert job.status == "completed"
    assert job.jct_s == pytest.approx(100.0)
    assert job.iteration_time_s == pytest.approx(2.0)


def test_single_job_times_follow_its_estimate():
    data = small_scenario([small_job(iterations=40, arrival_s=5.0, parallelism={"dp": 8})])
    sim = Simulation(dcsim.scenario_from_dict(data))
    est, _ = sim.world.estimate_alone(sim.workload.jobs[0])
    res = sim.run()
    job = res.jobs.iloc[0]
    assert (job.submit_s, job.start_s, job.queue_s) == (5.0, 5.0, 0.0)
    assert job.end_s == pytest.approx(5.0 + 40 * est.iteration_s)
    assert job.mfu == pytest.approx(est.mfu)
    assert res.summary()["jobs_completed"] == 1


def test_fifo_head_of_line_blocks_and_gangs():
    jobs = [small_job("big", parallelism={"dp": 16}, global_batch=16),
            small_job("wide", arrival_s=1, parallelism={"dp": 16}, global_batch=16),
            small_job("small", arrival_s=2)]
    res = run(small_scenario(jobs), step_model=ConstantStep(1.0))
    j = res.jobs.set_index("name")
    assert j.loc["wide", "start_s"] == pytest.approx(j.loc["big", "end_s"])
    # strict FIFO: the 1-GPU job does not pass the 16-GPU job that waits ahead of it
    assert j.loc["small", "start_s"] >= j.loc["wide", "start_s"]
    # gang scheduling: each start gives a job all its GPUs at once
    for job_id, seg in res.segments.groupby(["job_id", "start_s"]):
        assert seg["num_gpus"].sum() == res.jobs.set_index("job_id").loc[job_id[0], "num_gpus"]


@pytest.mark.parametrize(("job", "code"), [
    (small_job(parallelism={"dp": 32}, global_batch=32), "insufficient-gpus"),
    (small_job(model="gpt3-175b", global_batch=8), "out-of-memory"),
    (small_job(precision="fp8"), "unsupported-precision"),
    (small_job(gpu_type="h100-sxm5-80gb"), "no-such-gpu"),
])
def test_jobs_that_can_never_run_are_rejected_with_a_reason(job, code):
    res = run(small_scenario([job, small_job("ok", arrival_s=1)]))
    rejected = res.jobs.iloc[0]
    assert rejected.status == "rejected"
    assert rejected.reason.startswith(code + ":")
    assert res.jobs.iloc[1].status == "completed"
    s = res.summary()
    assert (s["jobs_rejected"], s["jobs_completed"], s["rejection_reasons"]) == (1, 1, {code: 1})


def test_out_of_memory_reason_has_the_numbers():
    res = run(small_scenario([small_job(model="gpt3-175b", global_batch=8)]))
    reason = res.jobs.iloc[0].reason
    assert "GB per GPU (weights " in reason and "optimizer" in reason and "activations" in reason
    assert "a100-sxm4-80gb has 85.9 GB" in reason
    assert reason in (REPO / "docs/step-time-model.md").read_text()  # the documented example


def test_horizon_leaves_jobs_unfinished_with_partial_progress():
    jobs = [small_job("a", parallelism={"dp": 16}, global_batch=16, iterations=100),
            small_job("b", arrival_s=1, parallelism={"dp": 16}, global_batch=16)]
    res = run(small_scenario(jobs, horizon_s=30.5), step_model=ConstantStep(1.0))
    a, b = res.jobs.iloc[0], res.jobs.iloc[1]
    assert (a.status, b.status) == ("running", "queued")
    assert a.iterations_done == pytest.approx(30.5)
    assert a.run_s == pytest.approx(30.5)
    s = res.summary()
    assert s["jobs_unfinished"] == 2 and s["sim_end_s"] == 30.5
    assert s["gpu_utilization"] == pytest.approx(1.0)


def test_priority_preempts_and_the_victim_resumes():
    jobs = [small_job("low", parallelism={"dp": 16}, global_batch=16, iterations=100),
            small_job("high", arrival_s=10.5, parallelism={"dp": 8}, global_batch=8,
                      iterations=20, priority=5)]
    res = run(small_scenario(jobs, scheduler={"kind": "priority"}), step_model=ConstantStep(1.0))
    low, high = res.jobs.iloc[0], res.jobs.iloc[1]
    assert high.start_s == 10.5 and high.end_s == pytest.approx(30.5)
    assert low.preemptions == 1 and low.status == "completed"
    # the half-done iteration at 10.5 s is lost: 10 kept, 90 more after the restart at 30.5 s
    assert low.end_s == pytest.approx(30.5 + 90)
    assert low.run_s == pytest.approx(10.5 + 90)
    assert list(res.events.query("job_id == 0").event) == [
        "submitted", "started", "preempted", "started", "completed"]


def test_fifo_never_preempts():
    jobs = [small_job("low", parallelism={"dp": 16}, global_batch=16, iterations=100),
            small_job("high", arrival_s=10.5, parallelism={"dp": 8}, global_batch=8, priority=5)]
    res = run(small_scenario(jobs), step_model=ConstantStep(1.0))
    assert res.jobs.preemptions.sum() == 0


def test_steady_and_iteration_fidelity_agree():
    data = small_scenario(
        [small_job(f"j{i}", arrival_s=37.0 * i, parallelism={"dp": d}, global_batch=8 * d,
                   iterations=50 + 13 * i, priority=i % 3) for i, d in enumerate([8, 4, 16, 2, 8])],
        scheduler={"kind": "priority"})
    steady = run(data)
    per_iteration = run({**data, "engine": {"fidelity": "iteration"}})
    for col in ("start_s", "end_s", "iterations_done", "run_s"):
        assert per_iteration.jobs[col].to_numpy() == pytest.approx(steady.jobs[col].to_numpy(),
                                                                   rel=1e-9)
    assert per_iteration.summary()["events_processed"] > steady.summary()["events_processed"]


def test_reestimate_keeps_progress():
    data = small_scenario([small_job(iterations=100)])
    plain = run(data, step_model=ConstantStep(1.0)).jobs.iloc[0]
    sim = Simulation(dcsim.scenario_from_dict(data), step_model=ConstantStep(1.0))

    def poke(env):
        yield env.timeout(33.3)
        sim.reestimate(0, "test")

    sim.env.process(poke(sim.env))
    job = sim.run().jobs.iloc[0]
    assert job.end_s == pytest.approx(plain.end_s)
    assert job.iterations_done == 100


def test_multi_server_ring_is_slower_than_one_server():
    """A data-parallel all-reduce across DGX servers spreads over all eight NICs (NCCL's
    channels: 8 x 24 GB/s, close to NVLink's ~230); one whose ranks share their servers with
    tensor-parallel partners gets only its share of them."""
    par = {"overlap_grad_comm": False}
    one = small_job("one", parallelism={"dp": 8, **par}, global_batch=64, model="gpt2-1.5b")
    two = small_job("two", parallelism={"dp": 16, **par}, global_batch=128, model="gpt2-1.5b")
    tp = small_job("tp", parallelism={"dp": 2, "tp": 8, **par}, global_batch=2,
                   model="llama2-7b")
    sim = Simulation(dcsim.scenario_from_dict(small_scenario([one, two, tp])))
    e1, e2, e_tp = (sim.world.estimate_alone(sim.workload.jobs[i])[0] for i in range(3))
    assert e1.dp_comm_s < e2.dp_comm_s < 1.5 * e1.dp_comm_s  # 8 NICs ~ NVLink
    assert e2.compute_s == pytest.approx(e1.compute_s)
    # tp 8 x dp 2 over two servers: each GPU's ring of 2 ranks crosses on one HDR NIC
    grads = model_stats(sim.workload.jobs[2].model).params / 8 * 4  # fp32 gradients
    assert e_tp.dp_comm_s == pytest.approx(grads / 24e9, rel=0.1)


def test_oversubscription_slows_cross_leaf_rings():
    job = small_job("x", parallelism={"dp": 16}, global_batch=128, model="gpt2-1.5b")

    def comm(ratio: float) -> float:
        data = small_scenario([job], topology={"kind": "leaf-spine", "params": {
            "servers_per_leaf": 1, "spines": 2, "oversubscription": ratio}})
        sim = Simulation(dcsim.scenario_from_dict(data))
        return sim.world.estimate_alone(sim.workload.jobs[0])[0].dp_comm_s

    assert comm(4.0) > 3 * comm(1.0)


def test_same_seed_same_bytes(tmp_path, repo):
    paths = []
    for run_id in range(2):
        sc = dcsim.load_scenario(repo / "scenarios/mixed_datacenter.yaml")
        paths.append(dcsim.simulate(sc).save(tmp_path / str(run_id)) / "jobs.csv")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = dcsim.simulate(dcsim.load_scenario(repo / "scenarios/mixed_datacenter.yaml", seed=8))
    assert other.save(tmp_path / "other").joinpath("jobs.csv").read_bytes() != paths[0].read_bytes()


def test_sim_end_is_the_last_change_not_a_stale_timeout():
    jobs = [small_job("low", parallelism={"dp": 16}, global_batch=16, iterations=100),
            small_job("high", arrival_s=10.5, parallelism={"dp": 16}, global_batch=16,
                      iterations=5, priority=5)]
    data = small_scenario(jobs, scheduler={"kind": "priority"}, horizon_s=10_000)
    res = run(data, step_model=ConstantStep(1.0))
    # low: 10 iterations, preempted, restarts at 15.5 and ends at 105.5; its first timeout
    # (due at 100 s) fires unused in between
    assert res.jobs.end_s.max() == pytest.approx(105.5)
    s = res.summary()
    assert s["sim_end_s"] == pytest.approx(105.5) and s["jobs_unfinished"] == 0
    assert s["makespan_s"] == pytest.approx(105.5)


def test_preemption_only_where_it_helps():
    """A high-priority A100 job does not stop a V100 job: that would free nothing it can use."""
    cluster = {"servers": [{"type": "dgx-a100-80gb", "count": 1},
                           {"name": "old", "count": 1, "gpus_per_server": 8,
                            "gpu": "v100-sxm2-32gb", "nics": [{"type": "hdr200"}]}]}
    jobs = [small_job("a100-low", parallelism={"dp": 8}, global_batch=8, iterations=100,
                      gpu_type="a100-sxm4-80gb", precision="fp16"),
            small_job("v100-low", parallelism={"dp": 8}, global_batch=8, iterations=100,
                      gpu_type="v100-sxm2-32gb", precision="fp16"),
            small_job("high", arrival_s=1, parallelism={"dp": 8}, global_batch=8, iterations=5,
                      gpu_type="a100-sxm4-80gb", priority=9, precision="fp16")]
    res = run(small_scenario(jobs, cluster=cluster, scheduler={"kind": "priority"}),
              step_model=ConstantStep(1.0))
    j = res.jobs.set_index("name")
    assert j.loc["a100-low", "preemptions"] == 1
    assert j.loc["v100-low", "preemptions"] == 0
    assert j.loc["v100-low", "gpu_type"] == "v100-sxm2-32gb"


def test_jobs_table_carries_the_iteration_breakdown():
    res = run(small_scenario([small_job(model="gpt2-1.5b", parallelism={"dp": 16},
                                        global_batch=128, iterations=3)]))
    j = res.jobs.iloc[0]
    parts = (j.step_compute_s + j.step_tp_comm_s + j.step_bubble_s + j.step_dp_comm_s
             + j.step_optimizer_s + j.step_data_stall_s + j.step_overhead_s)
    assert parts == pytest.approx(j.iteration_time_s)
    assert j.step_dp_comm_s > 0 and 0 < j.memory_gb < 85.9


def test_jobs_sharing_an_oversubscribed_uplink_slow_each_other(repo):
    path = repo / "scenarios/contention.yaml"
    shared = dcsim.simulate(dcsim.load_scenario(path)).jobs.set_index("name")
    isolated = dcsim.simulate(dcsim.load_scenario(path, ["engine.network=isolated"])).jobs \
        .set_index("name")
    for name in ("gpt2-on-a100", "gpt2-on-h100"):  # docs/scenario-reference.md: 1.17x, 1.39x
        assert 1.12 < shared.loc[name, "jct_s"] / isolated.loc[name, "jct_s"] < 1.5
    # the later job runs alone, so sharing costs it nothing
    later = "gpt2-on-h100-later"
    assert shared.loc[later, "jct_s"] == pytest.approx(isolated.loc[later, "jct_s"])
    assert shared.loc[later, "iteration_time_s"] == pytest.approx(
        isolated.loc[later, "iteration_time_s"])


def test_network_sharing_agrees_across_fidelities(repo):
    path = repo / "scenarios/contention.yaml"
    steady = dcsim.simulate(dcsim.load_scenario(path)).jobs
    per_iteration = dcsim.simulate(dcsim.load_scenario(path, ["engine.fidelity=iteration"])).jobs
    assert per_iteration.end_s.to_numpy() == pytest.approx(steady.end_s.to_numpy(), rel=1e-6)


def test_link_utilization_is_recorded_and_never_exceeds_capacity(repo, tmp_path):
    res = dcsim.simulate(dcsim.load_scenario(repo / "scenarios/contention.yaml"))
    links = res.links
    assert (links.utilization <= 1 + 1e-9).all() and (links.utilization >= 0).all()
    top = list(res.summary()["top_links"])
    assert set(top[:4]) == {"leaf0->spine0", "leaf1->spine0", "spine0->leaf0", "spine0->leaf1"}
    back = dcsim.load_results(res.save(tmp_path))
    assert len(back.links) == len(links)
    isolated = dcsim.simulate(dcsim.load_scenario(repo / "scenarios/contention.yaml",
                                                  ["engine.network=isolated"]))
    assert isolated.links.empty and isolated.summary()["top_links"] == {}


def test_a_failed_uplink_reroutes_or_stalls_and_repair_restores(repo):
    data = small_scenario(
        [small_job("spread", model="gpt2-1.5b", parallelism={"dp": 16}, global_batch=128,
                   iterations=400)],
        topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 1, "spines": 2}})
    plain = dcsim.simulate(dcsim.scenario_from_dict(data)).jobs.iloc[0]

    def run_with(failures):
        sim = Simulation(dcsim.scenario_from_dict(data))

        def chaos(env):
            for at, action, link in failures:
                yield env.timeout(at - env.now)
                getattr(sim, action)(*link)

        sim.env.process(chaos(sim.env))
        return sim.run()

    # one of two spines fails: the flows reroute over the other one; a 1:1 network still has room
    rerouted = run_with([(10.0, "fail_link", ("leaf0", "spine0"))]).jobs.iloc[0]
    assert rerouted.end_s >= plain.end_s
    # both spines fail: the job stalls until one comes back
    stalled = run_with([(10.0, "fail_link", ("leaf0", "spine0")),
                        (10.0, "fail_link", ("leaf0", "spine1")),
                        (110.0, "repair_link", ("leaf0", "spine0"))])
    # afterwards it runs as with spine1 alone down from t = 10 s, 100 s later
    only_spine0 = run_with([(10.0, "fail_link", ("leaf0", "spine1"))]).jobs.iloc[0]
    assert stalled.jobs.iloc[0].end_s == pytest.approx(only_spine0.end_s + 100.0, rel=1e-3)
    assert only_spine0.end_s > plain.end_s  # half the uplink: slower
    assert list(stalled.events.query("event == 'network'").detail) == [
        "link leaf0 - spine0 failed", "link leaf0 - spine1 failed", "link leaf0 - spine0 repaired"]


def test_packed_beats_spread_for_a_communication_heavy_job():
    job = small_job("allreduce-heavy", model="gpt2-1.5b", parallelism={"dp": 8},
                    global_batch=64, iterations=50)
    topo = {"kind": "leaf-spine", "params": {"servers_per_leaf": 1, "spines": 1,
                                             "oversubscription": 4.0}}
    cluster = {"servers": [{"type": "dgx-a100-80gb", "count": 4}]}
    runs = {kind: run(small_scenario([job], cluster=cluster, topology=topo,
                                     placement={"kind": kind})).jobs.iloc[0]
            for kind in ("packed", "spread")}
    assert runs["spread"].step_dp_comm_s > 5 * runs["packed"].step_dp_comm_s
    assert runs["spread"].jct_s > runs["packed"].jct_s
    spread_segments = run(small_scenario([job], cluster=cluster, topology=topo,
                                         placement={"kind": "spread"})).segments
    assert sorted(spread_segments.num_gpus) == [2, 2, 2, 2]  # one GPU at a time, round-robin


# ----------------------------------------------------------------------------- guards (issue 14)
def test_max_events_stops_the_run_and_every_open_job_says_why():
    jobs = [small_job(f"j{i}", arrival_s=10.0 * i, iterations=1000) for i in range(4)]
    sc = dcsim.scenario_from_dict(small_scenario(jobs, engine={"max_events": 3,
                                                               "fidelity": "iteration"}))
    res = dcsim.simulate(sc)
    s = res.summary()
    assert s["stopped_by"] == "engine.max_events" and s["events_processed"] == 3
    assert s["jobs_unfinished"] + s["jobs_not_arrived"] == 4
    assert res.jobs.reason.str.contains(r"engine.max_events \(3\) reached").all()
    horizon = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(jobs, horizon_s=15.0)))
    assert horizon.summary()["stopped_by"] == "horizon_s"
    open_jobs = horizon.jobs[~horizon.jobs.status.isin(["completed", "failed", "rejected"])]
    assert len(open_jobs) and open_jobs.reason.str.contains("horizon_s").all()


def test_a_nan_event_time_or_step_time_stops_the_run_with_a_named_error(monkeypatch):
    from dcsim.errors import SimulationError

    sim = Simulation(dcsim.scenario_from_dict(small_scenario()))
    sim.env.timeout(float("nan"))
    with pytest.raises(SimulationError, match="NaN time"):
        sim.run()
    sim = Simulation(dcsim.scenario_from_dict(small_scenario()))
    real = sim.step_model.estimate
    monkeypatch.setattr(sim.step_model, "estimate", lambda *a: dataclasses.replace(
        real(*a), iteration_s=float("nan"), dp_comm_s=float("inf")))
    with pytest.raises(SimulationError, match=r"job 'j': its step time is nan s \(from "
                                              r"dp_comm_s inf\)"):
        sim.run()
