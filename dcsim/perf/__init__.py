"""Performance model: model zoo statistics and step-time models."""

from dcsim.perf.step import (
    FirstOrderStepModel,
    StepEstimate,
    StepTimeModel,
    memory_per_gpu_bytes,
)
from dcsim.perf.zoo import ModelStats, model_stats

__all__ = [
    "FirstOrderStepModel",
    "StepEstimate",
    "StepTimeModel",
    "ModelStats",
    "model_stats",
    "memory_per_gpu_bytes",
]
