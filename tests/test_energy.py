"""Power, energy, carbon and cost (dcsim/energy/, docs/energy.md): the model's figures, the
accounting identities, grid series and their integrals, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dcsim
from dcsim import catalog
from dcsim.energy.grid import HourlyRate
from dcsim.energy.model import PowerModel, power_catalog
from dcsim.errors import ScenarioError, SimulationError
from dcsim.perf.step import StepEstimate
from tests.conftest import REPO, small_job, small_scenario

H = 3600.0


def run(data: dict) -> dcsim.Results:
    return dcsim.simulate(dcsim.scenario_from_dict(data))


def one_server(jobs, **kw) -> dict:
    return small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb", "count": 1}]},
                          engine={"network": "isolated"}, **kw)


def test_every_catalog_gpu_and_server_has_power_figures():
    data = power_catalog()
    assert set(data["gpus"]) == set(catalog.gpus())
    assert set(data["servers"]) == set(catalog.servers())
    model = PowerModel()
    for name in catalog.gpus():
        gpu = model.gpu(name)
        assert 0 < gpu.idle_w < gpu.tdp_w <= 1000


def test_step_power_follows_what_the_gpu_does():
    model, gpu = PowerModel(), "a100-sxm4-80gb"
    tdp, idle = model.gpu(gpu).tdp_w, model.gpu(gpu).idle_w
    peak = 312e12

    def est(compute_s, comm_s=0.0, wait_s=0.0, u=0.6):
        step = compute_s + comm_s + wait_s
        return StepEstimate(step, compute_s, wait_s, comm_s, 1.0, u * peak * compute_s, 1, peak)

    dense = model.running_w(est(1.0), gpu)
    assert dense == pytest.approx(tdp)  # busy tensor cores: the board limit
    assert model.running_w(est(1.0, u=0.05), gpu) < dense  # small kernels draw less
    comm = model.running_w(est(0.5, comm_s=0.5), gpu)
    waiting = model.running_w(est(0.5, wait_s=0.5), gpu)
    assert idle < waiting < comm < dense
    assert model.running_w(est(0.5, wait_s=0.5), gpu) == pytest.approx(
        (tdp + model.waiting_w(gpu)) / 2)


def test_a_job_alone_uses_its_gpus_and_its_hosts_busy_increment():
    res = run(one_server([small_job(iterations=2000, parallelism={"dp": 8})]))
    job = res.jobs.iloc[0]
    model = PowerModel()
    est_w = (job.energy_kwh * 3.6e6 / job.run_s)  # W over its run
    host = model.host("dgx-a100-80gb")
    gpus_w = est_w - (host.busy_w - host.idle_w)  # its 8 GPUs take the whole server
    assert model.gpu("a100-sxm4-80gb").idle_w * 8 < gpus_w <= 8 * 400
    s = res.summary()
    end = s["sim_end_s"]
    # the cluster: idle of everything + the job's increments + the switch (its 8 ports)
    idle = 8 * model.gpu("a100-sxm4-80gb").idle_w + host.idle_w
    assert s["energy_network_kwh"] == pytest.approx(8 * 12 * end / 3.6e6)  # HDR200 ports
    expected = (idle * end + (est_w - 8 * model.gpu("a100-sxm4-80gb").idle_w) * job.run_s
                ) / 3.6e6 + s["energy_network_kwh"]
    assert s["energy_it_kwh"] == pytest.approx(expected, rel=1e-9)
    assert s["energy_facility_kwh"] == pytest.approx(s["energy_it_kwh"])  # PUE 1 by default
    assert math.isnan(s["carbon_kg"]) and math.isnan(s["energy_cost_usd"])  # no grid given


def test_cluster_energy_is_the_power_table_integrated_and_jobs_plus_idle():
    jobs = [small_job(f"j{i}", arrival_s=300 * i, iterations=3000, parallelism={"dp": 8})
            for i in range(4)]
    res = run(small_scenario(jobs, power={"pue": 1.3}))
    s, table = res.summary(), res.power
    edges = np.append(table.time_s.to_numpy(), s["sim_end_s"])
    it_j = float((table.it_w.to_numpy() * np.diff(edges)).sum())
    assert s["energy_it_kwh"] == pytest.approx(it_j / 3.6e6, rel=1e-12)
    assert s["energy_facility_kwh"] == pytest.approx(1.3 * s["energy_it_kwh"], rel=1e-12)
    assert table.facility_w.to_numpy() == pytest.approx(1.3 * table.it_w.to_numpy())
    assert res.jobs.energy_facility_kwh.to_numpy() == pytest.approx(
        1.3 * res.jobs.energy_kwh.to_numpy())
    parts = sum(s[f"energy_{k}_kwh"] for k in ("gpu", "host", "network", "storage"))
    assert parts == pytest.approx(s["energy_it_kwh"], rel=1e-12)
    assert res.jobs.energy_kwh.sum() < s["energy_it_kwh"]  # idle power is the cluster's
    assert s["power_it_peak_kw"] * 1e3 == pytest.approx(table.it_w.max())


def test_flat_carbon_and_price_scale_facility_energy():
    data = one_server([small_job(iterations=2000, parallelism={"dp": 8})],
                      power={"pue": 1.5, "carbon_g_per_kwh": 400, "price_usd_per_mwh": -20})
    res = run(data)
    s, job = res.summary(), res.jobs.iloc[0]
    assert s["carbon_kg"] == pytest.approx(s["energy_facility_kwh"] * 0.4, rel=1e-12)
    assert s["energy_cost_usd"] == pytest.approx(-s["energy_facility_kwh"] * 0.02, rel=1e-12)
    assert job.carbon_kg == pytest.approx(job.energy_kwh * 1.5 * 0.4, rel=1e-12)
    assert s["grid_sources"] == {"carbon": "flat", "price": "flat"}


def _series(tmp_path, values, start="2023-01-01 00:00:00", header="carbon_g_per_kwh"):
    t0 = np.datetime64(start.replace(" ", "T"))
    rows = [f"{t0 + np.timedelta64(i, 'h')},{v}".replace("T", " ") for i, v in enumerate(values)]
    path = tmp_path / "series.csv"
    path.write_text(f"time,{header}\n" + "\n".join(rows) + "\n")
    return str(path)


def test_hourly_rate_integrates_in_closed_form_and_wraps():
    rate = HourlyRate([100.0, 200.0, 300.0], offset_s=1800.0, wrap=True)
    # run time 0 is half an hour into the series' first hour
    assert rate.cumulative(0.0)[0] == 0.0
    assert rate.cumulative(1800.0)[0] == pytest.approx(100 * 1800)
    assert rate.cumulative(1800.0 + H)[0] == pytest.approx(100 * 1800 + 200 * H)
    period = (100 + 200 + 300) * H
    # one full period later: the same shape, shifted by the period's integral
    assert rate.cumulative(5000.0 + 3 * H)[0] == pytest.approx(
        rate.cumulative(5000.0)[0] + period)
    assert rate.mean_over(1800.0, 1800.0 + 2 * H) == pytest.approx(250.0)
    far = rate.cumulative(np.array([1e12]))[0]  # no per-hour array, however long the run
    assert far == pytest.approx(1e12 * 200, rel=1e-6)


def test_an_hourly_series_weighs_each_hour_the_job_ran(tmp_path):
    path = _series(tmp_path, [100, 900, 100, 900])
    flat = run(one_server([small_job(iterations=2000, parallelism={"dp": 8})]))
    job = flat.jobs.iloc[0]
    res = run(one_server([small_job(iterations=2000, parallelism={"dp": 8})],
                         power={"carbon": {"path": path}, "start": "2023-01-01T00:00:00"}))
    assert res.jobs.energy_kwh[0] == pytest.approx(job.energy_kwh, rel=1e-12)
    # its run is at one power: carbon = power x the integral of the intensity over the run
    rate = HourlyRate([100, 900, 100, 900], 0.0, wrap=True)
    span = rate.cumulative(np.array([job.start_s, job.end_s]))
    watts = job.energy_kwh * 3.6e6 / job.run_s
    assert res.jobs.carbon_kg[0] == pytest.approx(watts * (span[1] - span[0]) / 3.6e9,
                                                  rel=1e-9)


def test_beyond_the_series_wraps_or_is_an_error(tmp_path):
    path = _series(tmp_path, [100, 200])
    job = [small_job(iterations=4_000_000, parallelism={"dp": 8})]  # runs past 2 hours
    wrapped = run(one_server(job, power={"carbon": {"path": path}}))
    assert wrapped.summary()["carbon_kg"] > 0
    with pytest.raises(SimulationError, match="past the series' 2 hours"):
        run(one_server(job, power={"carbon": {"path": path}, "beyond_series": "error"}))
    with pytest.raises(ScenarioError, match=r"power.beyond_series: .*past the series' 2 hours"):
        dcsim.scenario_from_dict(one_server(job, horizon_s=3 * H, power={
            "carbon": {"path": path}, "beyond_series": "error"}))


def test_hourly_pue_by_hour_of_day():
    pue = [1.1] * 12 + [1.5] * 12
    res = run(one_server([small_job(iterations=20_000_000, parallelism={"dp": 8})],
                         power={"pue": pue}))  # a day and more
    s, table = res.summary(), res.power
    assert s["sim_end_s"] > 24 * H
    ratio = np.round(table.facility_w / table.it_w, 9)
    assert set(ratio) == {1.1, 1.5}
    hour = (table.time_s // H).astype(int) % 24
    assert (ratio[hour < 12] == 1.1).all() and (ratio[hour >= 12] == 1.5).all()
    assert 1.1 < s["pue_mean"] < 1.5


def test_a_server_down_draws_nothing_until_it_is_back(tmp_path):
    trace = tmp_path / "failures.csv"
    trace.write_text("time_s,component,target,repair_s\n1000,host,1,3600\n")  # the idle one
    data = small_scenario([small_job(iterations=1_000_000, parallelism={"dp": 1})],
                          faults={"trace": {"path": str(trace)}})
    res = run(data)
    assert res.summary()["sim_end_s"] > 5000
    table = res.power.set_index("time_s")
    model = PowerModel()
    server_idle = 8 * model.gpu("a100-sxm4-80gb").idle_w + model.host("dgx-a100-80gb").idle_w
    before = table.it_w[table.index < 1000].iloc[-1]
    assert table.it_w.loc[1000.0] == pytest.approx(before - server_idle)
    assert table.it_w.loc[4600.0] == pytest.approx(before)


@pytest.mark.parametrize("power, message", [
    ({"pue": 0.9}, "power.pue"),
    ({"gpus": {"a100-sxm4-80gb": {"tdp_w": -5}}}, "tdp_w"),
    ({"gpus": {"a100-sxm4-80gb": {"tdp_w": 100, "idle_w": 200}}}, "idle_w .200. above tdp_w"),
    ({"gpus": {"a900": {"tdp_w": 100}}}, "unknown GPU types"),
    ({"zone": "DE-LU", "carbon_g_per_kwh": 300}, "carbon from one source only"),
    ({"start": "yesterday"}, "not an ISO 8601 time"),
    ({"carbon_g_per_kwh": math.nan}, "carbon_g_per_kwh"),
    ({"servers": {"nope": {"host_idle_w": 1}}}, "unknown server types"),
    ({"servers": {"dgx-a100-80gb": {"host_idle_w": 9, "host_busy_w": 1}}},
     "host_idle_w .9. above host_busy_w"),
    ({"switch_port_w": -1}, "switch_port_w"),
])
def test_bad_power_settings_are_located_errors(power, message):
    with pytest.raises(ScenarioError, match=message):
        dcsim.scenario_from_dict(small_scenario(power=power))


@pytest.mark.parametrize("rows, header, message", [
    (["2023-01-01 00:00:00,100", "2023-01-01 02:00:00,100"], "carbon_g_per_kwh",
     r"series.csv:3:time: a gap of 2 hours"),
    (["2023-01-01 00:00:00,100", "2023-01-01 00:00:00,100"], "carbon_g_per_kwh",
     r"series.csv:3:time: a repeated hour"),
    (["2023-01-01 00:00:00,100", "noon,100"], "carbon_g_per_kwh",
     r"series.csv:3:time: not an ISO 8601 time"),
    (["2023-01-01 00:00:00,lots"], "carbon_g_per_kwh",
     r"series.csv:2:carbon_g_per_kwh: not a finite number"),
    (["2023-01-01 00:00:00,-3"], "carbon_g_per_kwh", r"carbon intensity -3 outside \[0, 10000\]"),
    (["2023-01-01 00:00:00,1e30"], "carbon_g_per_kwh", r"series.csv:2:carbon_g_per_kwh: carbon "
                                                      r"intensity 1e\+30 outside"),
    (["2023-01-01 00:00:00,100"], "kgCO2/MWh", r"no column names a carbon unit"),
])
def test_bad_series_are_errors_at_file_line_column(tmp_path, rows, header, message):
    path = tmp_path / "series.csv"
    path.write_text(f"time,{header}\n" + "\n".join(rows) + "\n")
    with pytest.raises(ScenarioError, match=message):
        dcsim.scenario_from_dict(small_scenario(power={"carbon": {"path": str(path)},
                                                       "start": "2023-01-01T00:00:00"}))


def test_negative_prices_are_kept(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text("time,Price (USD/MWh)\n2023-01-01 00:00:00,-5\n2023-01-01 01:00:00,-5\n")
    res = run(one_server([small_job(iterations=500, parallelism={"dp": 8})],
                         power={"price": {"path": str(path)}, "start": "2023-01-01T00:00:00"}))
    assert res.summary()["energy_cost_usd"] < 0


def test_shipped_zones_read_with_their_units():
    res = run(one_server([small_job(iterations=500, parallelism={"dp": 8})],
                         power={"zone": "US-TEX-ERCO", "carbon_basis": "lca"}))
    s = res.summary()
    assert s["grid_sources"] == {"carbon": "zone US-TEX-ERCO (lca)", "price": "zone US-TEX-ERCO"}
    intensity = s["carbon_kg"] * 1e3 / s["energy_facility_kwh"]
    assert 100 < intensity < 1000  # g/kWh: a grid's, not a unit slip


def test_dcsim_run_prints_the_energy_line():
    from dcsim.cli import format_summary

    res = run(one_server([small_job(iterations=2000, parallelism={"dp": 8})],
                         power={"pue": 1.2, "carbon_g_per_kwh": 300, "price_usd_per_mwh": 80}))
    line = next(x for x in format_summary("t", res.summary()).splitlines() if "energy:" in x)
    assert "kWh IT" in line and "(PUE 1.20)" in line and "CO2eq" in line and "electricity" in line


# the Llama 2 model card (Touvron et al. 2023, Table 52 / the published model card): A100-80GB
# GPU-hours, power per GPU "adjusted for power usage efficiency", tCO2eq; the 34B model (not
# released) is the rest of the card's total, at its production cluster's 350 W cap
LLAMA2_CARD = [("7B", 184_320, 400, 31.22), ("13B", 368_640, 400, 62.44),
               ("70B", 1_720_320, 400, 291.42), ("34B", 1_038_336, 350, 539.00 - 385.08)]
LLAMA2_G_PER_KWH = 31.22e6 / (184_320 * 0.4)  # the one intensity the card implies: 423.45


def llama2_accounting(gpu_hours: float, watts: float) -> dict:
    """dcsim's accounting of a card row: one DGX A100 held for gpu_hours / 8 hours, every GPU
    at `watts`, hosts and switches at 0 (the card counts GPUs only), the card's intensity."""
    job = small_job(iterations=None, duration_s=gpu_hours / 8 * H, parallelism={"dp": 8},
                    global_batch=8)
    return run(one_server([job], power={
        "gpus": {"a100-sxm4-80gb": {"tdp_w": watts, "idle_w": watts}},
        "servers": {"dgx-a100-80gb": {"host_idle_w": 0, "host_busy_w": 0}},
        "switch_port_w": 0, "carbon_g_per_kwh": LLAMA2_G_PER_KWH})).summary()


