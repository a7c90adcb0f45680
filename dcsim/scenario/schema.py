"""The scenario schema: the YAML shape, its defaults and the rules within one section.

Strict (unknown keys are errors) and frozen pydantic models; units are in the key names.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from dcsim import catalog
from dcsim.scenario.faults import FaultsSpec

__all__ = [
    "Scenario",
    "JobSpec",
    "Parallelism",
    "ModelSpec",
    "GptModel",
    "BertModel",
    "CnnModel",
    "DlrmModel",
    "MlpModel",
    "CustomModel",
    "NetModel",
    "GeneratorSpec",
    "PhillyGeneratorSpec",
    "PhillyApp",
    "ServerGroup",
    "KindParams",
    "DatasetSpec",
    "CheckpointSpec",
    "Storage",
    "StorageTier",
]

Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"]
StepModelKind = Literal["calibrated", "first-order", "measured"]
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


MIN_IMAGE_SIZE = {"resnet50": 32, "cifar10-cnn": 4, "densenet121": 32, "inception-v3": 75}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------- models
class ModelBase(Strict):
    name: str | None = None  # a label for results; presets set it to their name


class GptModel(ModelBase):
    """Decoder-only transformer (GPT, Llama). ffn_hidden defaults to 4 x hidden."""

    kind: Literal["gpt"]
    layers: PosInt
    hidden: PosInt
    heads: PosInt
    kv_heads: PosInt | None = None
    seq_len: PosInt
    vocab: PosInt
    ffn_hidden: PosInt | None = None
    gated_mlp: bool = False
    moe_experts: PosInt | None = None  # mixture of experts: this many MLP experts per layer
    moe_top_k: PosInt = 2  # experts each token is routed to
    flash_attention: bool = True  # fused attention: no s x s scores in memory

    @model_validator(mode="after")
    def _heads_divide(self) -> GptModel:
        if self.moe_experts is not None and self.moe_top_k > self.moe_experts:
            raise ValueError(f"moe_top_k ({self.moe_top_k}) must be <= moe_experts "
                             f"({self.moe_experts})")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(
                f"heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        return self


class BertModel(GptModel):
    """Encoder-only transformer (BERT); same shape parameters as gpt."""

    kind: Literal["bert"]  # type: ignore[assignment]


class CnnModel(ModelBase):
    kind: Literal["cnn"]
    arch: str
    image_size: PosInt | None = None

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, v: str) -> str:
        if v not in catalog.cnn_archs():
            raise ValueError(f"unknown cnn arch {v!r}; valid: {', '.join(catalog.cnn_archs())}")
        return v

    @model_validator(mode="after")
    def _image_big_enough(self) -> CnnModel:
        smallest = MIN_IMAGE_SIZE.get(self.arch, 1)
        if self.image_size is not None and self.image_size < smallest:
            raise ValueError(f"{self.arch} needs image_size >= {smallest} (its downsampling "
                             f"leaves no pixels below that), got {self.image_size}")
        return self


class DlrmModel(ModelBase):
    kind: Literal["dlrm"]
    dense_features: PosInt
    embedding_rows: Annotated[list[PosInt], Field(min_length=1)]
    embedding_dim: PosInt
    bottom_mlp: Annotated[list[PosInt], Field(min_length=1)]
    top_mlp: Annotated[list[PosInt], Field(min_length=1)]

    @model_validator(mode="after")
    def _bottom_matches_embeddings(self) -> DlrmModel:
        if self.bottom_mlp[-1] != self.embedding_dim:
            raise ValueError(f"the bottom MLP's last width ({self.bottom_mlp[-1]}) must equal "
                             f"embedding_dim ({self.embedding_dim}) for the dot interaction")
        return self


class MlpModel(ModelBase):
    """The seed article's fully connected network: input -> hidden layers -> outputs."""

    kind: Literal["mlp"]
    inputs: PosInt
    hidden: Annotated[list[PosInt], Field(min_length=1)]
    outputs: PosInt


class CustomModel(ModelBase):
    """Any model given by its parameter count and forward FLOPs per sample."""

    kind: Literal["custom"]
    params: PosFloat
    forward_flop_per_sample: PosFloat


