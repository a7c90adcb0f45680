"""Calibrating the host: time the dcsim kernels on this machine and fit its device profile.

The timing is `dcsim.perf.hosttiming` (`measure_peaks`: the fp32 peak and the memory bandwidth;
`measure_host`: the dcsim kernels over a grid of sizes, as `Timing`s; both re-exported here).
`fit_host_profile` fits gemm_efficiency, gemm_half_gflop, kernel_overhead_s and memory_efficiency
to those timings with the cost formulas of `dcsim.perf.costs.Device` (evaluated by a `Device`
itself), relative to the measured peaks, by least squares on log-time residuals.
`write_profile` / `read_profile` store the result in the shape of dcsim/catalog/profiles.yaml
entries plus the measured peaks in the catalog's human units.

Measure on a quiet machine (see `dcsim.perf.hosttiming`). The provenance records the 1-minute
load average when the fit ran and any BLAS/numba thread settings of the environment.

    >>> timings = measure_host(quick=True)                          # doctest: +SKIP
    >>> peak, bandwidth = measure_peaks()                           # doctest: +SKIP
    >>> profile, peak, bandwidth = fit_host_profile(timings, peak, bandwidth)  # doctest: +SKIP
    >>> write_profile("host.yaml", "host-cpu", profile, peak, bandwidth)      # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import importlib
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dcsim.catalog import gpus
from dcsim.perf.costs import Device
from dcsim.perf.hosttiming import (
    PEAK_COPY_BYTES,
    PEAK_SGEMM_SIZE,
    SEED,
    Timing,
    measure_host,
    measure_peaks,
)
from dcsim.perf.profile import PARAMS, DeviceProfile, load_profile_file
from dcsim.units import GB, GIGA, TERA

__all__ = [
    "Timing",
    "measure_host",
    "measure_peaks",
    "fit_host_profile",
    "calibrate_host",
    "host_device",
    "predict_seconds",
    "write_profile",
    "read_profile",
    "HOST_DEVICE",
]

HOST_DEVICE = "host-cpu"  # the catalog entry the host profile belongs to
# environment variables that set the BLAS and numba thread counts, recorded in the provenance
THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


def host_device(profile: DeviceProfile, peak_flop_s: float, hbm_bandwidth_byte_s: float) -> Device:
    """The catalog's host-cpu running fp32 with `profile` and the measured peaks."""
    peaks = {"fp32": float(peak_flop_s)}
    bandwidth = float(hbm_bandwidth_byte_s)
    spec = replace(gpus()[HOST_DEVICE], peak_flop_s=peaks, hbm_bandwidth_byte_s=bandwidth)
    return Device(spec, replace(profile, peak_flop_s=peaks, hbm_bandwidth_byte_s=bandwidth), "fp32")


def predict_seconds(timing: Timing, device: Device) -> float:
    """What the cost model charges for the kernel `timing` measured."""
    if timing.kind == "gemm":
        return device.gemm(timing.flop, timing.nbytes, sides=(timing.m, timing.k, timing.n))
    return device.memory(timing.nbytes)


_FITTED = ("gemm_efficiency", "gemm_half_gflop", "kernel_overhead_s", "gemm_half_dim",
           "memory_efficiency")
# bounds of the fitted parameters, fitted as logarithms
_LOWER = np.log([1e-4, 1e-9, 1e-9, 1e-3, 1e-4])
_UPPER = np.log([1.0, 1e3, 1.0, 1e4, 1.0])


def _profile(
    log_params: np.ndarray, peak: float, bandwidth: float, provenance: dict[str, Any] | None = None
) -> DeviceProfile:
    """The host profile of the fitted parameters, carrying the measured peaks."""
    values = dict(zip(_FITTED, np.exp(log_params).tolist(), strict=True))
    return DeviceProfile(
        HOST_DEVICE,
        **values,
        nvlink_efficiency=1.0,
        network_efficiency=1.0,
        provenance=provenance or {},
        peak_flop_s={"fp32": float(peak)},
        hbm_bandwidth_byte_s=float(bandwidth),
    )


