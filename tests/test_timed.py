"""engine.network: timed — communication phases as flows that carry bytes (dcsim.fabric.timed)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

import dcsim
from dcsim.engine import Simulation
from dcsim.fabric.timed import TimedFabric
from dcsim.fabric.topology import TOPOLOGIES, ServerPort
from tests.conftest import small_job, small_scenario


def _contention(repo, network: str):
    path = repo / "scenarios/contention.yaml"
    return dcsim.simulate(dcsim.load_scenario(path, [f"engine.network={network}"]))


def test_alone_timed_takes_the_step_models_time(repo):
    timed, isolated = (_contention(repo, n).jobs.set_index("name") for n in ("timed", "isolated"))
    later = "gpt2-on-h100-later"  # arrives after the others finished: alone on the fabric
    assert timed.loc[later, "jct_s"] == pytest.approx(isolated.loc[later, "jct_s"], rel=1e-9)


def test_timed_contention_is_between_none_and_continuous_presence(repo):
    runs = {n: _contention(repo, n).jobs.set_index("name") for n in ("isolated", "timed",
                                                                      "shared")}
    for name in ("gpt2-on-a100", "gpt2-on-h100"):
        alone, timed, shared = (runs[n].loc[name, "jct_s"] for n in ("isolated", "timed",
                                                                      "shared"))
        # the jobs slow each other only while their communication phases overlap
        # (docs/scenario-reference.md: 1.06x and 1.09x, against 1.17x and 1.39x shared)
        assert alone * 1.03 < timed < alone * 1.15 and timed < shared


def test_links_carry_bytes_only_while_jobs_communicate(repo):
    timed, shared = _contention(repo, "timed"), _contention(repo, "shared")
    assert (timed.links.utilization <= 1 + 1e-9).all()
    up = "leaf0->spine0"
    # the link goes idle between communication phases, so its level drops to 0 many times
    levels = timed.links.query("link == @up").utilization.to_numpy()
    assert (levels == 0).sum() > 100 and levels.max() > 0.5
    # docs/metrics.md: a time-weighted mean of 0.09 timed against 0.23 shared
    assert 0.07 < timed.summary()["top_links"][up] < 0.11
    assert 0.20 < shared.summary()["top_links"][up] < 0.26


def _fabric(servers=2, oversubscription=1.0):
    ports = [ServerPort(server_id=i, nic_byte_s=100.0, nic_latency_s=0.0)
             for i in range(servers)]
    topo = TOPOLOGIES.get("leaf-spine")
    graph = topo(topo.Params(servers_per_leaf=1, spines=1,
                             oversubscription=oversubscription)).build(ports)
    env = simpy.Environment()
    return env, TimedFabric(env, graph)


def test_a_transfer_takes_bytes_over_rate_and_shares_while_overlapping():
    env, fab = _fabric()
    fab.add(1, {0: 1, 1: 1})
    fab.add(2, {0: 1, 1: 1})
    done = {}

    def job(jid, start, nbytes):
        yield env.timeout(start)
        yield fab.transfer(jid, nbytes, cap_byte_s=1e9)
        done[jid] = env.now

    env.process(job(1, 0.0, 100.0))  # alone for 0.5 s at 100 B/s, then shares 50/50
    env.process(job(2, 0.5, 100.0))
    env.run()
    # job 1: 50 B alone by 0.5 s, its other 50 B at 50 B/s -> 1.5 s; job 2: 50 B by 1.5 s at
    # 50 B/s, then 50 B alone at 100 B/s -> 2.0 s
    assert done[1] == pytest.approx(1.5) and done[2] == pytest.approx(2.0)
    assert fab.utilization.max() == 0  # nothing in flight at the end


def test_cap_limits_a_flow_and_remove_drops_its_transfer():
    env, fab = _fabric()
    fab.add(1, {0: 1, 1: 1})
    fab.add(2, {0: 1, 1: 1})
    ev1 = fab.transfer(1, 100.0, cap_byte_s=10.0)
    env.run(until=1.0)
    assert np.isclose(fab.utilization.max(), 0.1)  # capped at 10 of the link's 100 B/s
    fab.remove(1)
    ev2 = fab.transfer(2, 100.0, cap_byte_s=1e9)
    at = []
    ev2.callbacks.append(lambda _: at.append(env.now))
    env.run()  # (job 1's stale wake-up at 10 s fires and changes nothing)
    assert not ev1.triggered and at == [pytest.approx(2.0)]
    with pytest.raises(KeyError):
        fab.transfer(1, 1.0, 1.0)


def test_failure_mid_transfer_stalls_and_repair_resumes():
    data = small_scenario(
        [small_job("spread", model="gpt2-1.5b", parallelism={"dp": 16}, global_batch=128,
                   iterations=100)],
        topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 1, "spines": 1}},
        engine={"network": "timed"})
    plain = dcsim.simulate(dcsim.scenario_from_dict(data)).jobs.iloc[0]
    sim = Simulation(dcsim.scenario_from_dict(data))

    def chaos(env):
        yield env.timeout(10.0)
        sim.fail_link("leaf0", "spine0")
        yield env.timeout(100.0)
        sim.repair_link("leaf0", "spine0")

    sim.env.process(chaos(sim.env))
    cut = sim.run().jobs.iloc[0]
    # the job loses at most the 100 s outage, and at least its part after the compute phase
    # in flight at the failure had ended
    assert plain.end_s + 100.0 - plain.iteration_time_s <= cut.end_s <= plain.end_s + 100.0 + 1e-6
    assert cut.iterations_done == plain.iterations_done == 100


def test_a_pipeline_only_job_has_routes_a_failure_can_cut():
    """A job whose every stage is inside one server has no timed ring transfers, but its
    pipeline send/recv still crosses the network: `routes_of` (what a link failure checks)
    returns them."""
    import dcsim
    from dcsim.engine import Simulation
    from tests.conftest import small_scenario

    sc = small_scenario(cluster={"servers": [{"type": "dgx-a100-80gb", "count": 2}]},
                        topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 1}},
                        engine={"network": "timed"})
    timed = Simulation(dcsim.scenario_from_dict(sc)).timed
    timed.add(7, {0: (0, 1), 1: (0, 1)}, pp=2)
    assert not timed.spans_servers(7)
    assert len(timed.routes_of(7)) == 4  # 2 rank pairs, both ways
    timed.remove(7)
    assert timed.routes_of(7) == []


def test_a_flow_a_rounding_error_short_of_done_still_finishes():
    """Regression (a hang the invariants test met in CI): late in a run, a flow left with a
    few bytes' rounding error would wake the fabric at `now + wait == now` forever."""
    env, fab = _fabric()
    env.run(until=5762.255006462749)  # late: one ulp here is ~1e-12 s
    fab.add(1, {0: 1, 1: 1})
    event = fab.transfer(1, 0.01, cap_byte_s=1e12)
    flows = fab._transfers[1]
    flows.remaining[:] = 2e-9 * flows.nbytes  # above DONE_RTOL: 2e-13 s of work at 100 B/s
    fab._reshare(advance=False)
    steps = 0
    while not event.processed and steps < 1000:
        env.step()
        steps += 1
    assert event.processed and steps < 10