@pytest.mark.parametrize("name, gpu_hours, watts, tons", LLAMA2_CARD)
def test_accounting_reproduces_the_llama2_model_card(name, gpu_hours, watts, tons):
    s = llama2_accounting(gpu_hours, watts)
    assert s["energy_it_kwh"] == pytest.approx(gpu_hours * watts / 1e3, rel=1e-6)
    assert s["carbon_kg"] / 1e3 == pytest.approx(tons, rel=0.02)  # the bound
    assert s["carbon_kg"] / 1e3 == pytest.approx(tons, rel=2e-3)  # what it achieves


# ---- review findings, each a regression test


def test_a_start_in_another_timezone_is_the_same_instant():
    pue = [1.0] * 24
    pue[3] = 2.0  # only 03:00-04:00 UTC
    job = [small_job(iterations=200_000, parallelism={"dp": 8})]
    runs = [run(one_server(job, power={"pue": pue, "carbon_g_per_kwh": 1000, "start": t}))
            for t in ("2023-06-01T03:00:00+00:00", "2023-06-01T05:00:00+02:00")]
    a, b = (r.summary() for r in runs)
    assert a["pue_mean"] == pytest.approx(b["pue_mean"]) and a["pue_mean"] > 1.5
    assert a["carbon_kg"] == pytest.approx(b["carbon_kg"])
    assert a["carbon_kg"] == pytest.approx(a["energy_facility_kwh"], rel=1e-9)  # 1000 g/kWh


