"""Performance model: model zoo statistics and step-time models."""

from dcsim.perf.step import (
    FirstOrderStepModel,
    StepEstimate,
    StepTimeModel,
)
from dcsim.perf.zoo import ModelStats, model_stats

__all__ = [
    "FirstOrderStepModel",
    "StepEstimate",
    "StepTimeModel",
    "ModelStats",
    "model_stats",
]
