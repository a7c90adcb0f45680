"""Shared fixtures: the repo root and a small scenario builder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


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
