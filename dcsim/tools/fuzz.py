"""A fuzzer for bad input: valid scenarios, mutated, run through `dcsim run` in-process.

Every case must end in one of two ways (issue 14):
- exit 0, with every job accounted for: the summary's counts add up, jobs.csv has every job
  read, and every job not completed has a reason;
- exit 2, with a located message (`file:line: ...` or `file: ...`) and no traceback;
within `TIME_LIMIT_S` and without raising the process's peak memory by `MEMORY_LIMIT_GB`.
Anything else (exit 1 "internal error", a traceback, a hang, a lost job, too much memory) is
a defect, reported with the case's mutations so it can be replayed.

Mutations act on the parsed base scenario: a value set to 0, a negative, NaN, infinity, 1e30,
a huge integer, a wrong type, null; a key removed or an unknown one added; or on the file's
bytes: a Latin-1 byte, a NUL, a byte-order mark, a cut-off end, a key given twice.

    python -m dcsim.tools.fuzz --cases 1000          # the long run (docs/bad-input.md)
    python -m dcsim.tools.fuzz --replay 17           # one case again, its outcome in full

The short run is tests/test_fuzz.py (hypothesis draws the mutations).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["BASES", "VALUES", "Mutation", "Outcome", "leaf_paths", "mutate", "run_case",
           "random_mutations", "main"]

TIME_LIMIT_S = 60.0  # a case that runs longer is a hang
MEMORY_LIMIT_GB = 4.0  # a case that raises the process's peak memory by more is a defect

# Small valid scenarios that between them reach most of the schema; each bounded by
# engine.max_events so that a mutation that makes a run long still ends.
BASES: dict[str, str] = {
    "jobs": """\
name: fuzz-jobs
seed: 3
horizon_s: 20000
cluster:
  servers:
    - {type: dgx-a100-80gb, count: 2}
    - {name: pcie, count: 1, gpus_per_server: 4, gpu: a100-sxm4-80gb, host_memory_gb: 512,
       nics: [{type: eth100, count: 2}], intra_node: pcie}
topology: {kind: leaf-spine, params: {servers_per_leaf: 2, spines: 2, oversubscription: 2}}
workload:
  jobs:
    - {name: gpt, arrival_s: 0, model: llama2-7b, parallelism: {tp: 2, dp: 4, micro_batch: 1},
       global_batch: 64, precision: bf16, iterations: 50, priority: 1, user: a}
    - {name: cnn, arrival_s: 30, model: resnet50, parallelism: {dp: 8, micro_batch: 64},
       global_batch: 512, precision: fp16, iterations: 200, user: b, deadline_s: 3600,
       deferrable: true}
    - {name: custom, arrival_s: 60, model: {kind: custom, params: 1.0e8,
       forward_flop_per_sample: 1.0e11}, parallelism: {dp: 2}, global_batch: 16,
       iterations: 300}
scheduler: {kind: las, params: {thresholds_gpu_s: [100.0, 1000.0]}}
placement: {kind: topology-aware}
engine: {fidelity: steady, network: shared, preemption_overhead_s: 5, max_events: 20000}
power: {pue: 1.3, carbon_g_per_kwh: 350, price_usd_per_mwh: -10, storage_w: 500,
        gpus: {a100-sxm4-80gb: {tdp_w: 380, idle_w: 55, cap_w: 300}},
        servers: {dgx-a100-80gb: {host_idle_w: 1500}}, switch_port_w: 10}
cost: {servers: {dgx-a100-80gb: 250000}, lifetime_years: {servers: 4},
       maintenance_per_year: 0.08, facility_usd_per_w: 10}
""",
    "faults": """\
name: fuzz-faults
seed: 5
cluster:
  servers: [{type: dgx-h100, count: 3}]
