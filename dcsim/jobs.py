"""The engine's mutable per-job state and the job lifecycle.

submitted -> queued -> running <-> preempted -> completed | failed | rejected
(a preempted job waits in the queue until it runs again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import simpy

from dcsim.metrics import JobRecord
from dcsim.perf.step import StepEstimate
from dcsim.policies.views import JobView, Placement
from dcsim.scenario import JobSpec

__all__ = ["Status", "JobState", "Stop", "Reestimate"]

EPS_PROGRESS = 1e-6  # an iteration whose transfer is still in flight counts as not finished


class Status(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    RUNNING = "running"
    PREEMPTED = "preempted"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Stop:
    """Interrupt cause: the job leaves its GPUs (preemption, failure)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reestimate:
    """Interrupt cause: something that sets the job's speed changed; keep progress, recompute."""

    reason: str


@dataclass(eq=False)
class JobState:
    job_id: int
    spec: JobSpec
    status: Status = Status.SUBMITTED
    reason: str = ""
    gpu_types: tuple[str, ...] = ()
    placement: Placement | None = None
    estimate: StepEstimate | None = None
    process: simpy.Process | None = None
    iterations_done: float = 0.0
    first_start_s: float = math.nan
    end_s: float = math.nan
    run_s: float = 0.0
    progress_cap: float = math.inf  # timed network: the iteration in flight is not done yet
    preemptions: int = 0
    model_flop_done: float = 0.0
    # the segment in progress: started at seg_start_s with seg_done0 iterations done
    seg_start_s: float = 0.0
    seg_done0: float = 0.0
    waiting: bool = False  # the runner is in a timeout (a speed change must interrupt it)
    memory_bytes: float = math.nan  # memory per GPU, from admission
    alone_step_s: float = math.nan  # step time placed alone on an empty cluster (submission)
    queued_since_s: float = math.nan  # when it last entered the queue
    last_start_s: float = math.nan  # when its current or last run segment started
    gpu_type: str = ""  # the GPU type of its current or last placement
    hold_until_s: float = 0.0  # a restart's restore delay: no progress before this time
    restore_s: float = 0.0  # restore delays paid (checkpoint + restore after preemptions)
    # failures (dcsim/faults): interruptions, work lost (iterations, and their time), productive
    # time (running past restore holds, less lost work), warm-up owed at the next start
    interruptions: int = 0
    # interruptions in a row after which the job kept no more iterations than before
    stuck_interruptions: int = 0
    kept_iterations: float = 0.0  # the most iterations an interruption has let it keep
    lost_iterations: float = 0.0
    lost_s: float = 0.0
    work_s: float = 0.0
    warmup_due_s: float = 0.0
    # the power cap (W per GPU) the power-capped scheduler set for this run segment; inf: none
    power_cap_w: float = math.inf
    history: list[tuple[float, float, Placement]] = field(default_factory=list)
    # view fields fixed by (spec, gpu_types, alone_step_s): see `_static`
    _static_fields: tuple | None = field(default=None, init=False, repr=False)
    # a job not running: (static fields, the state its view reads, the view); see `view`
    _idle_view: tuple | None = field(default=None, init=False, repr=False)

    @property
    def remaining(self) -> float:
        return self.spec.iterations - self.iterations_done

    def progress_at(self, now_s: float) -> float:
        """Iterations done by now_s, counting the part of the current segment already run."""
        assert self.estimate is not None
        ran = now_s - max(self.seg_start_s, self.hold_until_s)
        done = self.seg_done0 + max(ran, 0.0) / self.estimate.iteration_s
        return min(done, self.progress_cap - EPS_PROGRESS)

    def record(self, gpu_type: str) -> JobRecord:
        """The job's row of the results' jobs table (columns: docs/metrics.md)."""
        spec, est = self.spec, self.estimate
        ended = self.status in (Status.COMPLETED, Status.FAILED)
        started = not math.isnan(self.first_start_s)
        peak = est.peak_flop_s if est else math.nan
        tflops = (self.model_flop_done / (self.run_s * spec.num_gpus) / 1e12 if self.run_s
                  else math.nan)
        return JobRecord(
            job_id=self.job_id, name=spec.name, model=spec.model.name or spec.model.kind,
            user=spec.user or "", virtual_cluster=spec.virtual_cluster or "",
            num_gpus=spec.num_gpus, gpu_type=gpu_type,
            precision=spec.precision, submit_s=spec.arrival_s,
            start_s=self.first_start_s, end_s=self.end_s if ended else math.nan,
            jct_s=self.end_s - spec.arrival_s if ended else math.nan,
            queue_s=self.first_start_s - spec.arrival_s if started else math.nan,
            run_s=self.run_s, status=self.status.value, reason=self.reason,
            iterations=spec.iterations, iterations_done=self.iterations_done,
            iteration_time_s=(self.run_s / self.iterations_done if self.iterations_done
                              else math.nan),
            achieved_tflops_per_gpu=tflops, mfu=tflops * 1e12 / peak if started else math.nan,
            preemptions=self.preemptions,
            step_compute_s=est.compute_s if est else math.nan,
            step_tp_comm_s=est.tp_comm_s if est else math.nan,
            step_bubble_s=est.bubble_s if est else math.nan,
            step_dp_comm_s=est.dp_comm_s if est else math.nan,
            step_optimizer_s=est.optimizer_s if est else math.nan,
            step_data_stall_s=est.data_stall_s if est else math.nan,
            step_overhead_s=est.overhead_s if est else math.nan,
            memory_gb=self.memory_bytes / 1e9,
            alone_s=self.alone_s,
            slowdown=(self.end_s - spec.arrival_s) / self.alone_s if ended else math.nan,
            restore_s=self.restore_s,
            interruptions=self.interruptions,
            lost_iterations=self.lost_iterations,
            lost_s=self.lost_s,
            productive_s=self.work_s,
            step_source=est.source if est else "",
            due_s=self.due_s if math.isfinite(self.due_s) else math.nan,
            late_s=self.late_s,
        )

    @property
    def due_s(self) -> float:
        """When the job should be finished (its `deadline_s` after arrival, or `deadline_slack`
        times its run time alone after arrival); inf without a deadline, NaN while a slack
        deadline's run time alone is unknown."""
        spec = self.spec
        if spec.deadline_s is not None:
            return spec.arrival_s + spec.deadline_s
        if spec.deadline_slack is not None:
            return spec.arrival_s + spec.deadline_slack * self.alone_s
        return math.inf

    @property
    def late_s(self) -> float:
        """How late it finished (end - due; > 0 a miss); inf if it has a deadline and did not
        complete (failed, rejected or still open at the end of the run); NaN without one."""
        spec = self.spec
        if spec.deadline_s is None and spec.deadline_slack is None:
            return math.nan
        if self.status is not Status.COMPLETED or not math.isfinite(self.due_s):
            return math.inf
        return self.end_s - self.due_s

    @property
    def alone_s(self) -> float:
        """Estimated run time alone: iterations x the step time placed alone (NaN if never
        admitted)."""
        return self.spec.iterations * self.alone_step_s if self.spec.iterations else math.nan

    def view(self, now_s: float) -> JobView:
        """What policies see of the job at `now_s`. The engine builds a view per queued job
        at every round and per running job at every decision instant, so this is on its hot
        path: the fields fixed by the spec, the admitted GPU types and the step time alone are
        read once (`_static`), and a job not running, whose view does not depend on `now_s`,
        gets the same view object back until its state changes."""
        static = self._static()
        if self.status is not Status.RUNNING:
            state = (self.iterations_done, self.run_s, self.queued_since_s, self.last_start_s)
            cached = self._idle_view
            if cached is None or cached[0] is not static or cached[1] != state:
                cached = self._idle_view = (static, state, self._view(static, now_s, False))
            return cached[2]
        return self._view(static, now_s, True)

    def _view(self, static: tuple, now_s: float, running: bool) -> JobView:
        (job_id, name, num_gpus, gpu_types, submit_s, priority, iterations, user,
         virtual_cluster, alone_s, due_s, deferrable) = static
        service = self.run_s
        if running:
            service += now_s - self.seg_start_s
            assert self.estimate is not None
            remaining_s = ((iterations - self.progress_at(now_s)) * self.estimate.iteration_s
                           + max(self.hold_until_s - now_s, 0.0))
        else:  # (a duration job placed before its iterations are known has no estimate)
            remaining_s = (self.remaining * self.alone_step_s if iterations else math.nan)
        return JobView(job_id, name, num_gpus, gpu_types, submit_s, priority, running,
                       iterations, self.iterations_done, service * num_gpus, user,
                       virtual_cluster, alone_s, remaining_s, service, self.queued_since_s,
                       self.last_start_s, self.gpu_type if running else "", due_s,
                       deferrable)

    def _static(self) -> tuple:
        """The view's fields fixed by (spec, gpu_types, alone_step_s), rebuilt when one of
        them is replaced (the engine sets them at submission)."""
        cached = self._static_fields
        if (cached is None or cached[0] is not self.spec or cached[1] is not self.gpu_types
                or cached[2] != self.alone_step_s):  # (NaN != NaN: rebuilt until set)
            spec = self.spec
            fields = (self.job_id, spec.name, spec.num_gpus, self.gpu_types, spec.arrival_s,
                      spec.priority, spec.iterations, spec.user or "",
                      spec.virtual_cluster or "", self.alone_s, self.due_s,
                      spec.deferrable)
            cached = self._static_fields = (spec, self.gpu_types, self.alone_step_s, fields)
        return cached[3]
