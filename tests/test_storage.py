"""Storage tiers, data loading and checkpoints (dcsim/storage/): each test can fail."""

from __future__ import annotations

import math

import pytest

import dcsim
from dcsim.engine import Simulation
from dcsim.engine.shares import allocs_of
from dcsim.errors import ScenarioError
from dcsim.perf.memory import memory_breakdown
from dcsim.perf.zoo import model_stats
from dcsim.storage import (
    checkpoint_bytes,
    daly_interval_s,
    hit_rates,
    max_min_share,
    young_interval_s,
)
from tests.conftest import small_job, small_scenario

# steady-state caches (the tests of the cold first epoch turn cache_warm off)
RESNET = {"model": "resnet50", "parallelism": {"dp": 8, "micro_batch": 256},
          "global_batch": 2048, "precision": "fp16", "iterations": 50,
          "dataset": {"cache_warm": True}}
GPT = {"model": {"kind": "gpt", "layers": 24, "hidden": 2048, "heads": 16, "seq_len": 2048,
                 "vocab": 51200},
       "parallelism": {"tp": 2, "pp": 2, "dp": 2, "micro_batch": 1}, "global_batch": 16,
       "precision": "bf16", "iterations": 400}


def sim_of(jobs, **kw) -> Simulation:
    return Simulation(dcsim.scenario_from_dict(small_scenario(jobs, **kw)))


def alone(sim: Simulation, i: int = 0):
    est, why = sim.world.estimate_alone(sim.workload.jobs[i])
    assert est is not None, why
    return est


def test_tiers_from_catalog_and_overrides():
    sim = sim_of([small_job()], storage={"pfs": {"count": 2}, "object": {"read_gbyte_s": 5}})
    st = sim.storage.system
    assert st.nvme[0].capacity_bytes == pytest.approx(4 * 3840e9)  # DGX A100: 4x 3.84 TB
    assert st.nvme[0].read_byte_s == pytest.approx(4 * 7e9)
    assert st.dram[0].cache_bytes == pytest.approx(0.5 * 2048e9)  # half the host memory
    assert st.shared["pfs"].read_byte_s == pytest.approx(2 * 90e9)
    assert st.shared["pfs"].write_byte_s == pytest.approx(2 * 65e9)
    assert st.shared["object"].read_byte_s == pytest.approx(5e9)
    assert st.hbm_bytes[0] == pytest.approx(8 * 80 * 2**30)


def test_shared_tiers_are_graph_nodes():
    sim = sim_of([small_job()], topology={"kind": "leaf-spine",
                                          "params": {"servers_per_leaf": 1, "spines": 2}})
    g = sim.network.detailed
    assert g.nodes["storage.pfs"]["kind"] == g.nodes["storage.pfs.gw"]["kind"] == "storage"
    assert list(g.neighbors("storage.pfs")) == ["storage.pfs.gw"]  # the tier's one link
    assert g.edges["storage.pfs", "storage.pfs.gw"]["directed_byte_s"] == {
        ("storage.pfs", "storage.pfs.gw"): 90e9, ("storage.pfs.gw", "storage.pfs"): 65e9}
    assert sorted(g.neighbors("storage.pfs.gw")) == ["spine0", "spine1", "storage.pfs"]
    assert g.edges["storage.pfs.gw", "spine0"]["bandwidth_byte_s"] == pytest.approx(90e9)
    assert "storage.pfs" not in sim.network.graph  # ring max-flow never crosses storage


