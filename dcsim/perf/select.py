"""Choosing each job's step-time model: the job's own `step_model`, else the scenario's
`engine.step_model` (calibrated, first-order or measured)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.measured import Entry, MeasuredStepModel, ThroughputTable
from dcsim.perf.profile import DeviceProfile
from dcsim.perf.step import FirstOrderStepModel, StepEstimate, StepTimeModel
from dcsim.scenario import JobSpec

__all__ = ["PerJobStepModel", "build_step_model"]


class PerJobStepModel:
    """Routes each job to the model it asks for (`JobSpec.step_model`), else `default`."""

    def __init__(self, default: str, models: Mapping[str, StepTimeModel]) -> None:
        self.default = default
        self.models = dict(models)

    def model_of(self, job: JobSpec) -> StepTimeModel:
        return self.models[job.step_model or self.default]

    def estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        return self.model_of(job).estimate(job, gpu, ring)

    @property
    def measured(self) -> MeasuredStepModel | None:
        m = self.models.get("measured")
        return m if isinstance(m, MeasuredStepModel) else None


def build_step_model(default: str, profiles: dict[str, DeviceProfile] | None = None,
                     entries: Iterable[Entry] | None = None) -> PerJobStepModel:
    """The models a scenario can use: calibrated (with `profiles`), first-order, and, given
    throughput table `entries`, measured (falling back to the calibrated model)."""
    calibrated = CalibratedStepModel(profiles)
    models: dict[str, StepTimeModel] = {"calibrated": calibrated,
                                        "first-order": FirstOrderStepModel()}
    if entries is not None:
        models["measured"] = MeasuredStepModel(ThroughputTable(entries), calibrated)
    return PerJobStepModel(default, models)
