"""Parameter sweeps: wall time of one 16-point sweep run three ways, measured in the same run:
1 worker (in the calling process, what `workers=1` does), 1 worker process (a spawned pool of
one: the start-up cost that `workers=1` avoids), and 2 worker processes; reported: each wall
time, the sum of the points' own run times, and the speed-up of 2 workers over 1.

The sweep: scenarios/placement_study.yaml with 4,000 jobs (each point ~3-4 s), four placements
x four seeds. Every variant starts from an empty output folder and must give the same table.

    python -m benchmarks.bench_sweep [--out benchmarks/results/bench_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from dcsim.sweep import TIMING_COLUMNS, plan_sweep, run_sweep, sweep_from_dict
from dcsim.sweep.runner import _tasks, run_pool

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_sweep.json"
SWEEP = {
    "name": "bench-sweep",
    "base": "scenarios/placement_study.yaml",
    "set": {"workload.generator.num_jobs": 4000},
    "factors": {"placement.kind": ["packed", "topology-aware", "spread", "load-balanced"]},
    "seeds": {"count": 4},
}


def _timed(run) -> tuple[float, pd.DataFrame]:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        table = run(Path(out))
        return time.perf_counter() - start, table


def _one_process(out: Path) -> pd.DataFrame:
    """The sweep through a pool of one spawned worker (not what `workers=1` does)."""
    sweep = sweep_from_dict(SWEEP, "<bench>", REPO)
    plan = plan_sweep(sweep)
    records = {}
    run_pool(_tasks(plan, plan.points, out), 1, lambda r: records.update({r["point_id"]: r}))
    from dcsim.sweep.store import build_table

    return build_table(plan, {pid: {**r, "context": plan.context} for pid, r in records.items()})


def _same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    keep = [c for c in a.columns if c not in TIMING_COLUMNS]
    return a[keep].reset_index(drop=True).equals(b[keep].reset_index(drop=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    sweep = sweep_from_dict(SWEEP, "<bench>", REPO)
    run_sweep(sweep_from_dict({**SWEEP, "seeds": [99]}, "<warm>", REPO),
              Path(tempfile.mkdtemp()), workers=1)  # warm this process: imports, numba cache
    t1, one = _timed(lambda out: run_sweep(sweep, out, workers=1))
    tp, pooled = _timed(_one_process)
    t2, two = _timed(lambda out: run_sweep(sweep, out, workers=2))
    result = {
        "benchmark": "bench_sweep",
        "points": len(one),
        "point_s_sum": float(one["runtime_s"].sum()),
        "point_s_mean": float(one["runtime_s"].mean()),
        # the same points' own times with 2 workers: above point_s_sum when the 2 processes
        # did not each get a free core (a machine shared with other work)
        "point_s_sum_2_workers": float(two["runtime_s"].sum()),
        "wall_s_1_worker_in_process": t1,
        "wall_s_1_worker_process": tp,
        "wall_s_2_workers": t2,
        "speedup_2_over_1": t1 / t2,
        "same_table": _same(one, two) and _same(one, pooled),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(f"{result['points']} points, mean {result['point_s_mean']:.2f} s each "
          f"(sum {result['point_s_sum']:.1f} s)")
    print(f"  1 worker, in process:  {t1:6.1f} s")
    print(f"  1 worker process:      {tp:6.1f} s")
    print(f"  2 worker processes:    {t2:6.1f} s   speed-up {t1 / t2:.2f}x over 1 worker "
          f"(points' own times: sum {result['point_s_sum_2_workers']:.1f} s)")
    print(f"  same table: {result['same_table']}   ({os.cpu_count()} CPUs, load average "
          f"{result['load_average_1min']:.1f} after the run)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["same_table"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