@pytest.mark.parametrize("topology", [
    {"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 4}},
    {"kind": "dragonfly", "params": {}}])
def test_a_lone_reader_gets_the_whole_tier_and_rings_never_transit_it(topology):
    """Reads take one ECMP path to a top switch, each of which can carry the whole tier; the
    tier's bandwidth bounds all readers at its own link. Traffic between servers never
    routes through a storage node (on a dragonfly every switch has servers: the tier hangs off
    all of them)."""
    sc = small_scenario(cluster={"servers": [{"type": "dgx-a100-80gb", "count": 8}]},
                        topology=topology, storage={"pfs": {"read_gbyte_s": 20}})
    fab = Simulation(dcsim.scenario_from_dict(sc)).fabric
    fab.set_reads(1, "storage.pfs", {0: 1e12})
    fab.solve()
    assert fab.read_rate(1) == pytest.approx(20e9)
    for s in range(1, 8):
        fab.set_reads(1 + s, "storage.pfs", {s: 1e12})
    fab.solve()
    assert sum(fab.read_rate(j) for j in range(1, 9)) == pytest.approx(20e9)
    storage = {i for i, (a, b) in enumerate(fab.router.links) if "storage" in a + b}
    for a in range(8):
        for b in range(8):
            if a != b:
                assert not storage & set(fab.router.route(f"server{a}", f"server{b}"))


def test_max_min_share():
    assert max_min_share(90.0, {1: 10.0, 2: math.inf, 3: math.inf}) == {1: 10.0, 2: 40.0,
                                                                       3: 40.0}
    assert max_min_share(90.0, {1: 100.0, 2: 100.0}) == {1: 45.0, 2: 45.0}


def test_hit_rate_emerges_from_cache_size():
    assert hit_rates(50.0, 0.0, 100.0) == (0.5, 0.0)
    assert hit_rates(50.0, 30.0, 100.0) == pytest.approx((0.5, 0.3))
    assert hit_rates(200.0, 30.0, 100.0) == (1.0, 0.0)
    bytes_pfs = []
    for frac in (0.01, 0.02, 0.04):  # DRAM cache of 20, 41, 82 GB vs ImageNet's 138 GB
        sim = sim_of([small_job(**RESNET)], storage={"nvme": {"enabled": False},
                                                     "dram": {"cache_fraction": frac}})
        spec = sim.workload.jobs[0]
        placement = sim.world.empty_placement(spec, ("a100-sxm4-80gb",))
        plan = sim.storage.plan_data(spec, allocs_of(placement), 1.0, None)
        assert plan.bytes_dram / (plan.bytes_dram + plan.bytes_shared) == pytest.approx(
            frac * 2048e9 / 138e9)
        bytes_pfs.append(plan.bytes_shared)
    assert bytes_pfs[0] > bytes_pfs[1] > bytes_pfs[2]


def test_first_epoch_reads_cold_caches():
    """A job shorter than an epoch reads everything from the PFS; a job of many epochs reads
    at the steady hit rate but for its first epoch (the charged average)."""
    store = {"nvme": {"enabled": False}, "dram": {"cache_fraction": 0.5}}  # 1 TB: all of it
    epoch = 1_281_167 / 2048  # ImageNet iterations per epoch at batch 2048

    def plan(iterations, warm=False):
        job = {**RESNET, "iterations": iterations, "dataset": {"cache_warm": warm}}
        sim = sim_of([small_job(**job)], storage=store)
        spec = sim.workload.jobs[0]
        placement = sim.world.empty_placement(spec, ("a100-sxm4-80gb",))
        return sim.storage.plan_data(spec, allocs_of(placement), 1.0, None)

    per_iteration = 2048 * 138e9 / 1_281_167
    short, long, warm = plan(100), plan(int(10 * epoch)), plan(int(10 * epoch), warm=True)
    assert short.bytes_shared == pytest.approx(per_iteration) and short.bytes_dram == 0.0
    assert warm.bytes_shared == 0.0 and warm.stall_s == 0.0
    f = epoch / int(10 * epoch)
    assert long.bytes_shared == pytest.approx(f * per_iteration)
    assert long.bytes_dram == pytest.approx((1 - f) * per_iteration)
    assert short.read_s > warm.read_s


def test_stall_only_when_reading_is_slower_than_compute():
    slow = {"nvme": {"enabled": False}, "dram": {"cache_fraction": 0.01},
            "object": {"count": 4}}
    data = {**RESNET, "dataset": {"tier": "object", "cache_warm": True}}
    stalled = alone(sim_of([small_job(**data)], storage=slow))
    cached = alone(sim_of([small_job(**data)], storage={**slow, "nvme": {}}))
    plain = alone(sim_of([small_job(**RESNET)]))  # no storage section: no data loading
    assert plain.data_stall_s == 0.0
    assert cached.data_stall_s == 0.0 and cached.iteration_s == pytest.approx(plain.iteration_s)
    assert stalled.data_stall_s > 0.5 * stalled.iteration_s  # 1 GB/s of HDDs: data bound
    assert stalled.iteration_s == pytest.approx(plain.iteration_s + stalled.data_stall_s)
    # read time = misses / the HDDs' bandwidth (+ metadata, latency): stall = read - compute
    miss = 1 - 0.01 * 2048e9 / 138e9
    meta_s = 2048 * miss * 0.02 / (8 * 8)  # one open per JPEG, 8 GPUs x 8 loader workers
    read_s = 2048 * 138e9 / 1_281_167 * miss / (4 * 0.27e9) + meta_s + 0.01
    assert stalled.data_stall_s == pytest.approx(read_s - plain.iteration_s, rel=0.05)


@pytest.mark.parametrize("network", ["shared", "isolated"])
def test_pfs_read_bandwidth_is_divided_among_readers(network):
    """Shared: the reads are flows on the fabric and the tier's links bound them; isolated:
    the storage model shares the tier's bandwidth itself. Same answer here."""
    storage = {"nvme": {"enabled": False}, "dram": {"cache_fraction": 0.01},
               "pfs": {"read_gbyte_s": 3}}
    engine = {"network": network}
    one = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(
        [small_job("a", **RESNET)], storage=storage, engine=engine))).jobs
    two = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(
        [small_job("a", **RESNET), small_job("b", **RESNET)], storage=storage,
        engine=engine))).jobs
    miss = 1 - 0.01 * 2048e9 / 138e9
    read_s = 2048 * miss * 1e-3 / 64 + 2e-4  # metadata (one open per JPEG) + latency
    step_s = one.iteration_time_s[0]
    assert one.data_stall_s[0] == pytest.approx(0, abs=1e-9)  # alone, 3 GB/s keeps up with compute
    # together each gets 1.5 GB/s: read = B m / 1.5 GB/s + metadata > compute -> stall
    read_s += 2048 * 138e9 / 1_281_167 * miss / 1.5e9
    assert read_s > step_s
    assert two.data_stall_s.to_numpy() == pytest.approx([50 * (read_s - step_s)] * 2, rel=1e-6)
    assert two.end_s.to_numpy() == pytest.approx([50 * read_s] * 2, rel=1e-6)


