"""Scenarios: the one place where the YAML shape, defaults and validation live.

The schema layer: `schema` holds the models (and `faults` the faults section's), `load` the
reading, `--set` overrides and the schema's validation, every problem reported as
`file:line: key.path: message` in one `ScenarioError`. It imports nothing above the catalog,
errors and the YAML reader. `dcsim.world.load_scenario(path)` adds the checks that need built
objects and returns a frozen, validated `Scenario`.
"""

from dcsim.scenario.load import apply_overrides, parse_scenario, validate_schema
from dcsim.scenario.schema import (
    BertModel,
    CnnModel,
    CustomModel,
    DlrmModel,
    GeneratorSpec,
    GptModel,
    JobSpec,
    KindParams,
    MlpModel,
    ModelSpec,
    NetModel,
    Parallelism,
    Scenario,
    ServerGroup,
)

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
