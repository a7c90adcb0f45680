"""What a run writes down as it goes: job events, the GPU timeline (one `Level` row per
instant with a change), the links table (`outputs.link_levels`) and each job's power spans
(collected into power, energy and carbon by dcsim/energy/account.py)."""

from __future__ import annotations

import numpy as np

from dcsim.energy.account import PowerSpan
from dcsim.energy.model import PowerModel
from dcsim.fabric.internals import INTERNAL_KINDS
from dcsim.fabric.routing import Router
from dcsim.hardware import Cluster
from dcsim.metrics import Event, Execution, Level, LinkLevel, Recorder, TrainingRow
from dcsim.perf.step import StepEstimate

__all__ = ["Records"]


class Records:
    """The run's `Recorder`, appended to by the engine (events, levels, link levels)."""

    def __init__(self, recorder: Recorder, cluster: Cluster, link_levels: str) -> None:
        self.recorder, self.cluster, self.link_levels = recorder, cluster, link_levels
        self.last_change_s = 0.0  # time of the last state change (stale timeouts aside)
        self._levels: np.ndarray | None = None  # links' last levels
        self._recorded = np.zeros(0, dtype=bool)  # which links go to the links table
        self._names: dict[int, str] = {}  # the recorded links' names, by index, as met
        # each job's GPUs, stretch by stretch: (job id, start, end of its restore hold, end,
        # GPUs, GPU type, its step estimate then); priced by power_spans() after the run
        self._spans: list[list] = []
        self._last_span: dict[int, list] = {}  # each job's latest span (extended if unchanged)
        self._down: dict[int, float] = {}  # servers out of service now, since when
        self.outages: list[tuple[int, float, float]] = []  # (server id, down, back) closed

    def server_down(self, now: float, server_id: int) -> None:
        self._down.setdefault(server_id, now)

    def server_up(self, now: float, server_id: int) -> None:
        if server_id in self._down:
            self.outages.append((server_id, self._down.pop(server_id), now))

    def all_outages(self) -> list[tuple[int, float, float]]:
        """Every outage, those still open ending at infinity, in the order they began."""
        still = [(sid, t, float("inf")) for sid, t in self._down.items()]
        return sorted(self.outages + still, key=lambda o: (o[1], o[0]))

    def power_span(self, job_id: int, start_s: float, hold_end_s: float, end_s: float,
                   num_gpus: int, gpu_type: str, estimate: StepEstimate) -> None:
        """A job's GPUs over [start_s, end_s): restoring until hold_end_s, then running at
        `estimate`'s pace (on the hot path: kept as is, priced after the run)."""
        if end_s <= start_s:
            return
        last = self._last_span.get(job_id)
        if (last is not None and last[3] == start_s and last[6] is estimate
                and hold_end_s == start_s):
            last[3] = end_s  # the same pace on: one span (timed mode accounts every iteration)
            return
        span = [job_id, start_s, hold_end_s, end_s, num_gpus, gpu_type, estimate]
        self._spans.append(span)
        self._last_span[job_id] = span

    def power_spans(self, model: PowerModel) -> list[PowerSpan]:
        """The spans with their GPUs' idle, waiting and running watts (dcsim/energy/model.py),
        each distinct step estimate priced once."""
        priced: dict[tuple[int, str], float] = {}
        out = []
        for job_id, start, hold_end, end, n, gpu_type, est in self._spans:
            key = (id(est), gpu_type)  # the estimates live in the spans: ids are unique
            running = priced.get(key)
            if running is None:
                running = priced[key] = model.running_w(est, gpu_type)
            out.append(PowerSpan(job_id, start, hold_end, end, n, model.gpu(gpu_type).idle_w,
                                 model.waiting_w(gpu_type, est.power_cap_w), running))
        return out

    def event(self, now: float, job_id: int, event: str, detail: str) -> None:
        """A job's event (job_id -1: the cluster's, e.g. a server down)."""
        self.recorder.events.append(Event(now, job_id, event, detail))

    def level(self, now: float, running: int, queued: int) -> None:
        """The GPU timeline's row at `now` (overwriting an earlier row of the same instant)."""
        self.last_change_s = now
        cluster = self.cluster
        level = Level(now, cluster.allocated_gpus, cluster.total_gpus - cluster.out_gpus,
                      running, queued)
        levels = self.recorder.levels
        if levels and levels[-1].time_s == level.time_s:
            levels[-1] = level
        else:
            levels.append(level)

    def trained(self, job_id: int, result, simulated_iteration_s: float) -> None:
        """An executed job's training records (losses, accuracies) and its measured time
        beside the simulated one (`result`: dcsim.execute.train's)."""
        self.recorder.training += [TrainingRow(job_id, r.iteration, r.loss, r.accuracy, r.phase)
                                   for r in result.records]
        self.recorder.executions.append(Execution(
            job_id, result.iterations, result.wall_s, result.wall_s_per_iteration,
            simulated_iteration_s, result.final_accuracy, result.sparsity_achieved))

    def links(self, now: float, router: Router, utilization: np.ndarray,
              touched: np.ndarray | None = None) -> None:
        """A row in the links table for each recorded directed link whose level changed now;
        `touched` (sorted link indices), where given, holds every link that may have changed
        (the others are not compared)."""
        if self._levels is None:
            self._levels = np.zeros_like(utilization)
            self._recorded = self._recorded_links(router)
        if touched is None:
            rows = np.flatnonzero((np.abs(utilization - self._levels) > 1e-12) & self._recorded)
            self._levels = utilization.copy()
        else:
            now_levels = utilization[touched]
            changed = np.abs(now_levels - self._levels[touched]) > 1e-12
            rows = touched[changed & self._recorded[touched]]
            self._levels[touched] = now_levels
        if rows.size:
            names, ids = self._names, rows.tolist()
            for i in ids:
                if i not in names:
                    names[i] = router.link_name(i)
            self.recorder.links.extend(LinkLevel(now, names[i], u) for i, u in zip(
                ids, utilization[rows].tolist(), strict=True))

    def _recorded_links(self, router: Router) -> np.ndarray:
        which = self.link_levels
        kinds = router.graph.nodes
        return np.array([which == "all" or (which == "fabric" and
                                            kinds[a].get("kind") not in INTERNAL_KINDS and
                                            kinds[b].get("kind") not in INTERNAL_KINDS)
                         for a, b in router.links], dtype=bool)
