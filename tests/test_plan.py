"""`dcsim plan` (dcsim/tools/plan.py): the parallelism search."""

from __future__ import annotations

import json

import pytest

from dcsim import catalog
from dcsim.errors import ScenarioError
from dcsim.tools.plan import plan, stage_split


def test_stage_split_is_even_or_trims_the_ends_alike():
    assert stage_split(80, 8) == {}
    assert stage_split(126, 16) == {"first_stage_layers": 7, "last_stage_layers": 7}
    assert stage_split(10, 4) == {"first_stage_layers": 2, "last_stage_layers": 2}
    assert stage_split(7, 2) is None and stage_split(3, 4) is None


def test_every_listed_setting_fits_and_runs_and_the_fastest_comes_first():
    calls = []
    r = plan("llama3-8b", 16, "dgx-h100", global_batch=256,
             progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (r.considered, r.considered) and len(calls) == r.considered
    memory = catalog.gpus()[r.gpu_type].memory_bytes / 1e9
    assert r.rows and r.considered > 100 and r.rejected["out of memory"] > 0
    assert all(row["memory_gb"] <= memory and row["tp"] * row["pp"] * row["dp"] == 16
               for row in r.rows)
    times = [row["iteration_s"] for row in r.rows]
    assert times == sorted(times)
    # the fastest is a real job: the same settings estimated directly agree
    from dcsim import scenario_from_dict
    from dcsim.world import build_world

    best = r.rows[0]
    world = build_world(scenario_from_dict({
        "name": "t", "seed": 0, "cluster": {"servers": [{"type": "dgx-h100", "count": 2}]},
        "workload": {"jobs": [{
            "name": "j", "model": "llama3-8b", "global_batch": 256, "iterations": 1,
            "parallelism": {k: best[k] for k in ("tp", "pp", "dp", "micro_batch",
                                                 "virtual_stages", "recompute", "zero")}
            | {"sequence_parallel": best["tp"] > 1}}]}}))
    est, _ = world.estimate_alone(world.workload.jobs[0])
    assert est.iteration_s == pytest.approx(best["iteration_s"], rel=1e-12)


def test_llama3_405b_plans_with_meta_style_uneven_stages():
    r = plan("llama3-405b", 8192, "dgx-h100", global_batch=2048)
    stages = {row["stages"] for row in r.rows if row["pp"] == 16 and row["virtual_stages"] == 1}
    assert "7+14x8+7" in stages
    assert r.skipped  # combinations that are no configuration are counted, with why


def test_plan_refuses_what_it_cannot_search():
    with pytest.raises(ScenarioError, match="unknown model preset 'gpt-9'"):
        plan("gpt-9", 8, "dgx-h100")
    with pytest.raises(ScenarioError, match="resnet50 is a cnn model"):
        plan("resnet50", 8, "dgx-h100")
    with pytest.raises(ScenarioError, match="not a whole number of dgx-h100 servers"):
        plan("llama3-8b", 12, "dgx-h100")
    with pytest.raises(ScenarioError, match=r"--gpus: 1000000000000 is outside 1\.\.131,072"):
        plan("llama3-8b", 10**12, "dgx-h100")
    with pytest.raises(ScenarioError, match="a100-sxm4-80gb has no fp8 math; it has fp32"):
        plan("llama3-8b", 8, "dgx-a100-80gb", precision="fp8")


def test_the_plan_command(capsys):
    from dcsim.cli import main

    assert main(["plan", "llama3-8b", "--gpus", "8", "--global-batch", "64", "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "llama3-8b on 8 x h100-sxm5-80gb" in out and "MFU" in out
    assert main(["plan", "llama3-8b", "--gpus", "8", "--global-batch", "64", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["fits"] and doc["considered"] >= len(doc["fits"])
    assert main(["plan", "llama3-8b", "--gpus", "8", "--server", "nope"]) == 2


def test_long_sequences_are_also_split_over_context_parallel_ranks():
    r = plan("llama3-8b", 16, "dgx-h100", global_batch=16, seq_len=65536)
    assert r.seq_len == 65536 and {row["cp"] for row in r.rows} > {1}
    assert all(row["tp"] * row["cp"] * row["pp"] * row["dp"] == 16 for row in r.rows)
    short = plan("llama3-8b", 16, "dgx-h100", global_batch=256)
    assert {row["cp"] for row in short.rows} == {1}  # (8K: no context parallelism searched)


def test_plan_searches_expert_parallelism_for_a_mixture_of_experts():
    from dcsim.tools.plan import plan

    result = plan("mixtral-8x7b", 16, "dgx-h100", global_batch=64)
    eps = {r["ep"] for r in result.rows}
    assert eps <= {1, 2, 4, 8, 16} and len(eps) > 1
    dense = plan("llama3-8b", 8, "dgx-h100", global_batch=16)
    assert {r["ep"] for r in dense.rows} == {1}
