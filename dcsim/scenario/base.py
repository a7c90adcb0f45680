"""The scenario schema's building blocks: the bounded number types every section uses, the
strict base model (`Strict`) and a pluggable component (`KindParams`)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["Strict", "KindParams", "Precision", "StepModelKind", "FlowFabricKind", "MAX_INT",
           "MAX_FLOAT",
           "MAX_ITERATIONS", "MAX_SERVERS", "MAX_GPUS_PER_SERVER", "MAX_JOBS", "PosInt",
           "ServerCount", "JobCount", "Sigma", "PosFloat", "NonNegFloat", "Iterations"]

Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"]
# registered names, checked against their registries by the world (dcsim/world/check.py):
# step models (dcsim/perf/select.py STEP_MODELS), flow fabrics (dcsim/fabric/flows.py)
RegisteredName = Annotated[str, Field(min_length=1, max_length=64,
                                      pattern=r"^[^\x00-\x1f\x7f]+$")]
StepModelKind = RegisteredName
FlowFabricKind = RegisteredName
# bounds (issue 14): finite but absurd values are refused with the bound in the message,
# before anything is allocated for them. Every number has one: the general ones below keep
# products of a few of them inside float64 and int64, the specific ones bound sizes
MAX_INT = 10**12
MAX_FLOAT = 1e20
MAX_ITERATIONS = 1e15
PosInt = Annotated[int, Field(gt=0, le=MAX_INT)]
MAX_SERVERS = 200_000  # servers in one group (100k-GPU clusters have ~12,500 8-GPU servers)
MAX_GPUS_PER_SERVER = 256
MAX_JOBS = 10_000_000  # jobs a generator draws
ServerCount = Annotated[int, Field(gt=0, le=MAX_SERVERS)]
JobCount = Annotated[int, Field(gt=0, le=MAX_JOBS)]
Sigma = Annotated[float, Field(ge=0, le=10)]  # a log-normal sigma: e^10 = 22,000x spread
PosFloat = Annotated[float, Field(gt=0, le=MAX_FLOAT)]
NonNegFloat = Annotated[float, Field(ge=0, le=MAX_FLOAT)]


def _count(v: Any) -> int | float:
    """A positive, finite number of steps: an int when whole, else the float."""
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise ValueError("Input should be a valid number")
    try:
        f = float(v)
    except ValueError:
        raise ValueError("Input should be a valid number") from None
    if not math.isfinite(f):
        raise ValueError("Input should be a finite number")
    if f <= 0:
        raise ValueError("Input should be greater than 0")
    if f > MAX_ITERATIONS:
        raise ValueError(f"Input should be less than or equal to {MAX_ITERATIONS:g}")
    return int(f) if f.is_integer() else f


# optimizer steps: whole, except where a trace counts a partial last global step (Gavel's
# total_steps summed over the workers, divided by the workers)
Iterations = Annotated[int | float, BeforeValidator(_count)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class KindParams(Strict):
    """A pluggable component: a registered `kind` and its own `params`."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
