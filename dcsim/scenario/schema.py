"""The scenario schema: the YAML shape, its defaults and the rules within one section.

Strict (unknown keys are errors) and frozen pydantic models; units are in the key names. The
root model, `Scenario`, is here; its sections' models live by topic: `base` (bounded numbers,
the strict base model, pluggable kinds), `models` (a job's network), `jobs` (a job, its
parallelism, data and checkpoints), `workload` (jobs, traces, generators), `cluster` (servers
and storage tiers), `options` (engine and outputs) and `faults`. The names this module defined
before that split are re-exported, so `from dcsim.scenario.schema import X` still works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PrivateAttr

# the sections' models; the imports marked noqa also re-export what this module defined
# before the split
from dcsim.scenario.base import (  # noqa: F401
    MAX_FLOAT,
    MAX_GPUS_PER_SERVER,
    MAX_INT,
    MAX_ITERATIONS,
    MAX_JOBS,
    MAX_SERVERS,
    Iterations,
    JobCount,
    KindParams,
    NonNegFloat,
    PosFloat,
    PosInt,
    Precision,
    ServerCount,
    Sigma,
    StepModelKind,
    Strict,
)
from dcsim.scenario.cluster import Cluster, NicGroup, ServerGroup, Storage, StorageTier  # noqa: F401
from dcsim.scenario.cost import CostSpec
from dcsim.scenario.faults import FaultsSpec
from dcsim.scenario.jobs import (  # noqa: F401
    CheckpointSpec,
    DatasetSpec,
    ExecuteSpec,
    JobSpec,
    Parallelism,
)
from dcsim.scenario.models import (  # noqa: F401
    MIN_IMAGE_SIZE,
    BertModel,
    CnnModel,
    CustomModel,
    DlrmModel,
    GptModel,
    MlpModel,
    ModelBase,
    ModelSpec,
    NetModel,
)
from dcsim.scenario.options import Engine, Outputs, ThroughputSource  # noqa: F401
from dcsim.scenario.power import PowerSpec
from dcsim.scenario.serving import ServiceSpec
from dcsim.scenario.workload import (  # noqa: F401
    DLRM_KAGGLE,
    NATIVE_TRACE_FORMATS,
    PHILLY_APPS,
    PHILLY_REFERENCE_GPU,
    AnyGenerator,
    GeneratorSpec,
    MixEntry,
    PhillyApp,
    PhillyGeneratorSpec,
    TraceModel,
    TraceSource,
    Workload,
)

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
    # the facility (PUE), the grid (carbon, prices) and power overrides (dcsim/energy/)
    power: PowerSpec = PowerSpec()
    # total cost of ownership and price overrides (dcsim/energy/cost.py); None: not reported
    cost: CostSpec | None = None
    # inference services sharing the cluster with the training jobs (docs/serving.md)
    services: list[ServiceSpec] = Field(default_factory=list)
    # where relative paths (traces) resolve: the scenario file's folder; not a YAML key, set
    # once while validating (`base_dir` in the validation context, see model_post_init)
    _base_dir: str = PrivateAttr(default=".")

    def model_post_init(self, context: Any, /) -> None:
        if isinstance(context, dict) and "base_dir" in context:
            self._base_dir = str(context["base_dir"])

    @property
    def base_dir(self) -> str:
        return self._base_dir

    def resolve_path(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else Path(self._base_dir) / p


