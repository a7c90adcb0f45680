"""Failures, repairs, spares, retries and stragglers (dcsim/faults): determinism, the statistics
of the failure processes, what a failure costs a job, bad input, the Llama 3 preset."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import dcsim
from dcsim.engine import Simulation
from dcsim.errors import ScenarioError
from dcsim.faults import llama3
from tests.conftest import small_job, small_scenario

ITER = None  # one iteration of small_job alone on an A100 (measured in _plain)


def run(data: dict) -> dcsim.Results:
    return dcsim.simulate(dcsim.scenario_from_dict(data))


def faulty(jobs=None, **faults) -> dict:
    return small_scenario(jobs, faults=faults)


def test_same_seed_same_failures_other_seed_other_failures():
    data = faulty([small_job(iterations=3_000_000)], max_retries=100,
                  components={"gpu": {"mtbf_hours": 5}, "software": {"mtbf_hours": 20,
                                                                     "distribution": "weibull",
                                                                     "shape": 0.7}},
                  stragglers={"transient": {"mtbe_hours": 2}})
    a, b = run(data), run(data)
    assert len(a.failures) > 5
    assert a.failures.to_csv() == b.failures.to_csv()
    assert a.jobs.to_csv() == b.jobs.to_csv()
    c = run({**data, "seed": 2})
    assert c.failures.to_csv() != a.failures.to_csv()


def test_exponential_inter_failure_times_have_the_configured_mean():
    mtbf_h, n_gpus = 100.0, 16  # 2 servers x 8 GPUs: the class fails every 6.25 h
    data = small_scenario([small_job(iterations=10**9)], horizon_s=2500 * 3600.0,
                          faults={"components": {"gpu": {"mtbf_hours": mtbf_h}},
                                  "repair": {"distribution": "fixed", "mean_hours": 1e-4},
                                  "max_retries_without_progress": None})
    f = run(data).failures
    gaps = np.diff(np.concatenate([[0.0], f.time_s.to_numpy()])) / 3600.0
    expected = mtbf_h / n_gpus
    assert len(gaps) > 300
    # the mean of n exponentials: standard error expected / sqrt(n); 4 sigma
    assert abs(gaps.mean() - expected) < 4 * expected / math.sqrt(len(gaps))
    assert stats.kstest(gaps, "expon", args=(0, expected)).pvalue > 1e-3
    # every GPU instance is hit, roughly uniformly
    assert f.target.nunique() == n_gpus


def _trace(tmp_path: Path, rows: str) -> str:
    path = tmp_path / "failures.csv"
    path.write_text("time_s,component,target,repair_s\n" + rows)
    return str(path)


def test_a_failure_rolls_back_to_the_last_checkpoint_and_costs_lost_work_plus_restore(
        tmp_path, monkeypatch):
    job = small_job(iterations=1000)
    plain = run(small_scenario([job]))
    step = float(plain.jobs.iteration_time_s[0])
    t_fail = 437.5 * step  # mid-iteration 437
    # checkpoints every 100 iterations: the failure rolls back to 400
    monkeypatch.setattr(Simulation, "last_checkpoint",
                        lambda self, j: math.floor(j.iterations_done / 100) * 100,
                        raising=False)
    data = small_scenario([job], engine={"preemption_overhead_s": 30.0},
                          faults={"trace": {"path": _trace(tmp_path, f"{t_fail},software,0/0,\n")},
                                  "warmup_s": 20.0})
    res = run(data)
    j = res.jobs.iloc[0]
    assert j.status == "completed" and j.interruptions == 1
    assert j.lost_iterations == pytest.approx(37.5)
    assert j.lost_s == pytest.approx(37.5 * step)
    assert j.end_s == pytest.approx(plain.jobs.end_s[0] + 37.5 * step + 30.0 + 20.0)
    assert j.restore_s == pytest.approx(50.0)
    assert j.productive_s == pytest.approx(1000 * step)
    assert j.iterations_done == 1000
    assert res.summary()["lost_gpu_hours"] == pytest.approx(37.5 * step / 3600)
    assert res.summary()["restarts"] == 1
    ev = res.events[res.events.job_id == 0].event.tolist()
    assert ev == ["submitted", "started", "interrupted", "started", "completed"]


def test_retry_limit_ends_the_job_failed_with_a_reason(tmp_path):
    rows = "".join(f"{t},software,0/0,\n" for t in (0.5, 1.0, 1.5))
    data = small_scenario([small_job(iterations=10**6)],
                          faults={"trace": {"path": _trace(tmp_path, rows)}, "max_retries": 2})
    res = run(data)
    j = res.jobs.iloc[0]
    assert j.status == "failed"
    assert j.reason.startswith("retry-limit: interrupted 3 times (faults.max_retries 2)")
    assert j.end_s == pytest.approx(1.5)
    assert res.summary()["jobs_failed"] == 1
    ok = run({**data, "faults": {**data["faults"], "max_retries": 3}})
    assert ok.jobs.status[0] != "failed"


def test_spare_pool_shortens_downtime(tmp_path):
    # one 8-GPU job on a one-server cluster; its server's host fails at t=10 s for 1 h
    base = small_scenario([small_job(iterations=2000, parallelism={"dp": 8}, global_batch=64)],
                          cluster={"servers": [{"type": "dgx-a100-80gb", "count": 1}]})
    trace = {"path": _trace(tmp_path, "10,host,0,3600\n")}
    none = run({**base, "faults": {"trace": trace}})
    spare = run({**base, "faults": {"trace": trace, "spares": 1, "spare_swap_s": 300}})
    assert none.failures.downtime_s[0] == 3600 and not none.failures.spare[0]
    assert spare.failures.downtime_s[0] == 300 and spare.failures.spare[0]
    assert none.jobs.end_s[0] - spare.jobs.end_s[0] == pytest.approx(3300)
    tl = none.gpu_timeline
    assert tl.total_gpus.min() == 0  # the server was out of service


def test_stragglers_slow_a_synchronous_job_to_its_slowest_gpu():
    job = small_job(iterations=500, parallelism={"dp": 16}, global_batch=64)
    plain = run(small_scenario([job]))
    # 1 of the 16 GPUs is 2x slower: the whole 16-GPU job runs at its pace
    slow = run(small_scenario([job], faults={"stragglers": {
        "persistent": {"fraction": 1 / 16, "factor": 2.0}}}))
    assert slow.jobs.run_s[0] == pytest.approx(2 * plain.jobs.run_s[0])
    # a 1-GPU job runs at 2x only if it sits on the slow GPU; 16 of them: exactly one does
    ones = [small_job(f"j{i}", iterations=500) for i in range(16)]
    res = run(small_scenario(ones, faults={"stragglers": {
        "persistent": {"fraction": 1 / 16, "factor": 2.0}}}))
    ratio = np.sort(res.jobs.run_s.to_numpy() / res.jobs.alone_s.to_numpy())
    assert ratio[:-1] == pytest.approx(np.ones(15)) and ratio[-1] == pytest.approx(2.0)
    # transient episodes re-estimate the job while it runs: it takes longer, keeps its progress
    tr = run(small_scenario([{**job, "iterations": 200_000}], faults={"stragglers": {
        "transient": {"mtbe_hours": 1.0, "duration_s": 600, "factor": 3.0}}}))
    base = run(small_scenario([{**job, "iterations": 200_000}]))
    assert tr.jobs.iterations_done[0] == 200_000
    assert tr.jobs.run_s[0] > 1.05 * base.jobs.run_s[0]


@pytest.mark.parametrize("faults,where,message", [
    ({"components": {"gpu": {"mtbf_hours": 0}}}, "faults.components.gpu.mtbf_hours",
     "greater than 0"),
    ({"components": {"gpu": {"mtbf_hours": -5}}}, "faults.components.gpu.mtbf_hours",
     "greater than 0"),
    ({"components": {"tpu": {"mtbf_hours": 5}}}, "faults.components.tpu", "unknown key"),
    ({"components": {"gpu": {"mtbf_hours": 5, "distribution": "gamma"}}},
     "faults.components.gpu.distribution", "exponential"),
    ({"repair": {"mean_hours": 0}}, "faults.repair.mean_hours", "greater than 0"),
    ({"spares": 2}, "faults", "give a preset"),
    ({"preset": "llama2"}, "faults.preset", "llama3"),
])
def test_bad_fault_config_is_located(write_yaml, faults, where, message):
    path = write_yaml(small_scenario(faults=faults))
    with pytest.raises(ScenarioError) as exc:
        dcsim.load_scenario(path)
    text = str(exc.value)
    assert f"{path}:" in text and where in text and message in text


@pytest.mark.parametrize("row,column,message", [
    ("abc,gpu,0", "time_s", "expected a time"),
    ("-1,gpu,0", "time_s", "expected a time"),
    ("5,tpu,0", "component", "unknown component 'tpu'"),
    ("5,gpu,", "target", "empty target"),
    ("5,gpu,7", "target", "no server 7"),
    ("5,gpu,0/9", "target", "server 0 has GPUs 0-7"),
    ("5,switch,leafX", "target", "no switch"),
])
def test_malformed_failure_trace_row_is_located(tmp_path, write_yaml, row, column, message):
    trace = tmp_path / "f.csv"
    trace.write_text(f"time_s,component,target\n1,gpu,0\n{row}\n")
    path = write_yaml(small_scenario(faults={"trace": {"path": str(trace)}}))
    with pytest.raises(ScenarioError) as exc:
        dcsim.load_scenario(path)
    assert f"{trace}:3:{column}: {message}" in str(exc.value)


def test_llama3_preset_matches_the_reference_table(repo):
    table = pd.read_csv(repo / "data" / "reference" / "llama3_interruptions.csv")
    assert [(c, cat, n) for c, cat, n, _ in llama3.CAUSES] == list(
        table.itertuples(index=False, name=None))
    assert sum(llama3.class_counts().values()) == 419


MAJOR = ["Faulty GPU", "GPU HBM3 Memory", "Software Bug", "Network Switch/Cable",
         "Host Maintenance"]


def _check_counts(results: list[dcsim.Results], scale: float = 1.0) -> dict[str, list[int]]:
    """Each major cause's interruptions per seed inside the two-sided 99.9% Poisson interval of
    the table's count, and their sum over seeds inside its own interval."""
    table = {c: n for c, _, n, _ in llama3.CAUSES}
    counts = {c: [r.summary()["interruptions_by_cause"].get(c, 0) for r in results]
              for c in MAJOR}
    for cause, got in counts.items():
        mu = table[cause] * scale
        lo, hi = stats.poisson.ppf(0.0005, mu), stats.poisson.ppf(0.9995, mu)
        assert all(lo <= g <= hi for g in got), (cause, got, mu)
        k = len(got)
        assert stats.poisson.ppf(0.0005, k * mu) <= sum(got) <= stats.poisson.ppf(0.9995, k * mu)
    total = [r.summary()["interruptions"] for r in results]
    for t in total:
        assert stats.poisson.ppf(0.0005, 419) <= t <= stats.poisson.ppf(0.9995, 419)
    return counts