def test_checkpoint_size_matches_memory_model():
    spec = dcsim.scenario_from_dict(small_scenario([small_job(**GPT)])).workload.jobs[0]
    params = model_stats(spec.model).params
    assert checkpoint_bytes(spec) == pytest.approx(params * (2 + 12))  # bf16 + fp32 Adam
    mem = memory_breakdown(spec)
    assert checkpoint_bytes(spec) == pytest.approx(
        spec.num_gpus * (mem.weights + mem.optimizer) / spec.parallelism.dp)
    zero = spec.model_copy(update={"parallelism": spec.parallelism.model_copy(
        update={"zero": 1})})
    assert checkpoint_bytes(zero) == pytest.approx(params * 14)  # sharded, same state


def test_sync_vs_async_overhead():
    def run(mode: str):
        sc = small_scenario([small_job(**GPT)], storage={"pfs": {"write_gbyte_s": 1}},
                            checkpoint={"interval_s": 60, "mode": mode})
        return dcsim.simulate(dcsim.scenario_from_dict(sc))

    sync, asyn = run("sync"), run("async")
    size = checkpoint_bytes(sync_spec := dcsim.scenario_from_dict(
        small_scenario([small_job(**GPT)])).workload.jobs[0])
    assert sync_spec.num_gpus == 8
    s, a = sync.jobs.iloc[0], asyn.jobs.iloc[0]
    assert s.checkpoints > 0 and s.checkpoints == a.checkpoints
    write_s = size / 1e9 + 2e-4 + 1e-3  # 1 GB/s + latency + metadata latency
    # amortized: every iteration carries write_s / k, k = iterations between checkpoints
    assert s.checkpoint_s == pytest.approx(400 * s.step_checkpoint_s)
    k = write_s / s.step_checkpoint_s
    assert s.checkpoints == 400 // round(k)
    assert 0 < a.checkpoint_s < 0.2 * s.checkpoint_s
    assert a.run_s < s.run_s
    assert sync.summary()["storage_bytes_written"]["pfs"] == pytest.approx(s.checkpoints * size)
    assert sync.summary()["checkpoint_overhead_s_total"] == pytest.approx(s.checkpoint_s)


