"""Invariants over random small scenarios (hypothesis): whatever the jobs, policies (every
scheduler x every placement) and fidelity, capacity is never exceeded, every job ends terminal,
time runs forward, GPU-seconds add up, strict FIFO lets no job wait past its predecessors."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.metrics import TERMINAL, gpu_seconds
from dcsim.policies import PLACEMENTS, SCHEDULERS

SERVER_TYPES = {"dgx-a100-80gb": 8, "pcie-4gpu": 4}


@st.composite
def scenarios(draw):
    groups = draw(st.lists(st.tuples(st.sampled_from(sorted(SERVER_TYPES)),
                                     st.integers(1, 3)), min_size=1, max_size=2))
    jobs = []
    for i in range(draw(st.integers(1, 10))):
        dp = draw(st.sampled_from([1, 2, 4, 8, 16, 64]))
        jobs.append({
            "name": f"j{i}",
            "arrival_s": draw(st.floats(0, 500, allow_nan=False)),
            "model": {"kind": "custom", "params": 1e7,
                      "forward_flop_per_sample": draw(st.sampled_from([1e11, 1e12, 1e13]))},
            "parallelism": {"dp": dp},
            "global_batch": dp * draw(st.integers(1, 4)),
            "iterations": draw(st.integers(1, 400)),
            "priority": draw(st.integers(0, 2)),
            "deferrable": draw(st.booleans()),
            **draw(st.sampled_from([{}, {"deadline_s": 3000.0}, {"deadline_slack": 2.0}])),
        })
    scheduler = draw(schedulers())
    # carbon-aware reads the grid: California's hourly intensity, from a drawn hour
    power = ({"zone": "US-CAL-CISO",
              "start": f"2023-06-01T{draw(st.integers(0, 23)):02d}:00:00+00:00"}
             if scheduler["kind"] == "carbon-aware" else {})
    data = {
        "name": "random",
        "seed": draw(st.integers(0, 2**16)),
        "horizon_s": draw(st.one_of(st.none(), st.floats(10, 5000))),
        "cluster": {"servers": [{"name": f"g{k}", "type": t, "count": c}
                                for k, (t, c) in enumerate(groups)]},
        "workload": {"jobs": jobs},
        "scheduler": scheduler,
        "power": power,
        "placement": {"kind": draw(st.sampled_from(PLACEMENTS.names()))},
        "engine": {"fidelity": draw(st.sampled_from(["steady", "iteration"])),
                   "network": draw(st.sampled_from(["shared", "isolated", "timed"])),
                   "preemption_overhead_s": draw(st.sampled_from([0.0, 0.0, 3.0]))},
    }
    if scheduler["kind"] == "power-capped":
        # a budget a drawn fraction above the idle cluster's power: jobs start capped or wait
        idle_w = dcsim.build_world(dcsim.scenario_from_dict(
            {**data, "scheduler": {"kind": "fifo"}})).idle_it_w()
        data["power"] = {"budget_kw": idle_w * draw(st.sampled_from([1.05, 1.3, 3.0])) / 1e3}
    return data


@st.composite
def schedulers(draw):
    """Every registered scheduler, with params small enough that its thresholds, leases and
    promotions happen within the random workloads."""
    kind = draw(st.sampled_from(SCHEDULERS.names()))
    params: dict = {}
    if kind in ("sjf", "srtf"):
        params["estimate_sigma"] = draw(st.sampled_from([0.0, 1.0]))
    if kind == "srtf":
        params["oracle"] = draw(st.booleans())
    if kind == "las":
        params["thresholds_gpu_s"] = draw(st.sampled_from([[5.0], [20.0, 200.0]]))
        params["starvation_s"] = draw(st.sampled_from([None, 30.0]))
    if kind == "themis":
        params["lease_s"] = draw(st.sampled_from([7.0, 60.0]))
    if kind == "carbon-aware":
        params["max_defer_s"] = draw(st.sampled_from([600.0, 7200.0]))
    if kind == "power-capped":
        params["min_cap_fraction"] = draw(st.sampled_from([0.2, 0.5, 1.0]))
    return {"kind": kind, "params": params}


def check_invariants(data: dict, res: dcsim.Results) -> None:
    jobs, segs, timeline = res.jobs, res.segments, res.gpu_timeline
    s = res.summary()
    capacity = {i: n for i, n in enumerate(
        n for g in data["cluster"]["servers"] for n in [SERVER_TYPES[g["type"]]] * g["count"])}
    # capacity is never exceeded, on any server at any instant
    for server_id, seg in segs.groupby("server_id"):
        points = sorted([(t, +n) for t, n in zip(seg.start_s, seg.num_gpus, strict=True)]
                        + [(t, -n) for t, n in zip(seg.end_s, seg.num_gpus, strict=True)],
                        key=lambda p: (p[0], p[1]))
        assert max(np.cumsum([n for _, n in points])) <= capacity[server_id]
    assert (timeline.allocated_gpus <= timeline.total_gpus).all()
    assert (timeline.allocated_gpus >= 0).all()
    # every job is terminal, unless the horizon cut the run short
    if data["horizon_s"] is None:
        assert jobs.status.isin(TERMINAL).all()
        done = jobs.query("status == 'completed'")
        assert (done.iterations_done == done.iterations).all()
    # time runs forward
    started = jobs[jobs.start_s.notna()]
    assert (started.start_s >= started.submit_s - 1e-9).all()
    ended = jobs[jobs.end_s.notna()]
    assert (ended.end_s >= ended.start_s - 1e-9).all()
    assert (ended.end_s - ended.start_s >= ended.run_s - 1e-6).all()
    # GPU-seconds allocated (timeline) equal the sum over jobs and over segments
    by_jobs = float((jobs.num_gpus * jobs.run_s).sum())
    by_segments = float((segs.num_gpus * (segs.end_s - segs.start_s)).sum())
    by_timeline = gpu_seconds(timeline, s["sim_end_s"])
    assert by_timeline == pytest.approx(by_jobs, rel=1e-9, abs=1e-6)
    assert by_segments == pytest.approx(by_jobs, rel=1e-9, abs=1e-6)
    # counts add up; rejected jobs never ran
    assert s["jobs_read"] == len(data["workload"]["jobs"])
    assert s["jobs_submitted"] + s["jobs_not_arrived"] == s["jobs_read"]
    statuses = ("completed", "failed", "rejected", "unfinished")
    assert sum(s[f"jobs_{k}"] for k in statuses) == s["jobs_submitted"]
    if data["horizon_s"] is not None:
        late = jobs.submit_s > data["horizon_s"]
        assert s["jobs_not_arrived"] == int(late.sum())
        assert s["sim_end_s"] <= data["horizon_s"]
    assert (jobs.query("status == 'rejected'").run_s == 0).all()
    assert (jobs.query("status == 'rejected'").reason != "").all()
    # strict FIFO: a job starts by the time it has arrived, every earlier job has ended and
    # every server that was out of service (a failure's downtime) is back
    if data["scheduler"]["kind"] == "fifo" and data["horizon_s"] is None:
        ran = jobs[jobs.start_s.notna()]
        down = res.failures.query("downtime_s > 0")
        for _, job in ran.iterrows():
            earlier = ran[ran.job_id < job.job_id].end_s
            bound = max(job.submit_s, earlier.max() if len(earlier) else job.submit_s)
            for t, back in sorted(zip(down.time_s, down.time_s + down.downtime_s,
                                      strict=True)):
                if t <= bound + 1e-9:  # out of service at the bound: wait for it
                    bound = max(bound, back)
            assert job.start_s <= bound + 1e-9
    # preemption overhead: paid once per restart, inside the run time
    overhead = data["engine"]["preemption_overhead_s"]
    restarts = jobs.preemptions - (jobs.status == "preempted") + jobs.interruptions
    assert (jobs.restore_s <= restarts * overhead + 1e-9).all()
    assert (jobs.restore_s <= jobs.run_s + 1e-9).all()


@settings(max_examples=int(os.environ.get("DCSIM_EXAMPLES", 80)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold(data):
    res = dcsim.simulate(dcsim.scenario_from_dict(data))
    check_invariants(data, res)


@settings(max_examples=15, deadline=None)
@given(scenarios())
def test_same_seed_same_results(data):
    a = dcsim.simulate(dcsim.scenario_from_dict(data)).jobs
    b = dcsim.simulate(dcsim.scenario_from_dict(data)).jobs
    assert a.to_csv() == b.to_csv()


@st.composite
def fault_configs(draw):
    """Random failure processes (every class, every distribution), trace-free, with a retry
    limit so that every job ends; repairs, spares and stragglers at scales the small random
    workloads meet."""
    comps = {}
    for comp in draw(st.sets(st.sampled_from(["gpu", "gpu_memory", "host", "nic", "switch",
                                               "link", "software"]), min_size=1, max_size=4)):
        dist = draw(st.sampled_from(["exponential", "weibull", "lognormal"]))
        comps[comp] = {"distribution": dist, "mtbf_hours": draw(st.sampled_from([0.5, 2.0, 20.0]))}
        if dist == "weibull":  # each distribution takes only its own parameters
            comps[comp]["shape"] = draw(st.sampled_from([0.7, 1.5]))
        elif dist == "lognormal":
            comps[comp]["sigma"] = 0.8
    faults = {"components": comps, "max_retries": draw(st.integers(0, 3)),
              "repair": {"distribution": draw(st.sampled_from(["fixed", "exponential"])),
                         "mean_hours": draw(st.sampled_from([0.01, 0.2]))},
              "spares": draw(st.integers(0, 2))}
    if draw(st.booleans()):
        faults["stragglers"] = {"persistent": {"fraction": 0.25, "factor": 1.5},
                                "transient": {"mtbe_hours": 0.05, "duration_s": 30.0}}
    return faults


@settings(max_examples=int(os.environ.get("DCSIM_EXAMPLES", 80)) // 4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(), fault_configs())
def test_invariants_hold_with_faults(data, faults):
    """With failures: the usual invariants, and no work counted twice (progress never exceeds
    the job's iterations; productive + lost time fit in the time run past restores), lost work
    never exceeds work done, every interrupted job ends terminal (without a horizon)."""
    data = {**data, "faults": faults}
    data["engine"] = {**data["engine"], "preemption_overhead_s": 3.0}
    for job in data["workload"]["jobs"]:
        job["iterations"] = job["iterations"] * 50  # long enough to meet failures
    res = dcsim.simulate(dcsim.scenario_from_dict(data))
    check_invariants(data, res)
    jobs = res.jobs
    assert (jobs.iterations_done <= jobs.iterations + 1e-9).all()
    assert (jobs.lost_iterations >= 0).all() and (jobs.lost_s >= 0).all()
    assert (jobs.productive_s >= -1e-6).all()
    running = jobs.run_s - jobs.restore_s
    assert (jobs.productive_s + jobs.lost_s <= running + 1e-6).all()
    hit = jobs[jobs.interruptions > 0]
    if data["horizon_s"] is None:
        assert hit.status.isin(TERMINAL).all()
    failed = jobs[jobs.status == "failed"]
    assert (failed.interruptions == faults["max_retries"] + 1).all()
    assert failed.reason.str.startswith("retry-limit").all()
    s = res.summary()
    assert s["interruptions"] == int(jobs.interruptions.sum())
    assert s["interruptions"] == sum(s["interruptions_by_cause"].values())
    assert 0 <= s["goodput"] <= 1 + 1e-9 or jobs.run_s.sum() == 0
    assert len(res.failures) == s["failures"]
