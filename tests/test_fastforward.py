"""Steady-state fast-forward is exact: `engine.fidelity: steady` (a running job's remaining
iterations are one event, interrupted when its speed changes) and `iteration` (one event per
iteration) give the same job times, on small scenarios where speeds change mid-run: jobs
sharing an oversubscribed network as others arrive and leave, priority preemption with a
restore cost, and Tiresias LAS, which preempts at service thresholds (decision times that fall
inside iterations)."""

from __future__ import annotations

import pytest

import dcsim
from tests.conftest import small_scenario

TOLERANCE = 0.01  # relative, on every job's start and end time


def gpt2(name: str, arrival_s: float, dp: int, iterations: int, **kw) -> dict:
    return {"name": name, "arrival_s": arrival_s, "model": "gpt2-1.5b",
            "parallelism": {"dp": dp, "micro_batch": 4}, "global_batch": 32 * dp,
            "precision": "bf16", "iterations": iterations, **kw}


# four DGX A100 on two leaves, 4:1 oversubscribed: rings across the leaves share the uplinks
LEAF_SPINE = {"cluster": {"servers": [{"type": "dgx-a100-80gb", "count": 4}]},
              "topology": {"kind": "leaf-spine",
                           "params": {"servers_per_leaf": 2, "spines": 1,
                                      "oversubscription": 4.0}},
              "placement": {"kind": "spread"}}

SCENARIOS = {
    # each arrival and completion re-shares the uplinks: running jobs re-estimate mid-iteration
    "contention": small_scenario(
        [gpt2("a", 0.0, 16, 150), gpt2("b", 40.0, 8, 120), gpt2("c", 95.5, 8, 100)],
        **LEAF_SPINE),
    # a high-priority job stops a running one mid-iteration; the victim pays a restore delay
    "preemption": small_scenario(
        [gpt2("low", 0.0, 32, 200), gpt2("high", 57.3, 16, 60, priority=5),
         gpt2("mid", 80.0, 8, 80, priority=2)],
        scheduler={"kind": "priority"}, engine={"preemption_overhead_s": 12.5}, **LEAF_SPINE),
    # service thresholds reached inside iterations decide preemptions (timed decisions)
    "las": small_scenario(
        [gpt2("long", 0.0, 32, 300), gpt2("short1", 30.0, 16, 40),
         gpt2("short2", 61.0, 16, 50)],
        scheduler={"kind": "las", "params": {"thresholds_gpu_s": [2000.0],
                                             "starvation_s": None}},
        **LEAF_SPINE),
}


def run(data: dict, fidelity: str) -> dcsim.Results:
    data = {**data, "engine": {**data.get("engine", {}), "fidelity": fidelity}}
    return dcsim.simulate(dcsim.scenario_from_dict(data))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_steady_and_iteration_fidelity_give_the_same_job_times(name):
    steady, per_iteration = (run(SCENARIOS[name], f) for f in ("steady", "iteration"))
    a, b = steady.jobs.set_index("name"), per_iteration.jobs.set_index("name")
    assert (a.status == "completed").all() and (b.status == "completed").all()
    assert list(a.preemptions) == list(b.preemptions)
    for col in ("start_s", "end_s"):
        assert b[col].to_numpy() == pytest.approx(a[col].to_numpy(), rel=TOLERANCE), col
    # the fast-forward is what makes it cheap: one event per iteration otherwise
    events = (steady.summary()["events_processed"], per_iteration.summary()["events_processed"])
    assert events[1] > events[0] + a.iterations.sum() / 2


def test_the_scenarios_exercise_what_they_claim():
    """The speeds really change mid-run: re-shared links, preemptions, LAS threshold stops."""
    contention = run(SCENARIOS["contention"], "steady").jobs.set_index("name")
    assert (contention.slowdown > 1.05).any()  # sharing the uplinks slowed someone
    preemption = run(SCENARIOS["preemption"], "steady").jobs.set_index("name")
    assert preemption.loc["low", "preemptions"] >= 1 and preemption.loc["low", "restore_s"] > 0
    las = run(SCENARIOS["las"], "steady").jobs.set_index("name")
    assert las.loc["long", "preemptions"] >= 1
