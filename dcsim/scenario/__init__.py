"""Scenarios: the one place where the YAML shape, defaults and validation live.

The schema layer: `schema` holds the root model, `Scenario`, and its sections' models live by
topic (`base`, `models`, `jobs`, `workload`, `cluster`, `options`, `faults`); `load` does the
reading, `--set` overrides and the schema's validation, every problem reported as
`file:line: key.path: message` in one `ScenarioError`. It imports nothing above the catalog,
errors and the YAML reader. `dcsim.world.load_scenario(path)` adds the checks that need built
objects and returns a frozen, validated `Scenario`.
"""

from dcsim.scenario.base import KindParams
from dcsim.scenario.cluster import ServerGroup
from dcsim.scenario.jobs import JobSpec, Parallelism
from dcsim.scenario.load import apply_overrides, parse_scenario, validate_schema
from dcsim.scenario.models import (
    BertModel,
    CnnModel,
    CustomModel,
    DlrmModel,
    GptModel,
    MlpModel,
    ModelSpec,
    NetModel,
)
from dcsim.scenario.schema import Scenario
from dcsim.scenario.workload import GeneratorSpec

__all__ = [
    "BertModel",
    "CnnModel",
    "CustomModel",
    "NetModel",
    "DlrmModel",
    "GeneratorSpec",
    "GptModel",
    "JobSpec",
    "KindParams",
    "MlpModel",
    "ModelSpec",
    "Parallelism",
    "Scenario",
    "ServerGroup",
    "apply_overrides",
    "parse_scenario",
    "validate_schema",
]
