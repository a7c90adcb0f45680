"""The facility power budget (`power.budget_kw`): a queued job starts only if the facility's
power with it stays within the budget (docs/energy.md).

Facility power is counted as planned: the cluster's idle IT power (every server in service),
plus what each running job added when it started (its GPUs above idle and its hosts' busy
increments at its step alone on its placement, `World.job_power_w`), times the PUE of the
hour. A job that could not start even on the idle cluster is rejected at submission
(`power-budget: ...`), so a strict queue never waits on it forever. The rounds ask `fits`
(dcsim/engine/rounds.py) before each launch; a job kept out waits like one without GPUs (a
strict order stops at it, a backfilling one goes on), and a round after the next completion
looks again.
"""

from __future__ import annotations

from dcsim.energy.grid import HOUR
from dcsim.policies import Placement
from dcsim.scenario import JobSpec
from dcsim.world.build import World

__all__ = ["PowerBudget"]

SLACK = 1e-9  # relative: a job that lands exactly on the budget fits


class PowerBudget:
    def __init__(self, world: World, budget_kw: float) -> None:
        self.world = world
        self.budget_w = budget_kw * 1e3
        self.idle_w = world.idle_it_w()  # servers in service, switches, storage
        self.in_use_w = 0.0
        self._jobs: dict[int, float] = {}
        pue = world.grid.pue
        self._pue, self._offset = list(pue.values), pue.offset_s

    def pue_at(self, now: float) -> float:
        return self._pue[int((now + self._offset) // HOUR) % len(self._pue)]

    def fits(self, spec: JobSpec, placement: Placement, now: float) -> bool:
        """Whether the facility stays within the budget with this job started now."""
        watts = self.idle_w + self.in_use_w + self.world.job_power_w(spec, placement)
        return watts * self.pue_at(now) <= self.budget_w * (1 + SLACK)

    def never_fits(self, spec: JobSpec, types: tuple[str, ...]) -> str | None:
        """Why the job cannot start within the budget even alone on the idle cluster at the
        lowest PUE, or None."""
        alone = self.world.job_power_w(spec, self.world.empty_placement(spec, types))
        need = (self.world.idle_it_w() + alone) * min(self._pue)
        if need <= self.budget_w * (1 + SLACK):
            return None
        return (f"power-budget: needs {need / 1e3:,.1f} kW of facility power alone on the idle "
                f"cluster (it adds {alone / 1e3:,.1f} kW IT); power.budget_kw is "
                f"{self.budget_w / 1e3:,.1f}")

    def started(self, job_id: int, spec: JobSpec, placement: Placement) -> None:
        watts = self._jobs[job_id] = self.world.job_power_w(spec, placement)
        self.in_use_w += watts

    def stopped(self, job_id: int) -> None:
        self.in_use_w -= self._jobs.pop(job_id, 0.0)

    def server_down(self, server_id: int) -> None:
        self.idle_w -= self.world.server_idle_w(server_id)

    def server_up(self, server_id: int) -> None:
        self.idle_w += self.world.server_idle_w(server_id)
