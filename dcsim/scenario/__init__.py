"""Scenarios: the one place where the YAML shape, defaults and validation live.

`load_scenario(path)` returns a frozen, validated `Scenario`; every problem is reported as
`file:line: key.path: message` in one `ScenarioError`. `schema` holds the models, `load` the
reading, overrides and the checks that span sections.
"""

from dcsim.scenario.load import apply_overrides, load_scenario, scenario_from_dict
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
    "load_scenario",
    "scenario_from_dict",
]
