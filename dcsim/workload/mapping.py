"""From cluster-trace records to dcsim jobs: a model for each job, pure data parallelism, and
the trace's length as iterations or as a run time on a reference GPU.

Rules (docs/scenario-reference.md#trace has the tables):

- Model. A record whose job type is in `JOB_TYPES` (or in the scenario's `trace.job_types`,
  which adds and overrides) gets that model, per-GPU batch and precision. Every other record
  (unknown types; traces with no types, like Philly) gets a model drawn from the scenario's
  `trace.models` mix (default `DEFAULT_MIX`) with the named stream `workload.trace.models` of
  the scenario seed, one draw per such record in file order: the same seed maps every job the
  same way; another seed maps them differently.
- Parallelism: data parallel over the record's GPUs, dp = num_gpus, micro_batch = the per-GPU
  batch, global_batch = per-GPU batch x num_gpus. A trace that gives the global batch (Pollux)
  has it split: micro_batch = round(batch / num_gpus) (at least 1), and the iterations scaled so
  the job trains on the same number of samples.
- Length: a record with a run time (Philly, Helios, PAI, Tiresias) becomes `duration_s` on
  `reference_gpu` (the engine turns it into iterations on the GPU the job gets: the same work
  runs faster on a faster GPU); one with steps (Gavel, Pollux) becomes `iterations`. Where a
  row gives both (Tiresias), `length: auto` takes the one the source's own simulator uses
  (`TraceFormat.source_length`: Tiresias runs a job for its `duration`).
- Precision: the model entry's, else the trace format's era precision (fp32 for the public
  traces of 2017-2020: `TraceFormat.era_precision`).
- Job type: the record's (e.g. Gavel's "ResNet-18"), kept as the job's `job_type`: its key
  in measured-throughput tables (`engine.throughputs`).

Speed: one JobSpec is validated per distinct (model entry, GPUs, length kind); each record is
then a `model_copy` of it with its name, arrival, length, user and virtual cluster.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from dcsim.errors import Problem, ScenarioError
from dcsim.rng import RandomStreams
from dcsim.scenario.jobs import JobSpec, Parallelism
from dcsim.scenario.workload import TraceModel, TraceSource
from dcsim.workload.formats import TraceRecord

__all__ = ["JOB_TYPES", "DEFAULT_MIX", "MODEL_STREAM", "map_records", "MappingResult"]

MODEL_STREAM = "workload.trace.models"

# job type (lower case, as the traces spell it) -> model preset and per-GPU batch (and the
# precision, where the source trained otherwise than in its era's fp32). Per-GPU batches
# where the trace gives none are choices that fit the models on a 16 GB P100 in fp32.
JOB_TYPES: dict[str, dict[str, Any]] = {
    # Gavel (job_type before " (batch size N)"; N, when given, is the per-GPU batch)
    "resnet-18": {"model": "resnet18-cifar", "per_gpu_batch": 128},  # CIFAR-10
    "resnet-50": {"model": "resnet50", "per_gpu_batch": 64},  # ImageNet
    "transformer": {"model": "transformer-multi30k", "per_gpu_batch": 64},  # Multi30k
    "lm": {"model": "lstm-lm", "per_gpu_batch": 20},  # WikiText-2
    "recommendation": {"model": "recoder-ml20m", "per_gpu_batch": 2048},  # ML-20M
    "a3c": {"model": "a3c", "per_gpu_batch": 1},  # Pong (a step is one 20-step rollout)
    "cyclegan": {"model": "cyclegan", "per_gpu_batch": 1},  # monet2photo
    # Tiresias (tf_cnn_benchmarks model names)
    "alexnet": {"model": "alexnet", "per_gpu_batch": 64},
    "googlenet": {"model": "googlenet", "per_gpu_batch": 64},
    "inception3": {"model": "inception-v3", "per_gpu_batch": 32},
    "inception4": {"model": "inception-v4", "per_gpu_batch": 16},
    "resnet50": {"model": "resnet50", "per_gpu_batch": 64},
    "resnet101": {"model": "resnet101", "per_gpu_batch": 32},
    "resnet152": {"model": "resnet152", "per_gpu_batch": 32},
    "vgg11": {"model": "vgg11", "per_gpu_batch": 32},
    "vgg16": {"model": "vgg16", "per_gpu_batch": 32},
    "vgg19": {"model": "vgg19", "per_gpu_batch": 32},
    # Pollux applications (the trace gives the global batch)
    "cifar10": {"model": "resnet18-cifar", "per_gpu_batch": 128},
    "imagenet": {"model": "resnet50", "per_gpu_batch": 64, "precision": "fp16"},  # apex amp
    "bert": {"model": "bert-base-squad", "per_gpu_batch": 12},  # SQuAD fine-tuning
    "deepspeech2": {"model": "deepspeech2", "per_gpu_batch": 20},  # VoxForge
    "yolov3": {"model": "yolov3-448", "per_gpu_batch": 8},  # PASCAL VOC at 448 px
    "ncf": {"model": "ncf-ml1m", "per_gpu_batch": 2048},  # MovieLens-1M
}


def _default_mix() -> list[dict[str, Any]]:
    """The mix for jobs without a known type: the application areas of the `philly`
    generator (image recognition, NLP, recommendation, medical imaging), so a replayed trace
    and a generated one draw the same models. A choice, not a measurement: Philly publishes no
    per-job models. Without the generator's precision: trace jobs train in their era's."""
    from dcsim.scenario.workload import PHILLY_APPS

    return [{k: v for k, v in app.items() if k != "precision"} for app in PHILLY_APPS.values()]


DEFAULT_MIX = _default_mix()


@dataclass(frozen=True)
class MappingResult:
    jobs: list[JobSpec]
    drawn: int  # records whose model was drawn from the mix
    unknown_types: Counter  # job types not in the type table (drawn from the mix)


def _entries(trace: TraceSource) -> tuple[dict[str, TraceModel], list[TraceModel]]:
    types = {k: TraceModel.model_validate(v) for k, v in JOB_TYPES.items()}
    types.update({k.lower(): v for k, v in trace.job_types.items()})
    mix = list(trace.models) if trace.models is not None else [
        TraceModel.model_validate(v) for v in DEFAULT_MIX]
    return types, mix


def map_records(records: list[TraceRecord], trace: TraceSource, reference_gpu: str | None,
                seed: int, source: str, era_precision: str = "fp32",
                source_length: str = "iterations") -> MappingResult:
    """JobSpecs for `records` (in their order); raises ScenarioError if a model entry cannot
    make a valid job (e.g. a precision the reference GPU lacks). A model entry without a
    precision trains in `era_precision` (the trace format's); `length: auto` takes
    `source_length` where a record gives both steps and a run time."""
    types, mix = _entries(trace)
    entry_of: list[TraceModel | None] = []
    unknown: Counter = Counter()
    for r in records:
        e = types.get(r.job_type.lower()) if r.job_type else None
        if e is None and r.job_type:
            unknown[r.job_type] += 1
        entry_of.append(e)
    need = [k for k, e in enumerate(entry_of) if e is None]
    if need:
        w = np.array([m.weight for m in mix], dtype=float)
        rng = RandomStreams(seed).stream(MODEL_STREAM)
        picks = rng.choice(len(mix), size=len(need), p=w / w.sum())
        for k, p in zip(need, picks, strict=True):
            entry_of[k] = mix[int(p)]
    templates: dict[tuple, JobSpec] = {}
    jobs = []
    for r, e in zip(records, entry_of, strict=True):
        assert e is not None
        if trace.length == "auto":
            by_time = r.iterations is None or (source_length == "duration"
                                               and r.duration_s is not None)
        else:
            by_time = trace.length == "duration"
            if (r.duration_s if by_time else r.iterations) is None:
                given = "steps, not run times" if by_time else "run times, not steps"
                raise ScenarioError([Problem(source, r.line, "", f"this trace gives {given}: "
                                             f"workload.trace.length cannot be {trace.length}")])
        per_gpu = r.per_gpu_batch or e.per_gpu_batch
        iterations = r.iterations
        if r.batch_size is not None:  # a global batch: split it over the GPUs
            per_gpu = max(1, round(r.batch_size / r.num_gpus))
            if iterations is not None:
                iterations = max(1, round(iterations * r.batch_size / (per_gpu * r.num_gpus)))
        precision = e.precision or era_precision
        key = (id(e), r.num_gpus, per_gpu, by_time, precision)
        tpl = templates.get(key)
        if tpl is None:
            tpl = templates[key] = _template(e, r, per_gpu, precision, by_time, reference_gpu,
                                             source)
        update: dict[str, Any] = {"name": r.name, "arrival_s": r.arrival_s}
        if by_time:
            update["duration_s"] = r.duration_s
        else:
            update["iterations"] = iterations
        if r.user is not None:
            update["user"] = r.user
        if r.virtual_cluster is not None:
            update["virtual_cluster"] = r.virtual_cluster
        if r.job_type is not None:
            update["job_type"] = r.job_type
        jobs.append(tpl.model_copy(update=update))
    return MappingResult(jobs, len(need), unknown)


def _template(e: TraceModel, r: TraceRecord, per_gpu: int, precision: str, by_time: bool,
              reference_gpu: str | None, source: str) -> JobSpec:
    data: dict[str, Any] = {
        "name": r.name, "model": e.model,
        "parallelism": Parallelism(dp=r.num_gpus, micro_batch=per_gpu),
        "global_batch": per_gpu * r.num_gpus, "precision": precision,
    }
    if by_time:
        data.update(duration_s=1.0, reference_gpu=reference_gpu)
    else:
        data.update(iterations=1)
    try:
        return JobSpec.model_validate(data)
    except ValidationError as exc:
        what = r.job_type or "a drawn model"
        detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ScenarioError([Problem(source, r.line, "", f"cannot map {what} on {r.num_gpus} "
                                     f"GPUs to a job: {detail}")]) from None