def _log_residuals(timings: Sequence[Timing], peak: float, bandwidth: float) -> Callable:
    measured = np.log([t.seconds for t in timings])

    def residuals(log_params: np.ndarray) -> np.ndarray:
        device = host_device(_profile(log_params, peak, bandwidth), peak, bandwidth)
        return np.log([predict_seconds(t, device) for t in timings]) - measured

    return residuals


def _check_timings(timings: Sequence[Timing]) -> None:
    kinds = {t.kind for t in timings}
    if kinds != {"gemm", "memory"}:
        raise ValueError(f"fit_host_profile: needs gemm and memory timings, got kinds {kinds}")
    bad = [t for t in timings if not t.seconds > 0]
    if bad:
        raise ValueError(f"fit_host_profile: timings must have seconds > 0, got {bad[0]}")


def _fit(timings: Sequence[Timing], peak: float, bandwidth: float) -> np.ndarray:
    """Log parameters minimising the squared log-time residuals, in two stages so that each
    kind of kernel sets its own parameters: the memory kernels fit the memory efficiency (and a
    first launch overhead); then, with that memory efficiency, the matrix products fit the
    product efficiency, its dependence on size and on the smallest side, and the launch
    overhead (best of a few starts)."""
    from scipy.optimize import least_squares

    gemms = [t for t in timings if t.kind == "gemm"]
    memories = [t for t in timings if t.kind == "memory"]
    overhead = 0.5 * min(t.seconds for t in timings)
    neutral = np.log([0.8, 1e-3, overhead, 16.0, 0.5])  # the order of _FITTED
    memory_residuals = _log_residuals(memories, peak, bandwidth)
    mem_idx = [2, 4]  # kernel_overhead_s, memory_efficiency

    def with_memory(x: np.ndarray) -> np.ndarray:
        full = neutral.copy()
        full[mem_idx] = x
        return full

    memory = least_squares(lambda x: memory_residuals(with_memory(x)), neutral[mem_idx],
                           bounds=(_LOWER[mem_idx], _UPPER[mem_idx]))
    memory_efficiency = memory.x[1]
    gemm_residuals = _log_residuals(gemms, peak, bandwidth)
    free = slice(0, 4)
    starts = [np.log([0.8, half_gflop, overhead, 16.0]) for half_gflop in (1e-4, 1e-2, 1.0)]
    fits = [least_squares(lambda x: gemm_residuals(np.append(x, memory_efficiency)), start,
                          bounds=(_LOWER[free], _UPPER[free])) for start in starts]
    return np.append(min(fits, key=lambda fit: fit.cost).x, memory_efficiency)


def fit_host_profile(
    timings: Sequence[Timing], peak_flop_s: float, hbm_bandwidth_byte_s: float
) -> tuple[DeviceProfile, float, float]:
    """The host-cpu profile fitted to `timings` relative to the measured fp32 peak and memory
    bandwidth, returned with them: ``(profile, peak_flop_s, hbm_bandwidth_byte_s)``; the profile
    carries them too (``peak_flop_s={"fp32": ...}``, ``hbm_bandwidth_byte_s``). Link efficiencies
    are 1.0 (a host has no links)."""
    for name, value in (
        ("peak_flop_s", peak_flop_s),
        ("hbm_bandwidth_byte_s", hbm_bandwidth_byte_s),
    ):
        if not value > 0:
            raise ValueError(f"fit_host_profile: {name} must be > 0, got {value}")
    _check_timings(timings)
    log_params = _fit(timings, peak_flop_s, hbm_bandwidth_byte_s)
    profile = _profile(log_params, peak_flop_s, hbm_bandwidth_byte_s)
    device = host_device(profile, peak_flop_s, hbm_bandwidth_byte_s)
    errors = [predict_seconds(t, device) / t.seconds - 1.0 for t in timings]
    provenance = _provenance(timings, peak_flop_s, hbm_bandwidth_byte_s, errors)
    profile = replace(profile, provenance=provenance)
    return profile, float(peak_flop_s), float(hbm_bandwidth_byte_s)


