"""The storage and checkpoint ledger of a run: per job, the data and checkpoint plans of its
current run, the iterations it restored from, and its storage totals (stall and checkpoint
time, bytes read and written per tier, checkpoints taken) for jobs.csv and the summary.

The engine tells it what happened (a run restored, plans made, a segment closed); it keeps the
books and answers what the last completed checkpoint saved. No SimPy, no policy."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

from dcsim.storage import CheckpointPlan, DataPlan

__all__ = ["Ledger", "EPS"]

EPS = 1e-9  # as the engine's: a checkpoint boundary reached up to rounding counts


class _Progress(Protocol):
    """What the ledger reads of a job's step estimate."""

    data_stall_s: float
    checkpoint_s: float


class Ledger:
    def __init__(self) -> None:
        self._io: dict[int, dict[str, float]] = {}  # per job: storage totals (jobs.csv)
        self._data_plan: dict[int, DataPlan] = {}
        self._ckpt_plan: dict[int, CheckpointPlan] = {}
        self._base: dict[int, float] = {}  # iterations the current run restored from

    # ------------------------------------------------------------------ what happened
    def restored(self, job_id: int, iterations: float) -> None:
        """A run of the job starts from `iterations` (checkpoint multiples count from there)."""
        self._base[job_id] = iterations

    def plans(self, job_id: int, data: DataPlan | None, ckpt: CheckpointPlan | None) -> None:
        """The running job's current data and checkpoint plans (None: unchanged)."""
        if data is not None:
            self._data_plan[job_id] = data
        if ckpt is not None:
            self._ckpt_plan[job_id] = ckpt

    def add(self, job_id: int, key: str, value: float) -> None:
        """Add to one of the job's totals (e.g. `read_pfs` bytes of a checkpoint restore)."""
        io = self._io.setdefault(job_id, {})
        io[key] = io.get(key, 0.0) + value

    def opened(self, job_id: int) -> None:
        """The job uses storage: it has totals (zeros until something is added)."""
        self._io.setdefault(job_id, {})

    def segment(self, job_id: int, step: _Progress, start: float, done: float) -> None:
        """A run segment from `start` to `done` iterations closed: its stall and checkpoint
        time (amortized per iteration), bytes read per tier, checkpoints written."""
        iters = done - start
        self.add(job_id, "data_stall_s", iters * step.data_stall_s)
        self.add(job_id, "checkpoint_s", iters * step.checkpoint_s)
        data = self._data_plan.get(job_id)
        if data is not None:
            self.add(job_id, "read_dram", iters * data.bytes_dram)
            self.add(job_id, "read_nvme", iters * data.bytes_nvme)
            self.add(job_id, f"read_{data.shared_tier}", iters * data.bytes_shared)
        plan = self._ckpt_plan.get(job_id)
        if plan is not None and math.isfinite(plan.every_iterations):
            base, k = self._base.get(job_id, 0.0), plan.every_iterations
            n = math.floor((done - base) / k + EPS) - math.floor((start - base) / k + EPS)
            self.add(job_id, "checkpoints", n)
            self.add(job_id, f"write_{plan.spec.tier}", n * plan.size_bytes)

    # ------------------------------------------------------------------ questions
    def last_checkpoint(self, job_id: int, done: float, iteration_s: float) -> float:
        """Iterations saved by the running job's last completed checkpoint, `done` iterations
        in: the last multiple of its checkpoint interval (counted from where it restored)
        whose write has finished (async: the write takes write_s after the snapshot), else the
        point it restored from (no checkpoint configured: its progress since is all lost)."""
        base = self._base.get(job_id, 0.0)
        plan = self._ckpt_plan.get(job_id)
        if plan is None or not math.isfinite(plan.every_iterations):
            return base
        lag = plan.write_s / iteration_s if plan.spec.mode == "async" else 0.0
        k = plan.every_iterations
        return base + max(0.0, math.floor((done - base - lag) / k + EPS) * k)

    def checkpoint_pause(self, job_id: int, done: float, step: float) -> float:
        """The pause (s) for the checkpoints the job's last `step` iterations crossed, `done`
        iterations in (every `every_iterations` from the point it restored): per-iteration
        fidelity takes them explicitly."""
        plan = self._ckpt_plan.get(job_id)
        if plan is None or not math.isfinite(plan.every_iterations):
            return 0.0
        base, k = self._base.get(job_id, 0.0), plan.every_iterations
        after = math.floor((done - base) / k + EPS)
        before = math.floor((done - step - base) / k + EPS)
        return (after - before) * plan.pause_s

    def checkpoint_plan(self, job_id: int) -> CheckpointPlan | None:
        """The running job's current checkpoint plan, if it has one."""
        return self._ckpt_plan.get(job_id)

    def totals(self, job_id: int) -> Mapping[str, float]:
        """The job's storage totals (empty if it never used storage)."""
        return self._io.get(job_id, {})