def test_llama3_like_scaled_down_matches_the_table(repo):
    """Fast variant: 1/8 of the cluster (256 servers, dp 16) with the preset's rates x 8, so
    that the 54 days expect the table's counts."""
    results = []
    for seed in (1, 2):
        sc = dcsim.load_scenario(repo / "scenarios" / "llama3_like.yaml", seed=seed, overrides=[
            "cluster.servers.0.count=256", "workload.jobs.0.parallelism.dp=16",
            "workload.jobs.0.global_batch=256", "faults.preset_scale=8", "faults.spares=16"])
        results.append(dcsim.simulate(sc))
    _check_counts(results)
    s = results[0].summary()
    assert 0.9 < s["ettr_mean"] < 1 and 0.9 < s["goodput"] < 1
    assert s["lost_gpu_hours"] > 0


@pytest.mark.slow
def test_llama3_like_full_scale_matches_the_table(repo):
    results = [dcsim.simulate(dcsim.load_scenario(repo / "scenarios" / "llama3_like.yaml",
                                                  seed=seed)) for seed in (1, 2)]
    _check_counts(results)


def test_job_mtbf_from_the_configured_rates(repo):
    """A job using the whole Llama-like cluster fails at the cluster's total rate: 54 days /
    419 interruptions."""
    sc = dcsim.load_scenario(repo / "scenarios" / "llama3_like.yaml", overrides=[
        "cluster.servers.0.count=256", "workload.jobs.0.parallelism.dp=16",
        "workload.jobs.0.global_batch=256", "faults.preset_scale=8"])
    sim = Simulation(sc)
    job = sim.jobs[0]
    assert sim._job_mtbf_s(job) == pytest.approx(54 * 86400 / 419)
    # half the GPUs, half the servers: twice the MTBF, but no fewer network links cut it
    assert sim.faults is not None
    cfg = sim.faults.configured_mtbf_hours()
    assert 1 / sum(1 / v for v in cfg.values()) == pytest.approx(54 * 24 / 419)
    plain = Simulation(dcsim.scenario_from_dict(small_scenario()))
    assert plain._job_mtbf_s(plain.jobs[0]) == math.inf