def calibrate_host(quick: bool = False, repeats: int = 3) -> tuple[DeviceProfile, float, float]:
    """Measure the peaks and the kernels of this host, fit its profile, then measure the
    framework time per training step that the kernels leave out (`measure_step_overhead`).
    The peak is the best of the square sgemm and the best product rate seen in the grid."""
    peak, bandwidth = measure_peaks(repeats)
    timings = measure_host(quick, repeats)
    best = max(t.flop / t.seconds for t in timings if t.kind == "gemm")
    profile, peak, bandwidth = fit_host_profile(timings, max(peak, best), bandwidth)
    overhead = measure_step_overhead(profile)
    profile = replace(profile, gemm_table=gemm_table(timings, profile, peak))
    provenance = {**profile.provenance, "step_overhead": (
        f"{STEP_PROBE_ITERATIONS} executed steps of an MLP {STEP_PROBE_WIDTHS} at batch "
        f"{STEP_PROBE_BATCH}: measured minus modelled time per step")}
    return replace(profile, step_overhead_s=overhead, provenance=provenance), peak, bandwidth


def gemm_table(timings: Sequence[Timing], profile: DeviceProfile, peak: float) -> dict:
    """The measured fraction of peak of each product of the grid (launch overhead removed),
    indexed by batch (its smallest side) and width, for interpolation by the cost model."""
    gemms = [t for t in timings if t.kind == "gemm"]
    sides, widths = sorted({t.m for t in gemms}), sorted({t.k for t in gemms})
    by_shape = {(t.m, t.k): t for t in gemms}
    overhead = profile.kernel_overhead_s
    def measured(t: Timing) -> float:
        return float(f"{t.flop / (peak * max(t.seconds - overhead, 0.2 * t.seconds)):.4g}")

    fraction = [[measured(by_shape[m, w]) for w in widths] for m in sides]
    return {"sides": sides, "widths": widths, "fraction": fraction}


STEP_PROBE_WIDTHS = (16, 16, 4)  # inputs, hidden, outputs: tiny, so the kernels cost little
STEP_PROBE_BATCH = 8
STEP_PROBE_ITERATIONS = 300


def measure_step_overhead(profile: DeviceProfile) -> float:
    """Seconds per training step that execute mode spends outside the kernels (Python glue,
    batch sampling, argument checks): a tiny MLP really trains, and what its measured time per
    step exceeds the profile's modelled time by is the overhead (never below 0)."""
    from dcsim.execute import train
    from dcsim.perf.calibrated import CalibratedStepModel
    from dcsim.scenario import JobSpec

    n_in, hidden, n_out = STEP_PROBE_WIDTHS
    job = JobSpec.model_validate({
        "name": "step-probe", "model": {"kind": "mlp", "inputs": n_in, "hidden": [hidden],
                                        "outputs": n_out},
        "parallelism": {"micro_batch": STEP_PROBE_BATCH}, "global_batch": STEP_PROBE_BATCH,
        "precision": "fp32", "iterations": STEP_PROBE_ITERATIONS,
        "execute": {"dataset": "synthetic", "eval_every": STEP_PROBE_ITERATIONS}})
    measured = train(job, np.random.default_rng(SEED)).wall_s_per_iteration
    from dcsim import catalog
    from dcsim.fabric.network import RingPath

    model = CalibratedStepModel({HOST_DEVICE: profile})
    modelled = model.estimate(job, catalog.gpus()[HOST_DEVICE], RingPath(1e9, 0.0)).iteration_s
    return max(0.0, measured - modelled)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass  # not Linux: fall back on platform
    return platform.processor() or platform.machine() or "unknown"


def _blas(module_name: str) -> str:
    """'name version' of the BLAS `module_name` (numpy or scipy) was built against."""
    module = importlib.import_module(module_name)
    try:
        blas = module.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']}"
    except (TypeError, KeyError):  # an older build without the dict form
        return "unknown"


