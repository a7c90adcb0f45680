"""Running a sweep: each point's scenario simulated in a worker (local processes or Ray tasks),
its record appended to the journal as it finishes, points already recorded skipped on resume,
and the table written at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.sweep.design import Plan, Point, plan_sweep
from dcsim.sweep.spec import Sweep, read_sweep
from dcsim.sweep.store import JOURNAL, RUNS, Journal, build_table, write_table

__all__ = ["Task", "SweepReport", "run_point", "run_pool", "run_sweep", "BACKENDS"]

ProgressFn = Callable[[int, int], None]
Done = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one point: plain values, cheap to send to a process."""

    point_id: str
    base_path: str
    overrides: tuple[str, ...]
    seed: int
    runs_dir: str | None  # save the full results under runs_dir/point_id


def run_point(task: Task) -> dict[str, Any]:
    """Simulate one point. An exception becomes the record's `error`, never a crash."""
    from dcsim.engine import simulate
    from dcsim.results import flatten_summary
    from dcsim.world import load_scenario

    start = time.perf_counter()
    metrics: dict[str, Any] = {}
    error = None
    try:
        scenario = load_scenario(task.base_path, list(task.overrides), task.seed)
        results = simulate(scenario)
        if task.runs_dir is not None:
            results.save(Path(task.runs_dir) / task.point_id, format=scenario.outputs.format)
        metrics = flatten_summary(results.summary())
    except Exception as exc:  # recorded in the table's `error` column; the sweep goes on
        error = f"{type(exc).__name__}: {exc}"
    return {"point_id": task.point_id, "metrics": metrics,
            "runtime_s": time.perf_counter() - start, "error": error}


def _watch_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """In a worker: exit as soon as the sweep's process is gone (killed, not just ended), so
    no worker outlives it holding memory."""
    import os

    while os.getppid() == parent_pid:
        time.sleep(every_s)
    os._exit(1)


def _worker_init(parent_pid: int) -> None:
    """Pool workers ignore Ctrl-C (the sweep's process handles it and stops the pool) and
    exit when their parent dies."""
    import signal
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()


def _local(tasks: list[Task], workers: int, address: str | None, done: Done) -> None:
    """One process per worker ("spawn": no state forked from the parent); one worker runs
    in this process (no start-up cost; docs/sweeps.md has the measurement)."""
    if address is not None:
        raise ValueError("--address is for the ray backend")
    if workers == 1:
        for task in tasks:
            done(run_point(task))
        return
    run_pool(tasks, workers, done)


def run_pool(tasks: list[Task], workers: int, done: Done, retries: int = 1,
             fn: Callable[[Task], dict[str, Any]] = run_point) -> None:
    """Run the tasks in a pool of `workers` fresh ("spawn") processes. A worker that dies
    (killed, out of memory) breaks the pool: the tasks it left unfinished run again in a new
    pool, `retries` times, before they are recorded as errors."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    left: list[Task] = []
    import os

    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                if retries > 0 and isinstance(future.exception(), BrokenProcessPool):
                    left.append(futures[future])
                    continue
                done(_result(future, futures[future]))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if left:
        run_pool(left, workers, done, retries - 1, fn)


def _result(future: Any, task: Task) -> dict[str, Any]:
    try:
        return future.result()
    except Exception as exc:  # the worker process died (killed, out of memory)
        return {"point_id": task.point_id, "metrics": {}, "runtime_s": float("nan"),
                "error": f"{type(exc).__name__}: {exc}"}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError('the ray backend needs Ray: pip install "dcsim[ray]"') from None
    return ray


def _ray(tasks: list[Task], workers: int, address: str | None, done: Done) -> None:
    """One Ray task per point, gathered with `ray.wait` as they finish. Without `address`, a
    local Ray instance with `workers` CPUs is started and stopped here."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address is None:
            options["num_cpus"] = workers
        ray.init(address=address, **options)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(run_point)
        pending = {remote.remote(task): task for task in tasks}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            task = pending.pop(ready[0])
            try:
                done(ray.get(ready[0]))
            except ray.exceptions.RayError as exc:  # the worker died
                done({"point_id": task.point_id, "metrics": {}, "runtime_s": float("nan"),
                      "error": f"{type(exc).__name__}: {exc}"})
    finally:
        if started:
            ray.shutdown()


