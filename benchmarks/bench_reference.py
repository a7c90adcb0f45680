"""What every scale benchmark shares: the figure record, the reference workloads that the
figures are divided by (measured in the same run, so that machine speed cancels) and a child
process runner that measures a command's wall time and peak memory.

References (docs/performance.md#what-each-figure-counts):

- `cpu`: a fixed pure-Python workload (heap pushes and pops with dictionary updates, the kind of
  work a discrete-event loop does), best of 5, in seconds. A time figure's ratio is
  time / cpu ("reference units"); a rate's is rate x cpu (per reference unit).
- `python_start`: wall time of a bare `python -c pass` child (process start figures).
- `rss_base`: peak RSS of a child that imports dcsim's engine and its libraries and does
  nothing else (memory figures).
- `simpy`: raw SimPy timeouts per second (the engine-overhead figure, bench_engine).
"""

from __future__ import annotations

import heapq
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Figure", "References", "ChildRun", "cpu_reference_s", "measure_references",
           "run_child", "python_child"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure: its absolute value on this machine, the target it must meet (if
    any), and its ratio to a reference measured in the same run."""

    benchmark: str  # the --only name that produces it
    name: str
    value: float
    unit: str
    ratio: float
    ratio_to: str  # what the ratio divides by (a reference, or another figure)
    target: float | None = None
    better: str = "lower"  # lower: value <= target passes; higher: value >= target
    counts: str = ""  # what is counted, in a few words

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target

    def record(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True, slots=True)
class References:
    cpu_s: float  # the pure-Python reference workload, best of 5
    python_start_s: float  # `python -c pass`, best of 5
    rss_base_bytes: int  # peak RSS of a child that only imports the engine

    def record(self) -> dict:
        return asdict(self)


def reference_workload(n: int = 100_000) -> int:
    """The `cpu` reference: n heap pushes and pops and dictionary updates (deterministic)."""
    heap: list[tuple[int, int]] = []
    counts: dict[int, int] = {}
    for i in range(n):
        heapq.heappush(heap, ((i * 7919) % 1_000_003, i))
        counts[i & 1023] = counts.get(i & 1023, 0) + 1
    total = 0
    while heap:
        t, i = heapq.heappop(heap)
        total ^= t + i
    return total + len(counts)


def cpu_reference_s(repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        reference_workload()
        best = min(best, time.perf_counter() - t0)
    return best


@dataclass(frozen=True, slots=True)
class ChildRun:
    wall_s: float  # from start to exit, as the parent sees it
    cpu_s: float  # user + system CPU time of the child
    max_rss_bytes: int  # the child's peak resident set (getrusage ru_maxrss, Linux: KiB)
    stdout: str


def run_child(argv: list[str], cwd: Path = ROOT, timeout_s: float = 900.0) -> ChildRun:
    """Run argv to its end; its own rusage comes from os.wait4 (not RUSAGE_CHILDREN, which
    is the maximum over every child this process ever waited for)."""
    with tempfile.TemporaryFile(mode="w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        killer = threading.Timer(timeout_s, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{text[-3000:]}")
    return ChildRun(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text)


def python_child(code: str, timeout_s: float = 900.0) -> tuple[ChildRun, dict]:
    """Run `python -c code` (code prints one JSON object on its last line): the run and the
    object."""
    run = run_child([sys.executable, "-c", code], timeout_s=timeout_s)
    return run, json.loads(run.stdout.strip().splitlines()[-1])


def measure_references(repeats: int = 5) -> References:
    cpu = cpu_reference_s(repeats)
    start = min(run_child([sys.executable, "-c", "pass"]).wall_s for _ in range(repeats))
    base = run_child([sys.executable, "-c", "import dcsim.engine"])
    return References(cpu, start, base.max_rss_bytes)
