"""The command line, called in-process through main(argv) and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dcsim
from dcsim.cli import main
from tests.conftest import small_job, small_scenario


def test_run_default_scenario_writes_everything(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "scenario 'quickstart'" in out and "JCT mean" in out and "1 rejected" in out
    folder = tmp_path / "results/quickstart"
    for name in ("jobs.csv", "gpu_timeline.csv", "segments.csv", "events.csv", "summary.json",
                 "run.json", "utilization.png", "jct_cdf.png", "gantt.png", "breakdown.png"):
        assert (folder / name).stat().st_size > 0, name
    run = json.loads((folder / "run.json").read_text())
    assert run["seed"] == 42 and run["scenario"]["name"] == "quickstart"
    assert "dcsim_version" in run and run["wall_s"] > 0


def test_run_with_overrides_seed_and_out(tmp_path, write_yaml, capsys):
    path = write_yaml(small_scenario([small_job(iterations=10)]))
    out = tmp_path / "o"
    code = main(["run", str(path), "--out", str(out), "--set", "workload.jobs.0.iterations=3",
                 "--seed", "5", "--no-plots", "--quiet"])
    assert code == 0 and capsys.readouterr().out == ""
    run = json.loads((out / "run.json").read_text())
    assert run["seed"] == 5 and run["scenario"]["workload"]["jobs"][0]["iterations"] == 3
    assert not (out / "gantt.png").exists()


def test_bad_scenario_exit_2_with_location_and_no_traceback(write_yaml, capsys):
    path = write_yaml("name: x\nseed: 1\ncluster:\n  servers:\n"
                      "    - {type: dgx-a100-80gb, count: -1}\nworkload: {jobs: []}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: cluster.servers[0].count: Input should be greater than 0" in err
    assert "Traceback" not in err


def test_validate(write_yaml, repo, capsys):
    good = write_yaml(small_scenario(), "good.yaml")
    bad = write_yaml({**small_scenario(), "colour": "red"}, "bad.yaml")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"{good}: ok (test)" in captured.out
    line = bad.read_text().splitlines().index("colour: red") + 1
    assert f"{bad}:{line}: colour: unknown key" in captured.err
    assert main(["validate", "missing.yaml"]) == 2


def test_estimate_table_and_json(capsys):
    assert main(["estimate"]) == 0
    table = capsys.readouterr().out
    assert "gpt-22b" in table and "rejected: insufficient-gpus" in table
    assert main(["estimate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    gpt = next(r for r in rows if r["name"] == "gpt-22b")
    assert gpt["iteration_s"] > 0 and 0 < gpt["mfu"] < 1
    assert "rejected" in next(r for r in rows if r["name"] == "gpt-1t")


@pytest.mark.parametrize("what", ["gpus", "servers", "nics", "models", "schedulers",
                                  "placements", "topologies", "step-models", "flow-fabrics"])
def test_catalog(what, capsys):
    assert main(["catalog", what]) == 0
    assert capsys.readouterr().out.strip()


def test_catalog_lists_every_registered_step_model_and_flow_fabric(capsys):
    from dcsim.fabric.flows import FLOW_FABRICS
    from dcsim.perf.select import STEP_MODELS

    for what, registry in (("step-models", STEP_MODELS), ("flow-fabrics", FLOW_FABRICS)):
        assert main(["catalog", what]) == 0
        names = [line.split()[0] for line in capsys.readouterr().out.splitlines()
                 if line and not line.startswith(" ")]
        assert names == registry.names()


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0


def test_console_script_runs_in_a_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dcsim", "run", "--no-plots"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "results written to results/quickstart/" in proc.stdout


def test_calibrate_host_writes_a_profile_a_scenario_can_use(tmp_path, capsys, write_yaml):
    out = tmp_path / "host.yaml"
    assert main(["calibrate", "--quick", "--repeats", "1", "--out", str(out)]) == 0
    assert "host-cpu: peak" in capsys.readouterr().out
    from dcsim.perf.profile import load_profile_file

    profile = load_profile_file(out)["host-cpu"]
    assert profile.peak_flop_s and profile.peak_flop_s["fp32"] > 0
    assert profile.provenance["cpu_model"] and profile.provenance["numba"]
    job = {"name": "m", "model": {"kind": "mlp", "inputs": 64, "hidden": [32], "outputs": 10},
           "parallelism": {"micro_batch": 32}, "global_batch": 32, "precision": "fp32",
           "iterations": 5}
    path = write_yaml({"name": "h", "cluster": {"servers": [{"type": "host", "count": 1}]},
                       "engine": {"profiles": [str(out)]}, "workload": {"jobs": [job]}})
    assert main(["run", str(path), "--out", str(tmp_path / "r"), "--no-plots", "-q"]) == 0


def test_calibrate_gpu_without_a_gpu_says_so(capsys):
    assert main(["calibrate", "--device", "gpu"]) == 2
    assert "not implemented yet" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["calibrate", "--repeats", "0"])
    assert info.value.code == 2


def test_missing_profile_file_is_a_located_error(write_yaml, capsys):
    path = write_yaml({**small_scenario(), "engine": {"profiles": ["nope.yaml"]}})
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "engine.profiles[0]: " in err and "nope.yaml: cannot read profile file" in err


def test_topology_describes_and_draws(tmp_path, capsys):
    png = tmp_path / "t.png"
    assert main(["topology", "--set", "topology.kind=fat-tree", "--set", "topology.params.k=4",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "fat-tree: 4 servers, 20 switches, 36 links" in out
    assert png.stat().st_size > 0
    assert main(["topology", "--set", "topology.params.k=5", "--set",
                 "topology.kind=fat-tree"]) == 2
    assert "topology.params.k" in capsys.readouterr().err


# ----------------------------------------------------------------------------- messages (issue 14)
def test_a_sweep_without_factors_says_so(tmp_path, capsys, repo):
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\nbase: {repo / 'scenarios/quickstart.yaml'}\nseeds: {{count: 2}}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "factors: required key is missing" in err and "cluster" not in err
    assert main(["run", str(path)]) == 2
    assert "this is a sweep file" in capsys.readouterr().err


def test_a_long_list_of_problems_shows_twenty_and_a_count(tmp_path, write_yaml, capsys):
    trace = tmp_path / "jobs.csv"
    trace.write_text("name,arrival_s,model,global_batch,iterations\n"
                     + "".join(f"j{i},-1,resnet50,8,10\n" for i in range(5000)))
    path = write_yaml({**small_scenario(), "workload": {"trace": {"path": "jobs.csv",
                                                                  "format": "dcsim-csv"}}})
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 21 and "jobs.csv:2:arrival_s:" in lines[0]
    assert lines[-1] == "... and 4,980 more problems (5,000 in all; the first 20 are shown)"


def test_api_misuse_raises_dcsims_own_errors():
    with pytest.raises(dcsim.DcsimError, match=r"call dcsim.simulate\(dcsim.load_scenario"):
        dcsim.simulate("x.yaml")
    with pytest.raises(dcsim.UsageError, match="scenario_from_dict"):
        dcsim.simulate(small_scenario())
    with pytest.raises(dcsim.DcsimError, match="cannot read scenario"):
        dcsim.load_scenario("no/such/file.yaml")


def test_ctrl_c_prints_one_line(write_yaml, capsys, monkeypatch):
    import dcsim.engine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dcsim.engine, "simulate", interrupted)
    assert main(["run", str(write_yaml(small_scenario())), "--quiet"]) == 130
    assert capsys.readouterr().err == "dcsim: interrupted\n"


def test_validate_goes_on_past_a_bad_file(tmp_path, write_yaml, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    good = write_yaml(small_scenario())
    assert main(["validate", str(bad), str(good)]) == 2
    captured = capsys.readouterr()
    assert f"{bad}:1: not UTF-8 text: byte 0xe9 at byte offset 9" in captured.err
    assert f"{good}: ok" in captured.out