def test_a_wrapped_series_keeps_pue_on_the_hour_of_day(tmp_path):
    """A 2-hour series wraps every 2 h, PUE every 24 h: carbon still = facility energy x the
    (flat) intensity."""
    path = _series(tmp_path, [1000, 1000])
    pue = [1.0] * 24
    pue[2] = pue[3] = 2.0
    res = run(one_server([small_job(iterations=20_000_000, parallelism={"dp": 8})],
                         power={"pue": pue, "carbon": {"path": path},
                                "start": "2023-01-01T00:00:00"}))
    s = res.summary()
    assert s["sim_end_s"] > 4 * H and s["pue_mean"] > 1.0
    assert s["carbon_kg"] == pytest.approx(s["energy_facility_kwh"], rel=1e-9)


def test_an_hourly_series_integrates_hour_by_hour(tmp_path):
    """A job running across hours: its carbon is the sum over the hours it ran of its power x
    the seconds in that hour x that hour's intensity (computed here by hand)."""
    values = [100, 900, 300, 700, 500, 200, 800, 400]
    path = _series(tmp_path, values)
    job = [small_job(iterations=4_000_000, parallelism={"dp": 8})]
    res = run(one_server(job, power={"carbon": {"path": path}, "start": "2023-01-01T00:00:00"}))
    j = res.jobs.iloc[0]
    assert j.end_s > 3 * H
    watts = j.energy_kwh * 3.6e6 / j.run_s
    grams = 0.0
    for h, g_per_kwh in enumerate(values * 4):
        seconds = max(0.0, min(j.end_s, (h + 1) * H) - max(j.start_s, h * H))
        grams += watts * seconds / 3.6e6 * g_per_kwh
    assert j.carbon_kg == pytest.approx(grams / 1e3, rel=1e-9)


