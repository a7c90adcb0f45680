"""Max-min fair solver: time per solve on datacenter-sized instances, against the plain-Python
reference of tests/test_solver.py on a smaller instance measured in the same run.

Instances (seeded): `random`, 10,000 flows each crossing 2..6 distinct links out of 1,000 with
capacities 10..100 GB/s; `leaf_spine`, 10,000 flows between 256 hosts on 16 leaves and 8 spines
(host up/down links 50 GB/s, leaf-spine links 100 GB/s each way, ECMP spine chosen at random,
768 links). Each solve is timed over repeats after a warm-up (numba compile) call; reported:
median and best. The reference runs on a 500-flow, 100-link random instance, once, and the
solver's best on that instance gives the speed-up ratio.

    python -m benchmarks.bench_solver [--out benchmarks/results/solver.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from dcsim.fabric.solver import max_min_rates, routes_to_csr
from tests.test_solver import reference_max_min

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "solver.json"


def random_instance(rng, n_flows, n_links, min_hops=2, max_hops=6):
    routes = [
        rng.choice(n_links, size=rng.integers(min_hops, max_hops + 1), replace=False).tolist()
        for _ in range(n_flows)
    ]
    return routes, rng.uniform(10e9, 100e9, size=n_links)


def leaf_spine_instance(rng, n_flows, leaves=16, hosts_per_leaf=16, spines=8):
    """Links: host up, host down, leaf->spine, spine->leaf. Same-leaf flows skip the spine."""
    n_hosts = leaves * hosts_per_leaf
    up, down = 0, n_hosts
    leaf_up, spine_down = 2 * n_hosts, 2 * n_hosts + leaves * spines
    capacity = np.concatenate([np.full(2 * n_hosts, 50e9), np.full(2 * leaves * spines, 100e9)])
    routes = []
    for _ in range(n_flows):
        src, dst = rng.choice(n_hosts, size=2, replace=False)
        ls, ld, spine = src // hosts_per_leaf, dst // hosts_per_leaf, rng.integers(spines)
        fabric = (
            [] if ls == ld else [leaf_up + ls * spines + spine, spine_down + ld * spines + spine]
        )
        routes.append([up + int(src), *map(int, fabric), down + int(dst)])
    return routes, capacity


def time_solver(routes, capacity, repeats):
    csr = routes_to_csr(routes)
    max_min_rates(csr, capacity)  # compile / load the cache
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        max_min_rates(csr, capacity)
        samples.append(time.perf_counter() - t0)
    return {
        "n_flows": len(routes),
        "n_links": len(capacity),
        "route_entries": int(csr.indices.size),
        "median_s": statistics.median(samples),
        "best_s": min(samples),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(3)]
    results = {
        "random": time_solver(*random_instance(streams[0], 10_000, 1_000), args.repeats),
        "leaf_spine": time_solver(*leaf_spine_instance(streams[1], 10_000), args.repeats),
    }
    small_routes, small_capacity = random_instance(streams[2], 500, 100)
    small = time_solver(small_routes, small_capacity, args.repeats)
    t0 = time.perf_counter()
    reference_max_min(small_routes, small_capacity, number=float)
    small["reference_s"] = time.perf_counter() - t0
    small["speedup_best"] = small["reference_s"] / small["best_s"]
    results["small_vs_reference"] = small
    for name, r in results.items():
        line = (
            f"{name:>18}: {r['n_flows']} flows, {r['n_links']} links: "
            f"median {r['median_s'] * 1e3:.3f} ms, best {r['best_s'] * 1e3:.3f} ms"
        )
        if "reference_s" in r:
            line += f"; reference {r['reference_s'] * 1e3:.1f} ms ({r['speedup_best']:.0f}x)"
        print(line)
    record = {"seed": args.seed, "python": platform.python_version(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