def test_async_waits_for_the_previous_write():
    sc = small_scenario([small_job(**GPT)], storage={"pfs": {"write_gbyte_s": 0.1}},
                        checkpoint={"interval_s": 1, "mode": "async"})
    sim = Simulation(dcsim.scenario_from_dict(sc))
    spec = sim.workload.jobs[0]
    placement = sim.world.empty_placement(spec, ("a100-sxm4-80gb",))
    plan = sim.storage.plan_checkpoint(spec, allocs_of(placement), 0.1, math.inf, None)
    assert plan.pause_s == pytest.approx(plan.snapshot_s + plan.write_s
                                         - plan.every_iterations * 0.1)


def test_restore_delay_reads_the_checkpoint():
    warm = {"dataset": {"cache_warm": True}}  # the text fits in DRAM: no reads from the PFS
    jobs = [small_job("low", **{**GPT, "iterations": 3000, **warm}),
            small_job("high", **{**GPT, "arrival_s": 10, "iterations": 100, **warm}, priority=5)]
    sc = small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb", "count": 1}]},
                        scheduler={"kind": "priority"}, checkpoint={"interval_s": 60},
                        storage={"pfs": {"read_gbyte_s": 0.5}},
                        engine={"preemption_overhead_s": 1000.0})
    res = dcsim.simulate(dcsim.scenario_from_dict(sc))
    low = res.jobs.iloc[0]
    assert low.preemptions == 1
    size = checkpoint_bytes(dcsim.scenario_from_dict(sc).workload.jobs[0])
    assert low.restore_s == pytest.approx(size / 0.5e9 + 2e-4 + 1e-3, rel=1e-6)
    assert res.summary()["storage_bytes_read"]["pfs"] == pytest.approx(size)


def test_young_daly_interval():
    assert young_interval_s(10.0, 1e4) == pytest.approx(math.sqrt(2 * 10 * 1e4))
    assert young_interval_s(10.0, math.inf) == math.inf
    c, m = 10.0, 1e4
    assert daly_interval_s(c, m) == pytest.approx(
        math.sqrt(2 * c * m) * (1 + math.sqrt(c / (2 * m)) / 3 + c / (18 * m)) - c)
    assert daly_interval_s(30.0, 10.0) == 10.0

    class Faulty(Simulation):
        def _job_mtbf_s(self, job):
            return 4 * 3600.0

    sc = dcsim.scenario_from_dict(small_scenario([small_job(**GPT)],
                                                 checkpoint={"interval_s": "young-daly"}))
    none = Simulation(sc)
    assert alone(none).checkpoint_s == 0.0  # M = inf: no periodic checkpoints
    sim = Faulty(sc)
    spec = sim.workload.jobs[0]
    placement = sim.world.empty_placement(spec, ("a100-sxm4-80gb",))
    step = alone(none).iteration_s
    plan = sim.storage.plan_checkpoint(spec, allocs_of(placement), step, 4 * 3600.0, None)
    assert plan.interval_s == pytest.approx(math.sqrt(2 * plan.write_s * 4 * 3600.0))
    assert alone(sim).checkpoint_s == pytest.approx(
        plan.write_s / max(1, round(plan.interval_s / step)))


def test_last_checkpoint():
    sc = small_scenario([small_job(**{**GPT, "iterations": 1000})],
                        checkpoint={"interval_s": 10})
    sim = Simulation(dcsim.scenario_from_dict(sc))
    sim.env.process(sim._arrivals())
    sim.env.run(until=55.0)
    job = sim.jobs[0]
    k = sim.ledger.checkpoint_plan(0).every_iterations
    done = job.progress_at(sim.env.now)
    assert sim.last_checkpoint(job) == pytest.approx(math.floor(done / k) * k)
    assert 0 < sim.last_checkpoint(job) <= done


