"""Failures, repairs, spare servers and stragglers (the `faults:` scenario key).

The scenario models are in `dcsim.scenario.faults`. Here: `distributions` (failure and repair
time distributions, registered), `llama3` (the Llama 3 preset), `trace` (the failure-trace
reader), `instances` (the cluster's component instances), `rates` (configured rates and a
job's MTBF, without running), `host` (the `FaultHost` protocol the engine implements), `model`
(the processes the engine runs, `FaultModel`), `stragglers` (slow GPUs), `retries` (when an
interrupted job gives up)."""

from dcsim.scenario.faults import COMPONENTS, FaultsSpec

__all__ = ["COMPONENTS", "FaultsSpec"]
