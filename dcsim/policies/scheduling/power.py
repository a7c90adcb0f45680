"""Power-capped scheduling under a facility power budget, POLCA-style.

POLCA (Patel et al., "POLCA: Power Oversubscription in LLM Cloud Providers", 2023,
arXiv:2308.12908) runs more work under a fixed power budget by capping GPU power instead of
refusing work: a capped GPU lowers its clocks and runs somewhat slower. `power-capped` is FIFO
(strict, like `fifo`) over the facility budget `power.budget_kw`: a job that does not fit at
full power starts under the highest per-GPU power cap, at least `min_cap_fraction` of its board
power, at which the facility stays within the budget; it waits only if even that does not fit.
When a job leaves, capped jobs get the highest caps that fit again and speed up. The engine does
the capping (dcsim/engine/budget.py); how a cap slows a step is the power model's
(`PowerModel.capped`, docs/energy.md#gpu-power-caps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from dcsim.policies.scheduling.base import SCHEDULERS, Scheduler
from dcsim.policies.scheduling.classic import _fifo_key
from dcsim.policies.views import JobView

__all__ = ["PowerCapped"]


class PowerCappedParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # the lowest cap a job may be given, as a fraction of its GPUs' board power
    min_cap_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5


@SCHEDULERS.register("power-capped")
class PowerCapped(Scheduler):
    """FIFO that starts a job under a GPU power cap when full power would break the budget."""

    Params = PowerCappedParams
    params: PowerCappedParams
    static_key = _fifo_key
    caps_power = True

    def order(self, queue: Sequence[JobView], now_s: float) -> list[JobView]:
        return sorted(queue, key=_fifo_key)
