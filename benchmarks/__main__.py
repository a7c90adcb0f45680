"""dcsim's scale benchmarks in one run: a table on stdout and benchmarks/results/benchmarks.json.

Each figure is reported as its absolute value on this machine, its target (if any) and whether
it passes, and a ratio to a reference measured in the same run (benchmarks/bench_reference.py),
so that runs on machines of different speed can be compared. docs/performance.md says what each
figure counts.

    python -m benchmarks                  # everything (a few minutes)
    python -m benchmarks --quick          # small sizes (a smoke test; tests/test_benchmarks.py)
    python -m benchmarks --only philly --only engine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import bench_engine, bench_plan, bench_scale, bench_serving, bench_startup
from benchmarks.bench_reference import Figure, References, measure_references

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "benchmarks.json"

Bench = Callable[[References, bool, Path], list[Figure]]  # (refs, quick, output folder)


def solver(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    """benchmarks/bench_solver.py's `random` instance: 10,000 flows over 1,000 links (quick:
    1,000 over 100), median of repeats after a warm-up (numba compile) solve."""
    import numpy as np

    from benchmarks.bench_solver import random_instance, time_solver

    flows, links, repeats = (1000, 100, 5) if quick else (10_000, 1_000, 30)
    r = time_solver(*random_instance(np.random.default_rng(0), flows, links), repeats)
    return [Figure("solver", f"max_min_{flows}_flows_{links}_links_ms", r["median_s"] * 1e3,
                   "ms", r["median_s"] / refs.cpu_s, "cpu", target=10.0,
                   counts=f"median of {repeats} solves, {r['route_entries']} route entries")]


BENCHMARKS: dict[str, Bench] = {
    "startup": bench_startup.startup,
    "estimate": bench_startup.estimate,
    "solver": solver,
    "engine": bench_engine.run,
    "philly": bench_scale.philly,
    "scaling": bench_scale.scaling,
    "frontier": bench_scale.frontier,
    "serving": bench_serving.serving,
    "plan": bench_plan.plan,
}


def table(figures: list[Figure]) -> str:
    def num(x: float) -> str:
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"

    rows = [("benchmark", "figure", "value", "target", "pass", "ratio", "ratio to")]
    for f in figures:
        target = "" if f.target is None else ("<= " if f.better == "lower" else ">= ") + num(
            f.target)
        verdict = {None: "", True: "yes", False: "NO"}[f.passed]
        rows.append((f.benchmark, f.name, f"{num(f.value)} {f.unit}", target, verdict,
                     num(f.ratio), f.ratio_to))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def report(figures: list[Figure], refs: References, quick: bool, wall_s: float,
           previous: dict | None) -> dict:
    """The JSON record; with `previous` (an --only run), figures of benchmarks not run now are
    kept from it."""
    ran = {f.benchmark for f in figures}
    kept = [f for f in (previous or {}).get("figures", []) if f["benchmark"] not in ran]
    return {
        "quick": quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "references": refs.record(),
        "wall_s": wall_s,
        "figures": kept + [f.record() for f in figures],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, help=f"JSON file (default: {DEFAULT_OUT}; "
                        "--quick: benchmarks-quick.json beside it)")
    args = parser.parse_args(argv)
    out = args.out or (DEFAULT_OUT.with_name("benchmarks-quick.json") if args.quick
                       else DEFAULT_OUT)
    t0 = time.perf_counter()
    refs = measure_references(3 if args.quick else 5)
    print(f"references: cpu {refs.cpu_s * 1e3:.1f} ms, python start "
          f"{refs.python_start_s * 1e3:.0f} ms, engine import RSS {refs.rss_base_bytes / 1e6:.0f} "
          "MB", flush=True)
    figures: list[Figure] = []
    for name in args.only or list(BENCHMARKS):
        t = time.perf_counter()
        new = BENCHMARKS[name](refs, args.quick, out.parent)
        figures += new
        print(f"{name}: {time.perf_counter() - t:.1f} s", flush=True)
    previous = json.loads(out.read_text()) if args.only and out.exists() else None
    record = report(figures, refs, args.quick, time.perf_counter() - t0, previous)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(table(figures))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