def _provenance(
    timings: Sequence[Timing], peak: float, bandwidth: float, errors: list[float]
) -> dict[str, Any]:
    gemms = [t for t in timings if t.kind == "gemm"]
    return {
        "method": "dcsim calibrate --device host: least squares on log time "
        "(scipy.optimize.least_squares) of the dcsim.perf.costs.Device roofline",
        "kernels": "gemm: dcsim.kernels.dense_forward(identity), float32; "
        "memory: dcsim.kernels.sgd_step (in place), float32",
        "peaks": f"fp32 {peak / GIGA:.4g} GFLOP/s (best {PEAK_SGEMM_SIZE}^3 numpy.dot), "
        f"{bandwidth / GB:.4g} GB/s (best {PEAK_COPY_BYTES // 2**20} MiB copy)",
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{name: metadata.version(name) for name in ("numpy", "numba", "scipy")},
        "blas_numpy": _blas("numpy"),
        "blas_scipy_numba": _blas("scipy"),
        "thread_settings": {k: os.environ[k] for k in THREAD_VARIABLES if k in os.environ},
        # when the fit ran, i.e. just after the measuring in `calibrate_host`
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "grid": {
            "gemm_batches": sorted({t.m for t in gemms}),
            "gemm_widths": sorted({t.k for t in gemms}),
            "memory_bytes": sorted({int(t.nbytes) // 3 for t in timings if t.kind == "memory"}),
        },
        "rows": len(timings),
        "mean_abs_error": round(float(np.mean(np.abs(errors))), 4),
        "max_abs_error": round(float(np.max(np.abs(errors))), 4),
        "date": _dt.date.today().isoformat(),
    }


def write_profile(
    path: str | Path,
    device_name: str,
    profile: DeviceProfile,
    peak_flop_s: float,
    hbm_bandwidth_byte_s: float,
) -> None:
    """Write `profile` as a profiles.yaml entry named `device_name`, with the measured peaks in
    the catalog's units (``peak_tflop_s: {fp32: ...}``, ``hbm_bandwidth_gbyte_s``)."""
    entry: dict[str, Any] = {k: float(f"{v:.4g}") for k, v in profile.params().items()}
    entry["peak_tflop_s"] = {"fp32": float(f"{peak_flop_s / TERA:.4g}")}
    entry["hbm_bandwidth_gbyte_s"] = float(f"{hbm_bandwidth_byte_s / GB:.4g}")
    entry["step_overhead_s"] = float(f"{profile.step_overhead_s:.4g}")
    entry["gemm_half_dim"] = float(f"{profile.gemm_half_dim:.4g}")
    if profile.gemm_table is not None:
        entry["gemm_table"] = profile.gemm_table
    entry["provenance"] = dict(profile.provenance)
    header = "# Host profile measured by `dcsim calibrate --device host` (dcsim.perf.calibrate)\n"
    text = header + yaml.safe_dump({device_name: entry}, sort_keys=True)
    Path(path).write_text(text, encoding="utf-8")


def read_profile(path: str | Path) -> tuple[DeviceProfile, dict[str, float], float]:
    """(profile, peak FLOP/s by dtype, memory bandwidth bytes/s) from a file `write_profile`
    wrote; the file must hold exactly one device."""
    entries = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(entries, dict) or len(entries) != 1:
        found = list(entries) if isinstance(entries, dict) else type(entries).__name__
        raise ValueError(f"{path}: must hold exactly one device profile, got {found}")
    ((name, entry),) = entries.items()
    for key in (*PARAMS, "peak_tflop_s", "hbm_bandwidth_gbyte_s"):
        if key not in entry:
            raise ValueError(f"{path}: {name}.{key}: missing")
    profile = load_profile_file(path)[name]
    peaks = {dtype: float(v) * TERA for dtype, v in entry["peak_tflop_s"].items()}
    return profile, peaks, float(entry["hbm_bandwidth_gbyte_s"]) * GB
