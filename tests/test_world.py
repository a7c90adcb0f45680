"""The world layer: what a scenario builds (`build_world`), what a job gets alone on it, and
`pace`, the one place a step time is put together."""

from __future__ import annotations

import dataclasses
import math

import pytest

import dcsim
from dcsim import catalog
from dcsim.engine import Simulation
from dcsim.errors import SimulationError
from dcsim.fabric.flows import FLOW_FABRICS
from dcsim.fabric.sharing import SharedFabric
from dcsim.fabric.timed import TimedFabric
from dcsim.perf.step import StepEstimate
from dcsim.world import build_world
from dcsim.world.pace import pace
from tests.conftest import small_job, small_scenario


class Fixed:
    """A step model whose estimate is given."""

    def __init__(self, est: StepEstimate) -> None:
        self.est, self.rings = est, []

    def estimate(self, job, gpu, ring) -> StepEstimate:
        self.rings.append(ring)
        return self.est


EST = StepEstimate(iteration_s=1.0, compute_s=0.6, bubble_s=0.1, dp_comm_s=0.2,
                   model_flop=1e15, hardware_flop=1e15, num_gpus=8, peak_flop_s=1e15,
                   tp_comm_s=0.05, optimizer_s=0.05)


def _world(**kw):
    return build_world(dcsim.scenario_from_dict(small_scenario([small_job(
        parallelism={"dp": 16}, global_batch=16)], **kw)))


def _spec_gpu_ring():
    world = _world()
    spec = world.workload.jobs[0]
    gpu, ring = world.placed_links(spec)
    return spec, gpu, ring


def test_pace_is_the_model_estimate_alone():
    spec, gpu, ring = _spec_gpu_ring()
    model = Fixed(EST)
    assert pace(model, spec, gpu, ring) == EST
    assert model.rings == [ring]


def test_pace_narrows_links_to_the_fabric_share_only_when_smaller():
    spec, gpu, ring = _spec_gpu_ring()
    model = Fixed(EST)
    pace(model, spec, gpu, ring, ring_share=ring.bandwidth_byte_s / 4)
    assert model.rings[-1].bandwidth_byte_s == pytest.approx(ring.bandwidth_byte_s / 4)
    pace(model, spec, gpu, ring, p2p_share=ring.p2p_bandwidth / 2)
    assert model.rings[-1].p2p_bandwidth == pytest.approx(ring.p2p_bandwidth / 2)
    assert model.rings[-1].bandwidth_byte_s == ring.bandwidth_byte_s
    pace(model, spec, gpu, ring, ring_share=ring.bandwidth_byte_s * 10,
         p2p_share=ring.p2p_bandwidth * 10)
    assert model.rings[-1] == ring  # a larger share does not widen a link


def test_pace_stretches_every_phase_by_the_straggler_factor():
    spec, gpu, ring = _spec_gpu_ring()
    slow = pace(Fixed(EST), spec, gpu, ring, slowdown=1.5)
    for part in ("iteration_s", "compute_s", "bubble_s", "dp_comm_s", "tp_comm_s",
                 "optimizer_s"):
        assert getattr(slow, part) == pytest.approx(1.5 * getattr(EST, part))
    assert slow.model_flop == EST.model_flop  # the work is the same, only slower
    assert pace(Fixed(EST), spec, gpu, ring, slowdown=1.0) == EST


def test_pace_adds_storage_terms_planned_at_the_step_before_them():
    spec, gpu, ring = _spec_gpu_ring()
    asked = []

    def storage(step_s):
        asked.append(step_s)
        return 0.25, 0.125

    est = pace(Fixed(EST), spec, gpu, ring, slowdown=2.0, storage=storage)
    assert asked == [2.0]  # planned on the straggler-slowed step
    assert est.iteration_s == pytest.approx(2.0 + 0.25 + 0.125)
    assert (est.data_stall_s, est.checkpoint_s) == (0.25, 0.125)


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -1.0])
def test_pace_refuses_a_step_that_is_not_finite_and_positive(bad):
    spec, gpu, ring = _spec_gpu_ring()
    with pytest.raises(SimulationError, match=r"job 'j': its step time is"):
        pace(Fixed(dataclasses.replace(EST, iteration_s=bad, compute_s=bad)), spec, gpu, ring)


def test_world_builds_the_flow_fabric_engine_network_names():
    assert FLOW_FABRICS.names() == ["isolated", "shared", "timed"]
    assert _world(engine={"network": "isolated"}).fabric is None
    assert isinstance(_world(engine={"network": "shared"}).fabric, SharedFabric)
    timed = _world(engine={"network": "timed"})
    assert isinstance(timed.fabric, TimedFabric) and timed.storage.reads_on_fabric is False
    assert _world(engine={"network": "shared"}).storage.reads_on_fabric is True