@pytest.mark.parametrize("mode,write", [("sync", 1), ("async", 0.3)])
def test_steady_and_iteration_fidelity_agree_with_checkpoints(mode, write):
    def run(fidelity: str):
        sc = small_scenario([small_job(**{**GPT, "iterations": 8000})],
                            storage={"pfs": {"write_gbyte_s": write}},
                            checkpoint={"interval_s": 30, "mode": mode},
                            engine={"fidelity": fidelity})
        return dcsim.simulate(dcsim.scenario_from_dict(sc)).jobs.iloc[0]

    steady, it = run("steady"), run("iteration")
    assert steady.checkpoint_s > 0.02 * steady.run_s  # the pauses matter
    assert it.run_s == pytest.approx(steady.run_s, rel=0.01)
    assert it.checkpoints == steady.checkpoints


def test_located_errors():
    with pytest.raises(ScenarioError, match=r"workload.jobs\[0\].dataset.size_gb: the dataset"):
        dcsim.scenario_from_dict(small_scenario([small_job(
            dataset={"size_gb": 2e6, "bytes_per_sample": 100})]))
    with pytest.raises(ScenarioError, match=r"jobs\[0\].dataset.size_gb: .* nvme"):
        dcsim.scenario_from_dict(small_scenario([small_job(
            dataset={"size_gb": 2e4, "bytes_per_sample": 100, "tier": "nvme"})]))
    with pytest.raises(ScenarioError, match=r"checkpoint.tier: job 'j': the checkpoint"):
        dcsim.scenario_from_dict(small_scenario([small_job(**GPT, dataset={"size_gb": 0.5})],
                                                storage={"pfs": {"capacity_gb": 1}},
                                                checkpoint={"interval_s": 60}))
    with pytest.raises(ScenarioError, match=r"jobs\[0\].checkpoint.tier: .*disabled"):
        dcsim.scenario_from_dict(small_scenario([small_job(
            **GPT, checkpoint={"interval_s": 60, "tier": "object"})],
            storage={"object": {"enabled": False}}))
    with pytest.raises(ScenarioError, match=r"jobs\[0\].dataset: a custom model has no default"):
        dcsim.scenario_from_dict(small_scenario([small_job(dataset={"tier": "pfs"})]))
    with pytest.raises(ScenarioError, match=r"storage.pfs.device: .*unknown storage device"):
        dcsim.scenario_from_dict(small_scenario([small_job()], storage={"pfs": {"device": "x"}}))


def test_storage_reads_share_links_with_training_traffic():
    """engine.network shared: a job's reads are flows from the tier's node to its servers,
    capped at its demand, max-min fair with the rings on the links they cross."""
    sc = small_scenario(
        cluster={"servers": [{"type": "dgx-a100-80gb", "count": 4}]},
        topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                                   "oversubscription": 4.0}},
        storage={"pfs": {"read_gbyte_s": 1000, "write_gbyte_s": 50}})
    fab = Simulation(dcsim.scenario_from_dict(sc)).fabric
    links = {fab.router.link_name(i): c for i, c in enumerate(fab.router.capacity)}
    assert links["storage.pfs->storage.pfs.gw"] == 1000e9
    assert links["storage.pfs.gw->storage.pfs"] == 50e9
    fab.add(1, {0: tuple(range(8)), 2: tuple(range(8))})  # a ring across the two leaves
    fab.solve()
    assert fab.rate(1) == pytest.approx(12e9)  # alone: its GPUs' NIC share
    fab.set_reads(2, "storage.pfs", {2: 1e12})  # job 2 on server 2 reads as fast as it can
    assert set(fab.solve()) == {1, 2}
    route = [fab.router.link_name(i) for i in fab.routes_of(2)[-1]]
    assert route == ["storage.pfs->storage.pfs.gw", "storage.pfs.gw->spine0", "spine0->leaf1",
                     "leaf1->server2"]
    # spine0 -> leaf1 (96 GB/s at 4:1) carries 8 ring flows and the read: 1/9 each
    assert fab.rate(1) == pytest.approx(96e9 / 9) and fab.read_rate(2) == pytest.approx(96e9 / 9)
    fab.set_reads(2, "storage.pfs", {2: 1e9})  # a read demand below its fair share: it gets it
    fab.solve()
    assert fab.read_rate(2) == pytest.approx(1e9) and fab.rate(1) == pytest.approx(95e9 / 8)
    assert not fab.set_reads(2, "storage.pfs", {2: 1e9})  # unchanged: no re-share needed
    assert fab.remove(2) and fab.read_rate(2) is None
    fab.solve()
    assert fab.rate(1) == pytest.approx(12e9)


