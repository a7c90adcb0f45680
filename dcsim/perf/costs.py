"""Kernel and collective costs on one device: the roofline with fitted efficiencies.

A matrix product of F FLOPs moving B bytes takes max(F / (peak x e(F)), B / (HBM x m)) plus a
launch overhead, where e(F) = gemm_efficiency x F / (F + gemm_half) rises with size and m is the
memory efficiency; a memory-bound kernel takes B / (HBM x m) plus the overhead. A ring
collective over n ranks moves (n - 1) / n x S per rank per direction twice (all-reduce) or once
(all-gather, reduce-scatter, all-to-all), at the link bandwidth times the link efficiency, plus
a latency per step (the nccl-tests bus-bandwidth convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dcsim.catalog import GpuSpec
from dcsim.perf.profile import DeviceProfile

__all__ = ["Device", "Collectives"]


@dataclass(frozen=True, slots=True)
class Device:
    """One GPU running one dtype, with its fitted profile."""

    gpu: GpuSpec
    profile: DeviceProfile
    dtype: str
    sparse_speedup: float = 1.0  # 2.0 for 2:4 sparsity on devices with sparse tensor cores

    @property
    def peak(self) -> float:
        measured, nominal = self.profile.peak_flop_s, self.gpu.peak_flop_s
        if measured and self.dtype in measured:
            return measured[self.dtype]
        if measured and "fp32" in measured:  # scale the measured fp32 peak by the data sheet
            return measured["fp32"] * nominal[self.dtype] / nominal["fp32"]
        return nominal[self.dtype]

    @property
    def tensor_scale(self) -> float:
        """tensor_efficiency / gemm_efficiency for a tensor-core dtype on a GPU with tensor
        cores (its 16-bit peak at least 4x its fp32 one), else 1."""
        prof = self.profile
        if prof.tensor_efficiency is None or self.dtype == "fp32":
            return 1.0
        peaks = self.gpu.peak_flop_s
        if peaks.get("fp16", 0.0) < 4 * peaks.get("fp32", math.inf):
            return 1.0
        return prof.tensor_efficiency / prof.gemm_efficiency

    @property
    def bandwidth(self) -> float:
        return self.profile.hbm_bandwidth_byte_s or self.gpu.hbm_bandwidth_byte_s

    def gemm(self, flop: float, nbytes: float, sparse: bool = False,
             sides: tuple[float, float, float] | None = None) -> float:
        """One matrix product, of an (m x k) activation with a (k x n) weight where `sides` =
        (m, k, n) is known; `sparse` products run
        on the sparse cores when enabled."""
        if flop <= 0:
            return self.memory(nbytes)
        rate = self.peak * (self.sparse_speedup if sparse else 1.0)
        effective = flop / (self.sparse_speedup if sparse else 1.0)
        fraction = self.profile.gemm_fraction(effective, sides) * self.tensor_scale
        compute = flop / (rate * fraction)
        return max(compute, self.memory(nbytes, overhead=False)) + self.profile.kernel_overhead_s

    def memory(self, nbytes: float, overhead: bool = True) -> float:
        """A memory-bound kernel moving `nbytes` through HBM."""
        t = nbytes / (self.bandwidth * self.profile.memory_efficiency)
        return t + (self.profile.kernel_overhead_s if overhead else 0.0)


@dataclass(frozen=True, slots=True)
class Collectives:
    """Ring collectives over `n` ranks on links of `bandwidth` bytes/s and `latency` s/step."""

    n: int
    bandwidth: float
    latency: float

    def all_reduce(self, nbytes: float) -> float:
        return self._ring(nbytes, 2)

    def all_gather(self, nbytes: float) -> float:
        return self._ring(nbytes, 1)

    reduce_scatter = all_gather
    all_to_all = all_gather

    def ring_pass(self, nbytes: float) -> float:
        """One step of a ring exchange: every rank sends `nbytes` to the next at once."""
        if self.n <= 1 or nbytes <= 0:
            return 0.0
        return nbytes / self.bandwidth + self.latency

    def _ring(self, nbytes: float, passes: int) -> float:
        if self.n <= 1 or nbytes <= 0:
            return 0.0
        steps = passes * (self.n - 1)
        return steps / self.n * nbytes / self.bandwidth + steps * self.latency
