"""Deadlines and deferrable jobs, and the carbon-aware scheduler (docs/energy.md#deadlines,
dcsim/policies/scheduling/carbon.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dcsim
from dcsim.energy.grid import HourlyRate
from dcsim.errors import ScenarioError
from dcsim.policies import SCHEDULERS, JobView
from tests.conftest import small_job, small_scenario

H = 3600.0


def run(data: dict) -> dcsim.Results:
    return dcsim.simulate(dcsim.scenario_from_dict(data))


def job(name: str, duration_s: float = 1800.0, **kw) -> dict:
    spec = small_job(name, parallelism={"dp": 8}, global_batch=64, **kw)
    del spec["iterations"]
    spec["duration_s"] = duration_s
    return spec


def scenario(jobs, servers: int = 1, **kw) -> dict:
    return small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb",
                                                      "count": servers}]},
                          engine={"network": "isolated"}, **kw)


def series(tmp_path, values) -> str:
    rows = [f"2023-01-01 {h:02d}:00:00,{v}" for h, v in enumerate(values)]
    path = tmp_path / "carbon.csv"
    path.write_text("time,carbon_g_per_kwh\n" + "\n".join(rows) + "\n")
    return str(path)


# ---------------------------------------------------------------------- deadlines
def test_deadlines_are_met_missed_and_counted():
    # one server: b waits for a (30 min), so b's 40-minute deadline is missed by 20 min
    res = run(scenario([job("a", deadline_s=3600), job("b", deadline_s=2400), job("c")]))
    jobs = res.jobs.set_index("name")
    assert jobs.due_s["a"] == 3600 and jobs.due_s["b"] == 2400 and math.isnan(jobs.due_s["c"])
    assert jobs.late_s["a"] == pytest.approx(1800 - 3600, abs=1)
    assert jobs.late_s["b"] == pytest.approx(3600 - 2400, abs=1)
    assert math.isnan(jobs.late_s["c"])
    s = res.summary()
    assert (s["deadline_jobs"], s["deadline_misses"]) == (2, 1)


def test_a_slack_deadline_is_a_multiple_of_the_run_time_alone():
    res = run(scenario([job("a"), job("b", deadline_slack=1.5)]))
    b = res.jobs.set_index("name").loc["b"]
    assert b.due_s == pytest.approx(1.5 * b.alone_s)
    assert b.late_s == pytest.approx(b.end_s - 1.5 * b.alone_s)  # waited for a: late
    assert res.summary()["deadline_misses"] == 1


def test_a_deadline_job_that_does_not_finish_is_infinitely_late():
    res = run(scenario([job("a", duration_s=10 * H, deadline_s=H)], horizon_s=2 * H))
    assert res.jobs.late_s[0] == math.inf
    assert res.summary()["deadline_misses"] == 1


def test_deadline_settings_are_checked():
    with pytest.raises(ScenarioError, match="at most one of deadline_s and deadline_slack"):
        dcsim.scenario_from_dict(scenario([job("a", deadline_s=10, deadline_slack=2)]))
    with pytest.raises(ScenarioError, match="deadline_slack"):
        dcsim.scenario_from_dict(scenario([job("a", deadline_slack=0.5)]))
    with pytest.raises(ScenarioError, match="deadline_s"):
        dcsim.scenario_from_dict(scenario([job("a", deadline_s=-1)]))
    bad = scenario([job("a")])
    bad["workload"]["deadlines"] = {"fraction": 0.5}
    with pytest.raises(ScenarioError, match="exactly one of deadline_s and slack"):
        dcsim.scenario_from_dict(bad)


def test_workload_deadlines_go_to_a_drawn_fraction_of_jobs():
    jobs = [job(f"j{i}", arrival_s=float(i)) for i in range(200)]
    jobs[0]["deadline_s"] = 5.0  # its own deadline is kept
    data = scenario(jobs, servers=4)
    data["workload"]["deadlines"] = {"fraction": 0.3, "slack": 4.0}
    sc = dcsim.scenario_from_dict(data)
    built = dcsim.build_world(sc).workload.jobs
    given = [j for j in built if j.deadline_slack == 4.0]
    assert 40 < len(given) < 80 and all(j.deferrable for j in given)
    assert built[0].deadline_s == 5.0 and built[0].deadline_slack is None
    again = dcsim.build_world(dcsim.scenario_from_dict(data)).workload.jobs
    assert [j.deadline_slack for j in again] == [j.deadline_slack for j in built]
    data["workload"]["deadlines"]["fraction"] = 0.0
    none = dcsim.build_world(dcsim.scenario_from_dict(data)).workload.jobs
    assert sum(j.deferrable for j in none) == 0


# ---------------------------------------------------------------------- carbon-aware
def test_carbon_aware_holds_a_deferrable_job_to_the_cleanest_hours(tmp_path):
    # dirty until 05:00, clean 05:00-07:00, dirty again
    path = series(tmp_path, [500] * 5 + [50, 50] + [500] * 17)
    jobs = [job("defer", deferrable=True, deadline_s=12 * H), job("now", arrival_s=1.0)]
    power = {"carbon": {"path": path}, "start": "2023-01-01T00:00:00+00:00"}
    fifo = run(scenario(jobs, servers=2, power=power))
    aware = run(scenario(jobs, servers=2, power=power, scheduler={"kind": "carbon-aware"}))
    f, a = fifo.jobs.set_index("name"), aware.jobs.set_index("name")
    assert f.start_s["defer"] == 0 and a.start_s["defer"] == pytest.approx(5 * H)
    assert a.start_s["now"] == pytest.approx(1.0)  # not deferrable: never held
    assert a.queue_s["defer"] == pytest.approx(5 * H)  # a held job is queued
    assert a.carbon_kg["defer"] == pytest.approx(f.carbon_kg["defer"] / 10, rel=1e-6)
    assert a.late_s["defer"] < 0


def test_a_tight_deadline_bounds_the_hold(tmp_path):
    path = series(tmp_path, [500] * 5 + [50, 50] + [500] * 17)
    power = {"carbon": {"path": path}, "start": "2023-01-01T00:00:00+00:00"}
    # due at 4 h: the latest start is 4 h - 1.1 x 0.5 h: no clean hour in reach; hour 3 is as
    # dirty as now, so it starts now (ties go to the earliest)
    res = run(scenario([job("d", deferrable=True, deadline_s=4 * H)], power=power,
                       scheduler={"kind": "carbon-aware"}))
    assert res.jobs.start_s[0] == 0
    # with max_defer_s shorter than the way to the clean hours, also no hold
    res = run(scenario([job("d", deferrable=True)], power=power,
                       scheduler={"kind": "carbon-aware", "params": {"max_defer_s": 3 * H}}))
    assert res.jobs.start_s[0] == 0
    res = run(scenario([job("d", deferrable=True)], power=power,
                       scheduler={"kind": "carbon-aware"}))  # 24 h window, no deadline
    assert res.jobs.start_s[0] == pytest.approx(5 * H)


def test_hold_planning_picks_the_lowest_mean_over_the_run():
    cls = SCHEDULERS.get("carbon-aware")
    sched = cls(cls.Params(max_defer_s=10 * H, margin=0.0))
    # run time 2 h: starting at 2 h averages (10 + 100) / 2; at 3 h, (100 + 10)/2; at 4 h the
    # pair (10, 10) is cleanest; offset: the series' hour 0 starts at run time 0
    sched.bind_carbon(HourlyRate([900, 900, 10, 100, 10, 10, 900, 900, 900, 900, 900, 900],
                                 0.0, wrap=True))
    view = JobView(0, "j", 8, ("a100-sxm4-80gb",), 0.0, 0, False, 10, 0.0, 0.0,
                   alone_s=2 * H, remaining_s=2 * H, deferrable=True)
    assert sched.hold_until(view, 0.0) == pytest.approx(4 * H)
    assert sched.hold_until(view, 1800.0) == pytest.approx(4 * H)  # on the hour, not +30 min
    assert sched.hold_until(view._replace(due_s=5.5 * H), 0.0) == pytest.approx(2 * H)
    assert sched.hold_until(view._replace(deferrable=False), 0.0) == 0.0
    # back in the queue after a failure or preemption: never held again
    assert sched.hold_until(view._replace(iterations_done=3.0), 0.0) == 0.0
    assert sched.hold_until(view._replace(last_start_s=0.0), 7.0) == 7.0


def test_carbon_aware_without_a_carbon_source_is_a_load_error():
    with pytest.raises(ScenarioError, match=r"scheduler.kind: 'carbon-aware' reads the grid's "
                                            r"carbon intensity"):
        dcsim.scenario_from_dict(scenario([job("a", deferrable=True)],
                                          scheduler={"kind": "carbon-aware"}))


def test_carbon_aware_with_a_flat_intensity_holds_nothing():
    jobs = [job(f"j{i}", arrival_s=i * 600.0, deferrable=True) for i in range(4)]
    fifo = run(scenario(jobs, power={"carbon_g_per_kwh": 300}))
    aware = run(scenario(jobs, power={"carbon_g_per_kwh": 300},
                         scheduler={"kind": "carbon-aware"}))
    assert np.array_equal(fifo.jobs.start_s, aware.jobs.start_s)


# ---- review regressions


def test_carbon_aware_plans_within_a_series_that_does_not_wrap(tmp_path):
    """With beyond_series: error the series' first hours are not reused for planning (the
    hold would run the job past the series and fail the run)."""
    rows = [f"2023-01-{1 + h // 24:02d} {h % 24:02d}:00:00,{100 if h == 0 else 500}"
            for h in range(30)]
    path = tmp_path / "c.csv"
    path.write_text("time,carbon_g_per_kwh\n" + "\n".join(rows) + "\n")
    res = run(scenario([job("a", arrival_s=20 * H, deferrable=True)],
                       scheduler={"kind": "carbon-aware"},
                       power={"carbon": {"path": str(path)}, "beyond_series": "error"}))
    assert res.jobs.start_s[0] == 20 * H and res.jobs.status[0] == "completed"


def test_workload_deadlines_keep_a_jobs_own_deferrable():
    data = scenario([job("a", deferrable=False), job("b")])
    data["workload"]["deadlines"] = {"slack": 2.0}
    built = dcsim.build_world(dcsim.scenario_from_dict(data)).workload.jobs
    assert [(j.name, j.deadline_slack, j.deferrable) for j in built] == [
        ("a", 2.0, False), ("b", 2.0, True)]
