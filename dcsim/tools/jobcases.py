"""Measured step times of small and mid-size jobs as cases for the step-time model: Gavel's
throughput table (26 job types x K80 / P100 / V100 x 1-8 GPUs, PyTorch fp32) and Pollux's
profiles (6 applications on T4 GPUs, 1-16 nodes of 4).

Each case is a job (the model, batch and precision the source trained), the GPU type, the
links of its placement on the source's machines (`dcsim catalog servers`: aws-p2-8xlarge,
azure-nc24s-v2, aws-p3-16xlarge, aws-g4dn-12xlarge) and the measured seconds per global
iteration. `source_family` groups cases by job type for leave-one-job-type-out checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np

from dcsim import catalog
from dcsim.catalog import GpuSpec
from dcsim.fabric.network import Network, RingPath
from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.measured import Entry
from dcsim.perf.profile import DeviceProfile, profile_for
from dcsim.perf.tables import read_table
from dcsim.scenario import JobSpec
from dcsim.workload.mapping import JOB_TYPES

__all__ = ["JobCase", "gavel_cases", "pollux_cases", "all_cases", "traces_dir", "SERVERS",
           "predict"]

# the GPU types of the tables -> the instance type their measurements ran on
SERVERS = {"k80-12gb": "aws-p2-8xlarge", "p100-pcie-16gb": "azure-nc24s-v2",
           "v100-sxm2-16gb": "aws-p3-16xlarge", "t4-16gb": "aws-g4dn-12xlarge"}
# physical cores per GPU that feed the data loaders on those instances: vCPUs per GPU / 2
# (hyper-threads): AWS p2.xlarge 4 vCPUs, Azure NC6s_v2 6, AWS p3.2xlarge 8, AWS
# g4dn.12xlarge 48 for 4 GPUs (Gavel measured one job per single-GPU instance)
LOADER_CORES = {"k80-12gb": 2.0, "p100-pcie-16gb": 3.0, "v100-sxm2-16gb": 4.0, "t4-16gb": 6.0}
# Pollux application -> (Gavel-style job type for the model table, precision)
POLLUX_APPS = {"cifar10": "cifar10", "imagenet": "imagenet", "bert": "bert",
               "deepspeech2": "deepspeech2", "ncf": "ncf", "yolov3": "yolov3"}


@dataclass(frozen=True)
class JobCase:
    source: str  # "gavel" or "pollux"
    family: str  # the job type (leave-one-out groups)
    label: str
    gpu: GpuSpec
    job: JobSpec
    ring: RingPath
    measured_s: float

    @property
    def loader_cores(self) -> float:
        return LOADER_CORES[self.gpu.name]

    @property
    def batch(self) -> float:
        return self.job.global_batch / self.job.num_gpus


def traces_dir() -> Path:
    here = Path(__file__).resolve().parents[2] / "data" / "traces"
    if not here.is_dir():
        raise FileNotFoundError(f"data/traces not found at {here} (a source checkout has it)")
    return here


@cache
def _network(server: str, count: int) -> Network:
    from dcsim.world import build_world, scenario_from_dict

    sc = scenario_from_dict({"name": "cases", "cluster": {"servers": [
        {"type": server, "count": count}]},
        "workload": {"jobs": [{"name": "x", "model": "resnet50", "global_batch": 1,
                               "iterations": 1, "precision": "fp32"}]}})
    return build_world(sc).network


def _ring(gpu: str, shape: tuple[int, ...]) -> RingPath:
    net = _network(SERVERS[gpu], max(len(shape), 2))
    return net.ring(dict(enumerate(shape)))


def _job(family: str, n: int, batch: int) -> JobSpec:
    entry = JOB_TYPES[family]
    return JobSpec.model_validate({
        "name": f"{family}-{n}x{batch}", "model": entry["model"],
        "parallelism": {"dp": n, "micro_batch": batch}, "global_batch": n * batch,
        "precision": entry.get("precision", "fp32"), "iterations": 1, "job_type": family})


def _shape(e: Entry, per_server: int) -> tuple[int, ...]:
    if isinstance(e.placement, tuple):
        return e.placement
    full, rest = divmod(e.num_gpus, per_server)
    return (per_server,) * full + ((rest,) if rest else ())


def gavel_cases(spread: bool = False) -> list[JobCase]:
    """Gavel's isolated throughputs, consolidated (or, with `spread`, the unconsolidated
    ones), as seconds per global iteration (N / throughput)."""
    read = read_table(traces_dir() / "gavel" / "simulation_throughputs.json", "gavel")
    cases = []
    for e in read.entries:
        if (e.placement == "many") != spread or (spread and e.num_gpus == 1):
            continue
        family = e.job_type.lower()
        entry = JOB_TYPES[family]
        batch = int(e.batch_per_gpu or entry["per_gpu_batch"])
        per_server = catalog.servers()[SERVERS[e.gpu]].gpus_per_server
        shape = (1,) * e.num_gpus if spread else _shape(e, per_server)
        cases.append(JobCase("gavel", family, f"{e.job_type} b{batch} x{e.num_gpus}",
                             catalog.gpus()[e.gpu], _job(family, e.num_gpus, batch),
                             _ring(e.gpu, shape), e.iteration_s))
    return cases


def pollux_cases(max_gpus: int = 16) -> list[JobCase]:
    """Pollux's profiled step times (placements.csv and scalability.csv) up to `max_gpus`."""
    read = read_table(traces_dir() / "pollux" / "profiles", "pollux")
    cases = []
    for e in read.entries:
        if e.num_gpus > max_gpus or not isinstance(e.placement, tuple):
            continue
        if len(set(e.placement)) > 1:  # uneven placements: dcsim's placements are even
            continue
        family = POLLUX_APPS[e.job_type]
        batch = int(e.batch_per_gpu or 1)
        cases.append(JobCase("pollux", e.job_type, f"{e.job_type} b{batch} "
                             f"{'+'.join(map(str, e.placement))}", catalog.gpus()[e.gpu],
                             _job(family, e.num_gpus, batch), _ring(e.gpu, e.placement),
                             e.iteration_s))
    return cases


def all_cases() -> list[JobCase]:
    return gavel_cases() + pollux_cases()


def predict(cases: Sequence[JobCase], profiles: dict[str, DeviceProfile]) -> np.ndarray:
    """Each case's step time with `profiles` (else the shipped ones), on its instance's host
    (the data-loader cores the case gives)."""
    models: dict[tuple[str, float], CalibratedStepModel] = {}
    out = []
    for c in cases:
        key = (c.gpu.name, c.loader_cores)
        if key not in models:
            base = profiles.get(c.gpu.name) or profile_for(c.gpu.name,
                                                          c.gpu.first_order_efficiency)
            models[key] = CalibratedStepModel({c.gpu.name: replace(
                base, loader_cores=c.loader_cores)})
        out.append(models[key].estimate(c.job, c.gpu, c.ring).iteration_s)
    return np.array(out)
