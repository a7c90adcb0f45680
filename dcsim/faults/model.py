"""Failure processes, driven by the engine (`Simulation.faults`); stragglers are in
`dcsim.faults.stragglers`, the cluster's component instances in `dcsim.faults.instances`.

One SimPy process per component class, never one per instance: with exponential times to
failure the class fails at the summed rate n / MTBF (the minimum of n exponentials), and the
instance is drawn uniformly; with Weibull or lognormal times a heap holds each instance's next
failure time, its age renewed when it is back in service after a failure. Failures of an
instance already down are dropped (thinning). Every draw comes from a named stream of the
scenario seed: `faults.CLASS` (failure times, instances, cause labels), `faults.repair` (repair
times), `faults.stragglers` (slow GPUs and episodes).
See docs/architecture.md#failures-and-stragglers.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from dcsim.faults import llama3
from dcsim.faults.distributions import REPAIRS, TTF
from dcsim.faults.instances import Instances, TargetError, resolve_components
from dcsim.faults.rates import FaultRates, servers_next_to
from dcsim.faults.stragglers import Stragglers
from dcsim.faults.trace import TraceFailure, read_failure_trace
from dcsim.scenario.faults import SERVER_COMPONENTS, ComponentFailures, FaultsSpec, RepairSpec

if TYPE_CHECKING:
    from dcsim.faults.host import FaultHost
    from dcsim.policies.views import Placement

__all__ = ["Instances", "FaultModel", "FailureEvent", "resolve_components", "TargetError"]

HOUR = 3600.0


class FailureEvent(NamedTuple):
    """One failure (a row of failures.csv)."""

    time_s: float
    component: str  # component class
    cause: str  # the label (the Llama 3 cause with the preset; else the class)
    target: str  # which instance: server name, server/GPU, switch, link u|v
    server_id: int  # -1 for switch and link failures
    jobs: str  # ids of the jobs it interrupted, ';'-separated ('' if none)
    downtime_s: float  # until the server / link is back in service (0 for software)
    repair_s: float  # the repair (or replacement) time drawn
    spare: bool  # a spare server took the failed one's place
    source: str  # 'model' or 'trace'


def _draw_ttf(cf: ComponentFailures, rng: np.random.Generator, size: int | None = None):
    """Times to failure of `size` instances (dcsim/faults/distributions.py)."""
    return TTF.get(cf.distribution)().draw(cf.mtbf_hours * HOUR, cf, rng, size)


def draw_repair(rs: RepairSpec, rng: np.random.Generator) -> float:
    return REPAIRS.get(rs.distribution)().draw(rs.mean_hours * HOUR, rs, rng)


class FaultModel:
    """Failure processes, repairs, the spare pool and stragglers of one simulation."""

    def __init__(self, sim: FaultHost, spec: FaultsSpec) -> None:
        self.sim, self.spec, self.env = sim, spec, sim.env
        self.inst = Instances(sim.cluster, sim.topology)
        self.components = resolve_components(spec, self.inst)
        self.trace: list[TraceFailure] = (read_failure_trace(sim.scenario.resolve_path(
            spec.trace.path)) if spec.trace is not None else [])
        self.events: list[FailureEvent] = []
        self.spares = spec.spares
        self._server_down: dict[int, str] = {}  # server id -> what failed
        self._links_down: dict[tuple[str, str], int] = {}  # link -> failures holding it down
        self._switch_down: set[str] = set()
        self.stragglers = Stragglers(sim, spec.stragglers, self.inst.gpu_offsets)
        self._repair_rng = sim.streams.stream("faults.repair")
        self.rates = FaultRates(self.inst, self.components)

    # ------------------------------------------------------------------ configured rates
    def class_rate_per_s(self, comp: str) -> float:
        """Failures per second of the whole class (all instances), from the configuration."""
        return self.rates.class_rate_per_s(comp)

    def configured_mtbf_hours(self) -> dict[str, float]:
        """Per class, the cluster-wide mean time between failures (instance MTBF / instances)."""
        return self.rates.configured_mtbf_hours()

    def job_mtbf_s(self, job) -> float:
        """Mean time between failures that interrupt `job` (`FaultRates.job_mtbf_s`)."""
        return self.rates.job_mtbf_s(job)

    # ------------------------------------------------------------------ processes
    def start(self) -> None:
        for comp, cf in self.components.items():
            self.env.process(self._class_process(comp, cf))
        if self.trace:
            self.env.process(self._trace_process())
        self.stragglers.start(self._all_done)

    def _all_done(self) -> bool:
        return self.sim.all_finished()

    def _class_process(self, comp: str, cf: ComponentFailures):
        rng = self.sim.streams.stream(f"faults.{comp}")
        n = self.inst.count[comp]
        labels = llama3.causes_of(comp) if self.spec.preset == "llama3" and comp not in \
            self.spec.components.model_fields_set else None
        if TTF.get(cf.distribution).memoryless:  # the class at the summed rate
            mean_gap = cf.mtbf_hours * HOUR / n
            while True:
                yield self.env.timeout(rng.exponential(mean_gap))
                if self._all_done():
                    return
                index = int(rng.integers(n))
                cause = str(rng.choice(labels[0], p=labels[1])) if labels else comp
                self.fail(comp, index, cause)
        else:
            heap = [(float(t), i) for i, t in enumerate(_draw_ttf(cf, rng, n))]
            heapq.heapify(heap)
            while True:
                t, index = heapq.heappop(heap)
                yield self.env.timeout(max(t - self.env.now, 0.0))
                if self._all_done():
                    return
                cause = str(rng.choice(labels[0], p=labels[1])) if labels else comp
                event = self.fail(comp, index, cause)
                # the repaired (or replaced) instance starts a new life when back in service
                back_s = self.env.now + (event.downtime_s if event is not None else 0.0)
                heapq.heappush(heap, (back_s + float(_draw_ttf(cf, rng)), index))

    def _trace_process(self):
        for f in self.trace:
            yield self.env.timeout(max(f.time_s - self.env.now, 0.0))
            if self._all_done():
                return
            self.fail(f.component, self.inst.resolve(f.component, f.target), f.cause,
                      repair_s=f.repair_s, source="trace")

    def _repair_s(self, comp: str) -> float:
        cf = self.components.get(comp)
        rs = cf.repair if cf is not None and cf.repair is not None else self.spec.repair
        return draw_repair(rs, self._repair_rng)

    # ------------------------------------------------------------------ effects
    def fail(self, comp: str, index: int, cause: str, repair_s: float | None = None,
             source: str = "model") -> FailureEvent | None:
        """Component instance `index` of class `comp` fails now. Returns its record, or None
        if the instance was already down (the failure is dropped)."""
        sim, now = self.sim, self.env.now
        target = self.inst.name(comp, index)
        if comp == "software":
            sid, gpu = self.inst.gpu_of(index)
            hit = [j for j in sim.running_jobs() if j.placement is not None and any(
                s == sid and gpu in gpus for s, gpus in j.placement.allocations)]
            self._interrupt(hit, f"{cause} (software) on {target}")
            return self._record(now, comp, cause, target, sid, hit, 0.0, 0.0, False, source)
        if comp in SERVER_COMPONENTS:
            sid = self.inst.server_of(comp, index)
            if sid in self._server_down:
                return None
            hit = self._jobs_on({sid})
            self._interrupt(hit, f"{cause} ({comp}) on {target}")
            repair = self._repair_s(comp) if repair_s is None else repair_s
            spare = self.spares > 0 and self.spec.spare_swap_s < repair
            if spare:
                self.spares -= 1
                downtime = self.spec.spare_swap_s
                self._later(repair, self._spare_back)
            else:
                downtime = repair
            self._server_down[sid] = comp
            sim.server_down(sid)
            self._later(downtime, lambda: self._server_up(sid))
            return self._record(now, comp, cause, target, sid, hit, downtime, repair, spare,
                                source)
        # network: a link, or a switch (all its links)
        if comp == "switch":
            sw = self.inst.switches[index]
            if sw in self._switch_down:
                return None
            links = [tuple(sorted((sw, str(n)))) for n in self.inst.graph[sw]]
            servers = [n for n in self.inst.graph[sw]
                       if self.inst.graph.nodes[n].get("kind") == "server"]
        else:
            link = self.inst.links[index]
            if self._links_down.get(link, 0):
                return None
            links = [link]
            servers = [n for n in link if self.inst.graph.nodes[n].get("kind") == "server"]
        hit = self._jobs_across(links, servers)
        self._interrupt(hit, f"{cause} ({comp}) on {target}")
        repair = self._repair_s(comp) if repair_s is None else repair_s
        if comp == "switch":
            self._switch_down.add(target)
        for lk in links:
            self._link_down(lk)
        self._later(repair, lambda: self._network_up(comp, target, links))
        return self._record(now, comp, cause, target, -1, hit, repair, repair, False, source)

    def _jobs_across(self, links: list[tuple[str, str]], servers: list[str]) -> list:
        """The running jobs a network failure of these links cuts: with a fabric, those with a
        flow routed over one of them (rings, pipeline send/recv, storage reads); without, those
        that span servers and sit next to the links (or any, for a link between switches)."""
        running = [j for j in self.sim.running_jobs() if j.placement is not None]
        fabric = self.sim.flow_routes()
        if fabric is not None:
            down = {i for lk in links for i in fabric.router.link_indices(*lk)}
            return [j for j in running
                    if any(not down.isdisjoint(r) for r in fabric.routes_of(j.job_id))]
        cut = set(servers_next_to(self.inst, servers))
        return [j for j in running if len(j.placement.allocations) > 1
                and (not cut or cut & set(j.placement.server_ids))]

    def _jobs_on(self, sids: set[int]) -> list:
        return [j for j in self.sim.running_jobs() if j.placement is not None
                and sids & set(j.placement.server_ids)]

    def _interrupt(self, jobs: list, reason: str) -> None:
        for job in sorted(jobs, key=lambda j: j.job_id):
            self.sim.interrupt(job, reason)

    def _record(self, now, comp, cause, target, sid, hit, downtime, repair, spare, source):
        event = FailureEvent(now, comp, cause, target, sid,
                             ";".join(str(j.job_id) for j in sorted(hit, key=lambda j: j.job_id)),
                             downtime, repair, spare, source)
        self.events.append(event)
        return event

    def _later(self, delay: float, action) -> None:
        timer = self.env.timeout(max(delay, 0.0))
        timer.callbacks.append(lambda _e: action())

    def _spare_back(self) -> None:
        self.spares += 1

    def _server_up(self, sid: int) -> None:
        del self._server_down[sid]
        self.sim.server_up(sid)

    def _link_down(self, link: tuple[str, str]) -> None:
        self._links_down[link] = self._links_down.get(link, 0) + 1
        if self._links_down[link] == 1 and self.sim.flow_routes() is not None:
            self.sim.fail_link(*link)

    def _network_up(self, comp: str, target: str, links: list) -> None:
        if comp == "switch":
            self._switch_down.discard(target)
        for link in links:
            self._links_down[link] -= 1
            if not self._links_down[link]:
                del self._links_down[link]
                if self.sim.flow_routes() is not None:
                    self.sim.repair_link(*link)

    def slowdown(self, placement: Placement) -> float:
        """The placement's straggler factor (`Stragglers.slowdown`)."""
        return self.stragglers.slowdown(placement)