class NetModel(ModelBase):
    """A network described layer by layer by a registered architecture builder
    (dcsim/perf/nets/: `dcsim catalog nets`), with that builder's typed `params`."""

    kind: Literal["net"]
    arch: str  # a registered builder: checked, with its params, by dcsim.world.check_world
    params: dict[str, Any] = Field(default_factory=dict)


ModelSpec = Annotated[
    GptModel | BertModel | CnnModel | DlrmModel | MlpModel | CustomModel | NetModel,
    Field(discriminator="kind"),
]


# ----------------------------------------------------------------------------- jobs
class Parallelism(Strict):
    """How a job is split over its tp x pp x dp GPUs (docs/step-time-model.md)."""

    tp: PosInt = 1
    pp: PosInt = 1
    dp: PosInt = 1
    micro_batch: PosInt = 1
    virtual_stages: PosInt = 1
    recompute: Literal["none", "selective", "full"] = "none"
    sequence_parallel: bool = False  # shard layer norms and dropout over the tp group
    schedule: Literal["gpipe", "1f1b", "interleaved"] | None = None  # None: by virtual_stages
    zero: Literal[0, 1, 2, 3] = 0  # ZeRO stage (3 = FSDP): shard optimizer, grads, weights
    overlap_grad_comm: bool = True  # overlap the dp gradient reduction with backward compute
    overlap_tp_comm: bool = False  # overlap tensor-parallel collectives with matrix products
    grad_reduce_dtype: Literal["fp32", "bf16"] = "fp32"  # dtype of the dp gradient reduction
    ep: PosInt = 1  # expert parallel (MoE): experts split over ep of the dp ranks

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def pipeline_schedule(self) -> str:
        if self.schedule is not None:
            return self.schedule
        return "interleaved" if self.virtual_stages > 1 else "1f1b"

    @model_validator(mode="after")
    def _consistent(self) -> Parallelism:
        if self.schedule in ("gpipe", "1f1b") and self.virtual_stages > 1:
            raise ValueError(f"the {self.schedule} schedule has no virtual stages "
                             f"(virtual_stages {self.virtual_stages}); use interleaved")
        if self.sequence_parallel and self.tp == 1:
            raise ValueError("sequence_parallel needs tensor parallelism (tp > 1)")
        if self.dp % self.ep:
            raise ValueError(f"ep ({self.ep}) must divide dp ({self.dp})")
        return self


class ExecuteSpec(Strict):
    """Really train the job's model through dcsim's kernels (small MLP or CNN models)."""

    dataset: Literal["digits", "synthetic"] = "digits"
    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: PosFloat = 0.05
    eval_every: PosInt = 10  # iterations between accuracy evaluations on held-out data
    prune_after: Annotated[float, Field(ge=0, le=1)] = 0.5  # fraction of iterations trained
    # dense before pruning (prune_fraction or 2:4 sparsity) is applied; then fine-tuned masked


class DatasetSpec(Strict):
    """What a job reads each iteration (dcsim/storage/io.py): `global_batch x bytes_per_sample`
    bytes from a dataset of `size_gb` kept on `tier`. Unset sizes take the model kind's default
    (docs/scenario-reference.md#dataset)."""

    size_gb: PosFloat | None = None
    bytes_per_sample: PosFloat | None = None
    tier: Literal["pfs", "object", "nvme"] = "pfs"  # nvme: staged on every server's local NVMe
    samples_per_file: PosInt | None = None  # files opened per sample read from a shared tier
    cache_warm: bool = False  # caches hold their share of the dataset at start: no cold epoch


class CheckpointSpec(Strict):
    """Periodic checkpoints (dcsim/storage/io.py): every `interval_s` of training, or at the
    Young/Daly optimum for the job's MTBF; written to `tier`, pausing the job (sync) or only for
    a snapshot to host memory (async)."""

    interval_s: PosFloat | Literal["young-daly", "daly"]
    tier: Literal["pfs", "object", "nvme"] = "pfs"
    mode: Literal["sync", "async"] = "sync"


