"""Fit the synthetic Philly workload (`workload.generator.kind: philly`) to the Philly trace.

    python -m dcsim.tools.fit_philly [TRACE] [--out dcsim/catalog/philly_fit.yaml]

TRACE (default `data/traces/philly/philly.csv`, relative to the current directory) is the
petuum/adaptdl copy of the Microsoft Philly trace: one job a row, columns `timestamp` (submit
time, a local-time string `YYYY-MM-DD HH:MM:SS`), `duration` (run time, s), `num_gpus`,
`gpu_time` and `cluster`. The fit (docs/scenario-reference.md#philly-generator) is:

- GPU counts: the empirical pmf over the counts seen, each count not a power of two moved to the
  nearest power of two in log2 (ties up: 12 -> 16, 24 -> 32).
- Run times: per group of GPU counts, empirical quantiles of the run time at fixed probabilities
  (dense in the upper tail, where the mean lives), sampled by inverse CDF with linear
  interpolation in log(run time). Counts with fewer than MIN_GROUP_JOBS jobs share the group of
  the next smaller counts (64 and 128 GPUs go with 32).
- Arrivals: the mean rate (jobs / span of submit times) and relative hour-of-day and
  day-of-week rate factors (mean 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np
import yaml

DEFAULT_TRACE = Path("data/traces/philly/philly.csv")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "catalog" / "philly_fit.yaml"
MIN_GROUP_JOBS = 50
# Quantile probabilities: every 1% up to 99%, then every 0.1% to 99.9%, every 0.01% to 99.99%,
# and the maximum. The top 1% of Philly jobs carry about half of all run time.
PROBS = np.unique(np.round(np.concatenate([
    np.arange(0, 0.99, 0.01), np.arange(0.99, 0.999, 0.001), np.arange(0.999, 0.9999, 0.0001),
    [0.9999, 1.0]]), 6))

HEADER = """\
# Synthetic-workload parameters fitted to the Microsoft Philly trace; read by the `philly`
# workload generator (dcsim/workload/philly.py, docs/scenario-reference.md#philly-generator).
# Source: the Philly trace (msr-fiddle/philly-traces, Jeon et al., USENIX ATC 2019), licensed
#   CC BY 4.0, in the form of petuum/adaptdl @ c793c70 (branch osdi21-artifact),
#   simulator/traces/philly.csv (Apache-2.0), copied to data/traces/philly/philly.csv:
#   {jobs} jobs submitted {first} .. {last}.
# Made on {date} by: python -m dcsim.tools.fit_philly {trace}
# Do not edit by hand; rerun the command.
#   gpu_pmf: probability of each GPU count (counts not a power of two moved to the nearest one).
#   durations: per group of GPU counts, run-time quantiles (s) at the probabilities `probs`
#     (inverse-CDF sampling, linear in log(run time) between them); median_s and mean_s are
#     the trace's own (the fitted distribution's mean differs by the interpolation only).
#   arrivals: mean_rate_per_s = jobs / span of submit times; hour_of_day[h] and day_of_week[d]
#     (0 = Monday) are relative rates of the submit-time hour (local time) and weekday, mean 1.
"""


def read_trace(path: Path) -> dict[str, np.ndarray]:
    """The columns the fit uses: submit time (s since the epoch, naive local time), hour,
    weekday, run time and GPU count."""
    import csv

    stamps, durations, gpus = [], [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"timestamp", "duration", "num_gpus"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            stamps.append(dt.datetime.strptime(row["timestamp"], "%Y-%m-%d %H:%M:%S"))
            durations.append(float(row["duration"]))
            gpus.append(int(float(row["num_gpus"])))
    return {
        "t": np.array([s.replace(tzinfo=dt.UTC).timestamp() for s in stamps]),
        "hour": np.array([s.hour for s in stamps]),
        "weekday": np.array([s.weekday() for s in stamps]),
        "date": np.array([s.date().toordinal() for s in stamps]),
        "duration": np.array(durations),
        "gpus": np.array(gpus),
    }


def nearest_power_of_two(n: np.ndarray) -> np.ndarray:
    lg = np.log2(np.maximum(n, 1))
    lo = np.floor(lg)
    return (2 ** np.where(lg - lo >= 0.5, lo + 1, lo)).astype(int)


def duration_groups(counts: dict[int, int], min_jobs: int = MIN_GROUP_JOBS) -> list[list[int]]:
    """Consecutive GPU counts pooled so that each group has at least `min_jobs` jobs; a rare
    count joins the group of the next smaller counts (the smallest count starts a group)."""
    groups: list[list[int]] = []
    for g in sorted(counts):
        if groups and (counts[g] < min_jobs or sum(counts[c] for c in groups[-1]) < min_jobs):
            groups[-1].append(g)
        else:
            groups.append([g])
    return groups


def fit(data: dict[str, np.ndarray]) -> dict:
    gpus = nearest_power_of_two(data["gpus"])
    dur = data["duration"]
    if np.any(dur <= 0):
        raise ValueError("run times must be > 0")
    values, counts = np.unique(gpus, return_counts=True)
    count_of = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    n = len(gpus)
    groups = []
    for members in duration_groups(count_of):
        d = dur[np.isin(gpus, members)]
        q = np.quantile(d, PROBS)
        groups.append({
            "gpus": members,
            "jobs": int(len(d)),
            "median_s": round(float(np.median(d)), 1),
            "mean_s": round(float(d.mean()), 1),
            "quantiles_s": [round(float(x), 1) for x in q],
        })
    span = float(data["t"].max() - data["t"].min())
    hours = np.bincount(data["hour"], minlength=24).astype(float)
    # per weekday: jobs / number of such days in the span
    days = np.arange(data["date"].min(), data["date"].max() + 1)
    n_days = np.bincount([dt.date.fromordinal(int(d)).weekday() for d in days], minlength=7)
    week = np.bincount(data["weekday"], minlength=7) / np.maximum(n_days, 1)
    return {
        "jobs": n,
        "gpu_pmf": {g: round(c / n, 6) for g, c in count_of.items()},
        "gpu_jobs": count_of,
        "durations": {
            "median_s": round(float(np.median(dur)), 1),
            "mean_s": round(float(dur.mean()), 1),
            "probs": [round(float(p), 6) for p in PROBS],
            "groups": groups,
        },
        "arrivals": {
            "span_s": span,
            "mean_rate_per_s": round(n / span, 8),
            "mean_interarrival_s": round(span / n, 3),
            "hour_of_day": [round(float(x), 4) for x in hours / hours.mean()],
            "day_of_week": [round(float(x), 4) for x in week / week.mean()],
        },
    }


class _Flow(yaml.SafeDumper):
    pass


def _flow_lists(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_Flow.add_representer(list, _flow_lists)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dcsim.tools.fit_philly", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace", nargs="?", default=str(DEFAULT_TRACE),
                    help=f"the Philly CSV (default {DEFAULT_TRACE})")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="the YAML to write")
    args = ap.parse_args(argv)
    trace = Path(args.trace)
    if not trace.is_file():
        print(f"fit_philly: trace not found: {trace} (the repository keeps it at "
              f"{DEFAULT_TRACE}; run from the repository root or give its path)", file=sys.stderr)
        return 2
    data = read_trace(trace)
    result = fit(data)
    first = dt.datetime.fromtimestamp(data["t"].min(), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    last = dt.datetime.fromtimestamp(data["t"].max(), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    header = HEADER.format(jobs=f"{result['jobs']:,}", first=first, last=last,
                           date=dt.date.today().isoformat(), trace=args.trace)
    body = yaml.dump(result, Dumper=_Flow, sort_keys=False, width=100)
    Path(args.out).write_text(header + body)
    d = result["durations"]
    print(f"{result['jobs']} jobs; GPU pmf {result['gpu_pmf']}; run time median {d['median_s']} s, "
          f"mean {d['mean_s']} s; mean interarrival "
          f"{result['arrivals']['mean_interarrival_s']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