def test_failures_are_saved_loaded_and_plotted(tmp_path):
    from dcsim.plotting import save_plots

    data = faulty([small_job(iterations=2_000_000, parallelism={"dp": 16}, global_batch=64)],
                  components={"host": {"mtbf_hours": 10}}, spares=1, max_retries=50,
                  repair={"mean_hours": 2})
    res = run(data)
    assert len(res.failures) > 0
    out = res.save(tmp_path / "r")
    back = dcsim.load_results(out)
    pd.testing.assert_frame_equal(back.failures, res.failures, check_dtype=False)
    for key in ("goodput", "ettr_mean", "lost_gpu_hours", "interruptions_by_cause",
                "mtbf_observed_hours", "mtbf_configured_hours", "restarts"):
        assert key in back.summary()
    assert "ettr" in back.jobs and "lost_s" in back.jobs
    paths = {p.name for p in save_plots(res, tmp_path / "plots")}
    assert "failures.png" in paths
    assert "failures.png" not in {p.name for p in save_plots(run(small_scenario()),
                                                             tmp_path / "p2")}


@pytest.mark.parametrize("network", ["shared", "timed", "isolated"])
def test_a_link_failure_interrupts_the_jobs_routed_over_it(tmp_path, network):
    """With a fabric, a failed link between switches cuts only the jobs with a flow over it;
    without one, every job that spans servers (the conservative rule)."""
    job = dict(model="gpt2-1.5b", parallelism={"dp": 16}, global_batch=128, iterations=500)
    inside = small_job("inside", gpu_type="h100-sxm5-80gb", **job)  # servers 0, 1 (leaf0)
    across = small_job("across", gpu_type="a100-sxm4-80gb", **job)  # 2 (leaf0), 3 (leaf1)
    groups = [{"name": "h", "type": "dgx-h100", "count": 2},
              {"name": "a", "type": "dgx-a100-80gb", "count": 2}]
    data = small_scenario(
        [inside, across], cluster={"servers": groups}, engine={"network": network},
        topology={"kind": "leaf-spine", "params": {"servers_per_leaf": 3, "spines": 1}})
    sim = Simulation(dcsim.scenario_from_dict(data))
    assert sim.network.graph.has_edge("leaf0", "spine0")
    data["faults"] = {"trace": {"path": _trace(tmp_path, "10,link,leaf0|spine0,60\n")}}
    res = run(data)
    hit = res.failures.jobs[0]
    assert res.failures.component[0] == "link"
    expected = {"shared": "1", "timed": "1", "isolated": "0;1"}[network]
    assert hit == expected


