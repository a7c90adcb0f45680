"""Pipeline send/recv and per-stage data-parallel rings as flows (fabric/sharing.py)."""

from __future__ import annotations

import pytest

import dcsim
from dcsim.engine import Simulation
from dcsim.fabric.sharing import SharedFabric, pipeline_routes, ring_routes, stages
from tests.conftest import small_job, small_scenario


def test_stages_take_ranks_in_placement_order():
    gpus = {3: (0, 1), 1: (4, 5), 2: (0, 1)}
    assert stages(gpus, 3) == [{3: (0, 1)}, {1: (4, 5)}, {2: (0, 1)}]
    assert stages(gpus, 2) == [{3: (0, 1), 1: (4,)}, {1: (5,), 2: (0, 1)}]


def _fabric(servers=4):
    cluster = {"servers": [{"type": "dgx-a100-80gb", "count": servers}]}
    topo = {"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                             "oversubscription": 4.0}}
    net = Simulation(dcsim.scenario_from_dict(small_scenario(cluster=cluster,
                                                             topology=topo))).network
    return SharedFabric(net.detailed, net.attach)


def test_a_pipeline_over_two_servers_has_send_recv_flows_and_no_ring_flows():
    fab = _fabric()
    gpus = {0: tuple(range(8)), 1: tuple(range(8))}  # tp 8 x pp 2: a stage per server
    assert ring_routes(fab.router, 1, gpus, pp=2) == []
    p2p = pipeline_routes(fab.router, 1, gpus, pp=2)
    assert len(p2p) == 16  # 8 rank pairs, both ways
    fab.add(1, gpus, pp=2)
    fab.solve()
    assert fab.rate(1) is None and fab.p2p_rate(1) == pytest.approx(24e9)  # one HDR NIC each
    # two data-parallel pipelines (pp 2, dp 2): each stage's ring crosses servers too
    fab.add(2, {2: tuple(range(8)), 3: tuple(range(8))}, pp=1)
    both = {0: tuple(range(8)), 1: tuple(range(8)), 2: tuple(range(8)), 3: tuple(range(8))}
    assert len(ring_routes(fab.router, 3, both, pp=2)) == 2 * 2 * 8


def test_contention_on_the_uplink_slows_the_pipeline_transfers():
    pipe = small_job("pipe", model="gpt-22b", global_batch=64,
                     parallelism={"tp": 8, "pp": 2, "dp": 1, "micro_batch": 4},
                     gpu_type="a100-sxm4-80gb")
    ring = small_job("ring", model="gpt2-1.5b", parallelism={"dp": 16}, global_batch=128,
                     iterations=10_000, gpu_type="h100-sxm5-80gb")
    # A100 and H100 servers alternate over two leaves (as in scenarios/contention.yaml): the
    # pipeline's stage boundary (servers 0 -> 2) and the ring (1 <-> 3) cross the same uplinks
    groups = [{"name": f"{t}-{side}", "type": t, "count": 1} for side in ("l", "r")
              for t in ("dgx-a100-80gb", "dgx-h100")]
    base = dict(cluster={"servers": groups},
                topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                                           "oversubscription": 8.0}})

    def run(jobs):
        sim = Simulation(dcsim.scenario_from_dict(small_scenario(jobs, **base)))
        rates = []
        sim.env.process(_probe(sim, rates))
        return sim.run().jobs.set_index("name").loc["pipe"], rates

    alone, alone_rates = run([pipe])
    shared, shared_rates = run([pipe, ring])
    assert shared_rates[0] < 0.6 * alone_rates[0]  # the ring takes most of the 1:8 uplink
    # activations of one micro-batch / tp are small next to compute: slower, but only a little
    assert alone.iteration_time_s < shared.iteration_time_s < 1.01 * alone.iteration_time_s


def _probe(sim, out):
    yield sim.env.timeout(1.0)
    job = next(j for j in sim.jobs if j.spec.name == "pipe")
    out.append(sim.fabric.p2p_rate(job.job_id))


def test_context_rings_are_flows_between_servers():
    """cp groups stride over tp; each member sends its KV to the next, a flow where they sit
    on different servers; alone, a job's ring-attention rate is its NIC's, and its own
    data-parallel rings (another phase of its iteration) do not share it."""
    from dcsim.fabric.sharing import cp_routes, expert_groups

    gpus = {0: tuple(range(8)), 1: tuple(range(8))}
    assert expert_groups(gpus, 1, 4, 4)[0] == [(0, 0), (0, 4), (1, 0), (1, 4)]
    fab = _fabric()
    routes, fanout = cp_routes(fab.router, 1, gpus, 1, 1, 16)
    assert len(routes) == 2 and fanout == [1.0, 1.0]  # 0:7 -> 1:0 and 1:7 -> 0:0
    fab.add(1, gpus, 1, None, (1, 16))
    fab.solve()
    assert fab.cp_rate(1) == pytest.approx(24e9) and fab.a2a_rate(1) is None
    fab.add(2, gpus, 1, None, (8, 2))  # tp 8 x cp 2: each cp pair spans the two servers
    fab.solve()
    assert fab.cp_rate(2) < 24e9  # its 16 flows share the NICs with job 1's


def test_a_long_context_job_alone_steps_as_estimated():
    """Under the shared fabric, a cp job whose rings cross servers runs at dcsim estimate's
    step (its own rings take turns with its ring attention)."""
    from dcsim.world import build_world

    model = {"kind": "gpt", "layers": 2, "hidden": 2048, "heads": 16, "seq_len": 32768,
             "vocab": 32000}
    job = small_job("long", model=model, parallelism={"cp": 16, "dp": 1},
                    global_batch=1, iterations=5, gpu_type="a100-sxm4-80gb")
    sc = dcsim.scenario_from_dict(small_scenario([job], engine={"network": "shared"}))
    ran = Simulation(sc).run().jobs.set_index("name").loc["long", "iteration_time_s"]
    world = build_world(sc)
    est, _ = world.estimate_alone(world.scenario.workload.jobs[0])
    assert ran == pytest.approx(est.iteration_s, rel=1e-9)
