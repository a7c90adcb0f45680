"""The `faults:` section of a scenario: failure processes per component class, repairs, a spare
pool, a retry limit, stragglers, a failure trace and presets (docs/scenario-reference.md#faults).

Strict, frozen pydantic models, like the rest of the schema (dcsim/scenario/schema.py, which
imports this module); no simulation code here."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["COMPONENTS", "SERVER_COMPONENTS", "FaultsSpec", "ComponentFailures", "RepairSpec",
           "StragglerSpec", "FailureTraceSpec"]

PosFloat = Annotated[float, Field(gt=0, le=1e20)]
NonNegFloat = Annotated[float, Field(ge=0, le=1e20)]
# bounds (issue 14): beyond them a distribution's mean or spread overflows (a Weibull shape of
# 0.01 has a mean of gamma(101) times its scale) or a run is a failure storm by typo
Hours = Annotated[float, Field(gt=0, le=1e7)]  # up to ~1,000 years
Sigma = Annotated[float, Field(gt=0, le=5)]  # log-normal: mean/median = e^(sigma^2/2) <= 2.7e5
Shape = Annotated[float, Field(ge=0.1, le=100)]  # Weibull (100: all but periodic)
Factor = Annotated[float, Field(ge=1, le=1000)]  # a slowdown

# component classes; those in SERVER_COMPONENTS take their server out until repair
COMPONENTS = ("gpu", "gpu_memory", "host", "nic", "switch", "link", "software")
SERVER_COMPONENTS = ("gpu", "gpu_memory", "host", "nic")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RepairSpec(_Strict):
    """Time to repair or replace a failed component (hours): `fixed` (= mean), `exponential`
    or `lognormal` (mean `mean_hours`, log-standard deviation `sigma`)."""

    # a registered repair distribution (dcsim/faults/distributions.py: fixed, exponential,
    # lognormal); the name and which of `sigma` it takes are checked by dcsim.world
    distribution: str = "exponential"
    mean_hours: Hours = 24.0
    sigma: Sigma = 1.0


class ComponentFailures(_Strict):
    """Times to failure of ONE instance of a component class (one GPU, one host, one link...):
    `exponential` (mean `mtbf_hours`), `weibull` (shape `shape`, scaled so that its mean is
    `mtbf_hours`) or `lognormal` (log-standard deviation `sigma`, mean `mtbf_hours`)."""

    # a registered failure distribution (dcsim/faults/distributions.py: exponential, weibull,
    # lognormal); the name and which of `shape`, `sigma` it takes are checked by dcsim.world
    distribution: str = "exponential"
    mtbf_hours: Hours
    shape: Shape = 1.0
    sigma: Sigma = 1.0
    repair: RepairSpec | None = None  # None: the section's `repair`


class Components(_Strict):
    gpu: ComponentFailures | None = None
    gpu_memory: ComponentFailures | None = None
    host: ComponentFailures | None = None
    nic: ComponentFailures | None = None
    switch: ComponentFailures | None = None
    link: ComponentFailures | None = None
    software: ComponentFailures | None = None

    def items(self) -> list[tuple[str, ComponentFailures]]:
        return [(c, getattr(self, c)) for c in COMPONENTS if getattr(self, c) is not None]


class FailureTraceSpec(_Strict):
    """A failure trace to replay: CSV with columns time_s, component, target (and optionally
    repair_s); see docs/scenario-reference.md#faults."""

    path: str


class PersistentSlow(_Strict):
    """A fraction of the GPUs (drawn once per run) slower by `factor` for the whole run."""

    fraction: Annotated[float, Field(ge=0, le=1)]
    factor: Factor = 1.2


class TransientSlow(_Strict):
    """Slowdown episodes per GPU: on average one per `mtbe_hours` (exponential), each lasting
    an exponential time of mean `duration_s`, slowing the GPU by `factor`."""

    mtbe_hours: Hours
    duration_s: Annotated[float, Field(gt=0, le=3.6e10)] = 600.0
    factor: Factor = 1.5


class StragglerSpec(_Strict):
    persistent: PersistentSlow | None = None
    transient: TransientSlow | None = None


class FaultsSpec(_Strict):
    """Failures and stragglers. Every draw comes from the scenario seed's named streams
    (`faults.COMPONENT`, `faults.repair`, `faults.stragglers`)."""

    preset: Literal["llama3"] | None = None  # adds the Llama 3 cause mix (dcsim/faults/llama3.py)
    # multiplies the preset's failure rates
    preset_scale: Annotated[float, Field(gt=0, le=1e4)] = 1.0
    components: Components = Components()  # per class; overrides the preset's class
    trace: FailureTraceSpec | None = None
    repair: RepairSpec = RepairSpec()
    spares: Annotated[int, Field(ge=0, le=1_000_000)] = 0  # spare servers that replace a failed one
    spare_swap_s: NonNegFloat = 0.0  # time to bring a spare in place of a failed server
    max_retries: Annotated[int, Field(ge=0, le=10**9)] | None = None  # None: retry for ever
    # interruptions in a row that keep no progress (the job rolls back to where it was the
    # last time) before the job ends failed; None: never (a failure storm then runs for ever)
    max_retries_without_progress: Annotated[int, Field(ge=1, le=10**9)] | None = 50
    warmup_s: NonNegFloat = 0.0  # after a restart, on top of the restore: no progress
    stragglers: StragglerSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> FaultsSpec:
        if (self.preset is None and not self.components.items() and self.trace is None
                and self.stragglers is None):
            raise ValueError("faults: give a preset, components, a trace or stragglers")
        return self
