"""Total cost of ownership (dcsim/energy/cost.py, docs/energy.md#total-cost-of-ownership):
capital by part from the catalog and overrides, amortisation, maintenance, energy, and the
per-run, per-GPU-hour and per-job figures; bad input."""

from __future__ import annotations

import math

import pytest

import dcsim
from dcsim import catalog
from dcsim.energy.cost import YEAR_S, CostModel
from dcsim.errors import ScenarioError
from tests.conftest import small_job, small_scenario

H = 3600.0


def run(data: dict) -> dcsim.Results:
    return dcsim.simulate(dcsim.scenario_from_dict(data))


def dgx(count: int = 1, cost: dict | None = None, **kw) -> dict:
    jobs = [small_job("a", iterations=20000, parallelism={"dp": 8}, global_batch=64)]
    return small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb",
                                                      "count": count}]},
                          engine={"network": "isolated"},
                          power={"price_usd_per_mwh": 100.0, "pue": 1.2},
                          cost=cost if cost is not None else {}, **kw)


def test_every_catalog_server_and_gpu_has_a_price():
    model = CostModel()
    data = catalog.cost_figures()
    assert set(data["gpus"]) == set(catalog.gpus())
    for name, server in catalog.servers().items():
        assert model.server_usd(name, server.gpu, server.gpus_per_server) > 0


def test_capex_by_part_and_the_yearly_identities():
    res = run(dgx(2, {"facility_usd_per_w": 10.0, "maintenance_per_year": 0.1,
                      "lifetime_years": {"servers": 4, "network": 5, "facility": 10}}))
    s = res.summary()
    assert s["capex_servers_usd"] == 2 * 300_000  # the catalog's DGX A100 640GB
    world = dcsim.build_world(dcsim.scenario_from_dict(dgx(2)))
    ports = sum(n for _, n in world.switch_ports())
    assert s["capex_network_usd"] == ports * 800  # HDR200 ports
    assert s["capex_storage_usd"] == 0  # no storage section
    assert s["capex_facility_usd"] == pytest.approx(10.0 * world.it_capacity_w())
    capital = (s["capex_servers_usd"] / 4 + s["capex_network_usd"] / 5
               + s["capex_facility_usd"] / 10)
    assert s["tco_capital_usd_per_year"] == pytest.approx(capital)
    hardware = s["capex_servers_usd"] + s["capex_network_usd"]
    assert s["tco_maintenance_usd_per_year"] == pytest.approx(0.1 * hardware)
    end = s["sim_end_s"]
    assert s["tco_energy_usd_per_year"] == pytest.approx(s["energy_cost_usd"] / end * YEAR_S)
    assert s["energy_cost_usd"] == pytest.approx(s["energy_facility_kwh"] / 1e3 * 100.0)
    fixed = s["tco_capital_usd_per_year"] + s["tco_maintenance_usd_per_year"]
    assert s["cost_run_usd"] == pytest.approx(fixed * end / YEAR_S + s["energy_cost_usd"])
    assert s["usd_per_gpu_hour_provisioned"] == pytest.approx(s["cost_run_usd"] / (16 * end / H))


def test_a_jobs_cost_is_its_gpu_hours_at_the_capacity_rate_plus_its_electricity():
    res = run(dgx(1))
    s, job = res.summary(), res.jobs.iloc[0]
    fixed = s["tco_capital_usd_per_year"] + s["tco_maintenance_usd_per_year"]
    rate = fixed / (8 * YEAR_S / H)
    gpu_h = job.num_gpus * job.run_s / H
    assert job.cost_usd == pytest.approx(gpu_h * rate + job.energy_cost_usd)
    assert s["cost_jobs_usd"] + s["cost_idle_usd"] == pytest.approx(s["cost_run_usd"])
    assert s["usd_per_gpu_hour"] == pytest.approx(s["cost_run_usd"] / gpu_h)
    assert s["cost_per_job_mean_usd"] == pytest.approx(job.cost_usd)


def test_price_overrides_and_servers_priced_from_parts():
    s = run(dgx(1, {"servers": {"dgx-a100-80gb": 250_000}, "port_usd": 100})).summary()
    assert s["capex_servers_usd"] == 250_000
    ports = sum(n for _, n in dcsim.build_world(dcsim.scenario_from_dict(dgx(1))).switch_ports())
    assert s["capex_network_usd"] == 100 * ports
    # a server type without a system price: its GPUs + host_usd
    model = CostModel()
    assert model.server_usd("pcie-4gpu", "v100-pcie-16gb", 4) == 4 * 8000 + 20000
    from dcsim.scenario.cost import CostSpec

    model = CostModel(CostSpec(gpus={"v100-pcie-16gb": 5000}, host_usd=1000))
    assert model.server_usd("pcie-4gpu", "v100-pcie-16gb", 4) == 21000


def test_shared_storage_is_priced_per_tb():
    data = dgx(1, {"storage_usd_per_tb": {"pfs": 1000}})
    data["storage"] = {"pfs": {"capacity_gb": 2000}, "object": {"enabled": False}}
    s = run(data).summary()
    assert s["capex_storage_usd"] == pytest.approx(2 * 1000)


def test_without_a_cost_section_no_cost_keys():
    data = dgx(1)
    del data["cost"]
    res = run(data)
    assert "capex_usd" not in res.summary() and "cost_usd" not in res.jobs


@pytest.mark.parametrize(("cost", "power", "message"), [
    ({}, {}, "cost: the total cost of ownership needs an electricity price"),
    ({"servers": {"dgx-z": 1}}, None, r"unknown server types \['dgx-z'\]"),
    ({"gpus": {"a100-sxm4-80gb": -1}}, None, "greater than or equal to 0"),
    ({"lifetime_years": {"servers": 0}}, None, "greater than 0"),
    ({"storage_usd_per_tb": {"nvme": 5}}, None, "priced per TB are pfs and object"),
    ({"maintenance_per_year": math.inf}, None, "cost.maintenance_per_year"),
    ({"bogus": 1}, None, "cost.bogus"),
])
def test_bad_cost_settings_are_located_errors(cost, power, message):
    data = dgx(1, cost)
    if power is not None:
        data["power"] = power
    with pytest.raises(ScenarioError, match=message):
        dcsim.scenario_from_dict(data)


def test_dcsim_run_prints_the_cost_and_deadline_lines():
    from dcsim.cli.run import format_summary

    data = dgx(1)
    data["workload"]["jobs"][0]["deadline_s"] = 1.0  # missed
    text = format_summary("t", run(data).summary())
    cost = next(x for x in text.splitlines() if x.startswith("  cost:"))
    assert "capex $" in cost and "/year" in cost and "per GPU-hour used" in cost
    assert "  deadlines: 1 job with one, 1 missed" in text


def test_dcsim_catalog_lists_prices_and_power(capsys):
    from dcsim.cli import main

    assert main(["catalog", "prices"]) == 0
    out = capsys.readouterr().out
    assert "dgx-a100-80gb" in out and "300,000" in out and "USD/W" in out
    assert main(["catalog", "power"]) == 0
    out = capsys.readouterr().out
    assert "h100-sxm5-80gb" in out and "700" in out and "host busy W" in out