workload:
  generator:
    num_jobs: 6
    mean_interarrival_s: 120
    iterations_sigma: 0.5
    mix:
      - {weight: 2, job: {name: small, model: bert-large, parallelism: {dp: 8, micro_batch: 8},
                          global_batch: 256, iterations: 400}}
      - {weight: 1, job: {name: big, model: llama2-7b, parallelism: {tp: 2, dp: 4},
                          global_batch: 64, iterations: 100}}
  deadlines: {fraction: 0.5, slack: 3}
scheduler: {kind: srtf, params: {estimate_sigma: 0.5}}
faults:
  components:
    gpu: {distribution: weibull, mtbf_hours: 2, shape: 1.5}
    software: {mtbf_hours: 4}
  repair: {distribution: lognormal, mean_hours: 0.2, sigma: 0.5}
  spares: 1
  max_retries: 3
  stragglers: {persistent: {fraction: 0.2, factor: 1.3}}
checkpoint: {interval_s: 600, tier: pfs}
storage: {}
engine: {network: timed, max_events: 20000}
power: {zone: DE-LU, carbon_basis: lca, start: "2023-12-31T20:00:00+00:00",
        pue: [1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.3, 1.3, 1.3, 1.3, 1.3, 1.3, 1.4, 1.4, 1.4, 1.4,
              1.4, 1.4, 1.3, 1.3, 1.3, 1.3, 1.2, 1.2]}
cost: {storage_usd_per_tb: {pfs: 300}}
""",
    "philly": """\
name: fuzz-philly
seed: 7
cluster:
  servers: [{type: dgx-a100-80gb, count: 4}]
topology: {kind: fat-tree, params: {k: 4}}
workload:
  generator: {kind: philly, num_jobs: 20, load: 2.0, max_gpus: 16}
scheduler: {kind: themis, params: {lease_s: 300}}
engine: {fidelity: steady, max_events: 20000}
""",
}

# replacement values, as YAML text (so that .nan and .inf are what a user would type)
VALUES = ("0", "-1", "-0.5", ".nan", ".inf", "-.inf", "1.0e30", "1.0e-30", "9223372036854775808",
          "x", "''", "[]", "{}", "null", "true", "[1, 2]", "{kind: x}",
          # valid-looking edges: these pass the schema more often and reach the engine
          "1", "2", "3", "7", "0.001", "1.0e-9", "1000", "1.0e9", "10000", "0.5")
BYTE_EDITS = ("latin1", "nul", "bom", "truncate", "duplicate-key", "control-char")
SCALES = (0.0, 0.001, 0.5, 2.0, 10.0, 1000.0)  # "scale": a number times one of these


@dataclass(frozen=True)
class Mutation:
    """One edit: `kind` is "set" (leaf `path_index` := VALUES[value_index]), "scale" (the
    number at or after `path_index` times SCALES[value_index]: plausible values that reach
    the engine), "drop" (remove the key at `path_index`), "unknown" (add an unknown key beside
    it), or a BYTE_EDITS name (`value_index` places it in the file)."""

    kind: str
    path_index: int = 0
    value_index: int = 0


@dataclass
class Outcome:
    case: str
    exit_code: int | None  # None: it did not finish (hang)
    verdict: str  # "ok", "input-error", or a defect: "internal", "traceback", "hang", "lost"
    detail: str
    seconds: float

    @property
    def defect(self) -> bool:
        return self.verdict not in ("ok", "input-error")


def leaf_paths(data: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a parsed YAML tree, parents before children."""
    out: list[tuple] = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += leaf_paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += leaf_paths(v, (*prefix, i))
    return out


def _parent(tree: Any, path: tuple) -> Any:
    for part in path[:-1]:
        tree = tree[part]
    return tree


