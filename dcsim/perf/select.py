"""Step-time models, one registered class each, and choosing each job's: the job's own
`step_model`, else the scenario's `engine.step_model`.

A registered model kind builds its `StepTimeModel` from what the scenario gives
(`StepModelInputs`: device profiles, throughput-table entries). `needs_tables` kinds exist in a
run only with `engine.throughputs`. Adding a step model is one class with `build`, one
registration and one test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.measured import Entry, MeasuredStepModel, ThroughputTable
from dcsim.perf.profile import DeviceProfile
from dcsim.perf.step import FirstOrderStepModel, StepEstimate, StepTimeModel
from dcsim.registry import Registry
from dcsim.scenario import JobSpec

__all__ = ["PerJobStepModel", "StepModelInputs", "StepModelEntry", "STEP_MODELS",
           "build_step_model"]


@dataclass
class StepModelInputs:
    """What a scenario gives its step models: device profiles from `engine.profiles` (over the
    shipped ones) and the entries of its `engine.throughputs` tables (None: no tables)."""

    profiles: dict[str, DeviceProfile] | None = None
    entries: list[Entry] | None = None

    @cached_property
    def calibrated(self) -> CalibratedStepModel:
        """The calibrated model, one per run (the measured model falls back on it)."""
        return CalibratedStepModel(self.profiles)


class StepModelEntry:
    name: ClassVar[str]
    needs_tables: ClassVar[bool] = False  # usable only with engine.throughputs

    @staticmethod
    def build(inputs: StepModelInputs) -> StepTimeModel:
        raise NotImplementedError


STEP_MODELS: Registry[StepModelEntry] = Registry("step model")


@STEP_MODELS.register("calibrated")
class Calibrated(StepModelEntry):
    """Operation-level times from calibrated device profiles (docs/step-time-model.md)."""

    @staticmethod
    def build(inputs: StepModelInputs) -> StepTimeModel:
        return inputs.calibrated


@STEP_MODELS.register("first-order")
class FirstOrder(StepModelEntry):
    """FLOPs at a fixed efficiency plus ring all-reduce time (dcsim/perf/step.py)."""

    @staticmethod
    def build(inputs: StepModelInputs) -> StepTimeModel:
        return FirstOrderStepModel()


@STEP_MODELS.register("measured")
class Measured(StepModelEntry):
    """Measured throughputs from tables, else the calibrated model (dcsim/perf/measured.py)."""

    needs_tables = True

    @staticmethod
    def build(inputs: StepModelInputs) -> StepTimeModel:
        assert inputs.entries is not None
        return MeasuredStepModel(ThroughputTable(inputs.entries), inputs.calibrated)


class PerJobStepModel:
    """Routes each job to the model it asks for (`JobSpec.step_model`), else `default`."""

    def __init__(self, default: str, models: Mapping[str, StepTimeModel]) -> None:
        self.default = default
        self.models = dict(models)

    def model_of(self, job: JobSpec) -> StepTimeModel:
        name = job.step_model or self.default
        model = self.models.get(name)
        if model is None:
            why = (" (it needs engine.throughputs)" if name in STEP_MODELS
                   and STEP_MODELS.get(name).needs_tables else "")
            raise ValueError(f"job {job.name!r}: step model {name!r} is not available in this "
                             f"run{why}; available: {', '.join(self.models)} (dcsim.load_scenario "
                             f"checks this before a run)")
        return model

    def estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        return self.model_of(job).estimate(job, gpu, ring)

    @property
    def measured(self) -> MeasuredStepModel | None:
        m = self.models.get("measured")
        return m if isinstance(m, MeasuredStepModel) else None


def build_step_model(default: str, profiles: dict[str, DeviceProfile] | None = None,
                     entries: list[Entry] | None = None) -> PerJobStepModel:
    """Every registered model a scenario can use (those that need tables only given table
    `entries`), jobs routed to theirs, `default` for the others."""
    inputs = StepModelInputs(profiles, entries)
    models = {name: STEP_MODELS.get(name).build(inputs) for name in STEP_MODELS
              if entries is not None or not STEP_MODELS.get(name).needs_tables}
    return PerJobStepModel(default, models)