def test_outages_are_charged_to_the_server_that_failed(tmp_path):
    """Two unnamed groups of one server type give servers of the same name; the outage is
    the failed server's, by id."""
    trace = tmp_path / "failures.csv"
    trace.write_text("time_s,component,target,repair_s\n1000,host,0,3600\n")
    cluster = {"servers": [{"type": "dgx-a100-80gb", "count": 1},
                           {"type": "dgx-a100-80gb", "count": 1, "gpu": "h100-sxm5-80gb"}]}
    data = small_scenario([small_job(iterations=1_000_000, parallelism={"dp": 1},
                                     gpu_type="h100-sxm5-80gb")], cluster=cluster,
                          faults={"trace": {"path": str(trace)}})
    table = run(data).power.set_index("time_s")
    model = PowerModel()
    a100_idle = 8 * model.gpu("a100-sxm4-80gb").idle_w
    before = table.gpu_w[table.index < 1000].iloc[-1]
    assert table.gpu_w.loc[1000.0] == pytest.approx(before - a100_idle)


def test_rail_links_are_one_port_per_nic():
    cluster = {"servers": [{"type": "dgx-h100", "count": 4}]}
    single = run(small_scenario(cluster=cluster)).summary()
    model = PowerModel()
    # 4 servers x 8 NDR400 NICs = 32 ports at 25 W on the one switch
    assert single["energy_network_kwh"] == pytest.approx(
        32 * model.port_w(376e9) * single["sim_end_s"] / 3.6e6)
    rail = run(small_scenario(cluster=cluster, topology={"kind": "rail-optimized"})).summary()
    server_ports_w = 32 * model.port_w(376e9)  # each rail link: one NIC
    assert rail["energy_network_kwh"] * 3.6e6 / rail["sim_end_s"] >= server_ports_w
    assert rail["energy_network_kwh"] * 3.6e6 / rail["sim_end_s"] < 3 * server_ports_w


