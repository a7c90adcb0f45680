"""The facility power budget (`power.budget_kw`): a queued job starts only if the facility's
power with it stays within the budget (docs/energy.md).

Facility power is counted as planned: the cluster's idle IT power (every server, one that is
down included: its repair must never break the budget), plus what each running job added when
it started (its GPUs above idle and its hosts' busy increments at its step alone on its
placement, `World.job_power_w`), times the PUE of the hour. A job that could not start even on
the idle cluster at the lowest PUE is rejected at submission (`power-budget: ...`), so a strict
queue never waits on it forever. The rounds ask `fits` (dcsim/engine/rounds.py) before each
launch; a job kept out waits like one without GPUs (a strict order stops at it, a backfilling
one goes on), and a round after the next completion looks again, as does one at the next
hour whose PUE is lower (`next_lower_pue_s`), so a job kept out by the hour's PUE starts when
it falls even if nothing else happens.

With a scheduler that caps power (`power-capped`, POLCA-style: Patel et al., "POLCA: Power
Oversubscription in LLM Cloud Providers", arXiv:2308.12908), a job that does not fit at full
power starts under a GPU power cap (W per GPU, at least `min_cap_fraction` x its board power)
chosen as the highest that fits (bisection on the planned power, which falls with the cap);
its compute then runs slower along the power model's clock curve (`PowerModel.capped`). When a
job leaves, the capped jobs still running get the highest caps that now fit, in the order they
started, and run faster again.
"""

from __future__ import annotations

import math

from dcsim.energy.grid import HOUR
from dcsim.policies import Placement
from dcsim.scenario import JobSpec
from dcsim.world.build import World

__all__ = ["PowerBudget"]

SLACK = 1e-9  # relative: a job that lands exactly on the budget fits


CAP_STEPS = 14  # bisection steps for a job's cap: the board power / 2^14 (< 0.1 W on 1 kW)


class PowerBudget:
    def __init__(self, world: World, budget_kw: float,
                 min_cap_fraction: float | None = None) -> None:
        self.world = world
        self.budget_w = budget_kw * 1e3
        self.min_cap_fraction = min_cap_fraction  # None: jobs wait, never capped
        self.idle_w = world.idle_it_w()  # every server, switches, storage
        self.in_use_w = 0.0
        self._jobs: dict[int, float] = {}
        # a job's planned power by (spec, placement, cap): a blocked head is asked again at
        # every round, and a cap's bisection asks many caps
        self._power: dict[tuple, float] = {}
        self._never: dict[tuple, str | None] = {}
        pue = world.grid.pue
        self._pue, self._offset = list(pue.values), pue.offset_s

    def pue_at(self, now: float) -> float:
        return self._pue[int((now + self._offset) // HOUR) % len(self._pue)]

    def job_power_w(self, spec: JobSpec, placement: Placement, cap_w: float = math.inf
                    ) -> float:
        """`World.job_power_w`, remembered (the spec object lives as long as its job)."""
        key = (id(spec), placement.allocations, cap_w)
        watts = self._power.get(key)
        if watts is None:
            if len(self._power) > 100_000:
                self._power.clear()
            watts = self._power[key] = self.world.job_power_w(spec, placement, cap_w)
        return watts

    def _fits_w(self, watts: float, now: float) -> bool:
        return (self.idle_w + self.in_use_w + watts) * self.pue_at(now) <= self.budget_w * (
            1 + SLACK)

    def _cap_range(self, placement: Placement) -> tuple[float, float]:
        """(the lowest cap allowed, the board power) of the placement's GPU type."""
        gpu = self.world.power.gpu(self.world.cluster.servers[placement.server_ids[0]].gpu.name)
        assert self.min_cap_fraction is not None
        return max(self.min_cap_fraction * gpu.tdp_w, gpu.idle_w + 1.0), gpu.tdp_w

    def fits(self, spec: JobSpec, placement: Placement, now: float) -> float | None:
        """The power cap (W per GPU; inf: none) at which this job fits within the budget if
        started now, or None: it does not fit (without capping: not at full power)."""
        if self._fits_w(self.job_power_w(spec, placement), now):
            return math.inf
        if self.min_cap_fraction is None:
            return None
        lo, hi = self._cap_range(placement)
        if not self._fits_w(self.job_power_w(spec, placement, lo), now):
            return None
        for _ in range(CAP_STEPS):  # the highest cap that fits, to within (hi - lo) / 2^14
            mid = (lo + hi) / 2
            if self._fits_w(self.job_power_w(spec, placement, mid), now):
                lo = mid
            else:
                hi = mid
        return lo

    def raise_caps(self, capped: list[tuple[int, JobSpec, Placement, float]], now: float
                   ) -> list[tuple[int, float]]:
        """Capped running jobs (id, spec, placement, cap), in the order they started: each
        gets the highest cap that now fits (inf: none); returns the jobs whose cap rose."""
        raised = []
        for job_id, spec, placement, cap in capped:
            self.stopped(job_id)
            new = self.fits(spec, placement, now)
            new = cap if new is None or new < cap else new
            self.started(job_id, spec, placement, new)
            if new > cap:
                raised.append((job_id, new))
        return raised

    def never_fits(self, spec: JobSpec, types: tuple[str, ...], key: tuple) -> str | None:
        """Why the job cannot start within the budget even alone on the idle cluster at the
        lowest PUE (under the lowest cap allowed, when jobs may be capped), or None;
        remembered by `key` (the spec less what does not change a step, and the types)."""
        if key not in self._never:
            self._never[key] = self._never_fits(spec, types)
        return self._never[key]

    def _never_fits(self, spec: JobSpec, types: tuple[str, ...]) -> str | None:
        placement = self.world.empty_placement(spec, types)
        cap = self._cap_range(placement)[0] if self.min_cap_fraction is not None else math.inf
        alone = self.world.job_power_w(spec, placement, cap)
        need = (self.world.idle_it_w() + alone) * min(self._pue)
        if need <= self.budget_w * (1 + SLACK):
            return None
        capped = f" at its lowest cap, {cap:,.0f} W per GPU" if math.isfinite(cap) else ""
        return (f"power-budget: needs {need / 1e3:,.1f} kW of facility power alone on the idle "
                f"cluster{capped} (it adds {alone / 1e3:,.1f} kW IT); power.budget_kw is "
                f"{self.budget_w / 1e3:,.1f}")

    def started(self, job_id: int, spec: JobSpec, placement: Placement,
                cap_w: float = math.inf) -> None:
        watts = self._jobs[job_id] = self.job_power_w(spec, placement, cap_w)
        self.in_use_w += watts

    def stopped(self, job_id: int) -> None:
        self.in_use_w -= self._jobs.pop(job_id, 0.0)

    def next_lower_pue_s(self, now: float) -> float | None:
        """The next hour boundary after `now` from which the PUE is lower than now's (None:
        it never is)."""
        pue, n = self._pue, len(self._pue)
        if n == 1:
            return None
        here = int((now + self._offset) // HOUR)
        for k in range(1, n):
            if pue[(here + k) % n] < pue[here % n]:
                return (here + k) * HOUR - self._offset
        return None
