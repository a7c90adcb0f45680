"""`dcsim plan` speed (docs/performance.md#plan): Llama 3 405B on 8,192 DGX H100 GPUs (quick:
Llama 3 70B on 64), `dcsim.tools.plan.plan` in process after a warm-up search; the figure is
configurations searched per second (each checked against memory, those that fit timed);
target 200/s: thousands of configurations in seconds."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.bench_reference import Figure, References

__all__ = ["plan"]


def plan(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    from dcsim.tools.plan import plan as search

    model, gpus, batch = ("llama3-70b", 64, 512) if quick else ("llama3-405b", 8192, 2048)
    search("llama3-8b", 8, "dgx-h100", global_batch=64)  # warm-up: compiled kernels, caches
    t = time.perf_counter()
    result = search(model, gpus, "dgx-h100", global_batch=batch)
    wall = time.perf_counter() - t
    rate = result.considered / wall
    return [Figure("plan", "plan_configs_per_s", rate, "1/s", rate * refs.cpu_s, "cpu",
                   target=None if quick else 200.0, better="higher",
                   counts=(f"{model} on {gpus:,} GPUs: {result.considered:,} configurations, "
                           f"{len(result.rows):,} fit, {wall:.2f} s"))]