def test_a_kg_per_kwh_column_is_not_read_as_grams(tmp_path):
    path = tmp_path / "series.csv"
    path.write_text("time,intensity_kgCO2eq/kWh\n2023-01-01 00:00:00,0.4\n")
    with pytest.raises(ScenarioError, match="no column names a carbon unit"):
        dcsim.scenario_from_dict(small_scenario(power={"carbon": {"path": str(path)},
                                                       "start": "2023-01-01T00:00:00"}))


@pytest.mark.parametrize("power, where", [
    ({"gpus": {"a100-sxm4-80gb": {"idle_w": 500}}}, r"power.gpus.a100-sxm4-80gb: idle_w"),
    ({"servers": {"dgx-a100-80gb": {"host_idle_w": 9000}}},
     r"power.servers.dgx-a100-80gb: host_idle_w"),
])
def test_a_one_sided_override_against_the_catalog_is_located(write_yaml, power, where):
    path = write_yaml(small_scenario(power=power))
    with pytest.raises(ScenarioError, match=r"yaml:\d+: " + where):
        dcsim.load_scenario(path)


def test_timed_iterations_make_one_span_not_one_per_iteration():
    data = small_scenario([small_job(iterations=300, parallelism={"dp": 16}, global_batch=16)],
                          engine={"network": "timed"})
    sim = dcsim.Simulation(dcsim.scenario_from_dict(data))
    res = sim.run()
    assert len(sim.records._spans) <= 3
    assert len(res.power) <= 4  # idle, the job, idle again (no row per iteration)


def test_a_run_with_nothing_to_do_prints_no_nan():
    from dcsim.cli import format_summary

    res = run(small_scenario([small_job(parallelism={"dp": 64}, global_batch=64)]))  # rejected
    s = res.summary()
    assert s["sim_end_s"] == 0 and s["energy_it_kwh"] == 0
    assert "nan" not in format_summary("t", s).lower()


