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
- `philly-carbon`: the whole Philly trace with half the jobs deferrable (24 h deadlines) under
  fifo and carbon-aware, on California's and Germany's 2023 grids (docs/energy.md). ~1 min each.
- `philly-power`: the same facility under a 400 kW power budget: fifo (jobs wait for power)
  against power-capped (jobs start under GPU power caps), and fifo without a budget.

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
# the carbon study's columns (docs/energy.md): energy in MWh, carbon in tonnes
CARBON_METRICS = (("jobs_completed", "completed", "{:,.0f}"),
                  ("jct_mean_s", "mean JCT (h)", "{:.2f}"),
                  ("queue_mean_s", "mean queueing (h)", "{:.2f}"),
                  ("deadline_misses", "deadline misses", "{:,.0f}"),
                  ("energy_facility_kwh", "facility energy (MWh)", "{:,.1f}"),
                  ("carbon_kg", "carbon (t)", "{:.2f}"),
                  ("carbon_jobs_kg", "jobs' carbon (t)", "{:.2f}"),
                  ("energy_cost_usd", "electricity ($)", "{:,.0f}"),
                  ("power_facility_peak_kw", "peak facility (kW)", "{:,.0f}"),
                  ("wall_s", "wall (s)", "{:.1f}"))
THOUSANDTHS = {"energy_facility_kwh", "carbon_kg", "carbon_jobs_kg"}

STUDIES: dict[str, tuple[str, list[str], dict[str, list[str]]]] = {
    "gavel-schedulers": ("scenarios/gavel_msr.yaml", ["cluster.servers.0.count=4"],
                         {k: [f"scheduler.kind={k}"] for k in SCHEDULERS}),
    "placement": ("scenarios/placement_study.yaml", [],
                  {k: [f"placement.kind={k}"] for k in PLACEMENTS}),
    "philly-schedulers": ("scenarios/philly.yaml", ["cluster.servers.0.count=96"],
                          {k: [f"scheduler.kind={k}"] for k in SCHEDULERS}),
    "pollux-schedulers": ("scenarios/pollux.yaml", [],
                          {k: [f"scheduler.kind={k}"] for k in SCHEDULERS}),
    "philly-carbon": ("scenarios/philly_carbon.yaml", [], {
        f"{kind} {zone}": [f"scheduler.kind={kind}", f"power.zone={zone}"]
        for zone in ("US-CAL-CISO", "DE-LU") for kind in ("fifo", "carbon-aware")}),
    "philly-power": ("scenarios/philly_carbon.yaml", [], {
        "fifo, no budget": ["scheduler.kind=fifo"],
        "fifo, 400 kW": ["scheduler.kind=fifo", "power.budget_kw=400"],
        "power-capped, 400 kW": ["scheduler.kind=power-capped", "power.budget_kw=400"]}),
}
STUDY_METRICS = {"philly-carbon": CARBON_METRICS, "philly-power": CARBON_METRICS}
# the carbon study also splits the jobs with a deadline by run time (hours)
RUN_BINS_H = (0, 1 / 6, 1, 4, 12, float("inf"))
BREAKDOWN = {"philly-carbon"}


def carbon_by_run_time(jobs) -> list[dict]:
    """The jobs with a deadline, by run time alone (`alone_s`, the same under every scheduler):
    how many, their carbon (kg) and start times."""
    import numpy as np

    rows = []
    has = jobs[jobs["due_s"].notna()]
    hours = has["alone_s"].to_numpy(float) / 3600
    for lo, hi in zip(RUN_BINS_H[:-1], RUN_BINS_H[1:], strict=True):
        part = has[(hours > lo) & (hours <= hi)]
        rows.append({"run_h": [lo, hi], "jobs": int(len(part)),
                     "carbon_kg": float(part["carbon_kg"].sum()),
                     "job_ids": part["job_id"].to_numpy(np.int64).tolist(),
                     "start_s": part["start_s"].to_numpy(float).tolist()})
    return rows
