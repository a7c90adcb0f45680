"""Fused dense forward+backward: the dcsim kernel against plain NumPy/BLAS, side by side.

One training step of one dense layer (batch B, square width N, float32) is three matrix products,
``z = a @ W.T``, ``dW = dZ.T @ a`` and ``dA_prev = dZ @ W`` (6*B*N*N flop), plus elementwise work
(bias, activation, its derivative, the bias gradient). Both sides do exactly that; the NumPy side
is written the plain way. The kernel's products go to the same BLAS (NumPy's); what it adds is
the fused numba pass for the elementwise work, and what it costs is its argument checks.

Each width is timed in rounds: a pause, then a block of calls per side (a warm-up call, then
timed calls), the side that goes first alternating from round to round. Reported: each side's
best call (the ratio of the bests is the headline) and the median over rounds of the ratio of
the two blocks' bests, which is robust to the host's drifts.

On a shared host the noise is other processes: when they take one of the cores, multi-threaded
BLAS slows down up to tenfold. So each round records the share of the host's CPU others took
meanwhile (from /proc/stat), rounds continue until enough of them were quiet or a time limit
passes, and only quiet rounds count when there are any.

    python -m benchmarks.bench_kernels [--out benchmarks/results/kernels.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "kernels.json"


def numpy_dense_step(a_prev, W, b, dA):
    """The NumPy/BLAS reference: the same products and elementwise work, ReLU activation."""
    z = a_prev @ W.T
    z += b
    a = np.maximum(z, 0)
    dZ = dA * (z > 0)
    return a, dZ, dZ.T @ a_prev, dZ.sum(axis=0), dZ @ W


def kernel_dense_step(a_prev, W, b, dA):
    from dcsim.kernels import dense_forward_backward

    a, grads = dense_forward_backward(a_prev, W, b, dA, "relu")
    return (a, *grads)


def timed_round(
    sides: dict[str, Callable[[], object]], args: argparse.Namespace, first: int = 0
) -> dict:
    """One round: a pause, then one block per side, starting with side number `first`. A block
    is a warm-up call and timed calls, at least `args.repeats` and more until they add up to
    `args.min_block_s`. Returns each side's call times and the share of the host other
    processes took meanwhile.

    Consecutive calls of one side, as a training loop makes them, keep the allocator in that
    side's steady state (interleaving single calls measured page faults of the other side's
    making). The pause lets the BLAS worker threads, which spin-wait for a while after a call,
    go idle, so that every round starts from the same state.
    """
    start = cpu_snapshot()
    time.sleep(args.pause_s)
    names = list(sides)
    samples: dict[str, list[float]] = {}
    for name in names[first:] + names[:first]:
        sides[name]()
        samples[name] = []
        while len(samples[name]) < args.repeats or sum(samples[name]) < args.min_block_s:
            t0 = time.perf_counter()
            sides[name]()
            samples[name].append(time.perf_counter() - t0)
    load = other_load(start, cpu_snapshot())
    return {"samples_s": samples, "other_load": load, "quiet": is_quiet(load, args)}


def is_quiet(load: float | None, args: argparse.Namespace) -> bool:
    return load is None or load <= args.max_other_load


def quiet_rounds(
    sides: dict[str, Callable[[], object]], args: argparse.Namespace, wanted: int
) -> list[dict]:
    """Rounds until `wanted` of them were quiet (other processes took at most
    `args.max_other_load` of the host) or `args.max_width_s` passed; the quiet ones, or all of
    them if none was."""
    rounds: list[dict] = []
    deadline = time.perf_counter() + args.max_width_s
    while sum(r["quiet"] for r in rounds) < wanted and (
        time.perf_counter() < deadline or not rounds
    ):
        rounds.append(timed_round(sides, args, first=len(rounds) % len(sides)))
    return [r for r in rounds if r["quiet"]] or rounds


def max_relative_difference(ours, reference) -> float:
    return max(
        float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(y))), 1e-30))
        for x, y in zip(ours, reference, strict=True)
    )


def bench_width(width: int, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng([args.seed, width])
    a_prev = rng.standard_normal((args.batch, width), dtype=np.float32)
    W = rng.standard_normal((width, width), dtype=np.float32) / np.float32(np.sqrt(width))
    b = rng.standard_normal(width, dtype=np.float32)
    dA = rng.standard_normal((args.batch, width), dtype=np.float32)
    difference = max_relative_difference(
        kernel_dense_step(a_prev, W, b, dA), numpy_dense_step(a_prev, W, b, dA)
    )
    sides = {
        "kernel": lambda: kernel_dense_step(a_prev, W, b, dA),
        "numpy": lambda: numpy_dense_step(a_prev, W, b, dA),
    }
    used = quiet_rounds(sides, args, args.rounds)
    kernel = [t for r in used for t in r["samples_s"]["kernel"]]
    numpy = [t for r in used for t in r["samples_s"]["numpy"]]
    flop = 6.0 * args.batch * width * width
    return {
        "width": width,
        "batch": args.batch,
        "flop": flop,
        "kernel_best_s": min(kernel),
        "numpy_best_s": min(numpy),
        "kernel_gflop_s": flop / min(kernel) / 1e9,
        "numpy_gflop_s": flop / min(numpy) / 1e9,
        "ratio": min(numpy) / min(kernel),
        "paired_ratio_median": float(  # the two blocks of each round: robust to host drifts
            np.median([min(r["samples_s"]["numpy"]) / min(r["samples_s"]["kernel"]) for r in used])
        ),
        "calls_per_side": len(kernel),
        "rounds_used": len(used),
        "rounds_quiet": sum(r["quiet"] for r in used),
        "other_load_median": median_or_none([r["other_load"] for r in used]),
        "max_relative_difference": difference,
        "rounds": [
            {"other_load": r["other_load"], **{k: min(v) for k, v in r["samples_s"].items()}}
            for r in used
        ],
    }


def median_or_none(values: list[float | None]) -> float | None:
    return None if None in values else float(np.median(values))


def peak_sgemm_gflop_s(args: argparse.Namespace) -> float:
    """The host's practical float32 peak: best NumPy/BLAS rate on one big square sgemm, from
    quiet rounds where the host allows."""
    rng = np.random.default_rng(args.seed)
    x = rng.standard_normal((args.peak_size, args.peak_size), dtype=np.float32)
    y = rng.standard_normal((args.peak_size, args.peak_size), dtype=np.float32)
    used = quiet_rounds({"sgemm": lambda: x @ y}, args, wanted=2)
    best = min(t for r in used for t in r["samples_s"]["sgemm"])
    return 2.0 * args.peak_size**3 / best / 1e9


def cpu_snapshot() -> tuple[float, float, float] | None:
    """(host busy CPU-s, host total CPU-s, this process's CPU-s), or None without /proc/stat."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return None
    ticks = [int(v) for v in stat.read_text().splitlines()[0].split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]  # idle, iowait; steal (ticks[7]) counts as busy: others had it
    own = os.times()
    return (sum(ticks) - idle) / hz, sum(ticks) / hz, own.user + own.system


def other_load(start, end) -> float | None:
    """Share of the host's CPU time taken by other processes (or the hypervisor) between two
    snapshots: the competition both sides of the comparison ran under."""
    if start is None or end is None or end[1] <= start[1]:
        return None
    busy, total, own = (b - a for a, b in zip(start, end, strict=True))
    return min(max(busy - own, 0.0) / total, 1.0)


def host_info(load_sample_s: float) -> dict:
    snapshot = cpu_snapshot()
    time.sleep(load_sample_s)
    load_at_start = other_load(snapshot, cpu_snapshot())
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import numba

    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {
        "cpu_model": model,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "blas": f"{blas.get('name')} {blas.get('version')}",
        "other_load_at_start": load_at_start,
    }


def percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{fraction:.0%}"


def table(rows: list[dict], peak: float) -> str:
    lines = [
        f"{'width':>6} {'dcsim GFLOP/s':>14} {'numpy GFLOP/s':>14} {'dcsim/numpy':>12} "
        f"{'paired':>9} {'dcsim/peak':>11} {'max rel diff':>13} {'calls':>6} {'other load':>11}"
    ]
    for r in rows:
        lines.append(
            f"{r['width']:>6} {r['kernel_gflop_s']:>14.1f} {r['numpy_gflop_s']:>14.1f} "
            f"{r['ratio']:>12.3f} {r['paired_ratio_median']:>9.3f} "
            f"{r['kernel_gflop_s'] / peak:>11.2f} {r['max_relative_difference']:>13.1e} "
            f"{r['calls_per_side']:>6} {percent(r['other_load_median']):>11}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON path")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--widths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    p.add_argument("--rounds", type=int, default=7, help="quiet rounds wanted per width")
    p.add_argument(
        "--repeats", type=int, default=3, help="timed calls per side and round, at least"
    )
    p.add_argument(
        "--min-block-s", type=float, default=0.4, help="timed seconds per side and round"
    )
    p.add_argument("--peak-size", type=int, default=4096, help="square sgemm for the peak")
    p.add_argument("--pause-s", type=float, default=0.2, help="idle time before each round")
    p.add_argument(
        "--max-other-load",
        type=float,
        default=0.05,
        help="host share others may take in a quiet round",
    )
    p.add_argument("--max-width-s", type=float, default=90.0, help="time to wait for quiet rounds")
    p.add_argument("--load-sample-s", type=float, default=1.0, help="host load sampling time")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    host = host_info(args.load_sample_s)
    rows = [bench_width(w, args) for w in args.widths]
    sgemm = peak_sgemm_gflop_s(args)
    # the host's peak estimate: the best BLAS-bound rate seen in this run, square sgemm included
    peak = max(sgemm, *(max(r["kernel_gflop_s"], r["numpy_gflop_s"]) for r in rows))
    print(
        f"host: {host['cpu_model']}, {host['cpus_usable']} CPUs, "
        f"{percent(host['other_load_at_start'])} of them busy with other work at start; "
        f"BLAS: {host['blas']}"
    )
    print(f"fused dense forward+backward, float32, ReLU, batch {args.batch}")
    print(table(rows, peak))
    if any(r["rounds_quiet"] < args.rounds for r in rows):
        print(f"note: fewer than {args.rounds} quiet rounds at some widths: a busy host")
    print(
        f"peak estimate: {peak:.1f} GFLOP/s, the best rate seen in this run "
        f"(NumPy sgemm {args.peak_size}^3 alone: {sgemm:.1f} GFLOP/s, best call in quiet rounds)"
    )
    result = {
        "benchmark": "fused dense forward+backward (dcsim.kernels.dense_forward_backward)",
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "dtype": "float32",
            "activation": "relu",
        },
        "host": host,
        "square_sgemm_gflop_s": sgemm,
        "peak_estimate_gflop_s": peak,
        "rows": rows,
        "min_ratio": min(r["ratio"] for r in rows),
        "wall_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
