"""Timing on this host, for its calibration (`dcsim.perf.calibrate`): the roofline ceilings
and the dcsim kernels.

`measure_peaks` measures the host's two roofline ceilings: the fp32 peak from the best
2048 x 2048 sgemm through ``numpy.dot``, and the memory bandwidth from the best copy of a large
array (read + write bytes, the STREAM "copy" convention). `measure_host` times the dcsim kernels
themselves on float32, best of `repeats` after a warm-up call (numba compilation excluded):

* matrix products: ``dense_forward(x, W, b, activation="identity")`` with x (m, k) and W (n, k),
  over a grid of batches m (8 to 256) and square widths n = k (8 to 2048). One product of
  F = 2 m n k FLOPs moving the logical bytes of x, W, b, z and a; each one's measured fraction
  of peak is also kept as the profile's `gemm_table`, which the cost model interpolates;
* memory-bound kernels: the in-place ``sgd_step(w, g)`` over arrays of 4 KB to 64 MB, moving
  the bytes read w and g + write w.

Measure on a quiet machine: a multi-threaded BLAS whose threads other processes deschedule takes
milliseconds over products that need microseconds.

    >>> timings = measure_host(quick=True)                          # doctest: +SKIP
    >>> peak, bandwidth = measure_peaks()                           # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Timing", "measure_host", "measure_peaks"]

FP32_BYTES = 4
GEMM_BATCHES = (8, 32, 128, 256)
GEMM_WIDTHS = (8, 32, 64, 128, 256, 512, 1024, 2048)
MEMORY_BYTES = tuple(4096 * 4**i for i in range(8))  # 4 KB ... 64 MB
QUICK_GEMM_BATCHES = (8, 64, 256)
QUICK_GEMM_WIDTHS = (8, 64, 256, 1024)
QUICK_MEMORY_BYTES = tuple(4096 * 16**i for i in range(4))  # 4 KB ... 16 MB
PEAK_SGEMM_SIZE = 2048
PEAK_COPY_BYTES = 64 * 2**20
SAMPLE_S = 2e-3  # a timed sample repeats a short kernel until it lasts about this long
SEED = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """One timed kernel: a matrix product (m, n, k) or a memory-bound kernel over n elements
    (m = 1, k = 0); `flop` and `nbytes` are the logical work the cost model charges."""

    kind: Literal["gemm", "memory"]
    m: int
    n: int
    k: int
    flop: float
    nbytes: float
    seconds: float


def _best_seconds(fn: Callable[[], object], repeats: int, typical: bool = False) -> float:
    """Seconds of one call of `fn` over `repeats` samples, after a warm-up call: the fastest
    call (for peaks: one that no other process interrupted), or with `typical` the median call
    (for the cost model, which predicts what steady training takes, not its best moment). Each
    call is timed alone and a sample repeats short kernels until it lasts SAMPLE_S."""
    fn()  # warm-up: numba compilation, first touch of the buffers
    calls: list[float] = []
    for _ in range(repeats):
        sample_end = time.perf_counter() + SAMPLE_S
        while True:
            start = time.perf_counter()
            fn()
            end = time.perf_counter()
            calls.append(end - start)
            if end >= sample_end:
                break
    return float(np.median(calls)) if typical else min(calls)


def _check_repeats(where: str, repeats: int) -> None:
    if repeats < 1:
        raise ValueError(f"{where}: repeats must be >= 1, got {repeats}")


def _time_gemm(m: int, width: int, repeats: int, rng: np.random.Generator) -> Timing:
    from dcsim.kernels import dense_forward

    n = k = width
    x = rng.standard_normal((m, k), dtype=np.float32)
    W = rng.standard_normal((n, k), dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)
    seconds = _best_seconds(lambda: dense_forward(x, W, b, activation="identity"), repeats,
                            typical=True)
    nbytes = FP32_BYTES * (m * k + n * k + n + 2 * m * n)  # read x, W, b; write z, a
    return Timing("gemm", m, n, k, 2.0 * m * n * k, float(nbytes), seconds)


def _time_memory(nbytes: int, repeats: int, rng: np.random.Generator) -> Timing:
    """A streaming kernel: the in-place SGD update (read weights and gradients, write the
    weights: 3 x 4 bytes per element), as execute mode runs it once per parameter tensor."""
    from dcsim.kernels import sgd_step

    n = nbytes // FP32_BYTES
    w = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    seconds = _best_seconds(lambda: sgd_step(w, g, 1e-9), repeats, typical=True)
    return Timing("memory", 1, n, 0, 0.0, 3.0 * FP32_BYTES * n, seconds)


def measure_host(quick: bool = False, repeats: int = 3) -> list[Timing]:
    """Time the dcsim float32 kernels on this host (see the module docstring for the grid);
    `quick` uses a smaller grid (products up to 256 x 1024 x 1024, arrays up to 16 MB)."""
    _check_repeats("measure_host", repeats)
    batches, widths, sizes = (
        (QUICK_GEMM_BATCHES, QUICK_GEMM_WIDTHS, QUICK_MEMORY_BYTES)
        if quick
        else (GEMM_BATCHES, GEMM_WIDTHS, MEMORY_BYTES)
    )
    rng = np.random.default_rng(SEED)
    timings = [_time_gemm(m, w, repeats, rng) for m in batches for w in widths]
    return timings + [_time_memory(nb, repeats, rng) for nb in sizes]


def measure_peaks(repeats: int = 3) -> tuple[float, float]:
    """(fp32 peak FLOP/s, memory bandwidth bytes/s) of this host: the best 2048 x 2048 float32
    ``numpy.dot`` and the best copy of a 64 MiB array (bytes read + bytes written)."""
    _check_repeats("measure_peaks", repeats)
    rng = np.random.default_rng(SEED)
    a = rng.standard_normal((PEAK_SGEMM_SIZE, PEAK_SGEMM_SIZE), dtype=np.float32)
    c = np.empty_like(a)
    sgemm_s = _best_seconds(lambda: np.dot(a, a, out=c), repeats)
    src = rng.standard_normal(PEAK_COPY_BYTES // FP32_BYTES, dtype=np.float32)
    dst = np.empty_like(src)
    copy_s = _best_seconds(lambda: np.copyto(dst, src), repeats)
    return 2.0 * PEAK_SGEMM_SIZE**3 / sgemm_s, 2.0 * PEAK_COPY_BYTES / copy_s
