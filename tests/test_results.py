"""Results: save and load give back the same tables and summary."""

from __future__ import annotations

import math

import pandas as pd

import dcsim
from tests.conftest import small_job, small_scenario


def test_save_load_round_trip(tmp_path):
    jobs = [small_job("ok", iterations=20), small_job("too-big", parallelism={"dp": 64},
                                                      global_batch=64)]
    res = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(jobs)))
    back = dcsim.load_results(res.save(tmp_path))
    for name in ("jobs", "gpu_timeline", "segments", "events"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(res, name), check_dtype=False,
                                      rtol=1e-8)
    for key, value in res.summary().items():
        other = back.summary()[key]
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(other), key
        elif isinstance(value, float):
            assert other == value or abs(other - value) <= 1e-12 * abs(value), key
        else:
            assert other == value, key
    assert back.run["scenario"]["name"] == "test"


def test_load_results_names_what_is_missing(tmp_path):
    try:
        dcsim.load_results(tmp_path)
    except FileNotFoundError as exc:
        assert "jobs.csv" in str(exc) and "not a dcsim results folder" in str(exc)
    else:
        raise AssertionError("expected FileNotFoundError")
