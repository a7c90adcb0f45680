"""Stragglers: slow GPUs, persistent and transient (scenario `faults.stragglers`).

Each GPU (flat index over the cluster's servers) has a slowdown factor: persistent slow GPUs are
drawn once at the start (a `fraction` of them at `factor`); transient episodes come from one
superposed Poisson process over all GPUs (mean time between episodes per GPU `mtbe_hours`), each
lasting an exponential time of mean `duration_s`. A synchronous job runs at the pace of its
slowest GPU: every phase of its step waits for it, so the whole step stretches by that factor.
The draws come from the `faults.stragglers` stream.
See docs/architecture.md#failures-and-stragglers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from dcsim.scenario.faults import StragglerSpec

if TYPE_CHECKING:
    from dcsim.faults.host import FaultHost
    from dcsim.policies.views import Placement

__all__ = ["Stragglers"]

HOUR = 3600.0


class Stragglers:
    """Per-GPU slowdown factors of one simulation, and the process of transient episodes."""

    def __init__(self, sim: FaultHost, spec: StragglerSpec | None,
                 gpu_offsets: np.ndarray) -> None:
        self.sim, self.spec, self.env = sim, spec, sim.env
        self.offsets = gpu_offsets  # server id -> its first GPU's flat index
        n = int(gpu_offsets[-1])
        self.persistent = np.ones(n)
        self.transient: dict[int, list[float]] = {}  # GPU -> factors of its active episodes
        self._rng = sim.streams.stream("faults.stragglers")
        if spec is not None and spec.persistent is not None and n:
            k = int(round(spec.persistent.fraction * n))
            self.persistent[self._rng.choice(n, size=k, replace=False)] = spec.persistent.factor

    def start(self, all_done: Callable[[], bool]) -> None:
        """Start the transient episodes (if configured); they stop once `all_done()`."""
        if self.spec is not None and self.spec.transient is not None and len(self.persistent):
            self.env.process(self._episodes(all_done))

    def factor(self, placement: Placement) -> float:
        """The slowest GPU of a placement: a synchronous job runs at its pace."""
        worst = 1.0
        for sid, gpus in placement.allocations:
            base = int(self.offsets[sid])
            idx = [base + g for g in gpus]
            worst = max(worst, float(self.persistent[idx].max()))
            for i in idx:
                if i in self.transient:
                    worst = max(worst, self.persistent[i] * max(self.transient[i]))
        return worst

    def slowdown(self, placement: Placement) -> float:
        """The placement's straggler factor (>= 1): every phase of its step waits for its
        slowest GPU (dcsim/world/pace.py stretches the step by it)."""
        return self.factor(placement) if self.spec is not None else 1.0

    def _episodes(self, all_done: Callable[[], bool]):
        assert self.spec is not None and self.spec.transient is not None
        tr, n, rng = self.spec.transient, len(self.persistent), self._rng
        mean_gap = tr.mtbe_hours * HOUR / n
        while True:
            yield self.env.timeout(rng.exponential(mean_gap))
            if all_done():
                return
            gpu = int(rng.integers(n))
            duration = float(rng.exponential(tr.duration_s))
            self.transient.setdefault(gpu, []).append(tr.factor)
            self._respeed_on(gpu, "straggler episode started")
            timer = self.env.timeout(duration)
            timer.callbacks.append(lambda _e, g=gpu, f=tr.factor: self._episode_end(g, f))

    def _episode_end(self, gpu: int, factor: float) -> None:
        active = self.transient[gpu]
        active.remove(factor)
        if not active:
            del self.transient[gpu]
        self._respeed_on(gpu, "straggler episode ended")

    def _respeed_on(self, gpu: int, reason: str) -> None:
        """Re-estimate the running jobs on this GPU (their speed may have changed)."""
        sid = int(np.searchsorted(self.offsets, gpu, side="right") - 1)
        g = gpu - int(self.offsets[sid])
        for job in list(self.sim.running_jobs()):
            if job.placement is not None and any(s == sid and g in gpus
                                                 for s, gpus in job.placement.allocations):
                self.sim.respeed(job, reason)
