"""Output folders (issue 14): checked before simulating, written whole or not at all, one run
at a time, no files of an earlier run left behind, a safe default name for any scenario name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcsim.cli import main
from dcsim.errors import ScenarioError
from dcsim.outdir import _locked, safe_folder_name, staged_output
from dcsim.results import load_results
from tests.conftest import small_scenario


@pytest.fixture
def scenario(write_yaml):
    return write_yaml(small_scenario())


def test_bad_output_paths_are_refused_before_simulating(scenario, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, message in ((afile, "output folder exists and is not a folder"),
                         (afile / "sub", "is a file")):
        assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    assert main(["run", str(scenario), "--out", str(mine), "--quiet"]) == 2
    assert "holds other files than dcsim results" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_place_is_refused(scenario, tmp_path, capsys):
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    assert main(["run", str(scenario), "--out", str(locked / "out"), "--quiet"]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_a_rerun_replaces_the_folder_whole(scenario, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--quiet"]) == 0
    (out / "old_plot.png").write_bytes(b"stale")
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert not (out / "old_plot.png").exists() and (out / "jobs.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scenario.yaml"]  # no leftovers
    load_results(out)


def test_an_interrupted_write_leaves_the_old_results(scenario, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--out", str(out), "--quiet", "--no-plots"]) == 0
    before = (out / "summary.json").read_text()
    with pytest.raises(KeyboardInterrupt), staged_output(out) as stage:
        (stage / "jobs.csv").write_text("half")
        raise KeyboardInterrupt
    assert (out / "summary.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "scenario.yaml"]


def test_two_runs_into_one_folder_do_not_interleave(tmp_path):
    out = tmp_path / "out"
    with _locked(out), pytest.raises(ScenarioError, match="another dcsim run is writing"), \
            staged_output(out):
        pass


def test_any_scenario_name_gives_a_safe_folder(write_yaml, tmp_path, monkeypatch):
    assert safe_folder_name("philly-fifo_v2.1") == "philly-fifo_v2.1"
    for name in ("../../etc", "a/b", "x" * 200, "名前 with spaces", ".hidden"):
        folder = safe_folder_name(name)
        assert "/" not in folder and not folder.startswith(".") and 0 < len(folder) <= 80
    assert safe_folder_name("a/b") != safe_folder_name("a_b")
    monkeypatch.chdir(tmp_path)
    path = write_yaml({**small_scenario(), "name": "../escape " + "y" * 190})
    assert main(["run", str(path), "--quiet", "--no-plots"]) == 0
    (folder,) = Path("results").iterdir()
    assert folder.name.startswith("_escape_yyy") and (folder / "jobs.csv").is_file()