BACKENDS: dict[str, Callable[[list[Task], int, str | None, Done], None]] = {
    "local": _local, "ray": _ray}


@dataclass
class SweepReport:
    """How a `run_sweep` call went (also in the returned frame's `attrs["sweep"]`)."""

    total: int = 0  # points in the design
    run: int = 0  # simulated by this call
    skipped: int = 0  # already recorded in the journal (resumed)
    failed: int = 0  # rows of the table whose `error` is set
    wall_s: float = 0.0
    table: str = ""
    notes: list[str] = field(default_factory=list)


def _resume(plan: Plan, records: dict[str, dict[str, Any]], report: SweepReport,
            journal: Path) -> dict[str, dict[str, Any]]:
    """The records this call can keep: points of this design, run on the same base scenario
    and `set`, that did not fail (failed points are run again)."""
    wanted = {p.point_id for p in plan.points}
    foreign = [r for pid, r in records.items() if pid not in wanted]
    stale = [r for pid, r in records.items() if pid in wanted and r.get("context") != plan.context]
    failed = [r for pid, r in records.items() if pid in wanted and r.get("error")]
    if foreign:
        report.notes.append(f"{len(foreign)} point(s) recorded in {journal} are not in this "
                            "sweep's design (the sweep file changed): left out of the table")
    if stale:
        report.notes.append(f"{len(stale)} recorded point(s) ran on a different base scenario "
                            "or `set`: run again")
    if failed:
        report.notes.append(f"{len(failed)} point(s) that failed before: run again")
    if plan.duplicates:
        report.notes.append(f"{plan.duplicates} design point(s) drawn twice: run once")
    return {pid: r for pid, r in records.items()
            if pid in wanted and r.get("context") == plan.context and not r.get("error")}


def _tasks(plan: Plan, todo: Iterable[Point], out: Path) -> list[Task]:
    runs = str(out / RUNS) if plan.sweep.spec.save_runs else None
    return [Task(p.point_id, str(plan.sweep.base_path), tuple(plan.fixed + p.overrides()),
                 p.seed, runs) for p in todo]


def run_sweep(spec_or_path: Sweep | str | Path, out_dir: str | Path, workers: int = 1,
              backend: str = "local", address: str | None = None,
              progress: ProgressFn | None = None) -> pd.DataFrame:
    """Run every point of a sweep file (or `Sweep`) not yet recorded in `out_dir`, and return
    the table (one row per point, in point order); see docs/sweeps.md. The frame's
    `attrs["sweep"]` holds the counts (total, run, skipped, failed) and notes."""
    start = time.perf_counter()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if backend == "ray":
        _import_ray()  # before any work: say at once that it is missing
    sweep = spec_or_path if isinstance(spec_or_path, Sweep) else read_sweep(spec_or_path)
    plan = plan_sweep(sweep)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out / JOURNAL)
    report = SweepReport(total=len(plan.points))
    records = _resume(plan, journal.read(), report, journal.path)
    report.skipped = len(records)
    todo = [p for p in plan.points if p.point_id not in records]
    context = {p.point_id: p for p in todo}

    def done(result: dict[str, Any]) -> None:
        point = context[result["point_id"]]
        record = {"point_id": point.point_id, "factors": point.factors, "seed": point.seed,
                  "context": plan.context, **result}
        journal.append(record)
        records[point.point_id] = record
        report.run += 1
        if progress is not None:
            progress(report.skipped + report.run, report.total)

    if progress is not None:
        progress(report.skipped, report.total)
    if todo:
        BACKENDS[backend](_tasks(plan, todo, out), workers, address, done)
    frame = build_table(plan, records)
    report.table = str(write_table(frame, out))
    report.failed = int(frame["error"].notna().sum())
    report.wall_s = time.perf_counter() - start
    frame.attrs["sweep"] = asdict(report)
    return frame