# ---- the facility power budget (power.budget_kw, dcsim/engine/budget.py)


def _budget_case(budget_kw: float | None, scheduler: str = "fifo") -> dict:
    jobs = [small_job(f"j{i}", arrival_s=i, iterations=3000, parallelism={"dp": 8})
            for i in range(3)]
    power = {"pue": 1.2} | ({"budget_kw": budget_kw} if budget_kw is not None else {})
    return small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb", "count": 3}]},
                          engine={"network": "isolated"}, scheduler={"kind": scheduler},
                          power=power)


def test_a_power_budget_holds_jobs_back_until_power_is_free():
    free = run(_budget_case(None))
    peak_kw = free.summary()["power_facility_peak_kw"]
    assert (free.jobs.queue_s == 0).all()  # three servers, three jobs: all start at once
    one_job = run(_budget_case(None)).power.facility_w.iloc[0] / 1e3  # idle + job 0
    budget = (one_job + peak_kw) / 2  # room for fewer than three
    res = run(_budget_case(budget))
    assert (res.jobs.status == "completed").all()
    assert res.summary()["power_facility_peak_kw"] <= budget * (1 + 1e-9)
    assert (res.jobs.queue_s > 0).any()  # someone waited for power, not for GPUs
    assert res.summary()["makespan_s"] > free.summary()["makespan_s"]


def test_a_job_that_can_never_fit_the_budget_is_rejected_not_waited_on():
    free = run(_budget_case(None))
    idle_kw = free.power.facility_w.min() / 1e3  # before the first arrival: all idle
    s = run(_budget_case(None)).summary()
    assert s["power_facility_peak_kw"] > idle_kw
    res = run(_budget_case(idle_kw * 1.001))  # only the idle cluster fits
    assert (res.jobs.status == "rejected").all()
    assert res.jobs.reason[0].startswith("power-budget: needs ")


def test_budget_settings_are_checked_at_load():
    with pytest.raises(ScenarioError, match=r"power.budget_kw: 1 kW is below the cluster's idle "
                                            r"facility power"):
        dcsim.scenario_from_dict(_budget_case(1.0))
    with pytest.raises(ScenarioError, match=r"power.budget_kw: a power budget works with "
                                            r"schedulers that do not preempt; 'priority'"):
        dcsim.scenario_from_dict(_budget_case(500.0, scheduler="priority"))
    with pytest.raises(ScenarioError, match="budget_kw"):
        dcsim.scenario_from_dict(_budget_case(-5.0))


def test_a_very_long_run_with_hourly_pue_stays_small_and_exact():
    """Hour rows stop at MAX_HOUR_ROWS; the integrals are closed-form either way."""
    pue = [1.1] * 12 + [1.3] * 12
    res = run(one_server([small_job(iterations=10**13, parallelism={"dp": 8})],
                         power={"pue": pue, "carbon_g_per_kwh": 300}))
    s = res.summary()
    assert s["sim_end_s"] > 1e6 * H  # past the cap of hour rows
    assert len(res.power) < 10
    assert s["pue_mean"] == pytest.approx(1.2, rel=1e-6)  # the day's mean, over whole days
    assert s["carbon_kg"] == pytest.approx(s["energy_facility_kwh"] * 0.3, rel=1e-9)


# ---- GPU power caps and the power-capped scheduler


def test_a_power_cap_slows_compute_and_lowers_power_along_the_clock_curve():
    model = PowerModel()
    gpu, peak = "a100-sxm4-80gb", 312e12
    est = StepEstimate(1.0, 0.8, 0.2, 0.0, 1.0, 0.6 * peak * 0.8, 1, peak)
    full = model.running_w(est, gpu)
    assert model.capped(est, gpu, 500.0) .iteration_s == est.iteration_s  # above: no change
    capped = model.capped(est, gpu, 250.0)
    f = model.clock_at_cap(gpu, model.compute_activity(est), 250.0)
    g = model.gpu(gpu)
    # the clock where idle + (tdp - idle) x a x f^3 = cap, and compute x f^-clock_bound
    assert g.idle_w + (g.tdp_w - g.idle_w) * 1.0 * f ** model.cap_alpha == pytest.approx(250)
    assert capped.compute_s == pytest.approx(0.8 * f ** -model.clock_bound)
    assert capped.iteration_s == pytest.approx(1.0 + capped.compute_s - 0.8)
    assert model.compute_activity(capped) == model.compute_activity(est)  # at full clock
    assert model.running_w(capped, gpu) < full
    assert model.running_w(capped, gpu) <= 250.0
    # the lowest clock bounds the slowdown
    low = model.capped(est, gpu, g.idle_w + 1.0)
    assert low.compute_s == pytest.approx(0.8 * model.min_clock ** -model.clock_bound)


