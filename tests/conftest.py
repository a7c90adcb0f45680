"""Shared fixtures: the repo root and a small scenario builder."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import Phase, settings

REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every machine and every run ("ci"), so that a red
# run reproduces here and CI cannot meet a case nobody has seen; a failing example is printed
# as drawn (no shrinking: shrinking multi-second simulations has no useful time bound).
# DCSIM_HYPOTHESIS=fuzz draws fresh random examples and shrinks failures, for exploring.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True,
                          phases=(Phase.explicit, Phase.reuse, Phase.generate))
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("DCSIM_HYPOTHESIS", "ci"))


def small_job(name: str = "j", **kw: Any) -> dict[str, Any]:
    job = {
        "name": name,
        "arrival_s": 0.0,
        "model": {"kind": "custom", "params": 1e8, "forward_flop_per_sample": 1e11},
        "parallelism": {"dp": 1},
        "global_batch": 8,
        "precision": "bf16",
        "iterations": 100,
    }
    job.update(kw)
    return job


def small_scenario(jobs: list[dict] | None = None, **kw: Any) -> dict[str, Any]:
    sc: dict[str, Any] = {
        "name": "test",
        "seed": 1,
        "cluster": {"servers": [{"type": "dgx-a100-80gb", "count": 2}]},
        "workload": {"jobs": jobs if jobs is not None else [small_job()]},
    }
    sc.update(copy.deepcopy(kw))
    return sc


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def write_yaml(tmp_path: Path):
    def write(data: dict | str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write
