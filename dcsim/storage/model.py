"""The storage model the engine holds: tiers, the shared tiers' division among running jobs, and
each job's data-loading and checkpoint plans on its placement (formulas: dcsim.storage.io).

Shared-tier bandwidth is divided among the running jobs that use it: reads max-min fairly by
demand (the read rate that would leave a job no stall), here or, under `engine.network: shared`,
as flows on the network fabric with the training traffic (`reads_on_fabric`: the engine sets
each job's read share from the fabric's solve); checkpoint writes equally among the jobs
checkpointing to it (each is counted as writing at once: conservative). The engine re-solves
when a job starts or ends and re-estimates the jobs whose share moved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dcsim.scenario.jobs import CheckpointSpec, JobSpec
from dcsim.scenario.schema import Scenario
from dcsim.storage.io import (
    CheckpointPlan,
    DataPlan,
    checkpoint_bytes,
    daly_interval_s,
    dataset_of,
    hit_rates,
    young_interval_s,
)
from dcsim.storage.tiers import SHARED_TIERS, StorageSystem, build_storage, max_min_share

__all__ = ["StorageModel"]

Allocs = Sequence[tuple[int, int]]  # (server id, the job's GPUs there)


class StorageModel:
    def __init__(self, scenario: Scenario, servers: Sequence) -> None:
        self.scenario = scenario
        self.servers = servers
        self.system: StorageSystem = build_storage(scenario, servers)
        self.storage_on = scenario.storage is not None
        self._read_demand: dict[str, dict[int, float]] = {t: {} for t in SHARED_TIERS}
        self._writers: dict[str, set[int]] = {t: set() for t in SHARED_TIERS}
        self._read_share: dict[str, dict[int, float]] = {t: {} for t in SHARED_TIERS}
        # engine.network shared: reads are flows on the fabric, which sets the read shares
        self.reads_on_fabric = False

    # ------------------------------------------------------------------ configuration
    def checkpoint_spec(self, spec: JobSpec) -> CheckpointSpec | None:
        return spec.checkpoint or self.scenario.checkpoint

    def active(self, spec: JobSpec) -> bool:
        return (self.checkpoint_spec(spec) is not None
                or dataset_of(spec, self.storage_on) is not None)

    def problem(self, spec: JobSpec) -> tuple[tuple[str, ...], str] | None:
        """(key path within the job, message) if its dataset or checkpoint does not fit its
        tier, else None."""
        try:
            data = dataset_of(spec, self.storage_on)
        except ValueError as exc:
            return ("dataset",), str(exc)
        sysm = self.system
        if data is not None:
            if not sysm.enabled(data.tier):
                return ("dataset", "tier"), f"storage tier {data.tier} is disabled"
            cap = sysm.capacity(data.tier)
            if data.size_bytes > cap:
                return ("dataset", "size_gb"), (
                    f"the dataset ({data.size_bytes / 1e9:,.1f} GB) is larger than its tier "
                    f"{data.tier} ({cap / 1e9:,.1f} GB"
                    f"{' per server' if data.tier == 'nvme' else ''})")
        ckpt = self.checkpoint_spec(spec)
        if ckpt is not None:
            where = ("checkpoint", "tier") if spec.checkpoint else ("<scenario>", "tier")
            if not sysm.enabled(ckpt.tier):
                return where, f"storage tier {ckpt.tier} is disabled"
            size = checkpoint_bytes(spec)
            need = size
            if ckpt.tier == "nvme":  # each server keeps its ranks' part
                most = max(s.num_gpus for s in self.servers)
                need = size * min(spec.num_gpus, most) / spec.num_gpus
            cap = sysm.capacity(ckpt.tier)
            if need > cap:
                return where, (f"the checkpoint ({need / 1e9:,.1f} GB"
                               f"{' per server' if ckpt.tier == 'nvme' else ''}) does not fit "
                               f"tier {ckpt.tier} ({cap / 1e9:,.1f} GB)")
        return None

    # ------------------------------------------------------------------ sharing
    def join(self, job_id: int, spec: JobSpec) -> None:
        """A job starts: it writes its checkpoints to its tier (its read demand is recorded by
        `update_demand`, then the engine calls `solve`)."""
        ckpt = self.checkpoint_spec(spec)
        if ckpt is not None and ckpt.tier in SHARED_TIERS:
            self._writers[ckpt.tier].add(job_id)

    def leave(self, job_id: int) -> set[int]:
        for tier in SHARED_TIERS:
            self._read_demand[tier].pop(job_id, None)
            self._writers[tier].discard(job_id)
        return self.solve()

    def update_demand(self, job_id: int, spec: JobSpec, allocs: Allocs, step_s: float) -> bool:
        """Record the job's read demand for its current step; True if it had one that this
        changes (the shares were solved for the old one)."""
        plan = self.plan_data(spec, allocs, step_s, None)
        if plan is None or plan.bytes_shared <= 0:
            return False
        demands = self._read_demand[plan.shared_tier]
        old = demands.get(job_id)
        demands[job_id] = plan.demand_byte_s
        return old is not None and abs(plan.demand_byte_s - old) > 1e-6 * old

    def read_demands(self) -> list[tuple[int, str, float]]:
        """(job id, shared tier, read demand bytes/s) of every running job that reads from a
        shared tier, by job id."""
        return sorted((j, tier, d) for tier in SHARED_TIERS
                      for j, d in self._read_demand[tier].items())

    def set_read_share(self, job_id: int, tier: str, rate: float) -> None:
        """The job's read rate from the tier, as the network fabric shared it
        (`reads_on_fabric`)."""
        self._read_share[tier][job_id] = rate

    def solve(self) -> set[int]:
        """Re-share the shared tiers' read bandwidth among their readers (unless the fabric
        does it: `reads_on_fabric`); the jobs whose share moved."""
        moved: set[int] = set()
        if self.reads_on_fabric:
            for tier in SHARED_TIERS:  # drop the shares of jobs that left
                self._read_share[tier] = {j: r for j, r in self._read_share[tier].items()
                                          if j in self._read_demand[tier]}
            return moved
        for tier in SHARED_TIERS:
            old = self._read_share[tier]
            new = max_min_share(self.system.shared[tier].read_byte_s, self._read_demand[tier])
            moved |= {j for j in new if abs(new[j] - old.get(j, math.inf)) > 1e-9 * new[j]}
            self._read_share[tier] = new
        return moved

    def write_share(self, tier: str, job_id: int | None) -> float:
        t = self.system.shared[tier]
        writers = self._writers[tier]
        n = len(writers) + (0 if job_id in writers else 1)
        return t.write_byte_s / max(n, 1)

    # ------------------------------------------------------------------ plans
    def _nic(self, allocs: Allocs) -> float:
        return sum(self.servers[s].nic_byte_s for s, _ in allocs) or math.inf

    def plan_data(self, spec: JobSpec, allocs: Allocs, step_s: float,
                  job_id: int | None) -> DataPlan | None:
        """One iteration's reads and stall on this placement (`step_s`: the step without
        stall), averaged over the job's run: its first epoch finds the caches cold (every read
        goes to the dataset's tier), the rest read at the steady hit rates. `job_id` None:
        alone (the whole shared tier)."""
        data = dataset_of(spec, self.storage_on)
        if data is None or not allocs:
            return None
        total = spec.global_batch * data.bytes_per_sample
        warm = self._plan_reads(spec, data, allocs, step_s, job_id, cold=False)
        epoch_its = data.size_bytes / total if total > 0 else 0.0
        cold_fraction = min(1.0, epoch_its / spec.iterations) if spec.iterations else 0.0
        if cold_fraction <= 0.0 or data.tier == "nvme" or data.cache_warm:
            return warm
        cold = self._plan_reads(spec, data, allocs, step_s, job_id, cold=True)
        f = cold_fraction
        return DataPlan(*(f * c + (1 - f) * w for c, w in zip(
            (cold.bytes_dram, cold.bytes_nvme, cold.bytes_shared), (
                warm.bytes_dram, warm.bytes_nvme, warm.bytes_shared), strict=True)),
            warm.shared_tier, f * cold.read_s + (1 - f) * warm.read_s,
            f * cold.stall_s + (1 - f) * warm.stall_s,
            f * cold.demand_byte_s + (1 - f) * warm.demand_byte_s)

    def _plan_reads(self, spec: JobSpec, data, allocs: Allocs, step_s: float,
                    job_id: int | None, cold: bool) -> DataPlan:
        """One iteration's reads with steady (`cold` False) or empty caches."""
        sysm, n = self.system, spec.num_gpus
        total = spec.global_batch * data.bytes_per_sample
        c_dram = c_nvme = math.inf
        t_dram = t_nvme = 0.0
        for sid, g in allocs:
            frac = g / self.servers[sid].num_gpus
            dram, nvme = sysm.dram[sid], sysm.nvme[sid]
            c_dram = min(c_dram, dram.cache_bytes * frac)
            c_nvme = min(c_nvme, nvme.cache_bytes * frac if data.tier != "nvme" else 0.0)
        h1, h2 = hit_rates(c_dram, c_nvme, data.size_bytes) if not cold else (0.0, 0.0)
        miss = 1.0 - h1 - h2
        if data.tier == "nvme":
            h2, miss = 1.0 - h1, 0.0
        for sid, g in allocs:
            frac = g / self.servers[sid].num_gpus
            part = total * g / n
            dram, nvme = sysm.dram[sid], sysm.nvme[sid]
            if h1 > 0:
                t_dram = max(t_dram, part * h1 / (dram.read_byte_s * frac) + dram.latency_s)
            if h2 > 0:
                t_nvme = max(t_nvme, part * h2 / (nvme.read_byte_s * frac) + nvme.latency_s)
        shared_tier = data.tier if data.tier in SHARED_TIERS else "pfs"
        t_shared, demand = 0.0, 0.0
        if miss > 0:
            tier = sysm.shared[shared_tier]
            share = tier.read_byte_s
            if job_id is not None:
                share = self._read_share[shared_tier].get(job_id, share)
            rate = min(share, self._nic(allocs))
            opens = spec.global_batch * miss / data.samples_per_file
            meta = opens * tier.metadata_latency_s / (n * sysm.loader_workers)
            t_shared = total * miss / rate + meta + tier.latency_s
            demand = total * miss / max(step_s - meta - tier.latency_s, 1e-12)
        read_s = max(t_dram, t_nvme, t_shared)
        return DataPlan(total * h1, total * h2, total * miss, shared_tier, read_s,
                        max(0.0, read_s - step_s), demand)

    def plan_checkpoint(self, spec: JobSpec, allocs: Allocs, step_s: float, mtbf_s: float,
                        job_id: int | None) -> CheckpointPlan | None:
        ckpt = self.checkpoint_spec(spec)
        if ckpt is None or not allocs:
            return None
        sysm, n = self.system, spec.num_gpus
        size = checkpoint_bytes(spec)
        if ckpt.tier in SHARED_TIERS:
            tier = sysm.shared[ckpt.tier]
            nic = self._nic(allocs)
            fixed = tier.latency_s + tier.metadata_latency_s
            write_s = size / min(self.write_share(ckpt.tier, job_id), nic) + fixed
            read_s = size / min(tier.read_byte_s, nic) + fixed
        else:
            write_s = read_s = 0.0
            for sid, g in allocs:
                nvme, frac = sysm.nvme[sid], g / self.servers[sid].num_gpus
                part = size * g / n
                write_s = max(write_s, part / (nvme.write_byte_s * frac) + nvme.latency_s)
                read_s = max(read_s, part / (nvme.read_byte_s * frac) + nvme.latency_s)
        pcie = min(self.servers[s].pcie_byte_s for s, _ in allocs)
        snapshot_s = size / n / pcie
        if isinstance(ckpt.interval_s, str):
            cost = write_s if ckpt.mode == "sync" else snapshot_s
            rule = young_interval_s if ckpt.interval_s == "young-daly" else daly_interval_s
            interval = rule(cost, mtbf_s)
            if ckpt.mode == "async":
                interval = max(interval, write_s)
        else:
            interval = float(ckpt.interval_s)
        every = max(1.0, float(round(interval / step_s))) if math.isfinite(interval) else math.inf
        if ckpt.mode == "sync":
            pause = write_s
        else:
            pause = snapshot_s + (max(0.0, write_s - every * step_s) if math.isfinite(every)
                                  else 0.0)
        per_it = pause / every if math.isfinite(every) else 0.0
        return CheckpointPlan(ckpt, size, write_s, read_s, snapshot_s, interval, every, pause,
                              per_it)
