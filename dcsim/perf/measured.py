"""The measured-throughput step model: iteration times looked up in tables of measurements.

Cluster-scheduler studies (Gavel, Sia, Pollux) describe a job by what it was measured to do:
a table of job type x GPU type x GPU count (x batch) -> throughput. `ThroughputTable` holds
such measurements as `Entry`s, each converted once to seconds per global iteration (all of a
job's GPUs, one optimizer step); `MeasuredStepModel` answers a job's step time from it and
falls back to another model (the calibrated one) where the table has no answer.

Lookup of a job (type, GPU type, n GPUs, b = global_batch / n per GPU, placement shape S =
its GPUs per server, largest first):

1. Entries of the job type (case-insensitive) on that GPU type, in tiers by placement: those
   measured at exactly S; then those measured on one server (if S is one server) or across
   servers (if S spans several: Gavel's "unconsolidated"); then those valid for any
   placement. The first tier that answers wins.
2. Within a tier, an entry at (n, b) is `measured`. Otherwise the iteration time is
   interpolated: in GPU count linearly in log2(n) between the nearest measured counts below
   and above n (at the same batch), and in batch linearly in b between the nearest measured
   batches below and above b (iteration time is close to affine in the batch: a fixed cost
   plus a cost per sample, as Pollux's simulator also assumes). Both gaps: counts first, then
   batch. An entry with no batch matches every batch. No extrapolation: outside the measured
   range there is no answer from that tier.
3. Entries at other placement shapes with the same GPU and server counts (the most balanced
   one), then at the other of one-server / across-servers, count as `interpolated`.
4. No answer: the fallback model estimates the job (`model`), and the reason is kept.

A measured iteration time is the whole step as measured: compute, communication, input
pipeline and framework time. It does not change with network contention (the table was
measured with the network the measurement had); the storage model's stalls and checkpoint
pauses are added by the engine as for any step model.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dcsim.catalog import GpuSpec
from dcsim.fabric.network import RingPath
from dcsim.perf.calibrated import NOT_STEP_FIELDS
from dcsim.perf.step import StepEstimate, StepTimeModel
from dcsim.perf.zoo import model_stats
from dcsim.scenario import JobSpec

__all__ = ["Entry", "Lookup", "ThroughputTable", "MeasuredStepModel", "job_type_of",
           "Placement"]

# a placement an entry was measured at: GPUs per server (largest first), "one" server,
# "many" servers (spread), or None (any placement)
Placement = tuple[int, ...] | str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One measurement: `iteration_s` seconds per global iteration of `job_type` on
    `num_gpus` GPUs of type `gpu`, with `batch_per_gpu` samples per GPU per iteration (None:
    any batch), at `placement`."""

    job_type: str
    gpu: str
    num_gpus: int
    batch_per_gpu: float | None
    iteration_s: float
    placement: Placement = None
    where: str = ""  # file:line (or file: key) it was read from

    @property
    def key(self) -> tuple:
        return (self.job_type.lower(), self.gpu, self.num_gpus, self.batch_per_gpu,
                self.placement)


@dataclass(frozen=True, slots=True)
class Lookup:
    iteration_s: float
    source: str  # "measured" or "interpolated"
    detail: str  # the entries it came from


def job_type_of(job: JobSpec) -> str | None:
    """The job's key in throughput tables: its `job_type`, else its model preset's name."""
    return (job.job_type or job.model.name or "").lower() or None


def _interp(x: float, points: dict[float, Entry | float], log: bool
            ) -> tuple[float, list] | None:
    """Piecewise-linear value at x (in log2 x if `log`) between the nearest points below and
    above, and the points used; None outside the points' range. A point is an Entry (its
    iteration time) or (value, entries) from an earlier interpolation."""
    def value(p: Entry | tuple) -> tuple[float, list]:
        return (p.iteration_s, [p]) if isinstance(p, Entry) else p

    if x in points:
        return value(points[x])
    below = [p for p in points if p < x]
    above = [p for p in points if p > x]
    if not below or not above:
        return None
    lo, hi = max(below), min(above)
    (v_lo, used_lo), (v_hi, used_hi) = value(points[lo]), value(points[hi])
    f = (math.log2(x / lo) / math.log2(hi / lo)) if log else (x - lo) / (hi - lo)
    return v_lo + f * (v_hi - v_lo), used_lo + used_hi


def _grid_lookup(entries: list[Entry], n: int, batch: float
                 ) -> tuple[float, bool, list[Entry]] | None:
    """(iteration_s, exact, entries used) from entries of one placement tier, interpolating in
    GPU count (log2) then in batch (linear); None outside the measured range."""
    by_batch: dict[float | None, dict[float, Entry]] = defaultdict(dict)
    for e in entries:
        by_batch[e.batch_per_gpu][float(e.num_gpus)] = e
    if None in by_batch and len(by_batch) == 1:
        found = _interp(float(n), by_batch[None], log=True)  # type: ignore[arg-type]
        return None if found is None else (found[0], float(n) in by_batch[None], found[1])
    at_n: dict[float, tuple[float, list]] = {}
    exact_n: set[float] = set()
    for b, points in by_batch.items():
        if b is None:
            continue
        found = _interp(float(n), points, log=True)  # type: ignore[arg-type]
        if found is not None:
            at_n[b] = found
            if float(n) in points:
                exact_n.add(b)
    found = _interp(batch, at_n, log=False)  # type: ignore[arg-type]
    if found is None:
        return None
    return found[0], batch in exact_n, found[1]


