"""The `model:` of a job: the neural network it trains, one model class per `kind`, told apart
by `ModelSpec`'s discriminator."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from dcsim import catalog
from dcsim.scenario.base import PosFloat, PosInt, Strict

__all__ = ["ModelSpec", "GptModel", "BertModel", "CnnModel", "DlrmModel", "MlpModel",
           "CustomModel", "NetModel"]

MIN_IMAGE_SIZE = {"resnet50": 32, "cifar10-cnn": 4, "densenet121": 32, "inception-v3": 75}


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