def test_the_run_summary_reports_failures(tmp_path):
    from dcsim.cli import format_summary

    rows = "".join(f"{t},software,0/0,\n" for t in (0.5, 1.0))
    res = run(small_scenario([small_job(iterations=2000)],
                             faults={"trace": {"path": _trace(tmp_path, rows)}}))
    text = format_summary("x", res.summary())
    assert "failures: 2, 2 job interruptions" in text and "goodput" in text
    assert "failures:" not in format_summary("x", run(small_scenario()).summary())


def test_a_weibull_instance_starts_a_new_life_when_back_in_service():
    """Wear-out failures (Weibull, shape 40: nearly periodic) of the one host: each repair
    (a fixed 5 h) returns an as-good-as-new server, so failures come every MTBF + repair."""
    data = small_scenario(
        [small_job(iterations=10**7)], cluster={"servers": [{"type": "dgx-a100-80gb",
                                                             "count": 1}]},
        faults={"components": {"host": {"mtbf_hours": 10, "distribution": "weibull",
                                        "shape": 40, "repair": {"distribution": "fixed",
                                                                "mean_hours": 5}}}},
        horizon_s=100 * 3600)
    times = run(data).failures.time_s.to_numpy() / 3600
    assert len(times) >= 5
    assert np.diff(times) == pytest.approx(np.full(len(times) - 1, 15.0), abs=1.5)