def test_clock_bound_is_the_fit_to_the_published_v100_cap():
    """McDonald et al. 2022: V100s capped at 150 W of their 250 W trained 6.8% longer. The
    catalog's clock_bound is that fit on bert-large on 2 x V100 PCIe 32GB (docs/energy.md)."""
    est, model = _supercloud_bert()
    beta = model.fit_clock_bound(est, "v100-pcie-32gb", 150.0, 1.068)
    assert round(beta, 2) == model.clock_bound
    capped = model.capped(est, "v100-pcie-32gb", 150.0)
    assert capped.iteration_s / est.iteration_s == pytest.approx(1.068, abs=0.003)


def _supercloud_bert():
    job = {"name": "bert", "model": "bert-large", "parallelism": {"dp": 2, "micro_batch": 16},
           "global_batch": 64, "precision": "fp16", "iterations": 100}
    sc = dcsim.scenario_from_dict(small_scenario([job], cluster={"servers": [
        {"name": "supercloud", "gpus_per_server": 2, "gpu": "v100-pcie-32gb",
         "intra_node": "pcie", "count": 1}]}, engine={"network": "isolated"}))
    world = dcsim.build_world(sc)
    est, _ = world.estimate_alone(sc.workload.jobs[0])
    return est, world.power


def test_a_gpu_type_cap_applies_to_every_job_on_it():
    job = [small_job(iterations=2000, parallelism={"dp": 8})]
    free = run(one_server(job))
    capped = run(one_server(job, power={"gpus": {"a100-sxm4-80gb": {"cap_w": 150}}}))
    assert capped.jobs.run_s[0] > free.jobs.run_s[0]
    assert capped.jobs.energy_kwh[0] * 3.6e6 / capped.jobs.run_s[0] < (
        free.jobs.energy_kwh[0] * 3.6e6 / free.jobs.run_s[0])
    with pytest.raises(ScenarioError, match=r"power.gpus.a100-sxm4-80gb: cap_w \(50\) must be "
                                            r"above idle_w \(60\)"):
        dcsim.scenario_from_dict(one_server(job, power={"gpus": {"a100-sxm4-80gb": {
            "cap_w": 50}}}))


def test_power_capped_starts_a_job_capped_instead_of_holding_it_then_lifts_the_cap():
    free = run(_budget_case(None))
    idle_and_one = free.power.facility_w.iloc[0] / 1e3
    job_kw = (free.summary()["power_facility_peak_kw"] - idle_and_one) / 2
    budget = idle_and_one + 1.6 * job_kw  # room for 2.6 jobs
    held = run(_budget_case(budget))
    data = _budget_case(budget, scheduler="power-capped")
    data["scheduler"]["params"] = {"min_cap_fraction": 0.3}
    capped = run(data)
    assert held.jobs.queue_s[2] > 0 and capped.jobs.queue_s[2] == 0  # started, capped
    assert capped.summary()["power_facility_peak_kw"] <= budget * (1 + 1e-9)
    assert capped.summary()["makespan_s"] < held.summary()["makespan_s"]
    ev = capped.events[capped.events.event == "power-capped"]
    assert list(ev.job_id) == [2, 2] and ev.detail.iloc[1] == "lifted"
    assert capped.jobs.run_s[2] > capped.jobs.run_s[0]  # slower while capped


def test_power_capped_needs_a_budget():
    with pytest.raises(ScenarioError, match=r"scheduler.kind: 'power-capped' caps GPU power"):
        dcsim.scenario_from_dict(_budget_case(None, scheduler="power-capped"))


# ---- validation rows (benchmarks/validate_energy.py; docs/energy.md#validation)


def test_bloom_accounting_reproduces_the_published_figures():
    from benchmarks.validate_energy import bloom

    mwh, tons = bloom(1.0)
    assert mwh == pytest.approx(1_082_990 * 0.4 / 1e3, rel=1e-6)  # 433,196 kWh
    assert tons == pytest.approx(24.69, rel=0.02)  # the bound
    assert tons == pytest.approx(24.69, rel=1e-3)
    assert bloom(1.2)[1] == pytest.approx(30.0, rel=0.02)  # the comparison table, PUE 1.2


def test_docs_quote_the_energy_validation_table():
    from benchmarks.validate_energy import markdown, measure

    table = markdown(measure())
    text = (REPO / "docs" / "energy.md").read_text()
    for line in table.splitlines()[2:]:
        assert line in text, f"docs/energy.md lacks (or has another number for): {line}"


