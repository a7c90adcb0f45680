"""The `services:` section: inference services that share the cluster with training jobs
(docs/serving.md). Each service is a model on replicas of `tp` GPUs, a request stream, a
batching policy, a routing policy and its SLOs. A decoder-only transformer (`kind: gpt`) is
an LLM service (continuous batching of tokens); any other model is a DNN service (dynamic
batching of one-sample requests through its forward pass)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dcsim import catalog
from dcsim.scenario.base import NonNegFloat, PosFloat, Precision, Sigma, Strict
from dcsim.scenario.models import GptModel, ModelSpec

__all__ = ["ServiceSpec", "TokenDist", "PoissonStream", "GammaStream", "DiurnalStream",
           "TraceStream", "ClosedStream", "RequestStream", "Batching", "DynamicBatching",
           "Disaggregation", "Slo", "Autoscale", "MAX_TOKENS_PER_REQUEST", "MAX_REQUESTS"]

MAX_TOKENS_PER_REQUEST = 10_000_000
MAX_REQUESTS = 100_000_000  # requests one service's stream may produce (memory: ~150 B each,
# ~250 B with outputs.requests, the per-request table)
TokenCount = Annotated[int, Field(gt=0, le=MAX_TOKENS_PER_REQUEST)]
Rate = Annotated[float, Field(gt=0, le=1e6)]  # requests per second


class TokenDist(Strict):
    """Tokens per request: log-normal with this mean (sigma 0: always the mean), rounded,
    clipped to [1, max]."""

    mean: Annotated[float, Field(ge=1, le=MAX_TOKENS_PER_REQUEST)]
    sigma: Sigma = 0.0
    max: TokenCount | None = None


class _Synthetic(Strict):
    rate_per_s: Rate
    duration_s: PosFloat
    # LLM services: required; DNN services: none (a request is one sample)
    prompt_tokens: TokenDist | None = None
    output_tokens: TokenDist | None = None
    start_s: NonNegFloat = 0.0


class PoissonStream(_Synthetic):
    kind: Literal["poisson"]


class GammaStream(_Synthetic):
    """Bursty: Gamma-distributed gaps with coefficient of variation `cv` (1: Poisson)."""

    kind: Literal["gamma"]
    cv: Annotated[float, Field(gt=0, le=100)]


class DiurnalStream(_Synthetic):
    """A Poisson stream whose rate follows a sine: rate_per_s x (1 + a sin(...)), highest at
    `peak_s` into each `period_s`, with a = peak_to_mean - 1 (<= 1: the trough is >= 0)."""

    kind: Literal["diurnal"]
    peak_to_mean: Annotated[float, Field(ge=1, le=2)] = 1.5
    period_s: PosFloat = 86_400.0
    peak_s: NonNegFloat = 14 * 3600.0


class ClosedStream(Strict):
    """A closed loop, as load generators measure (AIPerf, GenAI-Perf, `--concurrency`):
    `concurrency` clients each send a request at `start_s`, wait for its answer (served or
    dropped) and send the next at once, until `requests` have been sent."""

    kind: Literal["closed"]
    concurrency: Annotated[int, Field(ge=1, le=1_000_000)]
    requests: Annotated[int, Field(ge=1, le=MAX_REQUESTS)]
    prompt_tokens: TokenDist | None = None
    output_tokens: TokenDist | None = None
    start_s: NonNegFloat = 0.0


class TraceStream(Strict):
    """Requests read from a file: `format` azure-llm (TIMESTAMP, ContextTokens,
    GeneratedTokens; the Azure LLM inference trace 2023). Gaps are multiplied by `time_scale`
    (0.5: twice the rate) and the trace is replayed `loops` times back to back."""

    kind: Literal["trace"]
    path: Annotated[str, Field(min_length=1)]
    format: Literal["azure-llm"] = "azure-llm"
    time_scale: Annotated[float, Field(gt=0, le=1e6)] = 1.0
    loops: Annotated[int, Field(ge=1, le=100_000)] = 1
    start_s: NonNegFloat = 0.0
    limit: Annotated[int, Field(gt=0, le=MAX_REQUESTS)] | None = None  # the first N rows


RequestStream = Annotated[
    PoissonStream | GammaStream | DiurnalStream | ClosedStream | TraceStream,
    Field(discriminator="kind")]


class Batching(Strict):
    """Continuous batching (vLLM-style): per iteration at most `max_tokens` tokens and
    `max_seqs` running requests; prompts split into chunks (`chunked_prefill`) or prefilled
    whole in prefill-only iterations; the KV cache gets what `memory_fraction` of each GPU's
    memory leaves after the weights and activations; `max_queue` waiting requests per replica
    (None: unbounded; more are dropped)."""

    max_tokens: Annotated[int, Field(ge=16, le=1_048_576)] = 8192
    max_seqs: Annotated[int, Field(ge=1, le=65_536)] = 256
    chunked_prefill: bool = True
    memory_fraction: Annotated[float, Field(gt=0, le=1)] = 0.9
    iteration_overhead_s: Annotated[float, Field(ge=0, le=10)] | None = None
    max_queue: Annotated[int, Field(ge=0, le=MAX_REQUESTS)] | None = None
    # the longest prompt + output the service accepts (None: the model's seq_len)
    max_len: TokenCount | None = None


class DynamicBatching(Strict):
    """DNN services (Triton-style dynamic batching): an idle replica starts a batch of the
    requests waiting, at most `max_batch`, once it has `max_batch` of them or the oldest has
    waited `timeout_s`; `max_queue` waiting requests per replica (None: unbounded; more are
    dropped). A batch takes the model's forward pass at that batch size plus
    `batch_overhead_s` (the server's own time per batch): with `fused_kernels`, as an
    inference engine runs it (TensorRT-style fusions, activations in the precision's bytes);
    without, as the training framework's forward pass."""

    max_batch: Annotated[int, Field(ge=1, le=1_048_576)] = 32  # (MLPerf DLRM-v2: 600,000 pairs)
    timeout_s: Annotated[float, Field(ge=0, le=3600)] = 0.002
    max_queue: Annotated[int, Field(ge=0, le=MAX_REQUESTS)] | None = None
    batch_overhead_s: Annotated[float, Field(ge=0, le=10)] = 0.0
    fused_kernels: bool = True


class Disaggregation(Strict):
    """Prefill and decode on separate replicas (Splitwise, Patel et al., ISCA 2024;
    DistServe, OSDI 2024): the first `prefill_replicas` replicas take the arrivals and
    prefill them; a request's first token done, its KV cache goes to the decode replica with
    the fewest requests, over the network at `kv_transfer_gbyte_s` per GPU (None: the
    servers' NIC bandwidth per GPU, or NVLink when both replicas share a server)."""

    prefill_replicas: Annotated[int, Field(ge=1, le=100_000)]
    kv_transfer_gbyte_s: Annotated[float, Field(gt=0, le=1e5)] | None = None


class Slo(Strict):
    """Latency targets met at `percentile` (a request meets the SLO when it meets every target
    given); at least one target."""

    ttft_s: PosFloat | None = None
    tpot_s: PosFloat | None = None
    e2e_s: PosFloat | None = None
    percentile: Annotated[float, Field(gt=0, le=100)] = 99.0

    @model_validator(mode="after")
    def _some_target(self) -> Slo:
        if self.ttft_s is None and self.tpot_s is None and self.e2e_s is None:
            raise ValueError("give at least one of ttft_s, tpot_s, e2e_s")
        return self


class Autoscale(Strict):
    """Replicas follow the load: at each `sample_s` the service wants ceil(requests queued or
    running / `target_per_replica`) replicas, within [min_replicas, max_replicas]. It adds
    replicas at once; each serves after a cold start: `startup_s` (the engine's own start)
    plus reading the replica's weights from the storage tier `weights_from` (a local tier of
    its server, or a shared tier's aggregate read bandwidth divided among the replicas loading
    from it). It removes replicas after the load has allowed fewer for `scale_down_after_s`
    (a removed replica drains, then frees its GPUs for training jobs). With `reclaim`, a
    replica that finds no free GPUs preempts training jobs for them."""

    min_replicas: Annotated[int, Field(ge=1, le=100_000)] = 1  # (a request needs a replica)
    max_replicas: Annotated[int, Field(ge=1, le=100_000)]
    target_per_replica: Annotated[float, Field(gt=0, le=1e6)] = 16.0
    scale_down_after_s: NonNegFloat = 300.0
    startup_s: NonNegFloat = 20.0
    weights_from: Literal["nvme", "dram", "pfs", "object"] = "nvme"
    reclaim: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> Autoscale:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be <= max_replicas "
                             f"({self.max_replicas})")
        return self


class ServiceSpec(Strict):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f,]+$")]
    model: ModelSpec  # a preset name (dcsim catalog models) or a model
    gpu_type: str
    replicas: Annotated[int, Field(ge=1, le=100_000)]
    tp: Annotated[int, Field(ge=1, le=64)] = 1
    precision: Precision = "bf16"
    # the KV cache's element type: 16-bit, or 8-bit (FP8 KV caches of vLLM and TensorRT-LLM)
    kv_precision: Literal["bf16", "fp16", "fp8", "int8"] = "bf16"
    batching: Batching = Batching()  # LLM services
    dynamic_batching: DynamicBatching = DynamicBatching()  # DNN services
    routing: Literal["round-robin", "least-outstanding"] = "least-outstanding"
    autoscale: Autoscale | None = None  # None: `replicas` for the service's whole life
    disaggregation: Disaggregation | None = None  # None: each replica prefills and decodes
    requests: RequestStream
    slo: Slo | None = None
    # after the last arrival, how long requests may still finish; those that do not are
    # reported in flight
    drain_s: NonNegFloat = 3600.0
    # how often the service's timeline (load, queue, KV use) is sampled
    sample_s: Annotated[float, Field(ge=1, le=1e7)] = 60.0

    @field_validator("model", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        if isinstance(v, str):
            presets = catalog.model_presets()
            if v not in presets:
                raise ValueError(f"unknown model preset {v!r}; valid: {', '.join(presets)}")
            return {**presets[v], "name": v}
        return v

    @field_validator("gpu_type")
    @classmethod
    def _known_gpu(cls, v: str) -> str:
        if v not in catalog.gpus():
            raise ValueError(f"unknown GPU type {v!r}; valid: {', '.join(catalog.gpus())}")
        return v

    @model_validator(mode="after")
    def _fits_its_kind(self) -> ServiceSpec:
        """LLM keys on LLM services, DNN keys on DNN services."""
        given = self.model_fields_set
        req = self.requests
        tokens = [k for k in ("prompt_tokens", "output_tokens")
                  if not isinstance(req, TraceStream) and getattr(req, k) is None]
        d = self.disaggregation
        if d is not None:
            if not self.is_llm:
                raise ValueError("disaggregation is for LLM services (prefill and decode)")
            if self.autoscale is not None:
                raise ValueError("disaggregation with autoscale is not modelled yet: give "
                                 "fixed replicas")
            if d.prefill_replicas >= self.replicas:
                raise ValueError(f"disaggregation.prefill_replicas ({d.prefill_replicas}) "
                                 f"must leave decode replicas: fewer than replicas "
                                 f"({self.replicas})")
        if self.is_llm:
            if "dynamic_batching" in given:
                raise ValueError("dynamic_batching is for DNN services; an LLM service "
                                 "(a gpt model) batches with `batching`")
            if tokens:
                raise ValueError(f"requests.{tokens[0]}: an LLM service's requests need "
                                 f"prompt_tokens and output_tokens")
            return self
        kind = getattr(self.model, "kind", "?")
        for key in ("batching", "kv_precision"):
            if key in given:
                raise ValueError(f"{key} is for LLM services; this {kind} model is a DNN "
                                 f"service (dynamic_batching)")
        if len(tokens) < 2 and not isinstance(req, TraceStream):
            raise ValueError(f"requests: a DNN service's request is one sample: remove "
                             f"prompt_tokens and output_tokens ({kind} model)")
        if self.tp != 1:
            raise ValueError(f"tp {self.tp}: a DNN service's replica is one GPU (replicas "
                             f"are its data parallelism)")
        return self

    @property
    def is_llm(self) -> bool:
        """A decoder-only transformer: continuous batching of tokens."""
        return getattr(self.model, "kind", None) == "gpt"

    @model_validator(mode="after")
    def _replicas_in_bounds(self) -> ServiceSpec:
        a = self.autoscale
        if a is not None and not a.min_replicas <= self.replicas <= a.max_replicas:
            raise ValueError(f"replicas ({self.replicas}, the start) must be within "
                             f"autoscale's [{a.min_replicas}, {a.max_replicas}]")
        return self

    @property
    def max_replicas(self) -> int:
        return self.autoscale.max_replicas if self.autoscale else self.replicas

    @property
    def num_gpus(self) -> int:
        """GPUs at the start."""
        return self.replicas * self.tp

    @property
    def max_len(self) -> int:
        """The longest prompt + output accepted (DNN services: 2, one sample in, one out)."""
        if not self.is_llm:
            return 2
        assert isinstance(self.model, GptModel)
        return self.batching.max_len or self.model.seq_len
