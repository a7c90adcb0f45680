"""Repository-level checks: every scenario validates and the small ones run; the packaged
default scenario is the repo's quickstart; the README's commands work as written."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest
import yaml

import dcsim
from dcsim.cli import main
from tests.conftest import REPO

SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))


def test_there_are_scenarios():
    assert {"quickstart.yaml", "mixed_datacenter.yaml"} <= {p.name for p in SCENARIOS}


# whole-trace scenarios run in benchmarks/bench_scale.py; here their first simulated days
FIRST_DAYS = {"philly.yaml": 20, **{f"philly_{k}.yaml": 20
                                    for k in ("sjf", "srtf", "las", "themis", "easy")}}


# one long job cut by its horizon (test_faults.py checks it at scale): here 1/8 of it, 10 days
SCALED = {"llama3_like.yaml": ["cluster.servers.0.count=256", "workload.jobs.0.parallelism.dp=16",
                               "workload.jobs.0.global_batch=256", "horizon_s=864000"]}


# a day of serving beside training (benchmarks/study_colocation.py runs it whole): two hours
# of it, load rising from the night's trough, with its first 12 jobs
REDUCED = {"colocation.yaml": ["services.0.requests.duration_s=7200",
                               "services.0.requests.peak_s=7200",
                               "services.0.requests.period_s=14400",
                               "workload.generator.num_jobs=12",
                               "workload.generator.mean_interarrival_s=600"]}


# the 100k-GPU scenario (benchmarks/bench_scale.py runs it whole): its 1:100 copy
SMALLER = {"frontier_100k.yaml": ["cluster.servers.0.count=128", "topology.params.k=8",
                                  "workload.generator.num_jobs=2000",
                                  "workload.generator.load=2"]}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_scenario_validates_and_runs(path):
    if path.name in SCALED:
        res = dcsim.simulate(dcsim.load_scenario(path, SCALED[path.name]))
        assert (res.jobs.status == "running").all() and res.summary()["failures"] > 0
        return
    days = FIRST_DAYS.get(path.name)
    overrides = ([f"horizon_s={days * 86400}"] if days
                 else REDUCED.get(path.name, SMALLER.get(path.name, [])))
    res = dcsim.simulate(dcsim.load_scenario(path, overrides))
    if path.name in REDUCED:  # it scales up and lends
        svc = res.services.iloc[0]
        assert svc.replicas_max > svc.replicas_min and svc.served == svc.requests
    s = res.summary()
    if s.get("services"):
        assert s["requests_served"] > 0.9 * s["requests_total"]
        if s["jobs_read"] == 0:  # a serving-only scenario
            return
    assert s["jobs_read"] > 0 and s["jobs_submitted"] > 0
    if days is None:
        assert s["jobs_submitted"] == s["jobs_read"] and s["jobs_completed"] > 0
    else:  # cut at the horizon: jobs still arriving, some running
        assert s["jobs_not_arrived"] > 0 and (res.jobs.status == "running").any()


def test_packaged_quickstart_is_the_repo_quickstart():
    packaged = REPO / "dcsim/scenarios/quickstart.yaml"
    assert packaged.read_bytes() == (REPO / "scenarios/quickstart.yaml").read_bytes()


def readme_blocks(lang: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_readme_setup_commands_are_the_two_documented_ones():
    commands = [b.strip() for b in readme_blocks("bash")[:2]]
    assert commands == ['pip install -e . && dcsim run', 'pip install -e ".[test]" && pytest']
    ci = (REPO / ".ci/run").read_text()
    assert commands[1] in ci  # CI runs the README's test command


def test_readme_commands_run(tmp_path, monkeypatch, capsys):
    """Every `dcsim ...` command in the README runs (pip and pytest are what CI itself runs)."""
    shutil.copytree(REPO / "scenarios", tmp_path / "scenarios")
    shutil.copytree(REPO / "sweeps", tmp_path / "sweeps")  # they name ../scenarios/...
    (tmp_path / "data").symlink_to(REPO / "data")  # traces the scenarios name (../data/...)
    monkeypatch.chdir(tmp_path)
    commands = []
    for block in readme_blocks("bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("dcsim "):
                    commands.append(part)
    assert len(commands) >= 5
    for command in commands:
        argv = [a for arg in shlex.split(command)[1:]
                for a in (sorted(str(p.relative_to(tmp_path)) for p in tmp_path.glob(arg))
                          if "*" in arg else [arg])]
        assert main(argv) == 0, command
    capsys.readouterr()


def test_readme_yaml_tour_validates(tmp_path):
    (block,) = readme_blocks("yaml")
    path = tmp_path / "tour.yaml"
    path.write_text(block)
    scenario = dcsim.load_scenario(path)
    res = dcsim.simulate(scenario)
    assert res.jobs.set_index("name").loc["gpt-1t", "status"] == "rejected"


def test_readme_python_snippet_runs(monkeypatch):
    (block,) = readme_blocks("python")
    monkeypatch.chdir(REPO)
    exec(compile(block, "README.md", "exec"), {})


def test_docs_exist():
    for name in ("architecture.md", "scenario-reference.md", "metrics.md", "validation.md"):
        assert (REPO / "docs" / name).is_file(), name
    assert yaml  # the docs examples are YAML; keep the import honest


def test_the_reference_lists_every_catalog_entry():
    """The catalog tables of docs/scenario-reference.md stay complete as the catalog grows."""
    from dcsim import catalog

    text = (REPO / "docs" / "scenario-reference.md").read_text()
    for kind, names in (("GPU", catalog.gpus()), ("server", catalog.servers()),
                        ("CNN architecture", catalog.cnn_archs()), ("NIC", catalog.nics())):
        missing = [n for n in names if f"`{n}`" not in text]
        assert not missing, f"{kind}s missing from scenario-reference.md: {missing}"


def test_the_docs_count_of_scenarios_is_true():
    import re

    shipped = len(list((REPO / "scenarios").glob("*.yaml")))
    for doc in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for m in re.finditer(r"\b(\d+) (?:shipped |example )?scenarios\b", doc.read_text()):
            assert int(m.group(1)) == shipped, f"{doc.name} says {m.group(0)}; {shipped} ship"


def test_the_version_is_the_packages():
    import tomllib

    import dcsim

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert dcsim.__version__ == project["version"]