def test_energy_per_sample_per_token_and_per_user():
    gpt = {"name": "gpt", "model": {"kind": "gpt", "layers": 2, "hidden": 256, "heads": 4,
                                    "seq_len": 512, "vocab": 1000},
           "parallelism": {"dp": 4}, "global_batch": 8, "iterations": 50, "user": "ann"}
    res = run(one_server([gpt, small_job("c", iterations=100, user="bob")],
                         power={"carbon_g_per_kwh": 200}))
    jobs = res.jobs.set_index("name")
    joules = jobs.energy_kwh * 3.6e6
    assert jobs.energy_j_per_sample["gpt"] == pytest.approx(joules["gpt"] / (50 * 8))
    assert jobs.energy_j_per_token["gpt"] == pytest.approx(joules["gpt"] / (50 * 8 * 512))
    assert math.isnan(jobs.energy_j_per_token["c"])  # a custom model has no sequence
    users = res.groups.set_index("group")
    assert users.energy_kwh["ann"] == pytest.approx(jobs.energy_kwh["gpt"])
    assert users.carbon_kg["bob"] == pytest.approx(jobs.carbon_kg["c"])
    assert users.cost_usd.isna().all()  # no cost section


def test_a_job_kept_out_by_the_hours_pue_starts_when_it_falls():
    """Review: with nothing running, only a lower PUE can let the head start; a round is
    planned for it (before, the job stayed queued to the end of the run)."""
    job = small_job("a", arrival_s=100, iterations=2000, parallelism={"dp": 8},
                    global_batch=64)
    pue = [1.5] * 12 + [1.1] * 12
    free = run(one_server([job], power={"pue": 1.5}))
    need_kw = free.summary()["power_facility_peak_kw"]  # the job on the idle server at 1.5
    res = run(one_server([job], power={"pue": pue, "budget_kw": need_kw * 1.2 / 1.5}))
    assert res.jobs.status[0] == "completed" and res.jobs.start_s[0] == 12 * H


def test_a_repaired_server_cannot_break_the_budget():
    """Review: a down server's idle power stays in the plan, so its repair never pushes the
    facility past the budget."""
    import random

    rnd = random.Random(3)
    jobs = [small_job(f"j{i}", arrival_s=rnd.uniform(0, 20000),
                      iterations=rnd.choice([2000, 20000, 100000]),
                      parallelism={"dp": rnd.choice([1, 2, 4, 8])}, global_batch=64)
            for i in range(25)]
    for kind in ("fifo", "power-capped"):
        data = small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb", "count": 4}]},
                              scheduler={"kind": kind}, power={"pue": 1.2, "budget_kw": 16},
                              faults={"components": {"gpu": {"mtbf_hours": 0.5}},
                                      "max_retries": 3,
                                      "repair": {"distribution": "fixed", "mean_hours": 0.2}})
        if kind == "power-capped":
            data["scheduler"]["params"] = {"min_cap_fraction": 0.3}
        s = run(data).summary()
        assert s["power_facility_peak_kw"] <= 16 * (1 + 1e-9), kind


def test_restores_and_the_lowest_clock_are_priced_under_the_cap():
    model, gpu = PowerModel(), "a100-sxm4-80gb"
    g = model.gpu(gpu)
    assert model.waiting_w(gpu, 70.0) <= 70.0 < model.waiting_w(gpu)
    # a cap just above idle: the clock stops at min_clock, and the power is what it draws there
    low = model.phase_w(gpu, 1.0, g.idle_w + 1.0)
    assert low == pytest.approx(g.idle_w + (g.tdp_w - g.idle_w) * model.min_clock ** 3)
    assert model.phase_w(gpu, 1.0, 250.0) == pytest.approx(250.0)  # binding: the cap


def test_a_falling_pue_lifts_caps():
    """A job capped in a high-PUE hour gets its cap raised when the PUE falls."""
    job = small_job("a", arrival_s=100, iterations=4_000_000, parallelism={"dp": 8},
                    global_batch=64)
    free = run(one_server([job], power={"pue": 1.1}))
    need_kw = free.summary()["power_facility_peak_kw"]
    pue = [1.5] * 12 + [1.1] * 12
    data = one_server([job], scheduler={"kind": "power-capped",
                                        "params": {"min_cap_fraction": 0.2}},
                      power={"pue": pue, "budget_kw": need_kw * 1.01})
    res = run(data)
    ev = res.events[res.events.event == "power-capped"]
    assert res.jobs.start_s[0] == 100  # capped at once, in a PUE 1.5 hour
    assert len(ev) >= 2 and ev.time_s.iloc[1] == 12 * H  # raised when the PUE falls
    assert res.summary()["power_facility_peak_kw"] <= need_kw * 1.01 * (1 + 1e-9)