def mutate(base: str, mutations: list[Mutation]) -> bytes:
    """The base scenario's text with the mutations applied, as the bytes of a file."""
    tree = yaml.safe_load(base)
    byte_edits = []
    for m in mutations:
        if m.kind in BYTE_EDITS:
            byte_edits.append(m)
            continue
        paths = leaf_paths(tree)
        if not paths:
            continue
        path = paths[m.path_index % len(paths)]
        parent, key = _parent(tree, path), path[-1]
        if m.kind == "set":
            parent[key] = yaml.safe_load(VALUES[m.value_index % len(VALUES)])
        elif m.kind == "scale":
            numbers = [p for p in paths if _is_number(_parent(tree, p)[p[-1]])]
            if numbers:
                at = numbers[m.path_index % len(numbers)]
                holder, old = _parent(tree, at), _parent(tree, at)[at[-1]]
                new = old * SCALES[m.value_index % len(SCALES)]
                holder[at[-1]] = int(new) if isinstance(old, int) else new
        elif m.kind == "drop":
            del parent[key]
        elif m.kind == "unknown" and isinstance(parent, dict):
            parent[f"unknown_{m.value_index}"] = 1
    text = yaml.safe_dump(tree, sort_keys=False).encode("utf-8")
    for m in byte_edits:
        at = m.value_index % (len(text) + 1)
        if m.kind == "latin1":
            text = text[:at] + b"\xe9" + text[at:]
        elif m.kind == "nul":
            text = text[:at] + b"\x00" + text[at:]
        elif m.kind == "bom":
            text = b"\xef\xbb\xbf" + text
        elif m.kind == "truncate":
            text = text[:at]
        elif m.kind == "control-char":
            text = text[:at] + b"\x07" + text[at:]
        elif m.kind == "duplicate-key":
            text = text + b"seed: 1\n"
    return text


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def random_mutations(rng: Any, count: int | None = None) -> list[Mutation]:
    """1-3 mutations drawn with a numpy Generator (the long run's driver)."""
    kinds = ["set"] * 10 + ["scale"] * 10 + ["drop"] * 2 + ["unknown"] + list(BYTE_EDITS)
    n = count or int(rng.integers(1, 4))
    return [Mutation(kinds[int(rng.integers(len(kinds)))], int(rng.integers(1000)),
                     int(rng.integers(1000))) for _ in range(n)]


class _Timeout(BaseException):  # not caught by `except Exception` in the code under test
    pass


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(*_: Any) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_LOCATED = re.compile(r"^\S.*?(:\d+)?: \S")


def _accounted(out: Path, source_jobs: int | None) -> str:
    """Empty if every job is accounted for in the results at `out`, else what is missing."""
    from dcsim.results import load_results

    res = load_results(out)
    s, jobs = res.summary(), res.jobs
    problems = []
    if len(jobs) != s["jobs_accepted"]:
        problems.append(f"jobs.csv has {len(jobs)} rows, summary accepted {s['jobs_accepted']}")
    if s["jobs_accepted"] + s["rows_skipped"] != s["jobs_read"]:
        problems.append(f"read {s['jobs_read']} != accepted {s['jobs_accepted']} + skipped "
                        f"{s['rows_skipped']}")
    if source_jobs is not None and s["jobs_read"] != source_jobs:
        problems.append(f"the scenario lists {source_jobs} jobs, {s['jobs_read']} were read")
    ends = ("completed", "failed", "rejected", "unfinished")
    if sum(s[f"jobs_{k}"] for k in ends) + s["jobs_not_arrived"] != s["jobs_accepted"]:
        problems.append("status counts do not add up to the jobs accepted")
    silent = jobs[(jobs.status != "completed") & (jobs.reason == "")]
    if len(silent):
        problems.append(f"{len(silent)} jobs end {silent.status.iloc[0]!r} with no reason")
    # late_s is explicitly infinite for a job with a deadline that did not complete
    numbers = jobs.select_dtypes("number").drop(columns=["late_s"], errors="ignore")
    if (numbers == math.inf).any().any() or (numbers == -math.inf).any().any():
        problems.append("an infinite number in jobs.csv")
    if (jobs.achieved_tflops_per_gpu < 0).any():
        problems.append("negative achieved_tflops_per_gpu")
    return "; ".join(problems)


