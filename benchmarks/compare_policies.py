"""Scheduler and placement comparison on real and synthetic traces (issue 5's study).

Each study is one scenario run under several variants (`--set` overrides), in parallel worker
processes; the table of summary metrics is printed, written as JSON and as the Markdown that
docs/policies.md quotes. Studies (the first two run by default):

- `gavel-schedulers`: scenarios/gavel_msr.yaml (a Philly-derived Gavel trace, 533 jobs with
  job types and steps, at Gavel's measured P100 throughputs) on 32 P100s, where FIFO queues,
  under fifo, sjf, srtf, las, themis, easy.
- `placement`: scenarios/placement_study.yaml (120 jobs of 2-32 GPUs on a 4:1 oversubscribed
  leaf-spine) under packed, topology-aware, spread, load-balanced, first-fit and random.
- `philly-schedulers`: the whole Philly trace on 96 DGX-1 servers (768 P100s) under the six
  schedulers. Long: FIFO and SJF take ~1.5 min each, the preemptive ones much longer.
- `pollux-schedulers`: Pollux workload-1 on 16 x 4 A100s (light load: no queueing).

    python -m benchmarks.compare_policies [STUDY ...] [--workers 2] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results"
SCHEDULERS = ("fifo", "sjf", "srtf", "las", "themis", "easy")
PLACEMENTS = ("packed", "topology-aware", "spread", "load-balanced", "first-fit", "random")
METRICS = (("jobs_completed", "completed", "{:,.0f}"), ("jct_mean_s", "mean JCT (h)", "{:.2f}"),
           ("jct_p50_s", "p50 JCT (h)", "{:.2f}"), ("queue_mean_s", "mean queueing (h)", "{:.2f}"),
           ("slowdown_mean", "mean slowdown", "{:.2f}"),
           ("slowdown_p95", "p95 slowdown", "{:.2f}"),
           ("jain_fairness_vcs", "Jain (VCs)", "{:.3f}"),
           ("gpu_utilization", "GPU util.", "{:.1%}"), ("wall_s", "wall (s)", "{:.1f}"))
HOURS = {"jct_mean_s", "jct_p50_s", "queue_mean_s"}

STUDIES: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {
    "gavel-schedulers": ("scenarios/gavel_msr.yaml", ["cluster.servers.0.count=4"],
                         {k: [f"scheduler.kind={k}"] for k in SCHEDULERS}),
    "placement": ("scenarios/placement_study.yaml", [],
                  {k: [f"placement.kind={k}"] for k in PLACEMENTS}),
    "philly-schedulers": ("scenarios/philly.yaml", ["cluster.servers.0.count=96"],
                          {k: [f"scheduler.kind={k}"] for k in SCHEDULERS}),
    "pollux-schedulers": ("scenarios/pollux.yaml", [],
                          {k: [f"scheduler.kind={k}"] for k in SCHEDULERS}),
}
DEFAULT_STUDIES = ("gavel-schedulers", "placement")


def run_variant(scenario: str, overrides: list[str]) -> dict:
    import dcsim

    t0 = time.perf_counter()
    res = dcsim.simulate(dcsim.load_scenario(REPO / scenario, overrides))
    summary = res.summary()
    summary["wall_s"] = time.perf_counter() - t0
    return {k: summary.get(k) for k, _, _ in METRICS}


def run_study(name: str, workers: int) -> dict:
    scenario, common, variants = STUDIES[name]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {v: pool.submit(run_variant, scenario, common + extra)
                   for v, extra in variants.items()}
        rows = {}
        for variant, future in futures.items():
            rows[variant] = future.result()
            print(f"  {name}: {variant} done ({rows[variant]['wall_s']:.0f} s)", flush=True)
    return {"scenario": scenario, "overrides": common, "rows": rows}


def markdown(name: str, study: dict) -> str:
    lines = [f"### {name}", "",
             f"`{study['scenario']}`" + (f" with `{' '.join(study['overrides'])}`"
                                         if study["overrides"] else ""), "",
             "| variant | " + " | ".join(label for _, label, _ in METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    for variant, row in study["rows"].items():
        cells = []
        for key, _, fmt in METRICS:
            value = row.get(key)
            if value is None or value != value:  # None or NaN (no virtual clusters)
                cells.append("-")
                continue
            cells.append(fmt.format(value / 3600 if key in HOURS else value))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", metavar="STUDY",
                        help=f"{', '.join(STUDIES)} (default: {' '.join(DEFAULT_STUDIES)})")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.studies = args.studies or list(DEFAULT_STUDIES)
    unknown = [name for name in args.studies if name not in STUDIES]
    if unknown:
        parser.error(f"unknown studies {unknown}; valid: {', '.join(STUDIES)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.studies:
        print(f"{name}: {STUDIES[name][0]}", flush=True)
        study = run_study(name, args.workers)
        (args.out / f"policies-{name}.json").write_text(json.dumps(study, indent=2))
        text = markdown(name, study)
        (args.out / f"policies-{name}.md").write_text(text)
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
