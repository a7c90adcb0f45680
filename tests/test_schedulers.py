"""Schedulers (dcsim/policies/scheduling/) order, pass and preempt as their definitions say;
the decision-time hook; preemption overhead; the fairness and slowdown metrics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import dcsim
from dcsim.engine import Simulation
from dcsim.metrics import jain_index
from dcsim.policies import SCHEDULERS, JobView
from dcsim.rng import RandomStreams
from tests.conftest import REPO, small_job, small_scenario
from tests.test_engine import ConstantStep

ONE_SERVER = {"servers": [{"type": "dgx-a100-80gb", "count": 1}]}  # 8 GPUs


def run(jobs, kind="fifo", params=None, cluster=None, **kw) -> dcsim.Results:
    extra = {"cluster": cluster} if cluster else {}
    kw.setdefault("engine", {"network": "isolated"})
    data = small_scenario(jobs, scheduler={"kind": kind, "params": params or {}}, **extra, **kw)
    return dcsim.simulate(dcsim.scenario_from_dict(data), step_model=ConstantStep(1.0))


def gang(name, gpus, iterations, arrival_s=0.0, **kw):
    return small_job(name, arrival_s=arrival_s, parallelism={"dp": gpus}, global_batch=gpus,
                     iterations=iterations, **kw)


def by_name(res):
    return res.jobs.set_index("name")


def test_every_scheduler_is_registered_with_a_cited_docstring():
    assert set(SCHEDULERS.names()) >= {"fifo", "priority", "sjf", "srtf", "easy", "las",
                                       "themis"}
    for kind in ("sjf", "srtf", "easy", "las", "themis"):
        doc = SCHEDULERS.get(kind).__doc__
        assert any(c.isdigit() for c in doc), kind  # cites a paper (venue and year)


def test_sjf_runs_short_jobs_first_and_beats_fifo():
    jobs = [gang("first", 8, 50), gang("long", 8, 1000, arrival_s=1)]
    jobs += [gang(f"short{i}", 8, 10, arrival_s=2 + i) for i in range(4)]
    fifo, sjf = run(jobs, cluster=ONE_SERVER), run(jobs, "sjf", cluster=ONE_SERVER)
    j = by_name(sjf)
    assert j.loc["long", "start_s"] == pytest.approx(90.0)  # after first and the four shorts
    assert by_name(fifo).loc["long", "start_s"] == pytest.approx(50.0)
    assert sjf.jobs.preemptions.sum() == 0  # non-preemptive
    assert sjf.summary()["jct_mean_s"] < 0.5 * fifo.summary()["jct_mean_s"]


def test_srtf_preempts_a_longer_job_and_beats_fifo():
    jobs = [gang("long", 8, 1000), gang("short", 8, 10, arrival_s=5.5)]
    fifo = run(jobs, cluster=ONE_SERVER)
    for params in ({"oracle": True}, {"oracle": False}):
        srtf = run(jobs, "srtf", params, cluster=ONE_SERVER)
        j = by_name(srtf)
        assert j.loc["short", "start_s"] == 5.5 and j.loc["short", "end_s"] == pytest.approx(15.5)
        assert j.loc["long", "preemptions"] == 1
        assert j.loc["long", "end_s"] == pytest.approx(15.5 + 995)  # 5 whole iterations kept
        assert srtf.summary()["jct_mean_s"] < fifo.summary()["jct_mean_s"]


def test_srtf_estimates_are_seeded_per_job_and_only_with_a_sigma():
    cls = SCHEDULERS.get("srtf")

    def factors(seed, sigma, ids):
        s = cls(cls.Params(estimate_sigma=sigma))
        s.bind(RandomStreams(seed))
        return [s.factor(i) for i in ids]

    assert factors(1, 0.0, range(5)) == [1.0] * 5
    a = factors(1, 0.5, range(5))
    assert len(set(a)) == 5 and a == factors(1, 0.5, range(5))
    assert factors(1, 0.5, reversed(range(5))) == a[::-1]  # by job, not by call order
    assert factors(2, 0.5, range(5)) != a


def test_easy_backfills_without_delaying_the_heads_reservation():
    two = {"servers": [{"type": "dgx-a100-80gb", "count": 2}]}  # 16 GPUs
    jobs = [gang("running", 8, 100), gang("head", 16, 10, arrival_s=1),
            gang("fits-before", 8, 50, arrival_s=2),  # ends at 52 <= shadow 100: may start
            gang("too-long", 8, 200, arrival_s=3)]  # would end at 203 > 100, no spare GPUs
    easy, fifo = by_name(run(jobs, "easy", cluster=two)), by_name(run(jobs, cluster=two))
    assert easy.loc["fits-before", "start_s"] == 2.0
    assert easy.loc["head", "start_s"] == pytest.approx(100.0)  # the reservation, not later
    assert easy.loc["head", "start_s"] == fifo.loc["head", "start_s"]
    assert easy.loc["too-long", "start_s"] >= easy.loc["head", "end_s"] - 1e-9
    assert fifo.loc["fits-before", "start_s"] >= fifo.loc["head", "start_s"]


def test_easy_lets_a_long_job_use_the_gpus_spare_at_the_reservation():
    three = {"servers": [{"type": "dgx-a100-80gb", "count": 3}]}  # 24 GPUs
    jobs = [gang("running", 16, 100), gang("head", 16, 10, arrival_s=1),
            gang("spare", 8, 500, arrival_s=2)]  # at 100 s: 24 free, 16 for the head, 8 spare
    j = by_name(run(jobs, "easy", cluster=three))
    assert j.loc["spare", "start_s"] == 2.0 and j.loc["head", "start_s"] == pytest.approx(100.0)
    jobs[2] = gang("spare", 16, 500, arrival_s=2)  # needs more than the spare 8: waits
    j = by_name(run(jobs, "easy", cluster=three))
    assert j.loc["spare", "start_s"] >= j.loc["head", "start_s"]


def test_las_demotes_a_long_job_at_its_threshold():
    jobs = [gang("long", 8, 1000), gang("short", 8, 10, arrival_s=5)]
    res = run(jobs, "las", {"thresholds_gpu_s": [100.0], "starvation_s": None},
              cluster=ONE_SERVER)
    j = by_name(res)
    # long reaches 100 GPU-s at 12.5 s: queue 1; the round the hook plans lets short preempt
    assert j.loc["short", "start_s"] == pytest.approx(12.5)
    assert j.loc["long", "preemptions"] == 1
    fifo = by_name(run(jobs, cluster=ONE_SERVER))
    assert fifo.loc["short", "start_s"] == pytest.approx(1000.0)


def _waits(res, name):
    """Each stretch a job spent queued: from submission or preemption to its next start."""
    ev = res.events[res.events.job_id == by_name(res).loc[name, "job_id"]]
    out, since = [], None
    for t, e in zip(ev.time_s, ev.event, strict=True):
        if e in ("submitted", "preempted"):
            since = t
        elif e == "started":
            out.append(t - since)
    return out


def test_las_promotes_a_starving_job():
    jobs = [gang("long", 8, 300)] + [gang(f"s{k}", 8, 8, arrival_s=20 + 8 * k)
                                     for k in range(60)]  # a short job always waiting
    thresholds = {"thresholds_gpu_s": [100.0]}
    starving = run(jobs, "las", {**thresholds, "starvation_s": None}, cluster=ONE_SERVER)
    promoted = run(jobs, "las", {**thresholds, "starvation_s": 50.0}, cluster=ONE_SERVER)
    assert max(_waits(starving, "long")) > 400  # waits for the whole stream of short jobs
    waits = _waits(promoted, "long")
    assert len(waits) > 2 and max(waits) <= 50.0 + 8.0 + 1e-6  # the limit + one short job
    assert by_name(promoted).loc["long", "status"] == "completed"


def view(job_id, submit_s, alone_s, remaining_s, running=False, **kw):
    return JobView(job_id, f"j{job_id}", 8, ("a100-sxm4-80gb",), submit_s, 0, running, 100,
                   0.0, 0.0, alone_s=alone_s, remaining_s=remaining_s, **kw)


def test_themis_orders_by_highest_rho():
    cls = SCHEDULERS.get("themis")
    themis = cls(cls.Params())
    queue = [view(0, 0.0, 100.0, 100.0),  # rho (50 + 100) / 100 = 1.5
             view(1, 40.0, 10.0, 10.0),  # (10 + 10) / 10 = 2
             view(2, 10.0, 1000.0, 1000.0)]  # (40 + 1000) / 1000 = 1.04
    assert [v.job_id for v in themis.order(queue, 50.0)] == [1, 0, 2]
    assert themis.rho(queue[1], 50.0) == pytest.approx(2.0)


def test_themis_leases_end_on_the_interval_and_the_highest_rho_wins():
    jobs = [gang("big", 8, 1000), gang("small", 8, 50, arrival_s=10),
            gang("medium", 8, 500, arrival_s=10)]
    res = run(jobs, "themis", {"lease_s": 100.0}, cluster=ONE_SERVER)
    j = by_name(res)
    # at 100 s: rho big = (100 + 900) / 1000 = 1, small (90 + 50) / 50 = 2.8, medium 1.18
    assert j.loc["small", "start_s"] == pytest.approx(100.0)
    assert j.loc["big", "preemptions"] >= 1
    assert j.loc["medium", "start_s"] > j.loc["small", "start_s"]
    # preemptions happen only at lease ends
    stops = res.events.query("event == 'preempted'").time_s.to_numpy()
    assert np.allclose(stops / 100.0, np.round(stops / 100.0))


def test_preemption_overhead_is_paid_at_restart_holding_the_gpus():
    jobs = [gang("low", 16, 100), gang("high", 8, 20, arrival_s=10.5, priority=5)]
    for fidelity in ("steady", "iteration"):
        res = run(jobs, "priority", engine={"network": "isolated", "fidelity": fidelity,
                                            "preemption_overhead_s": 7.0})
        low = res.jobs.iloc[0]
        assert low.restore_s == 7.0 and low.preemptions == 1
        assert low.end_s == pytest.approx(30.5 + 7.0 + 90)
        assert low.run_s == pytest.approx(10.5 + 7.0 + 90)
    free = run(jobs, "priority").jobs.iloc[0]
    assert free.restore_s == 0 and free.end_s == pytest.approx(30.5 + 90)


def test_decision_rounds_do_not_storm():
    jobs = [gang(f"j{i}", 8, 400, arrival_s=i) for i in range(6)]
    res = run(jobs, "themis", {"lease_s": 50.0}, cluster=ONE_SERVER)
    assert res.summary()["jobs_completed"] == 6
    # about one round per lease while jobs wait (2,400 s of work), not one per event
    assert res.summary()["events_processed"] < 400


def test_slowdown_ftf_and_fairness_metrics(tmp_path):
    jobs = [gang("a", 8, 100, user="u1", virtual_cluster="vc1"),
            gang("b", 8, 100, arrival_s=0.0, user="u2", virtual_cluster="vc1"),
            gang("c", 8, 50, arrival_s=300, user="u2")]
    res = run(jobs, cluster=ONE_SERVER)
    j = by_name(res)
    assert list(j.alone_s) == [100.0, 100.0, 50.0]
    assert list(j.slowdown) == pytest.approx([1.0, 2.0, 1.0])
    # b shares with a (2 jobs present) for 100 s of its 200: contention 1.5, 8 x 1.5 / 8 > 1
    assert j.loc["b", "contention"] == pytest.approx(1.5)
    assert j.loc["b", "ftf_rho"] == pytest.approx(200 / (100 * 1.5))
    s = res.summary()
    assert s["slowdown_mean"] == pytest.approx(4 / 3) and s["slowdown_max"] == 2.0
    assert s["ftf_rho_max"] == pytest.approx(4 / 3)
    assert s["jain_fairness_users"] == pytest.approx(jain_index(np.array([1.0, 1.5])))
    assert s["jain_fairness_vcs"] == pytest.approx(1.0)  # one named VC
    g = res.groups.set_index(["group_by", "group"])
    assert g.loc[("user", "u2"), "jobs"] == 2
    assert g.loc[("user", "u2"), "slowdown_mean"] == pytest.approx(1.5)
    assert g.loc[("user", "u2"), "gpu_hours"] == pytest.approx(8 * 150 / 3600)
    assert g.loc[("virtual_cluster", ""), "jobs"] == 1
    back = dcsim.load_results(res.save(tmp_path))
    pd.testing.assert_frame_equal(back.groups, res.groups, check_dtype=False)
    assert list(back.jobs.virtual_cluster) == ["vc1", "vc1", ""]
    (tmp_path / "groups.csv").unlink()  # a folder saved before groups.csv: rebuilt
    pd.testing.assert_frame_equal(dcsim.load_results(tmp_path).groups, res.groups,
                                  check_dtype=False)


def test_jain_index():
    assert jain_index(np.array([2.0, 2.0, 2.0])) == 1.0
    assert jain_index(np.array([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)
    assert math.isnan(jain_index(np.array([np.nan])))


def test_alone_time_is_the_estimate_alone_and_cached():
    data = small_scenario([small_job(f"j{i}", arrival_s=i, iterations=10 + i,
                                     parallelism={"dp": 8}) for i in range(5)])
    sim = Simulation(dcsim.scenario_from_dict(data))
    est, _ = sim.world.estimate_alone(sim.workload.jobs[0])
    res = sim.run()
    assert res.jobs.alone_s.to_numpy() == pytest.approx(
        est.iteration_s * np.arange(10, 15), rel=1e-12)
    assert len(sim.world._alone_step_s) == 1  # one placement + estimate for five jobs of a spec


def test_trace_counts_and_virtual_clusters(tmp_path):
    lines = (REPO / "data/traces/philly/philly.csv").read_text().splitlines()[:31]
    lines.append("not-a-time,1,1,1,vcX")  # a bad row, skipped
    (tmp_path / "philly.csv").write_text("\n".join(lines) + "\n")
    data = small_scenario(workload={"trace": {"path": "philly.csv", "format": "philly",
                                              "models": [{"model": "resnet50",
                                                          "per_gpu_batch": 64}],
                                              "skip_bad_rows": True}})
    res = dcsim.simulate(dcsim.scenario_from_dict(data, base_dir=str(tmp_path)))
    s = res.summary()
    assert (s["jobs_read"], s["jobs_accepted"], s["rows_skipped"]) == (31, 30, 1)
    assert sum(s["skip_reasons"].values()) == 1
    assert (res.jobs.virtual_cluster != "").all()
    assert set(res.groups.group_by) == {"virtual_cluster"}


def test_fifo_heap_rounds_launch_what_sorting_the_queue_launches(monkeypatch):
    """FIFO declares a static order (`Scheduler.static_key`), so the engine keeps its queue as
    a heap and looks only at the head; the runs match the general sort-the-queue rounds."""
    from dcsim.policies.scheduling.classic import Fifo

    data = small_scenario(cluster={"servers": [{"type": "dgx-a100-80gb", "count": 2}]},
                          workload={"generator": {
                              "kind": "poisson", "num_jobs": 80, "mean_interarrival_s": 5,
                              "mix": [{"weight": 1, "job": {
                                  "name": "j", "model": "resnet50", "global_batch": 256,
                                  "parallelism": {"dp": 8, "micro_batch": 32},
                                  "iterations": 4000}},
                                  {"weight": 1, "job": {
                                      "name": "k", "model": "bert-large", "global_batch": 64,
                                      "parallelism": {"dp": 4, "micro_batch": 16},
                                      "iterations": 3000}}]}})
    heap = dcsim.simulate(dcsim.scenario_from_dict(data))
    monkeypatch.setattr(Fifo, "static_key", None)
    sort = dcsim.simulate(dcsim.scenario_from_dict(data))
    assert heap.summary()["queue_mean_s"] > 60  # the queue was long
    assert heap.jobs.to_csv() == sort.jobs.to_csv()
    assert heap.segments.to_csv() == sort.segments.to_csv()


def test_every_scheduler_declares_the_hooks_it_overrides():
    """Issue 15: capabilities are declared on the class (the engine reads the declaration),
    and a declaration that disagrees with the code is caught here."""
    from dcsim.policies import SCHEDULERS
    from dcsim.policies.scheduling import Scheduler

    for name in SCHEDULERS:
        cls = SCHEDULERS.get(name)
        for flag, hook in (("gates", "gate"), ("preempts", "preempt"),
                           ("timed_decisions", "next_decision_s"),
                           ("uses_carbon", "bind_carbon"), ("holds", "hold_until")):
            overrides = getattr(cls, hook) is not getattr(Scheduler, hook)
            assert getattr(cls, flag) == overrides, (name, flag)
