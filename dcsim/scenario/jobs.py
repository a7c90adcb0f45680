"""One training job (`JobSpec`): its model, how it is split over GPUs (`Parallelism`), the data
it reads (`DatasetSpec`), its checkpoints (`CheckpointSpec`) and whether it really trains
(`ExecuteSpec`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dcsim import catalog
from dcsim.scenario.base import (
    MAX_INT,
    Iterations,
    NonNegFloat,
    PosFloat,
    PosInt,
    Precision,
    StepModelKind,
    Strict,
)
from dcsim.scenario.models import CnnModel, GptModel, MlpModel, ModelSpec

__all__ = ["JobSpec", "Parallelism", "ExecuteSpec", "DatasetSpec", "CheckpointSpec"]


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
    # HSDP: shard over groups of this many of the dp x cp ranks, replicated across groups
    # (None: one group of all of them)
    zero_group: PosInt | None = None
    # ZeRO-3: layers whose weights are gathered ahead of the one computing
    prefetch: Annotated[int, Field(ge=0, le=64)] = 1
    overlap_grad_comm: bool = True  # overlap the dp gradient reduction with backward compute
    overlap_tp_comm: bool = False  # overlap tensor-parallel collectives with matrix products
    grad_reduce_dtype: Literal["fp32", "bf16"] = "fp32"  # dtype of the dp gradient reduction
    ep: PosInt = 1  # expert parallel (MoE): experts split over ep of the dp ranks
    # run the expert all-to-alls behind another micro-batch's compute (DualPipe-style)
    overlap_ep_comm: bool = False
    # context parallel (transformers): each sequence split over cp ranks, attention by ring
    # attention (KV passed around the cp ranks, overlapped with the attention compute)
    cp: PosInt = 1
    # uneven pipeline stages (transformers): the layers of each virtual stage, pp x
    # virtual_stages of them in pipeline order (virtual stage c x pp + d lives on stage d);
    # or, as Megatron's decoder_first/last_pipeline_num_layers, the first and last virtual
    # stages' layers, the others sharing the rest evenly. None: all alike.
    stage_layers: Annotated[list[Annotated[int, Field(ge=0, le=100_000)]],
                            Field(min_length=2)] | None = None
    first_stage_layers: Annotated[int, Field(ge=0, le=100_000)] | None = None
    last_stage_layers: Annotated[int, Field(ge=0, le=100_000)] | None = None

    @property
    def num_gpus(self) -> int:
        return self.tp * self.cp * self.pp * self.dp

    @property
    def shard_ranks(self) -> int:
        """Ranks a ZeRO state is sharded over: the shard group (HSDP), else all dp x cp."""
        return self.zero_group or self.dp * self.cp

    @property
    def chunks(self) -> int:
        """Virtual pipeline stages: pp x virtual_stages."""
        return self.pp * self.virtual_stages

    def chunk_layers(self, layers: int) -> list[int]:
        """Each virtual stage's layers, in pipeline order, for a model of `layers` layers
        (ValueError, naming both numbers, when they do not add up)."""
        n = self.chunks
        if self.stage_layers is not None:
            if len(self.stage_layers) != n:
                raise ValueError(f"stage_layers has {len(self.stage_layers)} entries; pp x "
                                 f"virtual_stages = {self.pp} x {self.virtual_stages} = {n}")
            if sum(self.stage_layers) != layers:
                raise ValueError(f"stage_layers add up to {sum(self.stage_layers)} layers; "
                                 f"the model has {layers}")
            return list(self.stage_layers)
        first, last = self.first_stage_layers, self.last_stage_layers
        if first is None and last is None:
            if layers % n:
                raise ValueError(
                    f"layers ({layers}) must be divisible by pp x virtual_stages "
                    f"({self.pp} x {self.virtual_stages} = {n}); or give stage_layers, or "
                    f"first_stage_layers / last_stage_layers")
            return [layers // n] * n
        ends = [x for x in (first, last) if x is not None]
        middle = n - len(ends)
        rest = layers - sum(ends)
        if rest < 0 or (middle == 0 and rest) or (middle and rest % middle):
            given = " + ".join(f"{k} {v}" for k, v in (("first_stage_layers", first),
                                                     ("last_stage_layers", last))
                               if v is not None)
            raise ValueError(f"{given} leave {rest} of the model's {layers} layers for the "
                             f"other {middle} virtual stages: not an equal whole number each")
        each = rest // middle if middle else 0
        out = [each] * n
        if first is not None:
            out[0] = first
        if last is not None:
            out[-1] = last
        return out

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
        if self.zero_group is not None:
            ranks = self.dp * self.cp
            if self.zero == 0:
                raise ValueError("zero_group shards ZeRO states: it needs zero >= 1")
            if ranks % self.zero_group:
                raise ValueError(f"zero_group ({self.zero_group}) must divide dp x cp "
                                 f"({self.dp} x {self.cp} = {ranks})")
        uneven = self.first_stage_layers is not None or self.last_stage_layers is not None
        if self.stage_layers is not None and uneven:
            raise ValueError("give stage_layers or first_stage_layers / last_stage_layers, "
                             "not both")
        if (self.stage_layers is not None or uneven) and self.pp == 1:
            raise ValueError("stage layer counts need pipeline parallelism (pp > 1)")
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
    # a completion deadline (docs/energy.md#deadlines): seconds after arrival, or a multiple of
    # the job's run time alone (due at arrival + slack x alone_s); at most one
    deadline_s: PosFloat | None = None
    deadline_slack: Annotated[float, Field(ge=1, le=1e6)] | None = None
    # may a carbon-aware scheduler hold it back to cleaner hours (within its deadline)?
    deferrable: bool = False

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
        if self.deadline_s is not None and self.deadline_slack is not None:
            raise ValueError("give at most one of deadline_s and deadline_slack")
        if self.reference_gpu is not None:
            if self.duration_s is None:
                raise ValueError("reference_gpu is the GPU type duration_s was measured on; "
                                 "it needs duration_s")
            if not catalog.gpus()[self.reference_gpu].supports(self.precision):
                raise ValueError(f"reference_gpu {self.reference_gpu} has no {self.precision} "
                                 "support: set a precision it has")
        if self.gpu_type is not None and not catalog.gpus()[self.gpu_type].supports(
                self.precision):
            have = ", ".join(catalog.gpus()[self.gpu_type].peak_flop_s)
            raise ValueError(f"precision {self.precision} needs a GPU with {self.precision} "
                             f"math; gpu_type {self.gpu_type} has {have}")
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
            p.chunk_layers(m.layers)  # (raises when the stages do not add up)
            if p.cp > 1 and m.seq_len % (2 * p.cp):
                raise ValueError(
                    f"seq_len ({m.seq_len}) must be divisible by 2 x cp (2 x {p.cp} = "
                    f"{2 * p.cp}): ring attention splits each sequence into 2 x cp chunks")
        elif p.tp > 1 or p.pp > 1 or p.cp > 1:  # (net, cnn, dlrm, mlp, custom: data parallel)
            raise ValueError(
                f"tensor/pipeline/context parallelism is modelled for transformers, not "
                f"{m.kind}")
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