def run_case(name: str, data: bytes, workdir: Path, time_limit_s: float = TIME_LIMIT_S
             ) -> Outcome:
    """Run one mutated scenario through `dcsim run` and judge the outcome."""
    from dcsim.cli import main

    path = workdir / f"{name}.yaml"
    path.write_bytes(data)
    out = workdir / f"{name}-out"
    err = io.StringIO()
    peak0 = _peak_rss_gb()
    start = time.perf_counter()
    code: int | None = None
    try:
        with _time_limit(time_limit_s), contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", str(path), "--out", str(out), "--quiet", "--no-plots"])
    except _Timeout:
        return Outcome(name, None, "hang", f"no result within {time_limit_s:g} s",
                       time.perf_counter() - start)
    except BaseException as exc:  # main() must not raise: anything here is a defect
        return Outcome(name, None, "traceback", f"{type(exc).__name__}: {exc}",
                       time.perf_counter() - start)
    seconds = time.perf_counter() - start
    grown = _peak_rss_gb() - peak0
    if grown > MEMORY_LIMIT_GB:
        return Outcome(name, code, "memory", f"peak memory grew by {grown:.1f} GB", seconds)
    message = err.getvalue()
    if "Traceback" in message:
        return Outcome(name, code, "traceback", message[-2000:], seconds)
    if code == 0:
        try:
            jobs = _listed_jobs(data)
            lost = _accounted(out, jobs)
        except Exception as exc:  # results that cannot be read back are lost results
            lost = f"results unreadable: {type(exc).__name__}: {exc}"
        return Outcome(name, 0, "lost" if lost else "ok", lost, seconds)
    if code == 2:
        first = message.strip().splitlines()[0] if message.strip() else ""
        if not first or not _LOCATED.match(first):
            return Outcome(name, 2, "unlocated", message[:2000], seconds)
        return Outcome(name, 2, "input-error", first, seconds)
    return Outcome(name, code, "internal", message[:2000], seconds)


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _listed_jobs(data: bytes) -> int | None:
    """How many jobs the scenario lists inline (None for generators and traces)."""
    try:
        tree = yaml.safe_load(data.decode("utf-8"))
        jobs = tree["workload"]["jobs"]
        return len(jobs) if isinstance(jobs, list) else None
    except Exception:
        return None


def cases(count: int, seed: int = 0) -> Iterator[tuple[str, bytes, list[Mutation]]]:
    """The long run's cases: (name, file bytes, mutations), the same for the same seed."""
    import numpy as np

    rng = np.random.default_rng(seed)
    names = sorted(BASES)
    for i in range(count):
        base = names[int(rng.integers(len(names)))]
        muts = random_mutations(rng)
        yield f"case{i:05d}-{base}", mutate(BASES[base], muts), muts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dcsim.tools.fuzz", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replay", type=int, help="run case N only and print its outcome in full")
    p.add_argument("--json", help="write the outcomes here")
    args = p.parse_args(argv)
    outcomes: list[Outcome] = []
    verdicts: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dcsim-fuzz-") as tmp:
        for i, (name, data, muts) in enumerate(cases(args.cases if args.replay is None
                                                     else args.replay + 1, args.seed)):
            if args.replay is not None and i != args.replay:
                continue
            outcome = run_case(name, data, Path(tmp))
            outcomes.append(outcome)
            verdicts[outcome.verdict] += 1
            if outcome.defect or args.replay is not None:
                print(f"{name}: {outcome.verdict} (exit {outcome.exit_code}): "
                      f"{outcome.detail[:500]}\n  mutations: {muts}", flush=True)
            if (i + 1) % 50 == 0:
                print(f"[{i + 1}/{args.cases}] {dict(verdicts)}  "
                      f"{time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    defects = sum(1 for o in outcomes if o.defect)
    print(f"{len(outcomes)} cases: {dict(sorted(verdicts.items()))}; {defects} defects; "
          f"{time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps([o.__dict__ for o in outcomes], indent=1))
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
