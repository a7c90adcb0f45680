"""The simulation engine: the only place that wires SimPy processes together.

Lifecycle: build the world (dcsim/world: cluster, network, storage, flow fabric, placement,
step model) -> run (arrivals, a scheduling round on every state change, one runner per job
segment) -> collect (`Results`). The engine is a package of modules that point one way:

    simulation  the loop, the wiring and the state changes (this module)
    rounds      the queue and the scheduling rounds (order -> place -> preempt -> launch)
    runner      one job's run segment as a process, by fidelity; a segment's accounting
    shares      the links and storage tiers running jobs share, kept current
    ledger      each job's storage and checkpoint books
    record      events, the GPU timeline and link levels as they happen
    clock       stepping the clock to the end, with its guards (NaN times, a stuck clock)
    budget      the facility power budget the rounds ask before each launch
    collect     a finished run into Results

A step time is put together in one place, `dcsim.world.pace.pace`. A job's runner advances
all its remaining iterations in one event (steady-state fast-forward) unless something that
affects it changes, which interrupts it with a typed cause (`Stop` or `Reestimate`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx
import simpy

from dcsim.engine.budget import PowerBudget
from dcsim.engine.clock import give_reasons, step_events
from dcsim.engine.collect import collect
from dcsim.engine.heap import building, frozen
from dcsim.engine.ledger import Ledger
from dcsim.engine.record import Records
from dcsim.engine.rounds import Rounds
from dcsim.engine.runner import Runner, close_segment, roll_back
from dcsim.engine.serve import Serving
from dcsim.engine.shares import Shares
from dcsim.errors import UsageError
from dcsim.fabric.sharing import SharedFabric
from dcsim.fabric.timed import TimedFabric
from dcsim.faults.model import FaultModel
from dcsim.faults.retries import give_up
from dcsim.jobs import JobState, Reestimate, Status, Stop
from dcsim.metrics import Recorder, Segment
from dcsim.perf import StepTimeModel
from dcsim.perf.calibrated import NOT_STEP_FIELDS
from dcsim.perf.step import StepEstimate
from dcsim.policies import SCHEDULERS, JobView, Placement
from dcsim.results import Results
from dcsim.rng import RandomStreams
from dcsim.scenario import Scenario
from dcsim.world.build import build_world
from dcsim.world.pace import STEP_PARTS, pace

__all__ = ["Simulation", "simulate", "STEP_PARTS"]

EPS = 1e-9
_TERMINAL_STATUSES = (Status.COMPLETED, Status.FAILED, Status.REJECTED)
ProgressFn = Callable[[int, int], None]
# Cache keys of per-job step times at submission: the step model's own key fields, less
# reference_gpu (it sets a duration job's iterations) and gpu_type (the key carries the admitted
# GPU types instead)
_NOT_STEP = (NOT_STEP_FIELDS - {"reference_gpu"}) | {"gpu_type"}


class Simulation:
    """One simulation of one scenario: build in the constructor, `run()` once."""

    def __init__(self, scenario: Scenario, step_model: StepTimeModel | None = None) -> None:
        _check_scenario_arg(scenario)
        with building():  # (engine/heap.py: a large world is built without collections)
            self._build(scenario, step_model)

    def _build(self, scenario: Scenario, step_model: StepTimeModel | None) -> None:
        self.scenario = scenario
        self.streams = RandomStreams(scenario.seed)
        self.env = simpy.Environment()
        # validated by load_scenario; the engine's own world (its allocation state changes)
        self.world = world = build_world(scenario, streams=self.streams, env=self.env,
                                         step_model=step_model)
        self.cluster, self.network = world.cluster, world.network
        self.storage = world.storage
        fabric = world.fabric
        self.fabric = fabric if isinstance(fabric, SharedFabric) else None
        self.timed = fabric if isinstance(fabric, TimedFabric) else None
        self.placement = world.placement
        self.step_model = world.step_model
        self.workload = world.workload
        self.jobs = [JobState(i, spec) for i, spec in enumerate(self.workload.jobs)]
        self.recorder = Recorder()
        self.records = Records(self.recorder, self.cluster, scenario.outputs.link_levels)
        self.ledger = Ledger()  # storage and checkpoint books per job (engine/ledger.py)
        self._running: dict[int, JobState] = {}
        sched_cls = SCHEDULERS.get(scenario.scheduler.kind)
        self.scheduler = sched_cls(sched_cls.Params(**scenario.scheduler.params))
        self.scheduler.bind(self.streams)
        if sched_cls.uses_carbon:  # (check_world: a carbon source is given)
            assert world.grid.carbon is not None
            self.scheduler.bind_carbon(world.grid.carbon)
        budget_kw = scenario.power.budget_kw
        self._pue_wake_s = math.inf  # a round planned at a lower PUE (budget), if any
        self.budget = (PowerBudget(world, budget_kw, getattr(
            self.scheduler.params, "min_cap_fraction", None) if sched_cls.caps_power else None)
            if budget_kw is not None else None)
        self.rounds = Rounds(self.env, self.cluster, self.scheduler, self.placement,
                             self._running, self._launch, self._stop,
                             self._power_ok if self.budget is not None else None)
        self.shares = Shares(self.env, fabric, self.storage, self.ledger, self.records,
                             self._running, self.respeed, self._job_mtbf_s)
        self.runner = Runner(self.env, self.network, self.timed,
                             scenario.engine.fidelity == "steady", self._account,
                             self._estimate, self.ledger_pause, self._complete)
        self._finished = 0
        self._stopped_by: str | None = None  # what cut the run short, other than the horizon
        self.cut_by = ""  # after the run: "horizon_s", "engine.max_events" or "" (ran to its end)
        # failures, repairs, spares, stragglers (scenario `faults`; dcsim/faults/model.py)
        self.faults = FaultModel(self, scenario.faults) if scenario.faults is not None else None
        world.job_mtbf_s = self._job_mtbf_s
        # inference services: their replicas take GPUs now, before any job (engine/serve.py)
        self.serving = (Serving(self.env, scenario, self.cluster, self.network,
                                self.storage.system, self.streams, self._gpus_changed,
                                self._reclaim, self.shares)
                        if scenario.services else None)

    # ------------------------------------------------------------------ run
    def run(self, progress: ProgressFn | None = None) -> Results:
        wall0 = time.perf_counter()
        if self.serving is not None:
            self.serving.start()
            self._level()
        self.env.process(self._arrivals())
        if self.faults is not None:
            self.faults.start()
        with frozen():  # (engine/heap.py: collections skip the world built before)
            events = self._loop(progress)
            end_s = self._close_open_jobs()
            if self.serving is not None:
                self.serving.finish(end_s)
            return collect(self, events, end_s, time.perf_counter() - wall0)

    def _loop(self, progress: ProgressFn | None) -> int:
        """Step events to the end, the horizon or `engine.max_events` (engine/clock.py)."""
        until = self.scenario.horizon_s if self.scenario.horizon_s is not None else math.inf
        tick = (lambda: progress(self._finished, len(self.jobs))) if progress else None
        events, self._stopped_by = step_events(self.env, until, self.scenario.engine.max_events,
                                               len(self.jobs), tick)
        return events

    def _arrivals(self):
        for job in self.jobs:
            delay = job.spec.arrival_s - self.env.now
            if delay > 0:
                yield self.env.timeout(delay)
            self._submit(job)

    # ------------------------------------------------------------------ state changes
    def _submit(self, job: JobState) -> None:
        self._event(job, "submitted", "")
        types, reason, job.memory_bytes = self.world.admit(job.spec)
        key = (job.spec.model_dump_json(exclude=_NOT_STEP), types)
        if types and job.spec.iterations is None:
            job.spec = job.spec.model_copy(update={
                "iterations": self.world.reference_iterations(job.spec, types, key)})
        if types and self.budget is not None and (why := self.budget.never_fits(job.spec,
                                                                                types, key)):
            types, reason = (), why
        if not types:
            job.status, job.reason = Status.REJECTED, reason
            self._event(job, "rejected", reason)
            self.records.last_change_s = self.env.now
            self._finished += 1
            return
        job.gpu_types, job.status, job.queued_since_s = types, Status.QUEUED, self.env.now
        job.alone_step_s = self.world.alone_step(job.spec, types, key)
        if (sources := self.world.step_sources(job.spec, types, key)) is not None:
            self._event(job, "step-source", sources)
        self.rounds.enqueue(job)
        self._level()
        self.rounds.request()

    def _launch(self, job: JobState, placement: Placement) -> None:
        """Start a queued job on `placement` (the rounds took it off the queue)."""
        self.cluster.allocate(placement)
        if self.budget is not None:
            self.budget.started(job.job_id, job.spec, placement, job.power_cap_w)
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
        self.rounds.started_or_stopped(job.job_id)
        self.shares.joined(job, self._estimate)
        job.estimate = self._estimate(job)
        job.history.append((self.env.now, math.nan, placement))
        if math.isnan(job.first_start_s):
            job.first_start_s = self.env.now
        self._event(job, "started", f"{placement.num_gpus} GPUs on {len(placement.allocations)} "
                    f"server(s)")
        job.process = self.env.process(self.runner.process(job))
        if job.spec.execute is not None and not (job.preemptions or job.interruptions):
            self._execute(job)  # at its first start only
        self._level()

    def _execute(self, job: JobState) -> None:
        """Really train the job through the kernels (once, at its first start) and record its
        losses and accuracies, and its measured time beside the simulated one."""
        from dcsim.execute import train

        assert job.estimate is not None
        result = train(job.spec, self.streams.stream(f"execute.{job.job_id}"))
        self.records.trained(job.job_id, result, job.estimate.iteration_s)

    def _stop(self, job: JobState, reason: str) -> None:
        """Take a running job off its GPUs now; it loses the iteration in progress."""
        assert job.process is not None
        self._account(job, False, None)
        self._release(job)
        job.status, job.preemptions = Status.PREEMPTED, job.preemptions + 1
        job.queued_since_s = self.env.now
        self.rounds.enqueue(job)
        self._event(job, "preempted", reason)
        job.process.interrupt(Stop(reason))
        self._level()

    def _complete(self, job: JobState) -> None:
        """The job's runner finished its last iteration."""
        self._account(job, True, float(job.spec.iterations))
        self._release(job)
        job.status, job.end_s = Status.COMPLETED, self.env.now
        self._event(job, "completed", "")
        self._finished += 1
        self.rounds.request()

    def _account(self, job: JobState, keep_partial: bool, done: float | None = None) -> None:
        """Close the current run segment at now: iterations, run time, FLOPs, storage, power."""
        seg_done0, start, now = job.seg_done0, job.seg_start_s, self.env.now
        done = close_segment(job, now, keep_partial, done)
        self.shares.account(job, seg_done0, done)
        assert job.estimate is not None
        self.records.power_span(job.job_id, start, min(max(job.hold_until_s, start), now), now,
                                job.spec.num_gpus, job.gpu_type, job.estimate)

    def _release(self, job: JobState) -> None:
        assert job.placement is not None
        self.cluster.release(job.placement)
        if self.budget is not None:
            self.budget.stopped(job.job_id)
        job.power_cap_w = math.inf  # a restart is capped anew
        start, _, placement = job.history[-1]
        job.history[-1] = (start, self.env.now, placement)
        for server_id, gpus in placement.allocations:
            self.recorder.segments.append(Segment(job.job_id, server_id, len(gpus), start,
                                                  self.env.now))
        del self._running[job.job_id]
        self.rounds.started_or_stopped(job.job_id)
        job.placement = None
        self.shares.left(job.job_id)
        job.progress_cap = math.inf
        self._level()
        if self.budget is not None and self.budget.min_cap_fraction is not None:
            self._raise_caps()

    def _wake_at_lower_pue(self) -> None:
        """A job was kept out by the budget, or runs capped: look again when the PUE next
        falls (one timer): raise caps, then a round."""
        assert self.budget is not None
        at = self.budget.next_lower_pue_s(self.env.now)
        if at is None or self._pue_wake_s <= at:
            return
        self._pue_wake_s = at
        timer = self.env.timeout(at - self.env.now)
        timer.callbacks.append(lambda _e: self._pue_woke())

    def _pue_woke(self) -> None:
        assert self.budget is not None
        self._pue_wake_s = math.inf
        if self.budget.min_cap_fraction is not None:
            self._raise_caps()
        self.rounds.request()

    def _raise_caps(self) -> None:
        """Power was freed: capped running jobs get the highest caps that now fit."""
        assert self.budget is not None
        capped = sorted((j for j in self._running.values() if math.isfinite(j.power_cap_w)),
                        key=lambda j: (j.last_start_s, j.job_id))
        raised = self.budget.raise_caps([(j.job_id, j.spec, j.placement, j.power_cap_w)
                                         for j in capped], self.env.now)
        for job_id, cap in raised:
            job = self._running[job_id]
            job.power_cap_w = cap
            detail = f"raised to {cap:.0f} W per GPU" if math.isfinite(cap) else "lifted"
            self._event(job, "power-capped", detail)
            self.respeed(job, f"power cap {detail}")
        if any(math.isfinite(j.power_cap_w) for j in self._running.values()):
            self._wake_at_lower_pue()

    # ------------------------------------------------------------------ speed
    def _estimate(self, job: JobState) -> StepEstimate:
        """A running job's step on its placement now: its links' shares, stragglers and
        storage terms (dcsim/world/pace.py)."""
        placement = job.placement
        assert placement is not None
        gpu, ring = self.world.links_of(placement)
        ring_share, p2p_share, a2a_share, cp_share = self.shares.link_rates(job.job_id)
        slowdown = self.faults.slowdown(placement) if self.faults is not None else 1.0
        return pace(self.step_model, job.spec, gpu, ring, ring_share=ring_share,
                    p2p_share=p2p_share, a2a_share=a2a_share, cp_share=cp_share,
                    slowdown=slowdown,
                    storage=self.shares.storage_terms(job, job.spec, placement),
                    cap=self.world.cap_of(gpu.name, job.power_cap_w))

    def _power_ok(self, view: JobView, placement: Placement) -> bool:
        """The facility power budget lets this job start now on `placement`."""
        assert self.budget is not None
        job = self.jobs[view.job_id]
        cap = self.budget.fits(job.spec, placement, self.env.now)
        if cap is None:
            self._wake_at_lower_pue()
            return False
        job.power_cap_w = cap  # (inf: uncapped) read by its launch, just after
        if math.isfinite(cap):
            self._event(job, "power-capped", f"{cap:.0f} W per GPU")
            self._wake_at_lower_pue()  # a lower PUE may lift its cap
        return True

    def respeed(self, job: JobState, reason: str) -> None:
        """A running job's speed may have changed (network or storage share, stragglers):
        re-estimate it now, keeping its progress."""
        if job.waiting:
            self.reestimate(job.job_id, reason)
        elif job.estimate is not None:  # its runner has not started yet: it reads this
            job.estimate = self._estimate(job)

    def reestimate(self, job_id: int, reason: str) -> None:
        """Tell a running job that its speed may have changed (fabric, stragglers, ...)."""
        job = self._running[job_id]
        assert job.process is not None
        job.process.interrupt(Reestimate(reason))

    def _restore_delay_s(self, job: JobState) -> float:
        """Restore time a restarted job pays (dcsim/engine/shares.py `restore_delay_s`)."""
        return self.shares.restore_delay_s(job, self.scenario.engine.preemption_overhead_s)

    def _job_mtbf_s(self, job: JobState) -> float:
        """The job's mean time between failures (s), for Young/Daly checkpoint intervals:
        inf without a failure model (then no periodic checkpoints are taken). With `faults`:
        1 / the summed configured rates of the component instances the job depends on
        (FaultModel.job_mtbf_s)."""
        return self.faults.job_mtbf_s(job) if self.faults is not None else math.inf

    def ledger_pause(self, job: JobState, step: float) -> float:
        """engine.fidelity iteration: the pause for the checkpoints the last `step` iterations
        crossed (every `every_iterations` from the point it restored)."""
        return self.ledger.checkpoint_pause(job.job_id, job.iterations_done, step)

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

    # ------------------------------------------------------------------ FaultHost
    @property
    def topology(self) -> nx.Graph:
        return self.network.graph

    def running_jobs(self) -> list[JobState]:
        return list(self._running.values())

    def all_finished(self) -> bool:
        """Every job has ended and no service is still serving (failures stop then)."""
        return self._finished >= len(self.jobs) and not (self.serving is not None
                                                         and self.serving.open())

    def flow_routes(self) -> SharedFabric | TimedFabric | None:
        return self.fabric or self.timed

    def fail_link(self, u: str, v: str) -> None:
        """A network link goes down now: flows reroute around it, jobs cut apart stall."""
        self.shares.change_link(u, v, up=False)

    def repair_link(self, u: str, v: str) -> None:
        """A failed link comes back: flows take their shortest paths again."""
        self.shares.change_link(u, v, up=True)

    def interrupt(self, job: JobState, reason: str) -> None:
        """A failure hits a running job: it loses the work since its last checkpoint, leaves
        its GPUs and goes back to the queue, or ends `failed` past `faults.max_retries`."""
        assert job.process is not None and job.estimate is not None
        self._account(job, True, None)
        kept = min(max(float(self.last_checkpoint(job)), 0.0), job.iterations_done)
        lost = roll_back(job, kept)
        self._release(job)
        job.process.interrupt(Stop(reason))
        faults = self.scenario.faults
        if (why := give_up(job, faults, kept, reason)) is not None:
            job.status, job.end_s, job.reason = Status.FAILED, self.env.now, why
            self._event(job, "failed", why)
            self._finished += 1
        else:
            job.status, job.queued_since_s = Status.QUEUED, self.env.now
            job.warmup_due_s = faults.warmup_s if faults is not None else 0.0
            self.rounds.enqueue(job)
            self._event(job, "interrupted", f"{reason}; lost {lost:.3f} iterations")
        self._level()
        self.rounds.request()

    def server_down(self, server_id: int) -> None:
        """A server leaves service (its jobs already interrupted; its service replicas fail
        here): its GPUs are unavailable."""
        if self.serving is not None:
            self.serving.server_down(server_id)
        self.cluster.down(server_id)
        self.records.server_down(self.env.now, server_id)
        self.rounds.servers_changed()
        self.records.event(self.env.now, -1, "server-down", self.cluster.servers[server_id].name)
        self._level()

    def server_up(self, server_id: int) -> None:
        """A repaired (or replaced) server is back in service."""
        self.cluster.up(server_id)
        self.records.server_up(self.env.now, server_id)
        self.records.event(self.env.now, -1, "server-up", self.cluster.servers[server_id].name)
        self._level()
        self.rounds.request()

    # ------------------------------------------------------------------ records, the end
    def _event(self, job: JobState, event: str, detail: str) -> None:
        self.records.event(self.env.now, job.job_id, event, detail)

    def _gpus_changed(self) -> None:
        """A service took GPUs or gave them back: the timeline changes, the queue may start."""
        self._level()
        self.rounds.request()

    def _reclaim(self, gpu_type: str, gpus: int, why: str) -> int:
        """Preempt running training jobs so that one `gpu_type` server has `gpus` free GPUs
        for a service replica: on the server where that takes the fewest jobs, then the
        fewest of their GPUs, then the lowest server id; on a server, the jobs with the most
        GPUs there go first (then the lowest job id). Returns how many jobs it preempted: 0
        if no server can free enough."""
        views = self.cluster.views()
        on: dict[int, list[tuple[int, int]]] = {}  # server -> (GPUs there, job id) per job
        for job in self._running.values():
            assert job.placement is not None
            for sid, held in job.placement.allocations:
                on.setdefault(sid, []).append((len(held), job.job_id))
        best: tuple[tuple[int, int, int], list[int]] | None = None
        for sid, jobs in on.items():
            if views[sid].gpu_type != gpu_type or sid in self.cluster.out:
                continue
            free, take = len(views[sid].free), []
            for held, job_id in sorted(jobs, key=lambda x: (-x[0], x[1])):
                if free >= gpus:
                    break
                free += held
                take.append(job_id)
            if free >= gpus:
                key = (len(take), sum(self._running[j].spec.num_gpus for j in take), sid)
                if best is None or key < best[0]:
                    best = (key, take)
        if best is None:
            return 0
        for job_id in best[1]:
            self._stop(self._running[job_id], why)
        return len(best[1])

    def _level(self) -> None:
        self.records.level(self.env.now, len(self._running), len(self.rounds.queue))

    def _cut_at(self) -> float | None:
        """When the run was cut short with work left: at the event limit (now) or at the
        horizon; None if it ran to its end."""
        if self._stopped_by is not None:
            return self.env.now
        horizon = self.scenario.horizon_s
        if horizon is not None and (self._running or self.rounds.queue or any(
                j.status is Status.SUBMITTED for j in self.jobs) or (
                self.serving is not None and self.serving.open())):
            return horizon
        return None

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
            return self.records.last_change_s
        give_reasons(open_jobs, end, self._stopped_by or f"horizon_s ({end:g} s) reached")
        if not self._running:
            return end
        if self.env.now < end:
            self.env.run(until=end)  # no event lies before it: this only moves the clock
        for job in list(self._running.values()):
            self._account(job, True, None)
            start, _, placement = job.history[-1]
            for server_id, gpus in placement.allocations:
                self.recorder.segments.append(Segment(job.job_id, server_id, len(gpus), start,
                                                      end))
        self._level()
        return end

    def gpu_of(self, job: JobState) -> str:
        """The GPU type of the job's last placement."""
        _, _, placement = job.history[-1]
        return self.cluster.servers[placement.server_ids[0]].gpu.name


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