def test_a_failure_storm_ends_the_job_instead_of_running_for_ever():
    """Failures far more often than the job can checkpoint: it never keeps progress, so after
    `max_retries_without_progress` interruptions in a row it ends failed (no-progress)."""
    data = small_scenario([small_job(iterations=10**6)],
                          checkpoint={"interval_s": 3600, "tier": "pfs"},
                          faults={"components": {"software": {"mtbf_hours": 1.0}},
                                  "max_retries_without_progress": 5})
    job = run(data).jobs.iloc[0]
    assert job.status == "failed" and job.reason.startswith(
        "no-progress: interrupted 5 times in a row without keeping any progress")
    assert job.interruptions == 5
    calm = {**data, "faults": {**data["faults"], "max_retries_without_progress": None,
                               "max_retries": 7}}
    assert run(calm).jobs.reason[0].startswith("retry-limit: interrupted 8 times")


# ----------------------------------------------------------------------------- distributions
def test_a_parameter_the_distribution_does_not_take_is_an_error(write_yaml):
    """Issue 15: a `shape` on an exponential was silently ignored."""
    from dcsim.errors import ScenarioError

    for comp, message in (
            ({"mtbf_hours": 5, "shape": 0.7},
             "faults.components.gpu.distribution: shape: not a parameter of the exponential "
             "distribution (it takes no parameters)"),
            ({"mtbf_hours": 5, "distribution": "weibull", "sigma": 1.0},
             "sigma: not a parameter of the weibull distribution (it takes shape)"),
            ({"mtbf_hours": 5, "distribution": "gamma"},
             "unknown failure distribution 'gamma'; valid: exponential, lognormal, weibull")):
        path = write_yaml(small_scenario(faults={"components": {"gpu": comp}}))
        with pytest.raises(ScenarioError, match=re.escape(message)):
            dcsim.load_scenario(path)
    path = write_yaml(small_scenario(faults={"components": {"gpu": {"mtbf_hours": 5}},
                                             "repair": {"distribution": "fixed",
                                                        "sigma": 2.0}}))
    with pytest.raises(ScenarioError, match="faults.repair.distribution: sigma: not a "
                                            "parameter of the fixed distribution"):
        dcsim.load_scenario(path)


@pytest.mark.parametrize("name", ["exponential", "weibull", "lognormal"])
def test_every_failure_distribution_has_the_mean_it_is_given(name):
    from types import SimpleNamespace

    import numpy as np

    from dcsim.faults.distributions import REPAIRS, TTF

    spec = SimpleNamespace(shape=1.7, sigma=0.6)
    draws = TTF.get(name)().draw(3600.0, spec, np.random.default_rng(0), 200_000)
    assert np.mean(draws) == pytest.approx(3600.0, rel=0.02)
    if name in REPAIRS:
        rng = np.random.default_rng(1)
        repairs = [REPAIRS.get(name)().draw(60.0, spec, rng) for _ in range(20_000)]
        assert np.mean(repairs) == pytest.approx(60.0, rel=0.03)


def test_an_executed_job_is_trained_once_though_a_failure_restarts_it(tmp_path):
    job = small_job(model={"kind": "mlp", "inputs": 64, "hidden": [16], "outputs": 10},
                    parallelism={"micro_batch": 32}, global_batch=32, precision="fp32",
                    iterations=40, execute={"dataset": "digits", "eval_every": 20})
    plain = run(small_scenario([job]))
    t_fail = plain.jobs.end_s[0] / 2
    res = run(small_scenario([job], faults={"trace": {
        "path": _trace(tmp_path, f"{t_fail},software,0/0,\n")}}))
    assert res.jobs.interruptions[0] == 1 and res.jobs.status[0] == "completed"
    assert len(res.executions) == 1  # trained at its first start only
    assert len(res.training) == len(plain.training)


def test_a_tiny_preset_scale_is_a_rate_not_an_internal_error(repo):
    """faults.preset_scale 1e-6 puts one instance's derived MTBF far beyond what a scenario may
    write (1e7 hours): it still runs, with the job's MTBF 1e6 x the preset's."""
    over = ["cluster.servers.0.count=256", "workload.jobs.0.parallelism.dp=16",
            "workload.jobs.0.global_batch=256"]
    base = Simulation(dcsim.load_scenario(repo / "scenarios" / "llama3_like.yaml",
                                          overrides=over))
    tiny = Simulation(dcsim.load_scenario(repo / "scenarios" / "llama3_like.yaml",
                                          overrides=[*over, "faults.preset_scale=1e-6"]))
    assert tiny._job_mtbf_s(tiny.jobs[0]) == pytest.approx(
        1e6 * base._job_mtbf_s(base.jobs[0]), rel=1e-9)
