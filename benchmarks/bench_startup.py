"""Start-up and one-job estimate times.

- `startup`: `dcsim --help` and `python -c "import dcsim"` as child processes, best of 5 wall
  times; ratio to a bare `python -c pass` in the same run (python_start).
- `estimate`: `dcsim estimate` of the largest Megatron configuration, the 1T-parameter GPT on
  3,072 A100s (benchmarks/scenarios/megatron_1t.yaml). In process, after imports and one
  warm-up call (which compiles the pipeline-schedule kernel): `World.estimate_alone` plus
  `memory_breakdown` (what `dcsim estimate` computes per job) with a fresh step model each time
  (no cached estimate), median of repeats. As a child process: the whole `dcsim estimate`
  command (imports, loading and building the 384-server scenario, the estimate, the table),
  best of 3.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from benchmarks.bench_reference import ROOT, Figure, References, run_child

__all__ = ["MEGATRON_1T", "startup", "estimate"]

MEGATRON_1T = ROOT / "benchmarks" / "scenarios" / "megatron_1t.yaml"
# --quick: the same model on 512 GPUs (data parallel 1), the reference table's row
QUICK_SET = ["cluster.servers.0.count=64", "workload.jobs.0.parallelism.dp=1",
             "workload.jobs.0.global_batch=512"]


def _best_wall(argv: list[str], repeats: int) -> float:
    return min(run_child(argv).wall_s for _ in range(repeats))


def startup(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    repeats = 3 if quick else 5
    help_s = _best_wall([sys.executable, "-m", "dcsim", "--help"], repeats)
    import_s = _best_wall([sys.executable, "-c", "import dcsim"], repeats)
    start = refs.python_start_s
    return [
        Figure("startup", "dcsim_help_s", help_s, "s", help_s / start, "python_start",
               target=0.5, counts="child `python -m dcsim --help`, best wall"),
        Figure("startup", "import_dcsim_s", import_s, "s", import_s / start, "python_start",
               counts="child `python -c 'import dcsim'`, best wall"),
    ]


def estimate_in_process(repeats: int, overrides: list[str]) -> float:
    """Median seconds of one estimate of the 1T GPT (warm, fresh step model each time)."""
    import dcsim
    from dcsim.perf.calibrated import CalibratedStepModel
    from dcsim.perf.memory import memory_breakdown

    world = dcsim.build_world(dcsim.load_scenario(MEGATRON_1T, overrides))
    spec = world.workload.jobs[0]
    est, reason = world.estimate_alone(spec)  # warm-up: compiles the schedule kernel
    if est is None:
        raise RuntimeError(f"the 1T GPT does not run: {reason}")
    samples = []
    for _ in range(repeats):
        world.step_model = CalibratedStepModel()  # no cached estimate
        t0 = time.perf_counter()
        world.estimate_alone(spec)
        memory_breakdown(spec)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def estimate(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    sets = QUICK_SET if quick else []
    in_process_s = estimate_in_process(5 if quick else 20, sets)
    argv = [sys.executable, "-m", "dcsim", "estimate", str(MEGATRON_1T)]
    for s in sets:
        argv += ["--set", s]
    cli_s = _best_wall(argv, 1 if quick else 3)
    gpus = "512 GPUs" if quick else "3,072 GPUs"
    return [
        Figure("estimate", "megatron_1t_in_process_ms", in_process_s * 1e3, "ms",
               in_process_s / refs.cpu_s, "cpu", target=50.0,
               counts=f"{gpus}: estimate_alone + memory_breakdown, warm, median"),
        Figure("estimate", "megatron_1t_cli_s", cli_s, "s", cli_s / refs.python_start_s,
               "python_start", counts=f"{gpus}: child `dcsim estimate`, best wall"),
    ]
