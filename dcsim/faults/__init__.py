"""Failures, repairs, spare servers and stragglers (the `faults:` scenario key).

`spec` holds the scenario models (imported by the schema), `llama3` the Llama 3 preset,
`trace` the failure-trace reader, `instances` the cluster's component instances, `model` the
processes the engine runs (`FaultModel`)."""

from dcsim.scenario.faults import COMPONENTS, FaultsSpec

__all__ = ["COMPONENTS", "FaultsSpec"]
