"""`dcsim plan`: the fastest parallelism settings for a transformer on N GPUs of one server type.

The search enumerates tensor parallelism (powers of two within a server, dividing the heads),
pipeline stages (dividing the GPUs left; layers split evenly, or Megatron-style with lighter
first and last stages when they do not divide), interleaving (1, 2, 4 virtual stages),
data parallelism (the rest), micro-batches (1, 2, 4, 8) and recomputation (none, selective,
full), with ZeRO-1 (Megatron's distributed optimizer; ZeRO-3 too when there is no pipeline)
and sequence parallelism with tp > 1. Each candidate is a job the scenario schema accepts; its
memory is checked first (the engine's rule: it must fit the GPU), and only those that fit are
timed, by the same step model and network as `dcsim run`, alone on an empty cluster of the
smallest number of servers. Pruned: a configuration whose memory does not fit is not timed,
and each fitting one costs one step estimate (~1-4 ms), so a few thousand take seconds.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dcsim import catalog
from dcsim.errors import Problem, ScenarioError
from dcsim.perf.memory import memory_breakdown
from dcsim.scenario import GptModel, JobSpec
from dcsim.world import World, build_world, scenario_from_dict

__all__ = ["PlanResult", "plan", "stage_split"]

MICRO_BATCHES = (1, 2, 4, 8)
MAX_GPUS = 131_072  # (the search builds a cluster of that many)
EXPERT_PARALLEL = (1, 2, 4, 8, 16, 32, 64)  # (MoE models only)
VIRTUAL_STAGES = (1, 2, 4)
RECOMPUTE = ("none", "selective", "full")


@dataclass
class PlanResult:
    model: str
    gpus: int
    server: str
    gpu_type: str
    global_batch: int
    precision: str
    seq_len: int
    rows: list[dict[str, Any]]  # the configurations that fit, fastest first
    considered: int = 0
    skipped: Counter = field(default_factory=Counter)  # why a combination is no configuration
    rejected: Counter = field(default_factory=Counter)  # why a configuration cannot run
    wall_s: float = 0.0


def stage_split(layers: int, chunks: int) -> dict[str, Any] | None:
    """The parallelism keys that split `layers` over `chunks` virtual stages: none when they
    divide evenly; else lighter first and last stages with the rest alike (Llama 3 405B's 126
    on 16: 7 + 14 x 8 + 7); None if neither works."""
    if layers % chunks == 0:
        return {}
    if chunks < 3:
        return None
    each = -(-layers // chunks)
    ends = layers - (chunks - 2) * each
    if ends < 0 or ends % 2 or ends // 2 > each:
        return None
    return {"first_stage_layers": ends // 2, "last_stage_layers": ends // 2}


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def plan(model: str, gpus: int, server: str, global_batch: int = 1024,
         precision: str = "bf16", max_pp: int = 64, seq_len: int | None = None,
         progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """Every parallelism setting of `model` (a preset name; `seq_len`: its sequences, if not
    the preset's) on `gpus` GPUs of `server` that fits in memory, with its predicted
    iteration time, MFU and memory; fastest first. Sequences longer than 16K tokens are also
    split over context-parallel ranks (cp 2-16). `progress(done, total)` after each
    configuration tried."""

    presets = catalog.model_presets()
    servers = catalog.servers()
    problems = []
    if model not in presets:
        problems.append(Problem("plan", None, "MODEL", f"unknown model preset {model!r}; "
                                f"valid: {', '.join(sorted(presets))}"))
    elif presets[model].get("kind") not in ("gpt", "bert"):
        problems.append(Problem("plan", None, "MODEL", f"{model} is a {presets[model]['kind']} "
                                f"model; plan searches transformer parallelism"))
    if server in servers and not catalog.gpus()[servers[server].gpu].supports(precision):
        have = ", ".join(catalog.gpus()[servers[server].gpu].peak_flop_s)
        problems.append(Problem("plan", None, "--precision", f"{servers[server].gpu} has no "
                                f"{precision} math; it has {have}"))
    if server not in servers:
        problems.append(Problem("plan", None, "--server", f"unknown server type {server!r}; "
                                f"valid: {', '.join(sorted(servers))}"))
    for key, value, top in (("--gpus", gpus, MAX_GPUS), ("--global-batch", global_batch, 10**9),
                            ("--seq-len", seq_len or 1, 10**7)):
        if not 1 <= value <= top:
            problems.append(Problem("plan", None, key, f"{value} is outside 1..{top:,}"))
    if problems:
        raise ScenarioError(problems)
    box = servers[server]
    per_server = box.gpus_per_server
    if gpus % per_server and gpus > per_server:
        raise ScenarioError([Problem("plan", None, "--gpus", f"{gpus} GPUs is not a whole "
                                     f"number of {server} servers ({per_server} GPUs each)")])
    world = build_world(scenario_from_dict({
        "name": "plan", "seed": 0,
        "cluster": {"servers": [{"type": server, "count": max(1, -(-gpus // per_server))}]},
        "workload": {"jobs": []}}))
    gpu_type = box.gpu
    m = GptModel(**{**presets[model], **({"seq_len": seq_len} if seq_len else {})}, name=model)
    cps = [c for c in (1, 2, 4, 8, 16) if c == 1 or (m.seq_len > 16384
                                                       and m.seq_len % (2 * c) == 0)]
    result = PlanResult(model, gpus, server, gpu_type, global_batch, precision, m.seq_len, [])
    t0 = time.perf_counter()
    candidates = _candidates(result, m, gpus, per_server, global_batch, cps, max_pp)
    for k, par in enumerate(candidates):
        _try(result, world, m, precision, global_batch, par)
        if progress is not None:
            progress(k + 1, len(candidates))
    # recomputation that changes nothing (selective, with flash attention) is not listed apart
    seen, rows = set(), []
    for r in result.rows:
        key = tuple(v for k, v in r.items() if k != "recompute")
        if key not in seen:
            seen.add(key)
            rows.append(r)
    result.rows = sorted(rows, key=lambda r: (r["iteration_s"], r["memory_gb"]))
    result.wall_s = time.perf_counter() - t0
    return result


def _candidates(result: PlanResult, m, gpus: int, per_server: int, global_batch: int,
                cps: list[int], max_pp: int) -> list[dict[str, Any]]:
    """The parallelism settings to try, in search order; what is no configuration at all is
    counted in `result.skipped`, with why."""
    out = []
    tps = [t for t in (1, 2, 4, 8, 16, 32, 64) if t <= per_server and m.heads % t == 0]
    for tp, cp in ((t, c) for t in tps for c in cps):
        if gpus % (tp * cp):
            continue
        for pp in _divisors(gpus // (tp * cp)):
            if pp > min(max_pp, m.layers):
                continue
            dp = gpus // (tp * cp * pp)
            for v in VIRTUAL_STAGES if pp > 1 else (1,):
                split = stage_split(m.layers, pp * v)
                if split is None:
                    result.skipped[f"layers do not split over {pp} x {v} stages"] += 1
                    continue
                for mb in MICRO_BATCHES:
                    if global_batch % (dp * mb):
                        result.skipped["global batch not divisible by dp x micro-batch"] += 1
                        continue
                    if v > 1 and (global_batch // (dp * mb)) % pp:
                        result.skipped["interleaving needs micro-batches a multiple of pp"] += 1
                        continue
                    # a mixture of experts: its experts split over ep of the dp ranks
                    eps = [e for e in EXPERT_PARALLEL if m.moe_experts and e <= dp
                           and dp % e == 0 and m.moe_experts % e == 0] or [1]
                    for zero in (1, 3) if pp == 1 and dp > 1 else (1,):
                        out += [{"tp": tp, "cp": cp, "pp": pp, "dp": dp, "ep": ep,
                                 "micro_batch": mb, "virtual_stages": v, "recompute": rc,
                                 "zero": zero, "sequence_parallel": tp > 1, **split}
                                for ep in eps for rc in RECOMPUTE]
    return out


def _try(result: PlanResult, world: World, m: GptModel, precision: str,
         global_batch: int, par: dict[str, Any]) -> None:
    result.considered += 1
    try:
        spec = JobSpec.model_validate({"name": "plan", "model": m, "precision": precision,
                                        "global_batch": global_batch, "iterations": 1,
                                        "parallelism": par})
    except ValueError as exc:  # (pydantic's ValidationError is a ValueError)
        errors = getattr(exc, "errors", None)
        why = errors()[0]["msg"] if errors else str(exc)
        result.skipped[why.removeprefix("Value error, ")] += 1
        return
    gpu = world.cluster.gpu_specs[result.gpu_type]
    need = memory_breakdown(spec)
    if need.total > gpu.memory_bytes:
        result.rejected["out of memory"] += 1
        return
    est, reason = world.estimate_alone(spec)
    if est is None:
        result.rejected[reason.split(":")[0]] += 1
        return
    tokens = global_batch * m.seq_len
    result.rows.append({
        **{k: par[k] for k in ("tp", "cp", "pp", "dp", "ep", "virtual_stages", "micro_batch",
                               "recompute", "zero")},
        "stages": "+".join(str(x) for x in _compact(spec.parallelism.chunk_layers(m.layers))),
        "iteration_s": est.iteration_s, "tokens_per_s": tokens / est.iteration_s,
        "mfu": est.mfu, "bubble_s": est.bubble_s, "memory_gb": need.total / 1e9})


def _compact(layers: list[int]) -> list[str]:
    """[7, 8, 8, 8, 7] -> ['7', '3x8', '7']."""
    out: list[str] = []
    k = 0
    while k < len(layers):
        j = k
        while j < len(layers) and layers[j] == layers[k]:
            j += 1
        out.append(str(layers[k]) if j - k == 1 else f"{j - k}x{layers[k]}")
        k = j
    return out


def describe(result: PlanResult, top: int = 10) -> str:
    """The table `dcsim plan` prints."""
    lines = [f"{result.model} on {result.gpus:,} x {result.gpu_type} ({result.server}), global "
             f"batch {result.global_batch:,} sequences of {result.seq_len:,}, {result.precision}: "
             f"{result.considered:,} configurations, {len(result.rows):,} fit "
             f"({result.wall_s:.1f} s)"]
    if result.rejected:
        lines.append("  not run: " + ", ".join(f"{n:,} {why}" for why, n in
                                               result.rejected.most_common()))
    if not result.rows:
        lines.append("no configuration fits: try more GPUs, a larger GPU, or a smaller batch")
        return "\n".join(lines)
    head = (f"{'tp':>3}{'cp':>4}{'pp':>4}{'v':>3}{'dp':>6}{'ep':>4}{'mb':>4} {'recompute':<10}"
            f"{'zero':>5}"
            f" {'stages':<14}{'iter s':>9}{'tokens/s':>12}{'MFU':>7}{'bubble s':>9}{'mem GB':>8}")
    lines.append(head)
    for r in result.rows[:top]:
        lines.append(f"{r['tp']:>3}{r['cp']:>4}{r['pp']:>4}{r['virtual_stages']:>3}{r['dp']:>6}"
                     f"{r['ep']:>4}{r['micro_batch']:>4} {r['recompute']:<10}{r['zero']:>5} "
                     f"{r['stages']:<14}{r['iteration_s']:>9.3f}{r['tokens_per_s']:>12,.0f}"
                     f"{r['mfu']:>7.1%}{r['bubble_s']:>9.3f}{r['memory_gb']:>8.1f}")
    return "\n".join(lines)
