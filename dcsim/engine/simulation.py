"""The simulation engine: the only place that wires SimPy processes together.

Lifecycle: build (cluster, network, policies, workload) -> run (arrivals, a scheduling round on
every state change, one runner per job) -> collect (`Results`). A job's runner advances all its
remaining iterations in one event (steady-state fast-forward) unless something that affects it
changes, which interrupts it with a typed cause (`Stop` or `Reestimate`); with
`engine.fidelity: iteration` it yields once per iteration instead.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import networkx as nx
import numpy as np
import simpy

from dcsim import catalog
from dcsim.catalog import GpuSpec
from dcsim.engine.collect import collect
from dcsim.engine.ledger import Ledger
from dcsim.errors import SimulationError, UsageError
from dcsim.fabric.internals import INTERNAL_KINDS
from dcsim.fabric.network import RingPath
from dcsim.fabric.routing import Router
from dcsim.fabric.sharing import SharedFabric
from dcsim.fabric.timed import TimedFabric
from dcsim.faults.model import FaultModel
from dcsim.hardware import Cluster
from dcsim.jobs import JobState, Reestimate, Status, Stop
from dcsim.metrics import (
    Event,
    Execution,
    Level,
    LinkLevel,
    Recorder,
    Segment,
    TrainingRow,
)
from dcsim.perf import StepTimeModel
from dcsim.perf.calibrated import NOT_STEP_FIELDS
from dcsim.perf.measured import Entry, MeasuredStepModel
from dcsim.perf.memory import memory_breakdown
from dcsim.perf.profile import DeviceProfile, load_profile_file
from dcsim.perf.select import build_step_model
from dcsim.perf.step import StepEstimate
from dcsim.perf.tables import read_table
from dcsim.policies import PLACEMENTS, SCHEDULERS, JobView, Placement, ServerView
from dcsim.results import Results
from dcsim.rng import RandomStreams
from dcsim.scenario import JobSpec, Scenario
from dcsim.storage import (
    StorageModel,
    attach_storage,
    checkpoint_bytes,
    storage_node,
)
from dcsim.workload import build_workload
from dcsim.world.build import build_world

__all__ = ["Simulation", "simulate"]

EPS = 1e-9
# events at one simulated instant (or 50 per job, if more) after which the run is stuck, not busy
MAX_EVENTS_AT_ONE_INSTANT = 5_000_000
_TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.REJECTED)
STEP_PARTS = ("compute_s", "bubble_s", "dp_comm_s", "tp_comm_s", "optimizer_s", "data_stall_s",
              "overhead_s", "checkpoint_s")
ProgressFn = Callable[[int, int], None]
# Cache keys of per-job step times at submission: the step model's own key fields, less
# reference_gpu (it sets a duration job's iterations) and gpu_type (the key carries the admitted
# GPU types instead)
_NOT_STEP = (NOT_STEP_FIELDS - {"reference_gpu"}) | {"gpu_type"}


class Simulation:
    """One simulation of one scenario: build in the constructor, `run()` once."""

    def __init__(self, scenario: Scenario, step_model: StepTimeModel | None = None) -> None:
        _check_scenario_arg(scenario)
        self.scenario = scenario
        self.streams = RandomStreams(scenario.seed)
        self.env = simpy.Environment()
        self.world = build_world(scenario)  # validated by load_scenario
        self.cluster: Cluster = self.world.cluster
        self.network = self.world.network
        net = self.network
        self.storage = StorageModel(scenario, self.cluster.servers)
        attach_storage(net.detailed, self.storage.system)  # storage.pfs, storage.object nodes
        self.ledger = Ledger()  # storage and checkpoint books per job (engine/ledger.py)
        self.fabric = (SharedFabric(net.detailed, net.attach)
                       if scenario.engine.network == "shared" else None)
        self.timed = (TimedFabric(self.env, net.detailed, self._record_levels, net.attach)
                      if scenario.engine.network == "timed" else None)
        self.storage.reads_on_fabric = self.fabric is not None  # data reads are flows
        self._reshare_pending = False
        self._reshared: dict[int, float] = {}  # job -> when its demand last forced a re-share
        sched_cls = SCHEDULERS.get(scenario.scheduler.kind)
        self.scheduler = sched_cls(sched_cls.Params(**scenario.scheduler.params))
        self.scheduler.bind(self.streams)
        # which optional scheduler hooks are in use, as the class declares them (the rounds
        # skip the others' costs)
        self._gated = sched_cls.gates
        self._preempts = sched_cls.preempts
        self._timed_decisions = sched_cls.timed_decisions
        # a strict order fixed per job (FIFO): the queue kept as a heap, rounds look at its head
        strict = not (sched_cls.backfill or self._gated or self._preempts
                      or self._timed_decisions)
        # (only a key declared beside the `order` it stands for: a subclass that re-orders
        # without re-declaring the key gets the general rounds)
        order_cls = next(c for c in sched_cls.__mro__ if "order" in vars(c))
        self._static_key = (vars(order_cls).get("static_key") if strict else None)
        self._heap: list[tuple] = []  # (static key, job id) of queued jobs, with _static_key
        self._decision_at = math.inf  # the decision round planned (next_decision_s), if any
        # running jobs' views at the instant _rv_now (see _running_now)
        self._rv_now = math.nan
        self._rv: dict[int, JobView] = {}
        self._rv_list: list[JobView] | None = None
        self._rv_dirty: dict[int, None] = {}  # jobs started or stopped since (ordered)
        self._running_by_types: dict[tuple[str, ...], list[JobView]] = {}
        place_cls = PLACEMENTS.get(scenario.placement.kind)
        self.placement = place_cls(place_cls.Params(**scenario.placement.params))
        self.placement.bind(self.network, self.fabric or self.timed, self.streams)
        self._table_counts: list[dict] = []  # read/accepted/skipped per throughput table
        self.step_model = step_model or build_step_model(
            scenario.engine.step_model, self._profiles(), self._table_entries())
        self.workload = build_workload(scenario, self.streams)
        self.jobs = [JobState(i, spec) for i, spec in enumerate(self.workload.jobs)]
        self.recorder = Recorder()
        self._queue: dict[int, JobState] = {}
        self._running: dict[int, JobState] = {}
        self._round_pending = False
        self._finished = 0
        self._steady = scenario.engine.fidelity == "steady"
        self._last_change_s = 0.0  # time of the last state change (stale timeouts aside)
        self._stopped_by: str | None = None  # what cut the run short, other than the horizon
        self.cut_by = ""  # after the run: "horizon_s", "engine.max_events" or "" (ran to its end)
        self._reference_step_s: dict[tuple, float] = {}  # duration -> iterations conversions
        self._alone_step_s: dict[tuple, float] = {}  # step time alone, by spec and GPU types
        self._sources_of: dict[tuple, str] = {}  # measured jobs' step sources, same keys
        self._levels: np.ndarray | None = None  # links' last levels
        self._recorded = np.zeros(0, dtype=bool)  # which links go to the links table
        self._link_names: list[str] = []  # the fabric's directed links, by index
        # failures, repairs, spares, stragglers (scenario `faults`; dcsim/faults/model.py)
        self.faults = FaultModel(self, scenario.faults) if scenario.faults is not None else None

    def _table_entries(self) -> list[Entry] | None:
        """The entries of the scenario's throughput tables (None: no tables), in order."""
        if not self.scenario.engine.throughputs:
            return None
        entries: list[Entry] = []
        for src in self.scenario.engine.throughputs:
            read = read_table(self.scenario.resolve_path(src.path), src.format, src.gpus)
            self._table_counts.append(read.counts())
            entries += read.entries
        return entries

    def _profiles(self) -> dict[str, DeviceProfile]:
        """Device profiles from the scenario's `engine.profiles` files (later files win)."""
        out: dict[str, DeviceProfile] = {}
        for path in self.scenario.engine.profiles:
            out.update(load_profile_file(self.scenario.resolve_path(path)))
        return out

    # ------------------------------------------------------------------ run
    def run(self, progress: ProgressFn | None = None) -> Results:
        wall0 = time.perf_counter()
        self.env.process(self._arrivals())
        if self.faults is not None:
            self.faults.start()
        events = self._loop(progress)
        end_s = self._close_open_jobs()
        return collect(self, events, end_s, time.perf_counter() - wall0)

    def _loop(self, progress: ProgressFn | None) -> int:
        """Step events to the end, the horizon or `engine.max_events`. A NaN event time, or
        time that stops advancing, is a SimulationError, never a silent stop or a hang."""
        until = self.scenario.horizon_s if self.scenario.horizon_s is not None else math.inf
        limit = self.scenario.engine.max_events
        stuck_limit = max(MAX_EVENTS_AT_ONE_INSTANT, 50 * len(self.jobs))
        events = same = 0
        last_s = -math.inf
        while True:
            next_s = self.env.peek()
            if math.isnan(next_s):
                raise SimulationError(f"an event was scheduled at a NaN time after "
                                      f"t={self.env.now:g} s (please report this scenario)")
            if next_s == math.inf or next_s > until:
                break
            if limit is not None and events >= limit:
                self._stopped_by = f"engine.max_events ({limit:,}) reached"
                break
            same = same + 1 if next_s == last_s else 0
            if same > stuck_limit:
                raise SimulationError(f"simulated time stopped advancing at t={next_s:g} s: "
                                      f"{same:,} events at one instant (please report this "
                                      f"scenario)")
            last_s = next_s
            self.env.step()
            events += 1
            if progress is not None and events % 4096 == 0:
                progress(self._finished, len(self.jobs))
        if progress is not None:
            progress(self._finished, len(self.jobs))
        return events

    # ------------------------------------------------------------------ processes
    def _arrivals(self):
        for job in self.jobs:
            delay = job.spec.arrival_s - self.env.now
            if delay > 0:
                yield self.env.timeout(delay)
            self._submit(job)

    def _run_job(self, job: JobState):
        while True:
            job.seg_start_s, job.seg_done0 = self.env.now, job.iterations_done
            assert job.estimate is not None
            job.waiting = True  # from here on a change of speed must interrupt the runner
            try:
                hold_s = max(job.hold_until_s - self.env.now, 0.0)  # restore after preemption
                if self.timed is not None and self.timed.spans_servers(job.job_id):
                    if hold_s > 0:
                        yield self.env.timeout(hold_s)
                    yield from self._timed_iterations(job)
                elif self._steady:
                    yield self.env.timeout(hold_s + job.remaining * job.estimate.iteration_s)
                else:
                    if hold_s > 0:
                        yield self.env.timeout(hold_s)
                    while job.remaining > EPS:
                        step = min(1.0, job.remaining)
                        est = job.estimate
                        yield self.env.timeout(step * (est.iteration_s - est.checkpoint_s))
                        job.iterations_done += step
                        if (pause := self._checkpoint_pause(job, step)) > 0:
                            yield self.env.timeout(pause)  # checkpoints taken explicitly
                break
            except simpy.Interrupt as intr:
                if isinstance(intr.cause, Stop):
                    job.waiting = False
                    return  # _stop already accounted for the job
                assert isinstance(intr.cause, Reestimate)
                if self.env.active_process is not job.process or job.placement is None:
                    if self.env.active_process is job.process:
                        job.waiting = False
                    return  # stopped (maybe restarted) since: the Stop after this ends us
                if self.timed is not None:  # the iteration resumes with a new transfer
                    self.timed.cancel(job.job_id)
                self._account(job, keep_partial=True)
                job.estimate = self._estimate(job.spec, job.placement, job.job_id)
        job.waiting = False
        self._account(job, keep_partial=True, done=float(job.spec.iterations))
        self._release(job)
        job.status, job.end_s = Status.COMPLETED, self.env.now
        self._event(job, "completed", "")
        self._finished += 1
        self._request_round()

    def _timed_iterations(self, job: JobState):
        """engine.network: timed: each iteration computes, then moves its exposed data-parallel
        traffic over the fabric as flows (see dcsim.fabric.timed)."""
        assert self.timed is not None and job.estimate is not None and job.placement is not None
        est, ring = job.estimate, self.network.ring(job.placement.gpus_per_server())
        dp = job.spec.parallelism.dp
        latency_s = min(est.dp_comm_s, 2 * (dp - 1) * ring.latency_s)
        nbytes = (est.dp_comm_s - latency_s) * ring.bandwidth_byte_s  # at the ring's own rate
        compute_s = est.iteration_s - est.dp_comm_s + latency_s
        while job.remaining > EPS:
            step = min(1.0, job.remaining)
            job.progress_cap = job.iterations_done + step
            yield self.env.timeout(step * compute_s)
            yield self.timed.transfer(job.job_id, step * nbytes, ring.bandwidth_byte_s)
            self._account(job, keep_partial=True, done=job.iterations_done + step)
        job.progress_cap = math.inf

    # ------------------------------------------------------------------ state changes
    def _submit(self, job: JobState) -> None:
        self._event(job, "submitted", "")
        types, reason, job.memory_bytes = self._admit(job.spec)
        if not types:
            job.status, job.reason = Status.REJECTED, reason
            self._event(job, "rejected", reason)
            self._last_change_s = self.env.now
            self._finished += 1
            return
        job.gpu_types, job.status, job.queued_since_s = types, Status.QUEUED, self.env.now
        key = (job.spec.model_dump_json(exclude=_NOT_STEP), types)
        if job.spec.iterations is None:
            job.spec = job.spec.model_copy(update={"iterations": self._iterations_of(
                job.spec, types, key)})
        job.alone_step_s = self._alone_step(job.spec, types, key)
        if (measured := self._measured_model(job.spec)) is not None:
            self._event(job, "step-source", self._step_sources(measured, job.spec, types, key))
        self._enqueue(job)
        self._level()
        self._request_round()

    def _alone_step(self, spec: JobSpec, types: tuple[str, ...], key: tuple) -> float:
        """The job's step time placed alone on an empty cluster with the isolated network
        (the run time alone is iterations x this), cached by `key` (spec less the fields that
        do not change a step, and GPU types)."""
        step_s = self._alone_step_s.get(key)
        if step_s is None:
            step_s = self._estimate(spec, self._empty_placement(spec, types)).iteration_s
            self._alone_step_s[key] = step_s
        return step_s

    def _restore_delay_s(self, job: JobState) -> float:
        """Restore time a restarted job pays, holding its GPUs without progress: with
        checkpointing on, reading its checkpoint on its (new) placement (size / read bandwidth
        + latency, dcsim.storage); else `engine.preemption_overhead_s`."""
        if job.placement is not None and self.storage.checkpoint_spec(job.spec) is not None:
            plan = self.storage.plan_checkpoint(job.spec, self._allocs(job.placement),
                                                self._step_guess(job), self._job_mtbf_s(job),
                                                job.job_id)
            if plan is not None:
                return plan.read_s
        return self.scenario.engine.preemption_overhead_s

    def _job_mtbf_s(self, job: JobState) -> float:
        """The job's mean time between failures (s), for Young/Daly checkpoint intervals:
        inf without a failure model (then no periodic checkpoints are taken). With `faults`:
        1 / the summed configured rates of the component instances the job depends on
        (FaultModel.job_mtbf_s)."""
        return self.faults.job_mtbf_s(job) if self.faults is not None else math.inf

    def last_checkpoint(self, job: JobState) -> float:
        """Iterations saved by the job's last completed checkpoint now: for a job not running,
        its iterations done (what it restarts from); for a running one, the last multiple of
        its checkpoint interval (in iterations, from the point it restored) whose write has
        finished (async: the background write takes write_s after the snapshot), else the
        point it restored from (no checkpoint configured: its progress since is all lost)."""
        if job.status is not Status.RUNNING or job.estimate is None:
            return job.iterations_done
        return self.ledger.last_checkpoint(job.job_id, job.progress_at(self.env.now),
                                           job.estimate.iteration_s)

    def _iterations_of(self, spec: JobSpec, types: tuple[str, ...], key: tuple) -> int:
        """A duration-based job's iterations: as many as take `duration_s` alone on its
        reference GPU (else its first admissible type), placed on an empty cluster."""
        gpu_name = spec.reference_gpu or types[0]
        step_s = self._reference_step_s.get(key)
        if step_s is None:
            placement = self._empty_placement(spec, types)
            ring = self.network.ring(placement.gpus_per_server())
            step_s = self.step_model.estimate(spec, catalog.gpus()[gpu_name], ring).iteration_s
            self._reference_step_s[key] = step_s
        assert spec.duration_s is not None
        return max(1, round(spec.duration_s / step_s))

    def _admit(self, spec: JobSpec) -> tuple[tuple[str, ...], str, float]:
        """GPU types the job can ever run on, or none and why ("code: details"); and the
        job's memory per GPU (bytes)."""
        by_type = self.cluster.gpus_by_type
        wanted = [spec.gpu_type] if spec.gpu_type else list(by_type)
        need = memory_breakdown(spec)
        if (bad := self.storage.problem(spec)) is not None:
            return (), f"storage: {'.'.join(bad[0])}: {bad[1]}", need.total
        reasons = []
        ok = []
        for name in wanted:
            gpu = self.cluster.gpu_specs.get(name)
            if gpu is None:
                reasons.append(f"no-such-gpu: needs {name}; the cluster has {', '.join(by_type)}")
            elif not gpu.supports(spec.precision):
                reasons.append(f"unsupported-precision: {name} has no {spec.precision} support")
            elif by_type[name] < spec.num_gpus:
                reasons.append(f"insufficient-gpus: needs {spec.num_gpus} GPUs of type {name}; "
                               f"the cluster has {by_type[name]}")
            elif need.total > gpu.memory_bytes and not self._measured_on(spec, name):
                reasons.append(f"out-of-memory: needs {need.describe()}; {name} has "
                               f"{gpu.memory_bytes / 1e9:.1f} GB")
            else:
                ok.append(name)
        return tuple(ok), "; ".join(reasons), need.total

    def _step_sources(self, measured: MeasuredStepModel, spec: JobSpec,
                      types: tuple[str, ...], key: tuple) -> str:
        """Where a measured-model job's step times come from on each admitted GPU type:
        `measured` / `interpolated` (and the table entries), or `model` and why not."""
        text = self._sources_of.get(key)
        if text is None:
            parts = []
            for name in types:
                found = measured.lookup(spec, name)
                parts.append(f"{name}: {found.source} ({found.detail})" if found is not None
                             else f"{name}: model (calibrated; {measured.why_not(spec, name)})")
            text = self._sources_of[key] = "; ".join(parts)
        return text

    def _measured_on(self, spec: JobSpec, gpu_name: str) -> bool:
        """Whether the job's step times on `gpu_name` come from a throughput table (a
        measurement there shows that it fits: the memory model does not reject it)."""
        measured = self._measured_model(spec)
        return measured is not None and measured.lookup(spec, gpu_name) is not None

    def _measured_model(self, spec: JobSpec) -> MeasuredStepModel | None:
        """The measured-throughput model, if the job uses it."""
        model_of = getattr(self.step_model, "model_of", None)
        model = model_of(spec) if model_of is not None else self.step_model
        return model if isinstance(model, MeasuredStepModel) else None

    def _launch(self, job: JobState, placement: Placement) -> None:
        self.cluster.allocate(placement)
        del self._queue[job.job_id]
        self._running[job.job_id] = job
        job.placement, job.status = placement, Status.RUNNING
        job.waiting = False  # until its new runner starts: nothing may interrupt an old one
        job.last_start_s = self.env.now
        # the segment starts now, though the runner first runs later in this instant (a job
        # stopped in the round that launched it must account nothing)
        job.seg_start_s, job.seg_done0 = self.env.now, job.iterations_done
        job.gpu_type = self.cluster.servers[placement.server_ids[0]].gpu.name
        delay = self._restore_delay_s(job) if job.preemptions or job.interruptions else 0.0
        delay, job.warmup_due_s = delay + job.warmup_due_s, 0.0  # warm-up after a failure
        job.hold_until_s = self.env.now + delay
        self._rv_dirty[job.job_id] = None
        if self.fabric is not None and self.fabric.add(job.job_id, dict(placement.allocations),
                                                   job.spec.parallelism.pp):
            self._share_network()
        if self.timed is not None:
            self.timed.add(job.job_id, dict(placement.allocations), job.spec.parallelism.pp)
        self._storage_launch(job)
        job.estimate = self._estimate(job.spec, placement, job.job_id)
        job.history.append((self.env.now, math.nan, placement))
        if math.isnan(job.first_start_s):
            job.first_start_s = self.env.now
        self._event(job, "started", f"{placement.num_gpus} GPUs on {len(placement.allocations)} "
                    f"server(s)")
        job.process = self.env.process(self._run_job(job))
        if job.spec.execute is not None and job.preemptions == 0:
            self._execute(job)
        self._level()

    def _execute(self, job: JobState) -> None:
        """Really train the job through the kernels (once, at its first start) and record its
        losses and accuracies, and its measured time beside the simulated one."""
        from dcsim.execute import train

        assert job.estimate is not None
        result = train(job.spec, self.streams.stream(f"execute.{job.job_id}"))
        self.recorder.training += [
            TrainingRow(job.job_id, r.iteration, r.loss, r.accuracy, r.phase)
            for r in result.records]
        self.recorder.executions.append(Execution(
            job.job_id, result.iterations, result.wall_s, result.wall_s_per_iteration,
            job.estimate.iteration_s, result.final_accuracy, result.sparsity_achieved))

    def _stop(self, job: JobState, reason: str) -> None:
        """Take a running job off its GPUs now; it loses the iteration in progress."""
        assert job.process is not None
        self._account(job, keep_partial=False)
        self._release(job)
        job.status, job.preemptions = Status.PREEMPTED, job.preemptions + 1
        job.queued_since_s = self.env.now
        self._enqueue(job)
        self._event(job, "preempted", reason)
        job.process.interrupt(Stop(reason))
        self._level()

    # ------------------------------------------------------------------ FaultHost
    @property
    def topology(self) -> nx.Graph:
        return self.network.graph

    def running_jobs(self) -> list[JobState]:
        return list(self._running.values())

    def all_finished(self) -> bool:
        return self._finished >= len(self.jobs)

    def flow_routes(self) -> SharedFabric | TimedFabric | None:
        return self.fabric or self.timed

    def fail_link(self, u: str, v: str) -> None:
        """A network link goes down now: flows reroute around it, jobs cut apart stall."""
        self._change_link(u, v, up=False)

    def repair_link(self, u: str, v: str) -> None:
        """A failed link comes back: flows take their shortest paths again."""
        self._change_link(u, v, up=True)

    def _change_link(self, u: str, v: str, up: bool) -> None:
        fabric = self.fabric or self.timed
        if fabric is None:
            raise RuntimeError("link failures need engine.network: shared or timed")
        (fabric.repair if up else fabric.fail)(u, v)
        detail = f"link {u} - {v} {'repaired' if up else 'failed'}"
        self.recorder.events.append(Event(self.env.now, -1, "network", detail))
        self._share_network()

    def interrupt(self, job: JobState, reason: str) -> None:
        """A failure hits a running job: it loses the work since its last checkpoint, leaves
        its GPUs and goes back to the queue, or ends `failed` past `faults.max_retries`."""
        assert job.process is not None and job.estimate is not None
        self._account(job, keep_partial=True)
        ckpt = min(max(float(self.last_checkpoint(job)), 0.0), job.iterations_done)
        lost = job.iterations_done - ckpt
        lost_s = min(lost * job.estimate.iteration_s, job.work_s)
        job.iterations_done = job.seg_done0 = ckpt
        # (never below 0: the FLOPs of the work lost, at today's estimate, may differ by a
        # rounding from those counted when it was done)
        job.model_flop_done = max(job.model_flop_done - lost * job.estimate.model_flop, 0.0)
        job.lost_iterations += lost
        job.lost_s += lost_s
        job.work_s -= lost_s
        job.interruptions += 1
        self._release(job)
        job.process.interrupt(Stop(reason))
        faults = self.scenario.faults
        limit = faults.max_retries if faults is not None else None
        stuck = self._stuck(job, ckpt)
        if (limit is not None and job.interruptions > limit) or stuck:
            job.status, job.end_s = Status.FAILED, self.env.now
            job.reason = (f"retry-limit: interrupted {job.interruptions} times "
                          f"(faults.max_retries {limit}); last: {reason}") if not stuck else (
                f"no-progress: interrupted {job.stuck_interruptions} times in a row without "
                f"keeping any progress (faults.max_retries_without_progress); last: {reason}")
            self._event(job, "failed", job.reason)
            self._finished += 1
        else:
            job.status, job.queued_since_s = Status.QUEUED, self.env.now
            job.warmup_due_s = faults.warmup_s if faults is not None else 0.0
            self._enqueue(job)
            self._event(job, "interrupted", f"{reason}; lost {lost:.3f} iterations")
        self._level()
        self._request_round()

    def _stuck(self, job: JobState, kept: float) -> bool:
        """Count the interruptions in a row that let the job keep no more iterations than
        before; True once they reach `faults.max_retries_without_progress`."""
        if kept > job.kept_iterations + EPS:
            job.kept_iterations, job.stuck_interruptions = kept, 0
        else:
            job.stuck_interruptions += 1
        faults = self.scenario.faults
        limit = faults.max_retries_without_progress if faults is not None else None
        return limit is not None and job.stuck_interruptions >= limit

    def server_down(self, server_id: int) -> None:
        """A server leaves service (its jobs already interrupted): its GPUs are unavailable."""
        self.cluster.down(server_id)
        self._rv_now = math.nan  # rebuild every view
        self.recorder.events.append(Event(self.env.now, -1, "server-down",
                                          self.cluster.servers[server_id].name))
        self._level()

    def server_up(self, server_id: int) -> None:
        """A repaired (or replaced) server is back in service."""
        self.cluster.up(server_id)
        self.recorder.events.append(Event(self.env.now, -1, "server-up",
                                          self.cluster.servers[server_id].name))
        self._level()
        self._request_round()

    def respeed(self, job: JobState, reason: str) -> None:
        """A running job's speed may have changed (network or storage share, stragglers):
        re-estimate it now, keeping its progress."""
        if job.waiting:
            self.reestimate(job.job_id, reason)
        elif job.estimate is not None:  # its runner has not started yet: it reads this
            job.estimate = self._estimate(job.spec, job.placement, job.job_id)

    def reestimate(self, job_id: int, reason: str) -> None:
        """Tell a running job that its speed may have changed (fabric, stragglers, ...)."""
        job = self._running[job_id]
        assert job.process is not None
        job.process.interrupt(Reestimate(reason))

    def _account(self, job: JobState, keep_partial: bool, done: float | None = None) -> None:
        """Close the current run segment at now: count iterations, run time and FLOPs."""
        assert job.estimate is not None
        raw = job.progress_at(self.env.now) if done is None else done
        if done is None:
            done = raw if keep_partial else math.floor(raw + EPS)
        done = min(max(done, job.seg_done0), float(job.spec.iterations))
        # productive time: the segment's time past its restore hold, less the share of the
        # progress thrown away (a preempted job's partial iteration)
        ran_s = max(self.env.now - max(job.seg_start_s, job.hold_until_s), 0.0)
        gained = raw - job.seg_done0
        job.work_s += ran_s * min(1.0, (done - job.seg_done0) / gained) if gained > EPS else 0.0
        job.model_flop_done += (done - job.seg_done0) * job.estimate.model_flop
        job.iterations_done = done
        job.run_s += self.env.now - job.seg_start_s
        self._storage_account(job, done)
        job.restore_s += max(min(self.env.now, job.hold_until_s) - job.seg_start_s, 0.0)
        job.seg_start_s, job.seg_done0 = self.env.now, done

    def _release(self, job: JobState) -> None:
        assert job.placement is not None
        self.cluster.release(job.placement)
        start, _, placement = job.history[-1]
        job.history[-1] = (start, self.env.now, placement)
        for server_id, gpus in placement.allocations:
            self.recorder.segments.append(Segment(job.job_id, server_id, len(gpus), start,
                                                  self.env.now))
        del self._running[job.job_id]
        self._rv_dirty[job.job_id] = None
        job.placement = None
        self._storage_changed(self.storage.leave(job.job_id))
        if self.fabric is not None and self.fabric.remove(job.job_id):
            self._share_network()
        if self.timed is not None:
            self.timed.remove(job.job_id)
        job.progress_cap = math.inf
        self._level()

    # ------------------------------------------------------------------ scheduling
    def _request_round(self) -> None:
        """Schedule one round at the current time, after the events already scheduled for now
        (so that simultaneous arrivals and completions are decided together)."""
        if not self._round_pending:
            self._round_pending = True
            event = self.env.event()
            event.callbacks.append(self._round)
            event.succeed()

    def _enqueue(self, job: JobState) -> None:
        self._queue[job.job_id] = job
        if self._static_key is not None:
            heapq.heappush(self._heap, (self._static_key(job.view(self.env.now)), job.job_id))

    def _round(self, _event: simpy.Event) -> None:
        """admission happened at submit; here: order -> place -> (preempt) -> launch."""
        self._round_pending = False
        now = self.env.now
        if self._static_key is not None:
            self._head_round(now)
            return
        ordered = self.scheduler.order([j.view(now) for j in self._queue.values()], now)
        servers = self.cluster.views()
        gate = self.scheduler.gate(self._running_now(now), now) if self._gated else None
        cluster = self.cluster
        for view in ordered:
            fits = view.num_gpus <= cluster.total_gpus - cluster.allocated_gpus
            placement = self.placement.place(view, servers) if fits else None
            if placement is not None and gate is not None and not gate.allow(view, placement,
                                                                           servers):
                placement = None
            elif placement is None and self._preempts:
                placement = self._preempt_for(view, now)
            if placement is None:
                if gate.blocked(view, servers) if gate is not None else self.scheduler.backfill:
                    continue
                break
            self._launch(self._queue[view.job_id], placement)
            if gate is not None:
                gate.started(view, placement, servers)
            servers = self.cluster.views()
        if self._timed_decisions and self._queue:
            self._plan_decision(now)

    def _head_round(self, now: float) -> None:
        """The round of a strict scheduler with a static order (`Scheduler.static_key`): the
        same launches as `_round`'s walk of the sorted queue, which stops at the first job
        that cannot start, but only the jobs up to it are looked at (a long queue costs
        log n per launch, not n log n per round)."""
        heap, cluster = self._heap, self.cluster
        servers = None
        while heap:
            job = self._queue.get(heap[0][1])
            if job is None:  # left the queue another way
                heapq.heappop(heap)
                continue
            view = job.view(now)
            if view.num_gpus > cluster.total_gpus - cluster.allocated_gpus:
                return
            if servers is None:
                servers = cluster.views()
            placement = self.placement.place(view, servers)
            if placement is None:
                return
            heapq.heappop(heap)
            self._launch(job, placement)
            servers = None

    def _running_now(self, now: float) -> list[JobView]:
        """Views of the running jobs at `now`: built once per instant, then only the jobs that
        started or stopped since are updated; the same list object until one does."""
        if self._rv_now != now:
            self._rv = {j.job_id: j.view(now) for j in self._running.values()}
            self._rv_now, self._rv_list = now, None
            self._rv_dirty.clear()
        if self._rv_dirty:
            for job_id in self._rv_dirty:
                self._rv.pop(job_id, None)
                job = self._running.get(job_id)
                if job is not None:
                    self._rv[job_id] = job.view(now)
            self._rv_dirty.clear()
            self._rv_list = None
        if self._rv_list is None:
            self._rv_list = list(self._rv.values())
            self._running_by_types.clear()
        return self._rv_list

    def _running_on(self, gpu_types: tuple[str, ...], now: float) -> list[JobView]:
        """`_running_now` restricted to jobs on these GPU types: the same list object until a
        job starts or stops (so a scheduler may rank it once per round)."""
        views = self._running_now(now)
        out = self._running_by_types.get(gpu_types)
        if out is None:
            out = self._running_by_types[gpu_types] = [j for j in views
                                                       if j.gpu_type in gpu_types]
        return out

    def _plan_decision(self, now: float) -> None:
        """Plan a round at the scheduler's next decision time, unless one is planned no later
        (one timer at a time: a later plan waits for the earlier round to re-plan)."""
        at = self.scheduler.next_decision_s(self._running_now(now),
                                            [j.view(now) for j in self._queue.values()], now)
        if at is None or not at > now + EPS:
            return
        if now < self._decision_at <= at + EPS:
            return
        self._decision_at = at
        timer = self.env.timeout(at - now)
        timer.callbacks.append(lambda _e, at=at: self._decision_due(at))

    def _decision_due(self, at: float) -> None:
        if self._decision_at == at:  # else re-planned earlier in between: that round re-plans
            self._decision_at = math.inf
            self._request_round()

    def _preempt_for(self, view, now: float) -> Placement | None:
        running = self._running_on(view.gpu_types, now)  # others cannot make room for it
        victims = self.scheduler.preempt(view, running, now)
        if not victims:
            return None
        freed: dict[int, list[int]] = {}
        chosen = []
        for job_id in victims:
            chosen.append(job_id)
            placement = self._running[job_id].placement
            assert placement is not None
            for server_id, gpus in placement.allocations:
                freed.setdefault(server_id, []).extend(gpus)
            if self.placement.place(view, self._with_freed(freed)) is not None:
                for victim in chosen:
                    self._stop(self._running[victim], f"preempted for job {view.job_id}")
                return self.placement.place(view, self.cluster.views())
        return None

    def _with_freed(self, freed: dict[int, list[int]]) -> Sequence[ServerView]:
        return [ServerView(v.server_id, v.gpu_type, v.num_gpus,
                           tuple(sorted(v.free + tuple(freed.get(v.server_id, ())))))
                for v in self.cluster.views()]

    def estimate_alone(self, spec: JobSpec) -> tuple[StepEstimate | None, str]:
        """The job's step estimate on an otherwise empty cluster, or None and the reason."""
        types, reason, _ = self._admit(spec)
        if not types:
            return None, reason
        return self._estimate(spec, self._empty_placement(spec, types)), ""

    def placed_links(self, spec: JobSpec) -> tuple[GpuSpec, RingPath]:
        """The GPU and the links a job gets on an otherwise empty cluster (validation, fits)."""
        types, reason, _ = self._admit(spec)
        if not types:
            raise ValueError(f"job {spec.name} cannot run: {reason}")
        placement = self._empty_placement(spec, types)
        gpu = self.cluster.servers[placement.server_ids[0]].gpu
        return gpu, self.network.ring(placement.gpus_per_server())

    def _empty_placement(self, spec: JobSpec, types: tuple[str, ...]) -> Placement:
        view = JobState(-1, spec, gpu_types=types).view(0.0)
        placement = self.placement.place(view, Cluster(list(self.cluster.servers)).views())
        assert placement is not None  # admitted jobs fit an empty cluster
        return placement

    # ------------------------------------------------------------------ helpers
    def _estimate(self, spec: JobSpec, placement: Placement | None,
                  job_id: int | None = None) -> StepEstimate:
        estimate = self._estimate_unchecked(spec, placement, job_id)
        if not (math.isfinite(estimate.iteration_s) and estimate.iteration_s > 0):
            parts = ", ".join(f"{k} {getattr(estimate, k):g}" for k in STEP_PARTS
                              if not math.isfinite(getattr(estimate, k)))
            raise SimulationError(f"job {spec.name!r}: its step time is {estimate.iteration_s} s"
                                  f" (from {parts or 'its parts'}); every time must be finite "
                                  f"and positive (please report this scenario)")
        return estimate

    def _estimate_unchecked(self, spec: JobSpec, placement: Placement | None,
                            job_id: int | None) -> StepEstimate:
        assert placement is not None
        gpu = self.cluster.servers[placement.server_ids[0]].gpu
        ring = self.network.ring(placement.gpus_per_server())
        if self.fabric is not None and job_id is not None:
            shared, p2p = self.fabric.rate(job_id), self.fabric.p2p_rate(job_id)
            if shared is not None and shared < ring.bandwidth_byte_s:
                ring = replace(ring, bandwidth_byte_s=shared)
            if p2p is not None and p2p < ring.p2p_bandwidth:
                ring = replace(ring, p2p_byte_s=p2p)
        estimate = self.step_model.estimate(spec, gpu, ring)
        if self.faults is not None and job_id is not None:  # stragglers: the slowest GPU
            estimate = self.faults.slowed(estimate, placement)
        return self._with_storage(estimate, spec, placement, job_id)

    def _share_network(self) -> None:
        """The running jobs' flows changed: re-share the links and tell every job whose
        bandwidth moved (it re-estimates its step time and keeps its progress)."""
        if self.fabric is None:
            return
        demands = self.storage.read_demands()
        for job_id, tier, demand in demands:
            placement = self._running[job_id].placement
            assert placement is not None
            n = placement.num_gpus
            self.fabric.set_reads(job_id, storage_node(tier), {
                sid: demand * len(gpus) / n for sid, gpus in placement.allocations})
        changed = self.fabric.solve()
        for job_id, tier, _ in demands:
            rate = self.fabric.read_rate(job_id)
            if rate is not None:
                self.storage.set_read_share(job_id, tier, rate)
        self._record_levels(self.fabric.utilization)
        for job_id in changed:
            job = self._running.get(job_id)
            if job is not None:  # (one being launched has no estimate: _launch makes it next)
                self.respeed(job, "network share changed")

    def _request_reshare(self) -> None:
        """A reader's demand moved after the links were shared (its ring share moved its step):
        re-share them once more at this instant, after the events already due now."""
        if not self._reshare_pending:
            self._reshare_pending = True
            event = self.env.event()
            event.callbacks.append(self._reshare)
            event.succeed()

    def _reshare(self, _event: simpy.Event) -> None:
        self._reshare_pending = False
        self._share_network()

    def _record_levels(self, utilization: np.ndarray) -> None:
        """A row in the links table for each recorded directed link whose level changed now
        (`outputs.link_levels`)."""
        fabric = self.fabric or self.timed
        assert fabric is not None
        if self._levels is None:
            self._levels = np.zeros_like(utilization)
            self._recorded = self._recorded_links(fabric.router)
            self._link_names = [fabric.router.link_name(i) for i in range(len(utilization))]
        changed = np.abs(utilization - self._levels) > 1e-12
        rows = np.flatnonzero(changed & self._recorded)
        if rows.size:
            now, names = self.env.now, self._link_names
            self.recorder.links.extend(LinkLevel(now, names[i], u) for i, u in zip(
                rows.tolist(), utilization[rows].tolist(), strict=True))
        self._levels = utilization.copy()

    def _recorded_links(self, router: Router) -> np.ndarray:
        which = self.scenario.outputs.link_levels
        kinds = router.graph.nodes
        return np.array([which == "all" or (which == "fabric" and
                                            kinds[a].get("kind") not in INTERNAL_KINDS and
                                            kinds[b].get("kind") not in INTERNAL_KINDS)
                         for a, b in router.links], dtype=bool)

    def _cut_at(self) -> float | None:
        """When the run was cut short with work left: at the event limit (now) or at the
        horizon; None if it ran to its end."""
        if self._stopped_by is not None:
            return self.env.now
        horizon = self.scenario.horizon_s
        if horizon is not None and (self._running or self._queue or any(
                j.status is Status.SUBMITTED for j in self.jobs)):
            return horizon
        return None

    def _event(self, job: JobState, event: str, detail: str) -> None:
        self.recorder.events.append(Event(self.env.now, job.job_id, event, detail))

    def _level(self) -> None:
        self._last_change_s = self.env.now
        level = Level(self.env.now, self.cluster.allocated_gpus,
                      self.cluster.total_gpus - self.cluster.out_gpus,
                      len(self._running), len(self._queue))
        levels = self.recorder.levels
        if levels and levels[-1].time_s == level.time_s:
            levels[-1] = level
        else:
            levels.append(level)

    def _close_open_jobs(self) -> float:
        """At the horizon or the event limit: account the progress of jobs still running and
        give every open job its reason; return the end time: the horizon or the time the
        limit stopped the run if either cut it short, else the time of the last change."""
        end = self._cut_at()
        # what cut the run short with work left (summary.json `stopped_by`), decided once here
        self.cut_by = ("" if end is None else
                       "engine.max_events" if self._stopped_by else "horizon_s")
        open_jobs = [j for j in self.jobs if j.status not in _TERMINAL_STATUSES]
        if end is None:
            for job in open_jobs:  # no events left with jobs open: a defect, said so
                job.reason = job.reason or ("the run ran out of events with this job open "
                                            "(please report this scenario)")
            return self._last_change_s
        why = self._stopped_by or f"horizon_s ({end:g} s) reached"
        for job in open_jobs:
            arrived = job.spec.arrival_s <= end
            job.reason = (f"unfinished: {why} while {job.status.value}" if arrived
                          else f"not arrived: {why} before its arrival")
        if not self._running:
            return end
        if self.env.now < end:
            self.env.run(until=end)  # no event lies before it: this only moves the clock
        for job in list(self._running.values()):
            self._account(job, keep_partial=True)
            start, _, placement = job.history[-1]
            for server_id, gpus in placement.allocations:
                self.recorder.segments.append(Segment(job.job_id, server_id, len(gpus), start,
                                                      end))
        self._level()
        return end

    def _gpu_of(self, job: JobState) -> str:
        _, _, placement = job.history[-1]
        return self.cluster.servers[placement.server_ids[0]].gpu.name

    # ------------------------------------------------------------------ storage (dcsim.storage)
    @staticmethod
    def _allocs(placement: Placement) -> list[tuple[int, int]]:
        return [(sid, len(gpus)) for sid, gpus in placement.allocations]

    def _step_guess(self, job: JobState) -> float:
        """The job's step time before checkpoint pauses (its estimate, else alone)."""
        if job.estimate is not None:
            return job.estimate.iteration_s - job.estimate.checkpoint_s
        return job.alone_step_s

    def _with_storage(self, est: StepEstimate, spec: JobSpec, placement: Placement,
                      job_id: int | None) -> StepEstimate:
        """The step estimate with the job's data stall and amortized checkpoint pauses
        (`checkpoint_s` = pause per checkpoint / iterations between checkpoints)."""
        if not self.storage.active(spec):
            return est
        allocs = self._allocs(placement)
        running = job_id is not None and job_id in self._running
        if running:
            assert job_id is not None
            moved = self.storage.update_demand(job_id, spec, allocs, est.iteration_s)
            now = self.env.now
            if moved and self.storage.reads_on_fabric and self._reshared.get(job_id) != now:
                self._reshared[job_id] = now  # once per job and instant: no loop
                self._request_reshare()
        data = self.storage.plan_data(spec, allocs, est.iteration_s, job_id if running else None)
        stall = data.stall_s if data is not None else 0.0
        step_s = est.iteration_s + stall
        job = self.jobs[job_id] if job_id is not None else JobState(-1, spec)
        ckpt = self.storage.plan_checkpoint(spec, allocs, step_s, self._job_mtbf_s(job),
                                            job_id if running else None)
        if running:
            assert job_id is not None
            self.ledger.plans(job_id, data, ckpt)
        extra = ckpt.per_iteration_s if ckpt is not None else 0.0
        return replace(est, iteration_s=step_s + extra, data_stall_s=est.data_stall_s + stall,
                       checkpoint_s=extra)

    def _storage_launch(self, job: JobState) -> None:
        """A run starts: it restored from its iterations done; it joins the shared tiers (the
        other jobs' shares are re-solved); a restore reads its checkpoint."""
        self.ledger.restored(job.job_id, job.iterations_done)
        if not self.storage.active(job.spec) or job.placement is None:
            return
        self.ledger.opened(job.job_id)
        ckpt = self.storage.checkpoint_spec(job.spec)
        self.storage.join(job.job_id, job.spec)
        self._estimate(job.spec, job.placement, job.job_id)  # registers its read demand
        if self.storage.reads_on_fabric:
            self._share_network()
        else:
            self._storage_changed(self.storage.solve() - {job.job_id})
        if ckpt is not None and job.hold_until_s > self.env.now:  # restores its checkpoint
            self.ledger.add(job.job_id, f"read_{ckpt.tier}", checkpoint_bytes(job.spec))

    def _storage_changed(self, moved: set[int]) -> None:
        """Jobs whose shared-tier share moved re-estimate (keeping their progress)."""
        for job_id in sorted(moved):
            job = self._running.get(job_id)
            if job is not None:
                self.respeed(job, "storage share changed")

    def _checkpoint_pause(self, job: JobState, step: float) -> float:
        """engine.fidelity iteration: the pause for the checkpoints the last `step` iterations
        crossed (every `every_iterations` from the point it restored)."""
        return self.ledger.checkpoint_pause(job.job_id, job.iterations_done, step)

    def _storage_account(self, job: JobState, done: float) -> None:
        """Storage totals of the segment closing now: stall and checkpoint time (amortized per
        iteration), bytes read per tier, checkpoints written."""
        est, iters = job.estimate, done - job.seg_done0
        if est is None or iters <= 0 or not self.storage.active(job.spec):
            return
        self.ledger.segment(job.job_id, est, job.seg_done0, done)


def simulate(scenario: Scenario, progress: ProgressFn | None = None,
             step_model: StepTimeModel | None = None) -> Results:
    """Run `scenario` to the end (or its horizon) and return its Results."""
    _check_scenario_arg(scenario)
    return Simulation(scenario, step_model=step_model).run(progress)


def _check_scenario_arg(scenario: object) -> None:
    """A validated Scenario, or a UsageError that says how to get one."""
    if isinstance(scenario, Scenario):
        return
    if isinstance(scenario, str | Path):
        raise UsageError(f"simulate() takes a Scenario, not the path {str(scenario)!r}: "
                        f"call dcsim.simulate(dcsim.load_scenario({str(scenario)!r}))")
    if isinstance(scenario, dict):
        raise UsageError("simulate() takes a Scenario, not a dict: call "
                        "dcsim.simulate(dcsim.scenario_from_dict(data))")
    raise UsageError(f"simulate() takes a Scenario (dcsim.load_scenario or "
                    f"dcsim.scenario_from_dict), not {type(scenario).__name__}")