def test_a_data_loading_job_slows_a_ring_it_shares_a_link_with():
    """End to end: a ResNet job streaming ImageNet from the PFS (next to no cache) on an H100
    server takes spine-to-leaf bandwidth from a data-parallel GPT ring across the A100 servers
    of both leaves."""
    ring = small_job("ring", model="gpt2-1.5b",
                     parallelism={"dp": 16, "overlap_grad_comm": False}, global_batch=128,
                     iterations=2000, gpu_type="a100-sxm4-80gb")
    reader = small_job("reader", **{**RESNET, "iterations": 20_000,
                                    "dataset": {"cache_warm": True}}, gpu_type="h100-sxm5-80gb")
    groups = [{"name": f"{t}-{side}", "type": t, "count": 1} for side in ("l", "r")
              for t in ("dgx-a100-80gb", "dgx-h100")]
    base = dict(cluster={"servers": groups},
                topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                                           "oversubscription": 32.0}},
                storage={"nvme": {"enabled": False}, "dram": {"cache_fraction": 1e-6},
                         "pfs": {"read_gbyte_s": 1000}})

    def run(jobs, network="shared"):
        sc = small_scenario(jobs, **base, engine={"network": network})
        return dcsim.simulate(dcsim.scenario_from_dict(sc)).jobs

    alone, both = run([ring]), run([ring, reader])
    # the reader runs for the ring's first ~2,900 s; the ring runs ~5% slower meanwhile (its
    # all-reduce spreads over all eight NICs: it takes a 32:1 fabric for the reads to show)
    overlap = both.end_s[1]
    slower = overlap / (overlap - (both.end_s[0] - alone.end_s[0]))
    assert 1.03 < slower < 1.2
    # and its own (tiny) text reads never stall it: its read demand follows its step when the
    # reader's flows come and go (the links are re-shared for the new demand)
    assert both.data_stall_s[0] < 0.01 * both.end_s[0]
    # without the fabric the reads take no link bandwidth from the ring
    assert run([ring, reader], "isolated").iteration_time_s[0] == pytest.approx(
        run([ring], "isolated").iteration_time_s[0])


def test_storage_scenario_nvme_cache_cuts_stalls(repo, tmp_path, capsys):
    """scenarios/storage_io.yaml: the servers' NVMe caches hold ImageNet after the first epoch;
    without them every epoch streams from the HDD object store, and the jobs stall."""
    from dcsim.cli import main

    assert main(["run", str(repo / "scenarios/storage_io.yaml"), "--out", str(tmp_path / "a"),
                 "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "storage: data-loading stalls" in out and "checkpoints" in out
    assert main(["run", str(repo / "scenarios/storage_io.yaml"), "--out", str(tmp_path / "b"),
                 "--no-plots", "--quiet", "--set", "storage.nvme.enabled=false"]) == 0
    cached, uncached = (dcsim.load_results(tmp_path / d).summary() for d in "ab")
    assert uncached["data_stall_s_total"] > 5 * cached["data_stall_s_total"] > 0  # 71k vs 8.6k s
    assert uncached["jct_mean_s"] > 3 * cached["jct_mean_s"]
    assert cached["storage_bytes_read"]["nvme"] > cached["storage_bytes_read"]["object"] > 0
    assert uncached["storage_bytes_read"]["nvme"] == 0
