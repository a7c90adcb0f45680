"""The scenario schema: the YAML shape, its defaults and the rules within one section.

Strict (unknown keys are errors) and frozen pydantic models; units are in the key names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from dcsim import catalog

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
    "GeneratorSpec",
    "ServerGroup",
    "KindParams",
]

Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "int8"]
PosInt = Annotated[int, Field(gt=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


MIN_IMAGE_SIZE = {"resnet50": 32, "cifar10-cnn": 4, "densenet121": 32, "inception-v3": 75}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


ModelSpec = Annotated[
    GptModel | BertModel | CnnModel | DlrmModel | MlpModel | CustomModel,
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
    iterations: PosInt | None = None
    duration_s: PosFloat | None = None  # run time alone on reference_gpu: sets the iterations
    reference_gpu: str | None = None  # the GPU type duration_s was measured on (None: the job's)
    gpu_type: str | None = None
    priority: int = 0
    user: str | None = None
    sparsity: Literal["none", "2:4"] = "none"  # structured 2:4 weight sparsity (sparse cores)
    prune_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.0  # unstructured magnitude pruning
    execute: ExecuteSpec | None = None  # really train it (mlp, or cnn arch cifar10-cnn)

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
        if self.execute is not None and self.iterations is None:
            raise ValueError("an executed job needs iterations (it really trains that many)")
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
        elif p.tp > 1 or p.pp > 1:
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
class TraceSource(Strict):
    path: str
    format: Literal["dcsim-csv"] = "dcsim-csv"
    skip_bad_rows: bool = False


class MixEntry(Strict):
    weight: PosFloat
    job: JobSpec


class GeneratorSpec(Strict):
    kind: Literal["poisson"] = "poisson"
    num_jobs: PosInt
    mean_interarrival_s: PosFloat
    iterations_sigma: NonNegFloat = 0.0
    mix: Annotated[list[MixEntry], Field(min_length=1)]


class Workload(Strict):
    jobs: list[JobSpec] | None = None
    trace: TraceSource | None = None
    generator: GeneratorSpec | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Workload:
        given = [k for k in ("jobs", "trace", "generator") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of jobs, trace, generator (got {given or 'none'})")
        return self


# ----------------------------------------------------------------------------- cluster
class NicGroup(Strict):
    type: str
    count: PosInt = 1

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in catalog.nics():
            raise ValueError(f"unknown NIC type {v!r}; valid: {', '.join(catalog.nics())}")
        return v


class ServerGroup(Strict):
    """`count` servers, either of a catalog `type` or described inline."""

    name: str | None = None
    count: PosInt
    type: str | None = None
    gpus_per_server: PosInt | None = None
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


class Engine(Strict):
    fidelity: Literal["steady", "iteration"] = "steady"
    step_model: Literal["calibrated", "first-order"] = "calibrated"
    # jobs share links max-min fairly while they run (shared), while they communicate (timed),
    # or not at all (isolated)
    network: Literal["shared", "isolated", "timed"] = "shared"
    profiles: list[str] = Field(default_factory=list)  # device profile files (dcsim calibrate)


class Outputs(Strict):
    dir: str | None = None
    plots: bool = True
    # links.csv rows: links between servers and switches (fabric), also those inside servers
    # (all: GPU, PCIe, NIC links), or none
    link_levels: Literal["fabric", "all", "none"] = "fabric"


class Scenario(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    description: str = ""
    seed: Annotated[int, Field(ge=0)] = 0
    horizon_s: PosFloat | None = None
    cluster: Cluster
    topology: KindParams = KindParams(kind="single-switch")
    workload: Workload
    scheduler: KindParams = KindParams(kind="fifo")
    placement: KindParams = KindParams(kind="packed")
    engine: Engine = Engine()
    outputs: Outputs = Outputs()
    # where relative paths (traces) resolve: the scenario file's folder; not a YAML key
    _base_dir: str = PrivateAttr(default=".")

    @property
    def base_dir(self) -> str:
        return self._base_dir

    def resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else Path(self._base_dir) / p


