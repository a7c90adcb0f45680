"""Inference serving speed (docs/serving.md, docs/performance.md#serving).

- `conv_hour_8_replicas_s`: the Azure LLM inference trace 2023's conversation hour (19,366
  requests) on 8 Llama 3 8B replicas on H100s, `Simulation.run` in process after one warm-up
  run (numba's cached kernel loaded); target 10 s.
- `day_1000rps_64_replicas_s`: 1,000 Poisson requests/s on 64 replicas for a simulated day
  (~86 million requests, without the per-request table: `outputs.requests: false`), from
  building the simulation to its results; target 60 s. The full run simulates the whole day
  (~13 GB at its peak); quick runs 120 and 600 simulated seconds and adds the difference's
  rate for the rest of the day (the work grows with the requests and iterations, so linearly in
  the simulated time at a steady load).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

from benchmarks.bench_reference import ROOT, Figure, References

__all__ = ["serving"]

TRACE = ROOT / "data" / "traces" / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv"


def _scenario(replicas: int, requests: dict) -> dict:
    return {"name": "bench-serving", "seed": 0,
            "cluster": {"servers": [{"type": "dgx-h100", "count": -(-replicas // 8)}]},
            "workload": {"jobs": []},
            "services": [{"name": "chat", "model": "llama3-8b", "gpu_type": "h100-sxm5-80gb",
                          "replicas": replicas, "requests": requests,
                          "slo": {"ttft_s": 0.5, "tpot_s": 0.05}, "drain_s": 120}]}


def _run_s(data: dict, build: bool = False) -> tuple[float, int]:
    """Seconds of `Simulation.run` (with `build`: from the scenario dict on) and requests."""
    from dcsim import scenario_from_dict
    from dcsim.engine.simulation import Simulation

    t = time.perf_counter()
    sim = Simulation(scenario_from_dict(data))
    if not build:
        t = time.perf_counter()
    res = sim.run()
    return time.perf_counter() - t, int(res.summary()["requests_total"])


def serving(refs: References, quick: bool, out_dir: Path) -> list[Figure]:
    conv = _scenario(8, {"kind": "trace", "path": str(TRACE), **({"limit": 2000} if quick
                                                                  else {})})
    _run_s(conv)  # warm-up: loads the compiled kernel
    hour_s, n = _run_s(conv)

    def day(seconds: float) -> dict:
        data = _scenario(64, {"kind": "poisson", "rate_per_s": 1000, "duration_s": seconds,
                              "prompt_tokens": {"mean": 1000, "sigma": 0.8, "max": 6000},
                              "output_tokens": {"mean": 200, "sigma": 0.8, "max": 1500}})
        data["outputs"] = {"requests": False}
        return data

    stretch = 600.0 if quick else 86_400.0
    day_s, m = _run_s(day(stretch), build=True)
    if quick:  # the rest of the day at the rate between 120 and 600 simulated seconds
        short_s, _ = _run_s(day(120.0), build=True)
        day_s += (day_s - short_s) * (86_400 - stretch) / (stretch - 120.0)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # (Linux: kB)
    return [
        Figure("serving", "conv_hour_8_replicas_s", hour_s, "s", hour_s / refs.cpu_s, "cpu",
               target=None if quick else 10.0,
               counts=f"{n:,} requests, Simulation.run, warm"),
        Figure("serving", "day_1000rps_64_replicas_s", day_s, "s", day_s / refs.cpu_s, "cpu",
               target=None if quick else 60.0,
               counts=(f"{m:,} requests in {stretch:g} s simulated"
                       + (", extrapolated to the day" if quick else "")
                       + f"; process peak {peak_gb:.1f} GB")),
    ]
