"""Engine overhead: dcsim events per second against raw SimPy timeouts per second, both
measured in this process in the same run.

What is counted, on both sides: calls to `simpy.Environment.step()` (each pops one event off
SimPy's queue and runs its callbacks), in the same loop shape as `step_events` in
dcsim/engine/clock.py (peek, step, count); the time is the wall time of that loop.

- SimPy side: 64 processes, each `while True: yield env.timeout(d)`; every event is one
  timeout whose callback resumes its process, which schedules the next timeout.
- dcsim side: a trace replay of many short jobs (`overhead_scenario`): 1-GPU ResNet-50 jobs
  arriving every 5 s on 4 DGX A100s, each running `iterations` iterations, with
  `engine.fidelity: iteration` (one event per iteration) and `engine.network: isolated`. Every
  event of the run counts (arrivals, scheduling rounds, runner starts, iterations,
  completions): `events_processed` / `wall_s` of the run's summary (wall_s: `Simulation.run`
  up to collecting results). With 1,000 iterations a job, its lifecycle (admission, step
  model, placement, records; `per_job` below) is amortized over ~1,000 events, so the figure
  is the engine's cost per event: the loop, the runner's resume, its accounting and SimPy.
- `per_job`: the same replay with 1 iteration per job: wall time per job, the lifecycle cost
  that a steady-state run (a handful of events per job) pays per job.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import simpy

from benchmarks.bench_reference import Figure, References

__all__ = ["raw_simpy_rate", "overhead_scenario", "dcsim_rate", "run"]


def raw_simpy_rate(n_events: int, procs: int = 64) -> float:
    """Raw SimPy timeouts processed per second (the loop of `engine/clock.py step_events`)."""
    env = simpy.Environment()

    def ticker(env: simpy.Environment, delay_s: float):
        while True:
            yield env.timeout(delay_s)

    for k in range(procs):
        env.process(ticker(env, 1.0 + k * 1e-3))
    until, events = math.inf, 0
    t0 = time.perf_counter()
    while (next_s := env.peek()) < math.inf and next_s <= until and events < n_events:
        env.step()
        events += 1
    return events / (time.perf_counter() - t0)


def overhead_scenario(jobs: int, iterations: int) -> dict:
    return {
        "name": "engine-overhead",
        "seed": 0,
        "cluster": {"servers": [{"type": "dgx-a100-80gb", "count": 4}]},
        "engine": {"fidelity": "iteration", "network": "isolated"},
        "workload": {"jobs": [
            {"name": f"job{i}", "arrival_s": 5.0 * i, "model": "resnet50",
             "parallelism": {"dp": 1, "micro_batch": 32}, "global_batch": 32,
             "precision": "fp16", "iterations": iterations}
            for i in range(jobs)]},
        "outputs": {"plots": False},
    }


def dcsim_rate(jobs: int, iterations: int, repeats: int) -> tuple[int, float]:
    """(events, best wall_s) of the overhead scenario over `repeats` runs."""
    import dcsim

    scenario = dcsim.scenario_from_dict(overhead_scenario(jobs, iterations))
    best = math.inf
    events = 0
    for _ in range(repeats):
        summary = dcsim.simulate(scenario).summary()
        events, best = summary["events_processed"], min(best, summary["wall_s"])
    return events, best


def run(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    jobs, iterations, repeats = (40, 500, 2) if quick else (200, 1000, 3)
    simpy_rate = max(raw_simpy_rate(20_000 if quick else 200_000) for _ in range(repeats))
    events, wall_s = dcsim_rate(jobs, iterations, repeats)
    rate = events / wall_s
    lifecycle_jobs = 200 if quick else 2000
    _, per_job_wall = dcsim_rate(lifecycle_jobs, 1, repeats)
    per_job_s = per_job_wall / lifecycle_jobs
    simpy_note = "env.step() calls in a loop of 64 processes' timeouts"
    return [
        Figure("engine", "simpy_timeouts_per_s", simpy_rate, "1/s", simpy_rate * refs.cpu_s,
               "cpu", better="higher", counts=simpy_note),
        Figure("engine", "dcsim_events_per_s", rate, "1/s", rate * refs.cpu_s, "cpu",
               better="higher", counts=f"env.step() calls: {jobs} jobs x {iterations} iterations, "
               f"fidelity iteration ({events} events)"),
        Figure("engine", "overhead_ratio", rate / simpy_rate, "x", rate / simpy_rate,
               "simpy_timeouts_per_s", target=0.5, better="higher",
               counts="dcsim events/s / raw SimPy timeouts/s"),
        Figure("engine", "per_job_lifecycle_ms", per_job_s * 1e3, "ms",
               per_job_s / refs.cpu_s, "cpu",
               counts=f"wall per 1-iteration job ({lifecycle_jobs} jobs): admission, "
               "round, placement, step model, records"),
    ]