DEFAULT_STUDIES = ("gavel-schedulers", "placement")


def run_variant(scenario: str, overrides: list[str], metrics=METRICS,
                breakdown: bool = False) -> dict:
    import dcsim

    t0 = time.perf_counter()
    res = dcsim.simulate(dcsim.load_scenario(REPO / scenario, overrides))
    summary = res.summary()
    summary["wall_s"] = time.perf_counter() - t0
    row = {k: summary.get(k) for k, _, _ in metrics}
    if breakdown:
        row["by_run_time"] = carbon_by_run_time(res.jobs)
    return row


def run_study(name: str, workers: int) -> dict:
    scenario, common, variants = STUDIES[name]
    metrics = STUDY_METRICS.get(name, METRICS)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = {v: pool.submit(run_variant, scenario, common + extra, metrics,
                                  name in BREAKDOWN)
                   for v, extra in variants.items()}
        rows = {}
        for variant, future in futures.items():
            rows[variant] = future.result()
            print(f"  {name}: {variant} done ({rows[variant]['wall_s']:.0f} s)", flush=True)
    return {"scenario": scenario, "overrides": common, "rows": rows}


def markdown(name: str, study: dict) -> str:
    metrics = STUDY_METRICS.get(name, METRICS)
    lines = [f"### {name}", "",
             f"`{study['scenario']}`" + (f" with `{' '.join(study['overrides'])}`"
                                         if study["overrides"] else ""), "",
             "| variant | " + " | ".join(label for _, label, _ in metrics) + " |",
             "|---|" + "---:|" * len(metrics)]
    for variant, row in study["rows"].items():
        cells = []
        for key, _, fmt in metrics:
            value = row.get(key)
            if value is None or value != value:  # None or NaN (no virtual clusters)
                cells.append("-")
                continue
            scale = 3600 if key in HOURS else 1000 if key in THOUSANDTHS else 1
            cells.append(fmt.format(value / scale))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    if name in BREAKDOWN:
        lines += ["", *breakdown_markdown(study["rows"])]
    return "\n".join(lines) + "\n"


def _h(hours: float) -> str:
    return f"{hours * 60:.0f} min" if 0 < hours < 1 else f"{hours:g} h"


def breakdown_markdown(rows: dict) -> list[str]:
    """Per pair of variants (fifo X, carbon-aware X): the jobs with a deadline by run time,
    their carbon under each and the mean hold (start under carbon-aware - start under fifo)."""
    import numpy as np

    lines = ["Jobs with a deadline, by run time alone: carbon under each scheduler and how long "
             "carbon-aware held them on average.", "",
             "| grid | run time alone | jobs | fifo carbon (kg) | carbon-aware carbon (kg) | "
             "change | mean hold (h) |", "|---|---|---:|---:|---:|---:|---:|"]
    for variant, row in rows.items():
        kind, _, zone = variant.partition(" ")
        if kind != "fifo" or f"carbon-aware {zone}" not in rows:
            continue
        aware = rows[f"carbon-aware {zone}"]["by_run_time"]
        for base, other in zip(row["by_run_time"], aware, strict=True):
            lo, hi = base["run_h"]
            b = dict(zip(base["job_ids"], base["start_s"], strict=True))
            a = dict(zip(other["job_ids"], other["start_s"], strict=True))
            both = sorted(set(a) & set(b))
            hold = float(np.mean([a[j] - b[j] for j in both])) / 3600 if both else float("nan")
            change = (other["carbon_kg"] / base["carbon_kg"] - 1 if base["carbon_kg"] > 0
                      else float("nan"))
            span = (f"> {_h(lo)}" if hi == float("inf") else f"< {_h(hi)}" if lo == 0
                    else f"{_h(lo)}-{_h(hi)}")
            lines.append(f"| {zone} | {span} | {base['jobs']:,} | {base['carbon_kg']:,.0f} | "
                         f"{other['carbon_kg']:,.0f} | {change:+.1%} | {hold:.1f} |")
    return lines


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
