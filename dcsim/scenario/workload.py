"""The `workload:` section: exactly one of a list of jobs, a trace file (`TraceSource`) or a
generator (`GeneratorSpec`: poisson, `PhillyGeneratorSpec`: philly)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from dcsim.scenario.base import JobCount, NonNegFloat, PosFloat, PosInt, Precision, Sigma, Strict
from dcsim.scenario.jobs import JobSpec, Parallelism
from dcsim.scenario.models import ModelSpec

__all__ = ["Workload", "TraceSource", "TraceModel", "GeneratorSpec", "MixEntry",
           "PhillyGeneratorSpec", "PhillyApp", "PHILLY_APPS"]


class TraceModel(Strict):
    """A model for trace jobs (dcsim/workload/mapping.py): an entry of `trace.models` (the mix
    drawn from for jobs without a known type) or of `trace.job_types`."""

    weight: PosFloat = 1.0  # relative probability in `models`; unused in `job_types`
    model: ModelSpec
    per_gpu_batch: PosInt
    precision: Precision | None = None  # None: the trace era's (fp32 for the public traces)

    @field_validator("model", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        return JobSpec._preset(v)


NATIVE_TRACE_FORMATS = ("dcsim-csv", "dcsim-parquet")  # rows are whole jobs: nothing to map


class TraceSource(Strict):
    """A trace file and, for the cluster-trace formats, how its jobs become dcsim jobs."""

    path: str
    format: str = "dcsim-csv"  # a registered trace format (dcsim/workload/formats/)
    skip_bad_rows: bool = False
    reference_gpu: str | None = None  # the GPU run times were measured on; None: the format's
    length: Literal["auto", "iterations", "duration"] = "auto"  # auto: steps if given
    models: Annotated[list[TraceModel], Field(min_length=1)] | None = None  # None: default mix
    job_types: dict[str, TraceModel] = Field(default_factory=dict)  # add to / override types
    statuses: Annotated[list[str], Field(min_length=1)] | None = None  # keep only these

    @field_validator("reference_gpu")
    @classmethod
    def _known_gpu(cls, v: str | None) -> str | None:
        return JobSpec._known_gpu(v)

    @model_validator(mode="after")
    def _mapping_needs_a_cluster_trace(self) -> TraceSource:
        given = [k for k in ("reference_gpu", "models", "job_types", "statuses", "length")
                 if k in self.model_fields_set]
        if self.format in NATIVE_TRACE_FORMATS and given:
            raise ValueError(f"{', '.join(given)}: mapping options of the cluster-trace "
                             f"formats; a {self.format} trace gives whole jobs")
        return self


class MixEntry(Strict):
    weight: PosFloat
    job: JobSpec


class GeneratorSpec(Strict):
    kind: Literal["poisson"] = "poisson"
    num_jobs: JobCount
    mean_interarrival_s: PosFloat
    iterations_sigma: Sigma = 0.0
    mix: Annotated[list[MixEntry], Field(min_length=1)]


PHILLY_REFERENCE_GPU = "p100-sxm2-16gb"  # Philly's GPUs were Pascal (P100 class)
# Criteo Kaggle (Display Advertising Challenge) DLRM, the dlrm repo's Kaggle configuration:
# 26 tables, 33,762,577 rows of dimension 16 (dlrm-criteo's 1TB tables need >= 8 GPUs).
DLRM_KAGGLE = {
    "kind": "dlrm", "name": "dlrm-kaggle", "dense_features": 13, "embedding_dim": 16,
    "embedding_rows": [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683,
                       8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15,
                       286181, 105, 142572],
    "bottom_mlp": [512, 256, 64, 16], "top_mlp": [512, 256, 1],
}
PHILLY_APPS: dict[str, dict[str, Any]] = {
    "image-recognition": {"weight": 0.4, "model": "resnet50", "per_gpu_batch": 64,
                          "precision": "fp16"},
    "nlp": {"weight": 0.3, "model": "bert-base", "per_gpu_batch": 16, "precision": "fp16"},
    "recommendation": {"weight": 0.15, "model": DLRM_KAGGLE, "per_gpu_batch": 2048,
                       "precision": "fp16"},
    "medical-imaging": {"weight": 0.15, "model": "densenet121", "per_gpu_batch": 32,
                        "precision": "fp16"},  # CheXNet: DenseNet-121 on chest X-rays
}


class PhillyApp(Strict):
    """One application area of the philly generator: a pure data-parallel job template."""

    weight: NonNegFloat
    model: ModelSpec
    per_gpu_batch: PosInt
    precision: Precision

    @field_validator("model", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        return JobSpec._preset(v)


class PhillyGeneratorSpec(Strict):
    """Jobs drawn from distributions fitted to the Philly trace (dcsim/catalog/philly_fit.yaml)."""

    kind: Literal["philly"]
    num_jobs: JobCount
    arrivals: Literal["poisson", "diurnal"] = "diurnal"
    load: Annotated[float, Field(gt=0, le=1e6)] = 1.0  # multiplies the fitted mean arrival rate
    weekly: bool = False  # diurnal: also scale by the fitted day-of-week profile
    start_hour: Annotated[float, Field(ge=0, lt=24)] = 0.0  # hour of day (Monday) at t = 0
    max_gpus: PosInt | None = None
    over_max: Literal["clip", "redraw"] = "clip"
    reference_gpu: str = PHILLY_REFERENCE_GPU
    apps: dict[str, PhillyApp] = Field(default_factory=dict, validate_default=True)

    @field_validator("apps", mode="before")
    @classmethod
    def _merge_defaults(cls, v: Any) -> Any:
        """Given entries override the default areas field by field; new names add areas."""
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {k: dict(d) for k, d in PHILLY_APPS.items()}
        for name, entry in v.items():
            if isinstance(entry, dict) and name in out:
                out[name] = {**out[name], **entry}
            else:
                out[name] = entry
        return out

    @field_validator("reference_gpu")
    @classmethod
    def _known_gpu(cls, v: str) -> str:
        return JobSpec._known_gpu(v)

    @model_validator(mode="after")
    def _apps_valid(self) -> PhillyGeneratorSpec:
        if not any(a.weight > 0 for a in self.apps.values()):
            raise ValueError("apps: at least one application needs a weight > 0")
        for name in self.apps:
            try:
                self.template(name, 1)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(p) for p in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise ValueError(f"apps.{name}: {where + ': ' if where else ''}{msg}") from None
        return self

    def template(self, app: str, gpus: int, **update: Any) -> JobSpec:
        """The job of area `app` on `gpus` GPUs (pure data parallel)."""
        a = self.apps[app]
        return JobSpec(name=update.pop("name", app), model=a.model,
                       parallelism=Parallelism(dp=gpus, micro_batch=a.per_gpu_batch),
                       global_batch=a.per_gpu_batch * gpus, precision=a.precision,
                       duration_s=update.pop("duration_s", 1.0),
                       reference_gpu=self.reference_gpu, **update)


def _generator_kind(v: Any) -> str:
    return (v.get("kind", "poisson") if isinstance(v, dict) else getattr(v, "kind", "poisson"))


AnyGenerator = Annotated[
    Annotated[GeneratorSpec, Tag("poisson")] | Annotated[PhillyGeneratorSpec, Tag("philly")],
    Discriminator(_generator_kind, custom_error_type="generator_kind",
                  custom_error_message="unknown generator kind; valid: poisson, philly"),
]


class DeadlineSpec(Strict):
    """Deadlines for the workload's jobs (a trace's or a generator's, which carry none): each
    job, with probability `fraction` (named stream `workload.deadlines`, one draw per job in
    arrival order), gets a deadline `deadline_s` after arrival, or `slack` times its run time
    alone, and is `deferrable` (docs/energy.md#deadlines). A job that has its own deadline
    keeps it."""

    fraction: Annotated[float, Field(ge=0, le=1)] = 1.0
    deadline_s: PosFloat | None = None
    slack: Annotated[float, Field(ge=1, le=1e6)] | None = None
    deferrable: bool = True

    @model_validator(mode="after")
    def _one_deadline(self) -> DeadlineSpec:
        if (self.deadline_s is None) == (self.slack is None):
            raise ValueError("give exactly one of deadline_s and slack")
        return self


class Workload(Strict):
    jobs: list[JobSpec] | None = None
    trace: TraceSource | None = None
    generator: AnyGenerator | None = None
    deadlines: DeadlineSpec | None = None  # deadlines (and deferrable) for some of the jobs

    @model_validator(mode="after")
    def _exactly_one(self) -> Workload:
        given = [k for k in ("jobs", "trace", "generator") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of jobs, trace, generator (got {given or 'none'})")
        return self