class JobSpec(Strict):
    """One training job: `iterations` optimizer steps of `global_batch` samples each, or as many
    steps as take `duration_s` on `reference_gpu` (a trace's run time: the same work then runs
    faster on a faster GPU). Exactly one of `iterations` and `duration_s`."""

    name: str
    arrival_s: NonNegFloat = 0.0
    model: ModelSpec
    parallelism: Parallelism = Parallelism()
    global_batch: PosInt
    precision: Precision = "bf16"
    # whole optimizer steps; fractional only where a trace counts a partial last global step
    # (Gavel: total_steps summed over the workers / the workers)
    iterations: Iterations | None = None
    duration_s: PosFloat | None = None  # run time alone on reference_gpu: sets the iterations
    reference_gpu: str | None = None  # the GPU type duration_s was measured on (None: the job's)
    gpu_type: str | None = None
    priority: Annotated[int, Field(ge=-MAX_INT, le=MAX_INT)] = 0
    user: str | None = None
    virtual_cluster: str | None = None  # the team's share of the cluster (Philly's `cluster`)
    sparsity: Literal["none", "2:4"] = "none"  # structured 2:4 weight sparsity (sparse cores)
    prune_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0  # unstructured magnitude pruning
    execute: ExecuteSpec | None = None  # really train it (mlp, or cnn arch cifar10-cnn)
    dataset: DatasetSpec | None = None  # input data read each iteration (storage model)
    checkpoint: CheckpointSpec | None = None  # overrides the scenario's `checkpoint`
    # the job's key in throughput tables (engine.throughputs); None: its model preset's name
    job_type: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    step_model: StepModelKind | None = None  # None: the scenario's engine.step_model

    @field_validator("model", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        if isinstance(v, str):
            presets = catalog.model_presets()
            if v not in presets:
                raise ValueError(f"unknown model preset {v!r}; valid: {', '.join(presets)}")
            return {**presets[v], "name": v}
        return v

    @field_validator("gpu_type", "reference_gpu")
    @classmethod
    def _known_gpu(cls, v: str | None) -> str | None:
        if v is not None and v not in catalog.gpus():
            raise ValueError(f"unknown GPU type {v!r}; valid: {', '.join(catalog.gpus())}")
        return v

    @model_validator(mode="after")
    def _parallelism_fits_model(self) -> JobSpec:
        p, m = self.parallelism, self.model
        if (self.iterations is None) == (self.duration_s is None):
            raise ValueError("give exactly one of iterations and duration_s")
        if self.reference_gpu is not None:
            if self.duration_s is None:
                raise ValueError("reference_gpu is the GPU type duration_s was measured on; "
                                 "it needs duration_s")
            if not catalog.gpus()[self.reference_gpu].supports(self.precision):
                raise ValueError(f"reference_gpu {self.reference_gpu} has no {self.precision} "
                                 "support: set a precision it has")
        if self.execute is not None and not isinstance(self.iterations, int):
            raise ValueError("an executed job needs whole iterations (it really trains that "
                             "many)")
        per_step = p.dp * p.micro_batch
        if self.global_batch % per_step:
            raise ValueError(
                f"global_batch ({self.global_batch}) must be divisible by "
                f"dp x micro_batch ({p.dp} x {p.micro_batch} = {per_step})"
            )
        if p.virtual_stages > 1 and p.pp == 1:
            raise ValueError("virtual_stages > 1 needs pipeline parallelism (pp > 1)")
        if p.pipeline_schedule == "interleaved" and p.pp > 1:
            m_per_pipe = self.global_batch // per_step
            if m_per_pipe % p.pp:
                raise ValueError(f"the interleaved schedule needs the micro-batches per pipeline "
                                 f"({m_per_pipe}) to be a multiple of pp ({p.pp})")
        if p.ep > 1 and not (isinstance(m, GptModel) and m.moe_experts):
            raise ValueError("expert parallelism (ep > 1) needs a model with moe_experts")
        if isinstance(m, GptModel) and m.moe_experts and m.moe_experts % p.ep:
            raise ValueError(f"ep ({p.ep}) must divide moe_experts ({m.moe_experts})")
        if self.execute is not None:
            self._check_executable()
        if isinstance(m, GptModel):
            if m.heads % p.tp:
                raise ValueError(f"tp ({p.tp}) must divide the number of heads ({m.heads})")
            chunks = p.pp * p.virtual_stages
            if m.layers % chunks:
                raise ValueError(
                    f"layers ({m.layers}) must be divisible by pp x virtual_stages "
                    f"({p.pp} x {p.virtual_stages} = {chunks})"
                )
        elif p.tp > 1 or p.pp > 1:  # (net, cnn, dlrm, mlp, custom: data parallel)
            raise ValueError(
                f"tensor/pipeline parallelism is modelled for transformers, not {m.kind}")
        return self

    def _check_executable(self) -> None:
        m, ex = self.model, self.execute
        assert ex is not None
        if isinstance(m, MlpModel):
            if ex.dataset == "digits" and (m.inputs, m.outputs) != (64, 10):
                raise ValueError("execute on digits needs an mlp with inputs 64 (8x8 pixels) and "
                                 f"outputs 10, got inputs {m.inputs}, outputs {m.outputs}")
        elif isinstance(m, CnnModel) and m.arch == "cifar10-cnn":
            if ex.dataset != "synthetic" or (m.image_size or 32) != 32:
                raise ValueError("execute with the cifar10-cnn needs dataset: synthetic "
                                 "(32x32 RGB images made from the job's seed)")
        else:
            raise ValueError("execute trains an mlp or the cifar10-cnn; "
                             f"this job's model is {m.kind}")
        if self.num_gpus != 1:
            raise ValueError("an executed job runs on one device (tp = pp = dp = 1)")
        if self.parallelism.micro_batch != self.global_batch:
            raise ValueError("an executed job takes one step per global batch, without gradient "
                             f"accumulation: set parallelism.micro_batch to {self.global_batch}")

    @property
    def num_gpus(self) -> int:
        return self.parallelism.num_gpus


# ----------------------------------------------------------------------------- workload
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


class Workload(Strict):
    jobs: list[JobSpec] | None = None
    trace: TraceSource | None = None
    generator: AnyGenerator | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Workload:
        given = [k for k in ("jobs", "trace", "generator") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of jobs, trace, generator (got {given or 'none'})")
        return self


# ----------------------------------------------------------------------------- cluster
class NicGroup(Strict):
    type: str
    count: Annotated[int, Field(gt=0, le=64)] = 1

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in catalog.nics():
            raise ValueError(f"unknown NIC type {v!r}; valid: {', '.join(catalog.nics())}")
        return v


class ServerGroup(Strict):
    """`count` servers, either of a catalog `type` or described inline."""

    name: str | None = None
    count: ServerCount
    type: str | None = None
    gpus_per_server: Annotated[int, Field(gt=0, le=MAX_GPUS_PER_SERVER)] | None = None
    gpu: str | None = None
    host_memory_gb: PosFloat | None = None
    nics: list[NicGroup] | None = None
    intra_node: Literal["nvswitch", "pcie"] | None = None

    @model_validator(mode="after")
    def _type_or_inline(self) -> ServerGroup:
        if self.type is not None:
            if self.type not in catalog.servers():
                valid = ", ".join(catalog.servers())
                raise ValueError(f"unknown server type {self.type!r}; valid: {valid}")
        elif self.gpus_per_server is None or self.gpu is None:
            raise ValueError("give a catalog server `type`, or `gpus_per_server` and `gpu` inline")
        if self.gpu is not None and self.gpu not in catalog.gpus():
            raise ValueError(f"unknown GPU type {self.gpu!r}; valid: {', '.join(catalog.gpus())}")
        return self


class Cluster(Strict):
    servers: Annotated[list[ServerGroup], Field(min_length=1)]


class KindParams(Strict):
    """A pluggable component: a registered `kind` and its own `params`."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class StorageTier(Strict):
    """One storage tier: a catalog `device` (`dcsim catalog storage`) x `count`, any figure
    overridden (aggregate over the devices; dram and nvme per server)."""

    enabled: bool = True
    device: str | None = None  # None: the tier's default (catalog/storage.yaml)
    count: PosInt | None = None  # devices: per server (dram, nvme), in total (pfs, object)
    capacity_gb: PosFloat | None = None
    read_gbyte_s: PosFloat | None = None
    write_gbyte_s: PosFloat | None = None
    latency_s: NonNegFloat | None = None
    metadata_latency_s: NonNegFloat | None = None  # per file opened (pfs, object)
    # dram, nvme: the share of the capacity that caches datasets (dram default 0.5, nvme 1)
    cache_fraction: Annotated[float, Field(gt=0, le=1)] | None = None

    @field_validator("device")
    @classmethod
    def _known_device(cls, v: str | None) -> str | None:
        if v is not None and v not in catalog.storage_devices():
            raise ValueError(f"unknown storage device {v!r}; valid: "
                             f"{', '.join(catalog.storage_devices())}")
        return v


class Storage(Strict):
    """Storage tiers (dcsim/storage/): per-server host DRAM cache and local NVMe, a shared
    parallel file system and an object store. GPU HBM is the GPUs' own memory (capacity only)."""

    dram: StorageTier = StorageTier()
    nvme: StorageTier = StorageTier()
    pfs: StorageTier = StorageTier()
    object: StorageTier = StorageTier()
    loader_workers: PosInt = 8  # data-loader processes per GPU (concurrent file opens)


class ThroughputSource(Strict):
    """A table of measured throughputs for `step_model: measured` (dcsim/perf/tables/):
    `dcsim` (CSV or YAML, job_type x gpu x num_gpus (x batch) -> throughput), `gavel`
    (Gavel's simulation_throughputs.json) or `pollux` (a folder of Pollux's per-application
    profiles). `gpus` maps the table's GPU names to catalog GPU types (gavel and pollux have
    defaults: docs/scenario-reference.md#throughput-tables)."""

    path: str
    format: Literal["dcsim", "gavel", "pollux"] = "dcsim"
    gpus: dict[str, str] = Field(default_factory=dict)

    @field_validator("gpus")
    @classmethod
    def _known_gpus(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v.values():
            JobSpec._known_gpu(name)
        return v


class Engine(Strict):
    fidelity: Literal["steady", "iteration"] = "steady"
    step_model: StepModelKind = "calibrated"
    # measured-throughput tables (later tables win on the same entry); step_model: measured
    # (for the scenario or a job) needs at least one
    throughputs: list[ThroughputSource] = Field(default_factory=list)
    # jobs share links max-min fairly while they run (shared), while they communicate (timed),
    # or not at all (isolated)
    network: Literal["shared", "isolated", "timed"] = "shared"
    profiles: list[str] = Field(default_factory=list)  # device profile files (dcsim calibrate)
    # checkpoint + restore time a preempted job pays when it restarts (holding its GPUs, no
    # progress); Simulation._restore_delay_s is the hook a storage model will replace
    preemption_overhead_s: NonNegFloat = 0.0
    # stop the run after this many events, like a horizon (jobs still open end `unfinished`,
    # their reason naming the limit): a bound on failure storms and very long runs
    max_events: PosInt | None = None


class Outputs(Strict):
    dir: str | None = None
    plots: bool = True
    # links.csv rows: links between servers and switches (fabric), also those inside servers
    # (all: GPU, PCIe, NIC links), or none
    link_levels: Literal["fabric", "all", "none"] = "fabric"


class Scenario(Strict):
    # any text; `dcsim run` makes its default folder results/NAME a safe name (outdir.py)
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    description: str = ""
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    horizon_s: PosFloat | None = None
    cluster: Cluster
    topology: KindParams = KindParams(kind="single-switch")
    workload: Workload
    scheduler: KindParams = KindParams(kind="fifo")
    placement: KindParams = KindParams(kind="packed")
    engine: Engine = Engine()
    outputs: Outputs = Outputs()
    faults: FaultsSpec | None = None  # failures, repairs, spares, stragglers (dcsim/faults)
    # storage tiers; given (even {}): every job reads its dataset (defaults per model kind)
    storage: Storage | None = None
    checkpoint: CheckpointSpec | None = None  # every job's periodic checkpoints (None: none)
    # where relative paths (traces) resolve: the scenario file's folder; not a YAML key, set
    # once while validating (`base_dir` in the validation context, see model_post_init)
    _base_dir: str = PrivateAttr(default=".")

    def model_post_init(self, context: Any, /) -> None:
        if isinstance(context, dict) and "base_dir" in context:
            self._base_dir = str(context["base_dir"])

    @model_validator(mode="after")
    def _measured_needs_tables(self) -> Scenario:
        if self.engine.throughputs:
            return self
        if self.engine.step_model == "measured":
            raise ValueError("engine.step_model measured needs engine.throughputs (a table of "
                             "measured throughputs)")
        for i, job in enumerate(self.workload.jobs or []):
            if job.step_model == "measured":
                raise ValueError(f"workload.jobs[{i}].step_model measured needs "
                                 "engine.throughputs (a table of measured throughputs)")
        return self

    @property
    def base_dir(self) -> str:
        return self._base_dir

    def resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else Path(self._base_dir) / p


