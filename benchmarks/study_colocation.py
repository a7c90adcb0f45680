"""Co-location study (issue 17): what lending a service's idle GPUs to training does to the
training jobs' JCT and to the service's SLOs. scenarios/colocation.yaml (a day of a Llama 3
70B chat service with a diurnal load beside a day of training jobs on eight DGX H100s) under
four ways to give the service its GPUs:

- `fixed-peak`: 8 replicas all day (enough for the 14:00 peak), no lending;
- `fixed-mean`: 5 replicas all day (the mean load's worth), no lending;
- `lend`: autoscaling 2-8 replicas, idle GPUs lent to training; a replica that finds no free
  GPU waits for one (no reclaim);
- `lend+reclaim` (the scenario as written): the same, but a replica preempts training jobs
  for its GPUs.

Each variant runs under several seeds (the same seed: the same jobs and requests in every
variant). Prints a Markdown table and writes benchmarks/results/colocation.json and .md and
docs/img/colocation.png (the GPUs' split over the day, lend+reclaim against fixed-peak): the
numbers docs/serving.md quotes.

    python -m benchmarks.study_colocation [--seeds 11 12 13] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results"
SCENARIO = REPO / "scenarios" / "colocation.yaml"
VARIANTS: dict[str, list[str]] = {
    "fixed-peak": ["services.0.autoscale=null", "services.0.replicas=8"],
    "fixed-mean": ["services.0.autoscale=null", "services.0.replicas=5"],
    "lend": ["services.0.autoscale.reclaim=false"],
    "lend+reclaim": [],
}
PEAK_HOURS = (12.0, 16.0)  # arrivals in this window: the SLO when it is hardest to meet
# (key, header, format) of the table's columns
COLUMNS = (("jct_mean_h", "training mean JCT (h)", "{:.2f}"),
           ("queue_mean_h", "mean queueing (h)", "{:.2f}"),
           ("jct_p95_h", "p95 JCT (h)", "{:.2f}"),
           ("jobs_preempted", "jobs preempted", "{:.0f}"),
           ("slo_attainment", "SLO met, day", "{:.2%}"),
           ("slo_attainment_peak", "SLO met, 12-16 h", "{:.2%}"),
           ("ttft_p99_peak_s", "TTFT p99, 12-16 h (s)", "{:.2f}"),
           ("serving_gpu_h", "serving GPU-h", "{:.0f}"),
           ("lent_gpu_h", "lent GPU-h", "{:.0f}"),
           ("training_gpu_h", "training GPU-h", "{:.0f}"),
           ("gpu_utilization", "GPU util.", "{:.1%}"))


def lent_gpu_hours(service_timeline, gpu_timeline, reserve_gpus: int) -> float:
    """GPU-hours that training jobs ran on inside the service's reserve (its max_replicas x
    tp GPUs): at each instant min(training GPUs, reserve - GPUs the service holds)."""
    serving = service_timeline.groupby("time_s")["gpus"].sum()
    t = np.union1d(gpu_timeline.time_s.to_numpy(float), serving.index.to_numpy(float))
    alloc = gpu_timeline.set_index("time_s")["allocated_gpus"]
    alloc = alloc[~alloc.index.duplicated(keep="last")].reindex(t, method="ffill").fillna(0)
    held = serving.reindex(t, method="ffill").fillna(0)
    training = (alloc - held).clip(lower=0)
    lent = np.minimum(training, (reserve_gpus - held).clip(lower=0)).to_numpy(float)
    return float(np.sum(lent[:-1] * np.diff(t)) / 3600.0)


def run(variant: str, seed: int) -> dict:
    import dcsim

    start = time.perf_counter()
    sc = dcsim.load_scenario(SCENARIO, overrides=VARIANTS[variant], seed=seed)
    res = dcsim.simulate(sc)
    wall = time.perf_counter() - start
    s, svc, req = res.summary(), res.services.iloc[0], res.requests
    spec = sc.services[0]
    lo, hi = (h * 3600 for h in PEAK_HOURS)
    peak = req[(req.arrival_s >= lo) & (req.arrival_s < hi)]
    ended = peak[peak.status.isin(["served", "dropped"])]
    served = peak[peak.status == "served"]
    return {
        "variant": variant, "seed": seed, "wall_s": wall,
        "jobs_completed": s["jobs_completed"], "jct_mean_h": s["jct_mean_s"] / 3600,
        "queue_mean_h": s["queue_mean_s"] / 3600, "jct_p95_h": s["jct_p95_s"] / 3600,
        "makespan_h": s["makespan_s"] / 3600, "jobs_preempted": int(svc.jobs_preempted),
        "slo_attainment": float(svc.slo_attainment),
        "slo_attainment_peak": float(ended.slo_met.astype(bool).mean()) if len(ended)
        else math.nan,
        "ttft_p99_peak_s": float(np.percentile(served.ttft_s, 99)) if len(served) else math.nan,
        "requests": int(svc.requests), "dropped": int(svc.dropped),
        "replicas_min": int(svc.replicas_min), "replicas_max": int(svc.replicas_max),
        "replica_starts": int(svc.replica_starts),
        "serving_gpu_h": float(svc.gpu_hours), "training_gpu_h": s["training_gpu_hours"],
        "lent_gpu_h": lent_gpu_hours(res.service_timeline, res.gpu_timeline,
                                     spec.max_replicas * spec.tp),
        "gpu_utilization": s["gpu_utilization"],
        "_timelines": (res.service_timeline[["time_s", "gpus"]].to_dict("list"),
                       res.gpu_timeline[["time_s", "allocated_gpus"]].to_dict("list"),
                       s["total_gpus"]),
    }


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per variant: the mean over seeds of every number."""
    out = []
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        row = {"variant": variant, "seeds": [r["seed"] for r in mine]}
        for key, value in mine[0].items():
            if isinstance(value, (int, float)) and key != "seed":
                row[key] = float(np.mean([r[key] for r in mine]))
        out.append(row)
    return out


def markdown(means: list[dict], seeds: list[int], wall_s: float) -> str:
    lines = [f"scenarios/colocation.yaml, mean of seeds {', '.join(map(str, seeds))} "
             f"({wall_s:.0f} s wall in all)", "",
             "| variant | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for r in means:
        lines.append(f"| {r['variant']} | "
                     + " | ".join(f.format(r[k]) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from dcsim.plotting.serving import gpu_split

    seed = rows[0]["seed"]
    pick = {r["variant"]: r for r in rows if r["seed"] == seed}
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    for ax, variant in zip(axes, ("fixed-peak", "lend+reclaim"), strict=True):
        svc, gpu, total = pick[variant]["_timelines"]
        st = pd.DataFrame(svc).assign(service="chat")
        gpu_split(st, pd.DataFrame(gpu).assign(total_gpus=total), ax=ax)
        ax.set_title(f"{variant} (seed {seed})")
    axes[0].set_xlabel("")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    jobs = [(v, s) for s in args.seeds for v in VARIANTS]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run, *zip(*jobs, strict=True)))
    wall = time.perf_counter() - start
    means = mean_rows(rows)
    text = markdown(means, args.seeds, wall)
    print(text)
    OUT.mkdir(exist_ok=True)
    plot(rows, REPO / "docs" / "img" / "colocation.png")
    (OUT / "colocation.json").write_text(json.dumps(
        {"seeds": args.seeds, "wall_s": wall, "means": means,
         "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]},
        indent=2) + "\n")
    (OUT / "colocation.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
