"""The `model:` of a job: the neural network it trains, one model class per `kind`, told apart
by `ModelSpec`'s discriminator."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dcsim import catalog
from dcsim.scenario.base import PosFloat, PosInt, Strict

__all__ = ["ModelSpec", "GptModel", "MlaSpec", "BertModel", "CnnModel", "DlrmModel", "MlpModel",
           "CustomModel", "NetModel"]

MIN_IMAGE_SIZE = {"resnet50": 32, "cifar10-cnn": 4, "densenet121": 32, "inception-v3": 75}


class ModelBase(Strict):
    name: str | None = None  # a label for results; presets set it to their name


class MlaSpec(Strict):
    """Multi-head latent attention (DeepSeek-V2/V3): queries through a rank-`q_lora_rank`
    bottleneck (None: a full projection), keys and values through a shared rank-`kv_lora_rank`
    latent, each head attending with a `qk_nope_head_dim` + `qk_rope_head_dim` key and a
    `v_head_dim` value."""

    q_lora_rank: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    kv_lora_rank: Annotated[int, Field(gt=0, le=1_000_000)]
    qk_nope_head_dim: Annotated[int, Field(gt=0, le=65_536)]
    qk_rope_head_dim: Annotated[int, Field(ge=0, le=65_536)] = 0
    v_head_dim: Annotated[int, Field(gt=0, le=65_536)]


class GptModel(ModelBase):
    """Decoder-only transformer (GPT, Llama, Mixtral, DeepSeek). ffn_hidden defaults to
    4 x hidden. Mixture of experts (docs/step-time-model.md#mixture-of-experts): `moe_experts`
    routed experts per layer of `moe_ffn_hidden` (default ffn_hidden), each token to
    `moe_top_k`, plus `moe_shared_experts` every token passes through; the first
    `moe_dense_layers` layers keep a dense MLP of ffn_hidden. `moe_capacity_factor`: experts
    padded to that many times their even share of tokens (tokens over it dropped); without it
    routing is dropless and the busiest expert-parallel rank gets `moe_imbalance` times the
    mean. `moe_node_limit`: node-limited routing, a token's experts on at most that many
    servers (DeepSeek-V3: 4), each reached once. `mtp_depth`: multi-token-prediction modules
    (a layer and an output pass each) on the last stage. `tie_embeddings: false`: the output
    layer has its own vocab x hidden weights."""

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
    moe_ffn_hidden: PosInt | None = None
    moe_shared_experts: Annotated[int, Field(ge=0, le=1024)] = 0
    moe_dense_layers: Annotated[int, Field(ge=0, le=100_000)] = 0
    moe_capacity_factor: Annotated[float, Field(gt=0, le=1024)] | None = None
    moe_imbalance: Annotated[float, Field(ge=1, le=1024)] = 1.0
    moe_node_limit: Annotated[int, Field(gt=0, le=100_000)] | None = None
    mla: MlaSpec | None = None
    mtp_depth: Annotated[int, Field(ge=0, le=16)] = 0
    tie_embeddings: bool = True  # the output layer shares the input embedding's weights
    flash_attention: bool = True  # fused attention: no s x s scores in memory

    @model_validator(mode="after")
    def _heads_divide(self) -> GptModel:
        if self.moe_experts is not None and self.moe_top_k > self.moe_experts:
            raise ValueError(f"moe_top_k ({self.moe_top_k}) must be <= moe_experts "
                             f"({self.moe_experts})")
        if self.moe_experts is None:
            given = [k for k in ("moe_ffn_hidden", "moe_capacity_factor", "moe_node_limit")
                     if getattr(self, k) is not None]
            given += [k for k in ("moe_shared_experts", "moe_dense_layers")
                      if getattr(self, k)]
            given += ["moe_imbalance"] if self.moe_imbalance != 1.0 else []
            if given:
                raise ValueError(f"{', '.join(given)} need moe_experts (a mixture of experts)")
        if self.moe_dense_layers >= self.layers:
            raise ValueError(f"moe_dense_layers ({self.moe_dense_layers}) must be fewer than "
                             f"layers ({self.layers}): a mixture of experts needs an MoE layer")
        if (self.moe_capacity_factor is not None and self.moe_experts
                and self.moe_capacity_factor * self.moe_top_k > self.moe_experts):
            raise ValueError(
                f"moe_capacity_factor ({self.moe_capacity_factor}) x moe_top_k "
                f"({self.moe_top_k}) exceeds moe_experts ({self.moe_experts}): an expert "
                f"cannot take more than every token")
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(
                f"heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        if self.mla is not None and self.kv_heads is not None:
            raise ValueError("kv_heads is for grouped-query attention; a model with mla "
                             "shares one latent for all heads (leave kv_heads out)")
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
    """DLRM (Naumov et al. 2019): a bottom MLP over the dense features, one embedding table
    per sparse feature, their interaction, a top MLP. DLRM v1 (`interaction: dot`) looks up
    one row per table and takes the pairwise dot products; DLRM v2, as MLPerf runs it,
    sums `lookups` rows per table (multi-hot embedding bags) and crosses the concatenation
    in a DCNv2 network (Wang et al. 2021): `cross_layers` layers x_{l+1} = x_0 * (U (V^T x_l)
    + b) + x_l with rank-`cross_rank` U and V."""

    kind: Literal["dlrm"]
    dense_features: PosInt
    embedding_rows: Annotated[list[PosInt], Field(min_length=1)]
    embedding_dim: PosInt
    bottom_mlp: Annotated[list[PosInt], Field(min_length=1)]
    top_mlp: Annotated[list[PosInt], Field(min_length=1)]
    lookups: Annotated[list[Annotated[int, Field(ge=1, le=100_000)]],
                       Field(min_length=1)] | None = None  # per table (None: one each)
    interaction: Literal["dot", "dcn"] = "dot"
    cross_layers: Annotated[int, Field(ge=1, le=64)] = 3  # (dcn only)
    cross_rank: Annotated[int, Field(ge=1, le=65_536)] = 512  # (dcn only)

    @model_validator(mode="after")
    def _bottom_matches_embeddings(self) -> DlrmModel:
        if self.interaction == "dot" and self.bottom_mlp[-1] != self.embedding_dim:
            raise ValueError(f"the bottom MLP's last width ({self.bottom_mlp[-1]}) must equal "
                             f"embedding_dim ({self.embedding_dim}) for the dot interaction")
        if self.lookups is not None and len(self.lookups) != len(self.embedding_rows):
            raise ValueError(f"lookups has {len(self.lookups)} entries and embedding_rows "
                             f"{len(self.embedding_rows)}: give one per table")
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