class ThroughputTable:
    """Measured iteration times by (job type, GPU type); see the module docstring."""

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        self._by: dict[tuple[str, str], list[Entry]] = defaultdict(list)
        self._keys: dict[tuple, Entry] = {}
        for e in entries:
            self.add(e)

    def add(self, e: Entry) -> None:
        """Add an entry; a later entry with the same key replaces the earlier one."""
        e = replace(e, job_type=e.job_type.lower())
        old = self._keys.get(e.key)
        group = self._by[(e.job_type, e.gpu)]
        if old is not None:
            group.remove(old)
        group.append(e)
        self._keys[e.key] = e

    def __len__(self) -> int:
        return len(self._keys)

    def job_types(self) -> set[str]:
        return {jt for jt, _ in self._by}

    def gpus_of(self, job_type: str) -> set[str]:
        return {g for jt, g in self._by if jt == job_type.lower()}

    def lookup(self, job_type: str, gpu: str, num_gpus: int, batch_per_gpu: float,
               shape: tuple[int, ...] = ()) -> Lookup | None:
        """The iteration time of `job_type` on `num_gpus` GPUs of type `gpu` placed as
        `shape` (GPUs per server; () if unknown), or None."""
        group = self._by.get((job_type.lower(), gpu))
        if not group:
            return None
        shape = tuple(sorted(shape, reverse=True)) or (num_gpus,)  # unknown: one server
        servers = len(shape)
        spread = "many" if servers > 1 else "one"
        tiers: list[tuple[list[Entry], bool]] = [
            ([e for e in group if e.placement == shape], True),
            ([e for e in group if e.placement == spread], True),
            ([e for e in group if e.placement is None], True),
            (self._nearest_shape(group, num_gpus, shape), False),
            ([e for e in group if isinstance(e.placement, str) and e.placement != spread],
             False),
        ]
        for entries, exact_placement in tiers:
            if not entries:
                continue
            found = _grid_lookup(entries, num_gpus, batch_per_gpu)
            if found is not None:
                t, exact, used = found
                source = "measured" if exact and exact_placement else "interpolated"
                return Lookup(t, source, "; ".join(dict.fromkeys(e.where for e in used)))
        return None

    @staticmethod
    def _nearest_shape(group: list[Entry], n: int, shape: tuple[int, ...]) -> list[Entry]:
        """Entries measured at other shapes over as many servers as `shape`: at each GPU
        count and batch, the most balanced one (the smallest largest part, then the
        shape's order), so that counts can still be interpolated."""
        best: dict[tuple, Entry] = {}
        for e in group:
            p = e.placement
            if not isinstance(p, tuple) or len(p) != len(shape) or p == shape:
                continue
            key = (e.num_gpus, e.batch_per_gpu)
            if key not in best or (max(p), p) < (max(best[key].placement),  # type: ignore
                                                 best[key].placement):
                best[key] = e
        if not any(k[0] == n for k in best):
            return []
        return list(best.values())


class MeasuredStepModel:
    """Step times from a `ThroughputTable`, else from `fallback` (the calibrated model).

    `reasons` keeps, per (job type, GPU type, GPUs, batch), why the table had no answer."""

    def __init__(self, table: ThroughputTable, fallback: StepTimeModel) -> None:
        self.table = table
        self.fallback = fallback
        self._cache: dict[tuple, StepEstimate] = {}

    def lookup(self, job: JobSpec, gpu_name: str, shape: tuple[int, ...] = ()
               ) -> Lookup | None:
        jt = job_type_of(job)
        if jt is None:
            return None
        return self.table.lookup(jt, gpu_name, job.num_gpus, job.global_batch / job.num_gpus,
                                 shape)

    def why_not(self, job: JobSpec, gpu_name: str) -> str:
        """Why the table has no answer for the job on `gpu_name` (for the job's log)."""
        jt = job_type_of(job)
        if jt is None:
            return "the job has no job_type (and no model preset name)"
        if jt not in self.table.job_types():
            return f"job type {jt!r} is not in the throughput tables"
        gpus = self.table.gpus_of(jt)
        if gpu_name not in gpus:
            return f"{jt!r} was not measured on {gpu_name} (only {', '.join(sorted(gpus))})"
        return (f"{jt!r} on {gpu_name} was not measured at or around {job.num_gpus} GPUs x "
                f"batch {job.global_batch / job.num_gpus:g} per GPU")

    def estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        key = (job.model_dump_json(exclude=NOT_STEP_FIELDS), gpu.name, ring)
        est = self._cache.get(key)
        if est is None:
            est = self._cache[key] = self._estimate(job, gpu, ring)
        return est

    def _estimate(self, job: JobSpec, gpu: GpuSpec, ring: RingPath) -> StepEstimate:
        found = self.lookup(job, gpu.name, ring.shape)
        if found is None:
            return replace(self.fallback.estimate(job, gpu, ring), source="model")
        model_flop = model_stats(job.model).training_flop_per_sample() * job.global_batch
        return StepEstimate(
            iteration_s=found.iteration_s, compute_s=found.iteration_s, bubble_s=0.0,
            dp_comm_s=0.0, model_flop=model_flop, hardware_flop=model_flop,
            num_gpus=job.num_gpus,
            peak_flop_s=gpu.peak_flop_s.get(job.precision) or gpu.peak_flop_s["fp32"],
            source=found.source)
