"""Executed jobs on the host: simulated iteration time vs measured wall time.

    python -m benchmarks.bench_execute [--out benchmarks/results/execute.json] [--quick]

Calibrates the host (`dcsim calibrate --device host`, in this process), then runs a scenario of
MLP jobs of several widths in execute mode on a `host` server with that profile: each job really
trains through dcsim's kernels (measured) and is timed by the calibrated step-time model
(simulated). Prints a table of measured vs simulated seconds per iteration and their ratio, and
writes JSON. Issue 3's target: within 15% for the host device. Run it on a quiet machine: other
load on the cores inflates the measured times (and the calibration).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

JOBS = [  # (name, hidden widths, batch, iterations, dataset)
    ("mlp-64-32-10", [32], 32, 400, "digits"),
    ("mlp-64-256x2-10", [256, 256], 128, 200, "digits"),
    ("mlp-64-512x2-10", [512, 512], 256, 100, "digits"),
    ("mlp-1024-1024x2-10", [1024, 1024], 256, 40, "synthetic"),
]


def _scenario(profile: Path) -> dict:
    jobs = []
    for name, hidden, batch, iterations, dataset in JOBS:
        inputs = 64 if dataset == "digits" else 1024
        jobs.append(
            {
                "name": name,
                "model": {"kind": "mlp", "inputs": inputs, "hidden": hidden, "outputs": 10},
                "parallelism": {"micro_batch": batch},
                "global_batch": batch,
                "precision": "fp32",
                "iterations": iterations,
                "execute": {"dataset": dataset, "learning_rate": 0.05, "eval_every": iterations},
            }
        )
    return {
        "name": "bench-execute",
        "seed": 1,
        "cluster": {"servers": [{"type": "host", "count": 1}]},
        "engine": {"profiles": [str(profile)]},
        "workload": {"jobs": jobs},
    }


def main(argv: list[str] | None = None) -> int:
    import dcsim
    from dcsim.perf.calibrate import calibrate_host, write_profile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/execute.json")
    parser.add_argument("--quick", action="store_true", help="quick calibration grid")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(tmp) / "host-cpu.yaml"
        profile, peak, bandwidth = calibrate_host(quick=args.quick)
        write_profile(profile_path, "host-cpu", profile, peak, bandwidth)
        results = dcsim.simulate(dcsim.scenario_from_dict(_scenario(profile_path)))
    ex = results.executions.merge(results.jobs[["job_id", "name"]], on="job_id")
    rows = []
    print(
        f"host: {profile.provenance.get('cpu_model')}, peak {peak / 1e9:.1f} GFLOP/s, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(f"{'job':<22}{'measured s/it':>15}{'simulated s/it':>16}{'sim/measured':>14}")
    for r in ex.itertuples():
        ratio = r.simulated_iteration_s / r.measured_iteration_s
        rows.append(
            {
                "job": r.name,
                "measured_iteration_s": r.measured_iteration_s,
                "simulated_iteration_s": r.simulated_iteration_s,
                "ratio": ratio,
                "final_accuracy": r.final_accuracy,
            }
        )
        print(
            f"{r.name:<22}{r.measured_iteration_s:>15.6f}{r.simulated_iteration_s:>16.6f}"
            f"{ratio:>14.3f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "profile": profile.params(),
                "peak_flop_s": peak,
                "bandwidth_byte_s": bandwidth,
                "jobs": rows,
                "provenance": profile.provenance,
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
