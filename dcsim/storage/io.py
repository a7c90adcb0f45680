"""Data loading and checkpoint I/O of one job on its placement (formulas: docs/metrics.md,
docs/scenario-reference.md#storage).

Data loading, per iteration: the job reads B = global_batch x bytes_per_sample, spread evenly
over its GPUs (server s reads B x g_s / N). Each server caches the dataset in its DRAM (then
NVMe) share, `cache_fraction x capacity x g_s / G_s` (the job's share of the server by GPUs);
with uniform random access (independent reference model) an LRU cache of capacity C over a
dataset of D bytes hits with probability min(1, C / D) in steady state, so
h_dram = min(1, C_dram / D), h_nvme = min(1, (C_dram + C_nvme) / D) - h_dram,
miss m = 1 - h_dram - h_nvme (0 for a dataset staged on NVMe), taking the smallest cache of the
job's servers (a synchronous job waits for its slowest server). The tiers serve in parallel
(many loader workers): read_s = max(t_dram, t_nvme, t_shared), t_x = bytes from x / x's read
bandwidth (per server for local tiers), t_shared = B m / share + opens x metadata_latency /
(N x loader_workers) + latency, opens = global_batch x m / samples_per_file, share = the job's
max-min share of the shared tier's read bandwidth, at most its servers' NIC bandwidth. Prefetch
overlaps the whole step: data_stall_s = max(0, read_s - step_s). The first epoch (E = D / B
iterations) finds the caches cold (m = 1); a job of I iterations is charged the average, a
fraction f = min(1, E / I) of cold iterations (none with `dataset.cache_warm`, or a dataset
staged on NVMe).

Checkpoints: the unique training state, weights + optimizer states (memory_breakdown per GPU,
times N, over the data-parallel replication of what ZeRO does not shard), written by all ranks
at once (each N-th). Write (and read) time to a shared tier = size / min(its write share, the
servers' NIC bandwidth) + latency + metadata latency; to local NVMe = the largest server's part /
its NVMe write bandwidth + latency. Sync: the job pauses for the write; async: it pauses for a
snapshot to host memory (its part per GPU / PCIe bandwidth) and writes in the background, and a
checkpoint waits for the previous write to finish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcsim.perf.memory import memory_breakdown
from dcsim.perf.zoo import model_stats
from dcsim.scenario.jobs import CheckpointSpec, DatasetSpec, JobSpec
from dcsim.scenario.models import BertModel, CnnModel, DlrmModel, GptModel, MlpModel
from dcsim.units import GB

__all__ = ["Dataset", "dataset_of", "default_dataset", "hit_rates", "checkpoint_bytes",
           "young_interval_s", "daly_interval_s", "DataPlan", "CheckpointPlan"]

# ImageNet-1k training set: 1,281,167 JPEGs in 138 GB (ILSVRC2012_img_train.tar)
IMAGENET_BYTES, IMAGENET_SAMPLES = 138e9, 1_281_167
TEXT_DATASET_BYTES = 600e9  # 300 B tokens (GPT-3's training run) at 2 bytes a token
CRITEO_TB_SAMPLES = 4_373_472_329  # Criteo 1TB click logs, 24 days
TEXT_SAMPLES_PER_FILE = 100_000  # tokenized shards (Megatron .bin/.idx): opens are negligible


@dataclass(frozen=True, slots=True)
class Dataset:
    size_bytes: float
    bytes_per_sample: float
    tier: str
    samples_per_file: int
    cache_warm: bool = False  # no cold first epoch


def default_dataset(job: JobSpec) -> tuple[float, float, int] | None:
    """(size bytes, bytes per sample, samples per file) of the model kind's default dataset, or
    None for a custom model (it has none)."""
    m = job.model
    if isinstance(m, CnnModel):  # ImageNet-like JPEG files, one sample per file
        return IMAGENET_BYTES, IMAGENET_BYTES / IMAGENET_SAMPLES, 1
    if isinstance(m, GptModel | BertModel):  # tokenized text: seq_len tokens of 2 (or 4) bytes
        token = 2 if m.vocab <= 65536 else 4
        return TEXT_DATASET_BYTES, float(m.seq_len * token), TEXT_SAMPLES_PER_FILE
    if isinstance(m, DlrmModel):  # Criteo 1TB, binary: label, dense and sparse features (4 B;
        # multi-hot: each lookup's index)
        per = 4.0 * (1 + m.dense_features + sum(m.lookups or [1] * len(m.embedding_rows)))
        return CRITEO_TB_SAMPLES * per, per, TEXT_SAMPLES_PER_FILE
    if isinstance(m, MlpModel):  # fp32 feature vectors and a label, 1 GB
        return 1e9, 4.0 * (m.inputs + 1), TEXT_SAMPLES_PER_FILE
    return None


def dataset_of(job: JobSpec, storage_on: bool) -> Dataset | None:
    """The job's dataset: its `dataset` key filled from the kind's defaults; with no key, the
    default dataset when the scenario has a `storage` section, else none (no data loading)."""
    spec = job.dataset
    if spec is None and not storage_on:
        return None
    spec = spec or DatasetSpec()
    default = default_dataset(job)
    if default is None and (spec.size_gb is None or spec.bytes_per_sample is None):
        if job.dataset is None:
            return None  # a custom model reads nothing unless told
        raise ValueError(f"a {job.model.kind} model has no default dataset: give "
                         "dataset.size_gb and dataset.bytes_per_sample")
    size, per, files = default or (0.0, 0.0, 1)
    return Dataset(
        size_bytes=spec.size_gb * GB if spec.size_gb else size,
        bytes_per_sample=spec.bytes_per_sample or per,
        tier=spec.tier,
        samples_per_file=spec.samples_per_file or files,
        cache_warm=spec.cache_warm)


def hit_rates(cache_dram: float, cache_nvme: float, dataset_bytes: float) -> tuple[float, float]:
    """Steady-state hit rates (DRAM, NVMe) of LRU caches of these capacities (bytes) under
    uniform random access to a dataset of `dataset_bytes`: h = min(1, C / D), NVMe holding
    what DRAM does not (exclusive)."""
    if dataset_bytes <= 0:
        return 1.0, 0.0
    h1 = min(1.0, cache_dram / dataset_bytes)
    h2 = min(1.0, (cache_dram + cache_nvme) / dataset_bytes) - h1
    return h1, h2


def checkpoint_bytes(job: JobSpec) -> float:
    """Bytes of one checkpoint: weights + optimizer states of every parallel rank, the
    data-parallel replicas counted once (ZeRO-1+ shards the optimizer states, ZeRO-3 also the
    weights; sharded embedding tables are never replicated)."""
    mem = memory_breakdown(job)
    n, dp, z = job.num_gpus, job.parallelism.dp, job.parallelism.zero
    sharded = model_stats(job.model).sharded_params / n * 8.0  # per GPU, as memory_breakdown
    weights = (mem.weights - sharded) / (1 if z >= 3 else dp) + sharded
    optimizer = mem.optimizer / (1 if z >= 1 else dp)
    return n * (weights + optimizer)


def young_interval_s(cost_s: float, mtbf_s: float) -> float:
    """Young (1974): sqrt(2 C M); inf when M is inf (no failures: no periodic checkpoints)."""
    return math.sqrt(2.0 * cost_s * mtbf_s) if math.isfinite(mtbf_s) else math.inf


def daly_interval_s(cost_s: float, mtbf_s: float) -> float:
    """Daly (2006) higher-order optimum: sqrt(2 C M) (1 + sqrt(C / 2M) / 3 + C / 18M) - C for
    C < 2M, else M; inf when M is inf."""
    if not math.isfinite(mtbf_s):
        return math.inf
    if cost_s >= 2 * mtbf_s:
        return mtbf_s
    c, m = cost_s, mtbf_s
    return math.sqrt(2 * c * m) * (1 + math.sqrt(c / (2 * m)) / 3 + c / (18 * m)) - c


@dataclass(frozen=True, slots=True)
class DataPlan:
    """One iteration's reads: bytes from each tier, the read time and the stall."""

    bytes_dram: float
    bytes_nvme: float
    bytes_shared: float
    shared_tier: str
    read_s: float
    stall_s: float
    demand_byte_s: float  # shared-tier read rate that would leave no stall


@dataclass(frozen=True, slots=True)
class CheckpointPlan:
    """The job's checkpoints on its placement. every_iterations inf: none taken."""

    spec: CheckpointSpec
    size_bytes: float
    write_s: float  # the whole checkpoint to its tier
    read_s: float  # restoring it
    snapshot_s: float  # async: copy to host memory
    interval_s: float  # training time between checkpoints (inf: none)
    every_iterations: float  # iterations between checkpoints (inf: none)
    pause_s: float  # the job's pause per checkpoint
    per_iteration_s: float  # pause_s / every_iterations
