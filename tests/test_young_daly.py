"""The checkpoint-interval trade-off: a sweep of fixed intervals under failures wastes least at
the Young/Daly interval sqrt(2 C M), and `interval_s: young-daly` picks it (issue 6)."""

from __future__ import annotations

import math

import numpy as np

import dcsim
from tests.conftest import small_job, small_scenario

MTBF_GPU_H = 16.0  # software failures per GPU: 8 GPUs -> the job's MTBF is 2 h
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
SEEDS = (1, 2, 3, 4)


def _run(seed: int, interval, faults: bool = True):
    job = small_job("train", model="gpt2-1.5b", parallelism={"dp": 8, "micro_batch": 4},
                    global_batch=32, iterations=1_000_000)
    data = small_scenario([job], seed=seed,
                          cluster={"servers": [{"type": "dgx-a100-80gb", "count": 1}]})
    if interval is not None:
        data["checkpoint"] = {"interval_s": interval, "tier": "pfs", "mode": "sync"}
    if faults:
        data["faults"] = {"components": {"software": {"mtbf_hours": MTBF_GPU_H}}}
    return dcsim.simulate(dcsim.scenario_from_dict(data)).jobs.iloc[0]


def test_wasted_time_is_least_at_the_young_daly_interval():
    ideal = _run(1, None, faults=False)  # no failures, no checkpoints: the work alone
    chosen = _run(1, "young-daly")
    pause = chosen.checkpoint_s / chosen.checkpoints  # C: the write time of one checkpoint
    mtbf = MTBF_GPU_H * 3600 / 8
    tau = math.sqrt(2 * pause * mtbf)
    # young-daly takes a checkpoint every round(tau / step) iterations
    every = chosen.iterations / chosen.checkpoints
    assert abs(every * ideal.iteration_time_s - tau) <= ideal.iteration_time_s
    # the same failure times for every interval (named streams): a paired comparison
    waste = np.array([[_run(seed, f * tau).jct_s - ideal.jct_s for seed in SEEDS]
                      for f in FACTORS])
    mean = waste.mean(axis=1)
    best = FACTORS.index(1.0)
    assert mean.argmin() == best
    assert (waste[best] < waste[best - 1]).all() and (waste[best] < waste[best + 1]).all()
    # first order, the waste goes as (f + 1/f) / 2: 1.25x at half or twice tau, 2.1x at 4x
    ratio = mean / mean[best]
    assert 1.1 < ratio[1] < 1.5 and 1.1 < ratio[3] < 1.5
    assert 1.7 < ratio[0] < 2.6 and 1.7 < ratio[4] < 2.6
