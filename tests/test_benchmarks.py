"""The benchmark runner (`python -m benchmarks`) works and writes every figure. Speed is
measured there, never asserted here: no test below compares a time with a limit."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.__main__ import BENCHMARKS, main

# figures every run reports (scaling adds one per measured point)
EXPECTED = {
    "startup": {"dcsim_help_s", "import_dcsim_s"},
    "estimate": {"megatron_1t_in_process_ms", "megatron_1t_cli_s"},
    "solver": {"max_min_1000_flows_100_links_ms"},
    "engine": {"simpy_timeouts_per_s", "dcsim_events_per_s", "overhead_ratio",
               "per_job_lifecycle_ms"},
    "philly": {"wall_s", "peak_rss_gb", "sim_wall_s", "events_per_s"},
    "scaling": {"jobs.per_event_spread", "gpus.per_event_spread"},
    "serving": {"conv_hour_8_replicas_s", "day_1000rps_64_replicas_s"},
    "plan": {"plan_configs_per_s"},
    "frontier": {"cluster.per_event_spread", "gpus=128.us_per_event", "gpus=512.us_per_event",
                 "jobs_200k_gpus_16k.wall_s", "jobs_200k_gpus_16k.peak_rss_gb",
                 "frontier_100k.wall_s", "frontier_100k.peak_rss_gb"},
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "benchmarks.json"
    assert main(["--quick", "--out", str(out)]) == 0
    return out


def test_every_benchmark_writes_its_figures(quick_run, capsys):
    record = json.loads(quick_run.read_text())
    assert record["quick"] is True and set(EXPECTED) == set(BENCHMARKS)
    names: dict[str, set[str]] = {}
    for f in record["figures"]:
        names.setdefault(f["benchmark"], set()).add(f["name"])
    for bench, expected in EXPECTED.items():
        assert expected <= names[bench], bench
    assert sum(n.endswith(".sim_wall_s") for n in names["scaling"]) == 3  # 3 distinct points
    refs = record["references"]
    assert refs["cpu_s"] > 0 and refs["python_start_s"] > 0 and refs["rss_base_bytes"] > 0


def test_each_figure_has_a_value_a_ratio_and_a_verdict_iff_a_target(quick_run):
    for f in json.loads(quick_run.read_text())["figures"]:
        assert math.isfinite(f["value"]) and f["value"] > 0, f
        assert math.isfinite(f["ratio"]) and f["ratio"] > 0 and f["ratio_to"], f
        assert f["unit"] and f["counts"], f
        if f["target"] is None:
            assert f["passed"] is None
        else:
            assert isinstance(f["passed"], bool) and f["better"] in ("lower", "higher")
            ok = f["value"] <= f["target"] if f["better"] == "lower" else \
                f["value"] >= f["target"]
            assert f["passed"] == ok


def test_only_reruns_one_benchmark_and_keeps_the_others(quick_run, capsys):
    before = json.loads(quick_run.read_text())
    assert main(["--quick", "--only", "solver", "--out", str(quick_run)]) == 0
    after = json.loads(quick_run.read_text())
    assert len(after["figures"]) == len(before["figures"])
    assert {f["benchmark"] for f in after["figures"]} == set(BENCHMARKS)
    assert "solver" in capsys.readouterr().out  # the table lists what ran


def test_the_scaling_plot_is_written_beside_the_json(quick_run):
    assert (quick_run.parent / "scaling-quick.png").stat().st_size > 0
