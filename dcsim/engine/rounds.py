"""Scheduling rounds: the queue, and at each round order -> place -> (preempt) -> launch.

Admission happened at submission (dcsim/world: `World.admit`). A round is requested on every
state change and runs once per instant, after the events already due then (simultaneous
arrivals and completions are decided together). The engine hands in `launch` and `stop`;
the rounds decide, the engine acts.

The scheduler's declared capabilities (`gates`, `preempts`, `timed_decisions`, `backfill`,
`holds`, dcsim/policies/scheduling/) decide which costs a round pays. A job the scheduler holds
back (`hold_until`, asked once as it enters the queue) stays queued but is not offered GPUs
before its release time. A strict order fixed per job
(FIFO) keeps the queue as a heap and looks only at its head (`_head_round`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence

import simpy

from dcsim.hardware import Cluster
from dcsim.jobs import JobState
from dcsim.policies import JobView, Placement, PlacementPolicy, Scheduler, ServerView

__all__ = ["Rounds"]

EPS = 1e-9


class Rounds:
    def __init__(self, env: simpy.Environment, cluster: Cluster, scheduler: Scheduler,
                 placement: PlacementPolicy, running: Mapping[int, JobState],
                 launch: Callable[[JobState, Placement], None],
                 stop: Callable[[JobState, str], None],
                 power_ok: Callable[[JobView, Placement], bool] | None = None) -> None:
        self.env, self.cluster, self.running = env, cluster, running
        self.scheduler, self.placement = scheduler, placement
        self.launch, self.stop = launch, stop
        # the facility power budget, if any (dcsim/engine/budget.py): may this placement start?
        self.power_ok = power_ok
        self.queue: dict[int, JobState] = {}
        sched_cls = type(scheduler)
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
        # jobs the scheduler holds back (`Scheduler.holds`): queued, not offered GPUs before
        # their release time; one timer per distinct release time
        self._holds = sched_cls.holds
        self._held: dict[int, float] = {}
        self._releases: dict[float, list[int]] = {}
        self._pending = False
        self._decision_at = math.inf  # the decision round planned (next_decision_s), if any
        # running jobs' views at the instant _rv_now (see _running_now)
        self._rv_now = math.nan
        self._rv: dict[int, JobView] = {}
        self._rv_list: list[JobView] | None = None
        self._rv_dirty: dict[int, None] = {}  # jobs started or stopped since (ordered)
        self._running_by_types: dict[tuple[str, ...], list[JobView]] = {}

    # ------------------------------------------------------------------ what the engine tells
    def enqueue(self, job: JobState) -> None:
        self.queue[job.job_id] = job
        now = self.env.now
        if self._holds:
            at = self.scheduler.hold_until(job.view(now), now)
            if at > now + EPS:
                self._hold(job.job_id, at)
                return
        if self._static_key is not None:
            heapq.heappush(self._heap, (self._static_key(job.view(now)), job.job_id))

    def _hold(self, job_id: int, at: float) -> None:
        self._held[job_id] = at
        waiting = self._releases.get(at)
        if waiting is None:
            waiting = self._releases[at] = []
            timer = self.env.timeout(at - self.env.now)
            timer.callbacks.append(lambda _e, at=at: self._release(at))
        waiting.append(job_id)

    def _release(self, at: float) -> None:
        """Held jobs whose time has come join the queue proper; a round looks at them."""
        now = self.env.now
        for job_id in self._releases.pop(at):
            job = self.queue.get(job_id)
            if self._held.pop(job_id, None) is None or job is None:
                continue  # (left the queue while held)
            if self._static_key is not None:
                heapq.heappush(self._heap, (self._static_key(job.view(now)), job_id))
        self.request()

    def started_or_stopped(self, job_id: int) -> None:
        """A job started or left its GPUs: its running view is rebuilt at the next look."""
        self._rv_dirty[job_id] = None

    def servers_changed(self) -> None:
        """A server went down: every running view is rebuilt at the next look."""
        self._rv_now = math.nan

    def request(self) -> None:
        """Schedule one round at the current time, after the events already scheduled for now
        (so that simultaneous arrivals and completions are decided together)."""
        if not self._pending:
            self._pending = True
            event = self.env.event()
            event.callbacks.append(self._round)
            event.succeed()

    # ------------------------------------------------------------------ a round
    def _start(self, job: JobState, placement: Placement) -> None:
        del self.queue[job.job_id]
        self.launch(job, placement)

    def _round(self, _event: simpy.Event) -> None:
        """admission happened at submit; here: order -> place -> (preempt) -> launch."""
        self._pending = False
        now = self.env.now
        if self._static_key is not None:
            self._head_round(now)
            return
        held = self._held
        ordered = self.scheduler.order([j.view(now) for j in self.queue.values()
                                        if j.job_id not in held], now)
        gate = self.scheduler.gate(self._running_now(now), now) if self._gated else None
        cluster = self.cluster
        # (a gate reads the views around a launch: it gets them as a list, a snapshot)
        servers = cluster.views() if gate is None else list(cluster.views())
        for view in ordered:
            fits = view.num_gpus <= cluster.total_gpus - cluster.allocated_gpus
            placement = self.placement.place(view, servers) if fits else None
            if placement is not None and gate is not None and not gate.allow(view, placement,
                                                                           servers):
                placement = None
            elif placement is None and self._preempts:
                placement = self._preempt_for(view, now)
            if placement is not None and self.power_ok is not None and not self.power_ok(
                    view, placement):
                placement = None  # (no preemptive scheduler with a budget: check_world)
            if placement is None:
                if gate.blocked(view, servers) if gate is not None else self.scheduler.backfill:
                    continue
                break
            self._start(self.queue[view.job_id], placement)
            if gate is not None:
                gate.started(view, placement, servers)
            servers = cluster.views() if gate is None else list(cluster.views())
        if self._timed_decisions and self.queue:
            self._plan_decision(now)

    def _head_round(self, now: float) -> None:
        """The round of a strict scheduler with a static order (`Scheduler.static_key`): the
        same launches as `_round`'s walk of the sorted queue, which stops at the first job
        that cannot start, but only the jobs up to it are looked at (a long queue costs
        log n per launch, not n log n per round)."""
        heap, cluster = self._heap, self.cluster
        servers = None
        while heap:
            job = self.queue.get(heap[0][1])
            if job is None:  # left the queue another way
                heapq.heappop(heap)
                continue
            view = job.view(now)
            if view.num_gpus > cluster.total_gpus - cluster.allocated_gpus:
                return
            if servers is None:
                servers = cluster.views()
            placement = self.placement.place(view, servers)
            if placement is None or (self.power_ok is not None
                                     and not self.power_ok(view, placement)):
                return
            heapq.heappop(heap)
            self._start(job, placement)
            servers = None

    # ------------------------------------------------------------------ running views
    def _running_now(self, now: float) -> list[JobView]:
        """Views of the running jobs at `now`: built once per instant, then only the jobs that
        started or stopped since are updated; the same list object until one does."""
        if self._rv_now != now:
            self._rv = {j.job_id: j.view(now) for j in self.running.values()}
            self._rv_now, self._rv_list = now, None
            self._rv_dirty.clear()
        if self._rv_dirty:
            for job_id in self._rv_dirty:
                self._rv.pop(job_id, None)
                job = self.running.get(job_id)
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

    # ------------------------------------------------------------------ timed decisions
    def _plan_decision(self, now: float) -> None:
        """Plan a round at the scheduler's next decision time, unless one is planned no later
        (one timer at a time: a later plan waits for the earlier round to re-plan)."""
        queued = [j.view(now) for j in self.queue.values() if j.job_id not in self._held]
        if not queued:  # (every queued job is held: its release brings a round)
            return
        at = self.scheduler.next_decision_s(self._running_now(now), queued, now)
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
            self.request()

    # ------------------------------------------------------------------ preemption
    def _preempt_for(self, view: JobView, now: float) -> Placement | None:
        running = self._running_on(view.gpu_types, now)  # others cannot make room for it
        victims = self.scheduler.preempt(view, running, now)
        if not victims:
            return None
        freed: dict[int, list[int]] = {}
        chosen = []
        for job_id in victims:
            chosen.append(job_id)
            placement = self.running[job_id].placement
            assert placement is not None
            for server_id, gpus in placement.allocations:
                freed.setdefault(server_id, []).extend(gpus)
            if self.placement.place(view, self._with_freed(freed)) is not None:
                for victim in chosen:
                    self.stop(self.running[victim], f"preempted for job {view.job_id}")
                return self.placement.place(view, self.cluster.views())
        return None

    def _with_freed(self, freed: dict[int, list[int]]) -> Sequence[ServerView]:
        return [ServerView(v.server_id, v.gpu_type, v.num_gpus,
                           tuple(sorted(v.free + tuple(freed.get(v.server_id, ())))))
                for v in self.cluster.views()]