def test_estimate_alone_is_what_the_engine_runs_a_job_alone_at():
    data = small_scenario([small_job(iterations=30, parallelism={"dp": 16},
                                     global_batch=16)],
                          storage={}, checkpoint={"interval_s": 5})
    scenario = dcsim.scenario_from_dict(data)
    est, why = build_world(scenario).estimate_alone(scenario.workload.jobs[0])
    assert why == "" and est.data_stall_s >= 0 and est.checkpoint_s > 0
    job = Simulation(scenario).run().jobs.iloc[0]
    assert job.iteration_time_s == pytest.approx(est.iteration_s, rel=1e-9)
    assert job.alone_s == pytest.approx(30 * est.iteration_s, rel=1e-9)


def test_admit_says_why_a_job_cannot_run_anywhere():
    world = _world()
    big = dcsim.scenario_from_dict(small_scenario([small_job(parallelism={"dp": 64},
                                                             global_batch=64)]))
    spec = big.workload.jobs[0]
    types, why, memory = world.admit(spec)
    assert types == () and why.startswith("insufficient-gpus: needs 64 GPUs of type "
                                          "a100-sxm4-80gb; the cluster has 16")
    assert memory > 0
    assert world.estimate_alone(spec) == (None, why)
    with pytest.raises(ValueError, match="cannot run: insufficient-gpus"):
        world.placed_links(spec)


def test_placed_links_are_the_gpu_and_ring_of_the_empty_placement():
    world = _world()
    spec = world.workload.jobs[0]
    gpu, ring = world.placed_links(spec)
    assert gpu == catalog.gpus()["a100-sxm4-80gb"]
    placement = world.empty_placement(spec, ("a100-sxm4-80gb",))
    assert placement.num_gpus == 16 and len(placement.allocations) == 2
    assert ring == world.network.ring(placement.gpus_per_server())


def test_parts_are_built_on_first_use_only():
    world = _world()
    assert "fabric" not in vars(world) and "step_model" not in vars(world)
    world.estimate_alone(world.workload.jobs[0])
    assert "step_model" in vars(world) and "placement" in vars(world)


def test_a_new_step_model_is_one_class_and_one_registration(monkeypatch):
    from dcsim.perf.select import STEP_MODELS, StepModelEntry

    monkeypatch.setattr(STEP_MODELS, "_items", dict(STEP_MODELS._items))

    @STEP_MODELS.register("twice-first-order")
    class Twice(StepModelEntry):
        @staticmethod
        def build(inputs):
            first = STEP_MODELS.get("first-order").build(inputs)

            class Slower:
                def estimate(self, job, gpu, ring):
                    est = first.estimate(job, gpu, ring)
                    return dataclasses.replace(est, iteration_s=2 * est.iteration_s)
            return Slower()

    data = small_scenario([small_job(iterations=10)], engine={"network": "isolated"})
    base = dcsim.simulate(dcsim.scenario_from_dict(
        {**data, "engine": {**data["engine"], "step_model": "first-order"}}))
    twice = dcsim.simulate(dcsim.scenario_from_dict(
        {**data, "engine": {**data["engine"], "step_model": "twice-first-order"}}))
    assert twice.jobs.jct_s[0] == pytest.approx(2 * base.jobs.jct_s[0])


def test_a_new_flow_fabric_is_one_class_and_one_registration(monkeypatch):
    from dcsim.fabric.flows import FlowFabric

    monkeypatch.setattr(FLOW_FABRICS, "_items", dict(FLOW_FABRICS._items))
    built = []

    @FLOW_FABRICS.register("shared-logged")
    class Logged(FlowFabric):
        carries_reads = True

        @staticmethod
        def build(network, env):
            built.append(network)
            return SharedFabric(network.detailed, network.attach)

    jobs = [small_job(f"j{i}", parallelism={"dp": 16}, global_batch=16) for i in range(2)]
    shared = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(jobs)))
    logged = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(
        jobs, engine={"network": "shared-logged"})))
    assert len(built) == 1
    assert list(logged.jobs.jct_s) == list(shared.jobs.jct_s)


def test_a_flow_fabric_must_carry_reads_exactly_when_it_builds_a_shared_fabric(monkeypatch):
    from dcsim.fabric.flows import FlowFabric

    monkeypatch.setattr(FLOW_FABRICS, "_items", dict(FLOW_FABRICS._items))

    @FLOW_FABRICS.register("shared-but-says-not")
    class Confused(FlowFabric):
        @staticmethod
        def build(network, env):
            return SharedFabric(network.detailed, network.attach)

    world = build_world(dcsim.scenario_from_dict(small_scenario(
        engine={"network": "shared-but-says-not"})))
    with pytest.raises(TypeError, match="carries_reads is False but it builds a SharedFabric"):
        _ = world.fabric


def test_a_step_model_missing_from_the_run_is_a_clear_error():
    from dcsim.scenario import Scenario

    data = small_scenario([small_job(step_model="measured")])
    unchecked = Scenario.model_validate(data)  # skips load_scenario's checks
    with pytest.raises(ValueError, match=r"step model 'measured' is not available in this run "
                                         r"\(it needs engine.throughputs\)"):
        dcsim.simulate(unchecked)
