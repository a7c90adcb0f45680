"""Host calibration: timing the dcsim kernels and fitting the host-cpu profile to them.

The measuring runs once per module, in a child process with single-threaded BLAS: on a machine
whose cores are busy with other work, a multi-threaded BLAS waits for its descheduled threads
(a 256 x 256 x 256 product then takes milliseconds instead of a fraction of one), which would
test the machine's load, not the calibration. The fit itself is deterministic given timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from importlib import metadata

import numpy as np
import pytest
import yaml

from dcsim.catalog import gpus
from dcsim.perf import calibrate, hosttiming
from dcsim.perf.calibrate import (
    Timing,
    fit_host_profile,
    host_device,
    measure_host,
    predict_seconds,
    read_profile,
    write_profile,
)
from dcsim.perf.costs import Device
from dcsim.perf.profile import PARAMS, DeviceProfile, load_profile_file

MEASURE = """
import json, sys
from dataclasses import asdict, replace
from dcsim.perf.calibrate import measure_host, measure_peaks
peak, bandwidth = measure_peaks()
timings = [asdict(t) for t in measure_host(quick=True)]
json.dump({"peak": peak, "bandwidth": bandwidth, "timings": timings}, sys.stdout)
"""
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def measured() -> tuple[list[Timing], float, float]:
    """(quick timings, peak FLOP/s, bandwidth bytes/s) of this host, single-threaded BLAS."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", MEASURE],
        env={**os.environ, **SINGLE_THREADED},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    return [Timing(**t) for t in data["timings"]], data["peak"], data["bandwidth"]


@pytest.fixture(scope="module")
def fitted(measured) -> tuple[DeviceProfile, float, float]:
    return fit_host_profile(*measured)


def relative_errors(timings, profile, peak, bandwidth) -> np.ndarray:
    device = host_device(profile, peak, bandwidth)
    return np.array([predict_seconds(t, device) / t.seconds - 1.0 for t in timings])


def synthetic_timings(profile: DeviceProfile, peak: float, bandwidth: float) -> list[Timing]:
    """The quick grid's kernels timed by the cost model itself."""
    device = host_device(profile, peak, bandwidth)
    shapes = [
        Timing("gemm", m, w, w, 2.0 * m * w * w, 4.0 * (2 * w * w + 3 * m * w), 1.0)
        for m in (1, 8, 64, 256)
        for w in (8, 64, 256, 1024, 4096)
    ]
    shapes += [Timing("memory", 1, nb // 4, 0, 0.0, 2.0 * nb, 1.0) for nb in (4096, 2**20, 2**26)]
    return [
        Timing(t.kind, t.m, t.n, t.k, t.flop, t.nbytes, predict_seconds(t, device)) for t in shapes
    ]


KNOWN = DeviceProfile(
    "host-cpu",
    gemm_efficiency=0.7,
    gemm_half_gflop=0.002,
    memory_efficiency=0.6,
    kernel_overhead_s=5e-6,
    nvlink_efficiency=1.0,
    network_efficiency=1.0,
    gemm_half_dim=16.0,
)


def test_fit_recovers_a_profile_from_timings_the_cost_model_made():
    profile, peak, bandwidth = fit_host_profile(synthetic_timings(KNOWN, 1e11, 1e10), 1e11, 1e10)
    assert (peak, bandwidth) == (1e11, 1e10)
    for name in (*PARAMS, "gemm_half_dim"):
        assert getattr(profile, name) == pytest.approx(getattr(KNOWN, name), rel=1e-3), name
    assert profile.provenance["mean_abs_error"] < 1e-4


def test_fit_tolerates_measurement_noise():
    rng = np.random.default_rng(7)
    timings = [
        Timing(t.kind, t.m, t.n, t.k, t.flop, t.nbytes, t.seconds * rng.lognormal(0, 0.1))
        for t in synthetic_timings(KNOWN, 1e11, 1e10)
    ]
    profile, _, _ = fit_host_profile(timings, 1e11, 1e10)
    # efficiency and its fall-off trade off under noise: compare what they give
    for m, w in ((256, 1024), (256, 4096)):
        flop, sides = 2.0 * m * w * w, (m, w, w)
        assert profile.gemm_fraction(flop, sides) == pytest.approx(
            KNOWN.gemm_fraction(flop, sides), rel=0.15)
    assert profile.memory_efficiency == pytest.approx(KNOWN.memory_efficiency, rel=0.15)
    # the launch overhead trades off with the small-side fall-off under noise: compare a tiny
    # product's predicted time instead
    tiny = Timing("gemm", 8, 8, 8, 2.0 * 8**3, 4.0 * (3 * 64 + 8), 1.0)
    assert predict_seconds(tiny, host_device(profile, 1e11, 1e10)) == pytest.approx(
        predict_seconds(tiny, host_device(KNOWN, 1e11, 1e10)), rel=0.3)


def test_predictions_are_the_roofline_of_the_cost_model():
    device = host_device(KNOWN, 1e11, 1e10)
    gemm = Timing("gemm", 64, 64, 64, 2.0 * 64**3, 4.0 * 5 * 64 * 64, 1.0)
    fraction = 0.7 * gemm.flop / (gemm.flop + 0.002e9) * 64 / (64 + 16.0)
    compute = gemm.flop / (1e11 * fraction)
    memory = gemm.nbytes / (1e10 * 0.6)
    assert predict_seconds(gemm, device) == pytest.approx(max(compute, memory) + 5e-6)
    copy = Timing("memory", 1, 1024, 0, 0.0, 8192.0, 1.0)
    assert predict_seconds(copy, device) == pytest.approx(8192 / 6e9 + 5e-6)


def test_measured_grid_covers_products_and_memory_kernels(measured):
    timings, peak, bandwidth = measured
    gemms = [t for t in timings if t.kind == "gemm"]
    memories = [t for t in timings if t.kind == "memory"]
    assert {(t.m, t.k) for t in gemms} == {
        (m, w) for m in hosttiming.QUICK_GEMM_BATCHES for w in hosttiming.QUICK_GEMM_WIDTHS
    }
    assert all(t.flop == 2.0 * t.m * t.n * t.k and t.n == t.k for t in gemms)
    assert [t.nbytes / 3 for t in memories] == list(hosttiming.QUICK_MEMORY_BYTES)
    assert all(t.k == 0 and t.flop == 0 for t in memories)
    assert all(t.seconds > 0 for t in timings) and peak > 0 and bandwidth > 0


def test_fit_reproduces_the_measured_timings(measured, fitted):
    profile, peak, bandwidth = fitted
    errors = relative_errors(measured[0], profile, peak, bandwidth)
    print(
        f"host: peak {peak / 1e9:.1f} GFLOP/s, bandwidth {bandwidth / 1e9:.2f} GB/s, "
        f"{profile.params()}, mean |error| {np.abs(errors).mean():.3f}, "
        f"max {np.abs(errors).max():.3f}"
    )
    # How well a fit matches real timings depends on the machine and its load (other processes
    # on the cores): not asserted here. The fit itself is checked on timings the model made
    # (above); the achieved error on this machine is reported by benchmarks.bench_execute.
    assert np.isfinite(errors).all()
    assert np.median(np.abs(errors)) < 1.0  # a gross mismatch (a wrong formula) still fails
    assert profile.provenance["mean_abs_error"] == pytest.approx(np.abs(errors).mean(), abs=1e-4)


def test_the_profile_carries_the_measured_peaks(fitted, tmp_path):
    profile, peak, bandwidth = fitted
    assert profile.peak_flop_s == {"fp32": peak} and profile.hbm_bandwidth_byte_s == bandwidth
    path = tmp_path / "host.yaml"
    write_profile(path, "host-cpu", profile, peak, bandwidth)
    catalog_host = Device(gpus()["host-cpu"], read_profile(path)[0], "fp32")  # as the engine
    assert catalog_host.peak == pytest.approx(peak, rel=1e-3)
    assert catalog_host.bandwidth == pytest.approx(bandwidth, rel=1e-3)


def test_fitted_parameters_are_physical(fitted):
    profile, _, _ = fitted
    assert 0 < profile.gemm_efficiency <= 1
    assert 0 < profile.memory_efficiency <= 1
    assert profile.kernel_overhead_s > 0 and profile.gemm_half_gflop > 0
    assert profile.nvlink_efficiency == profile.network_efficiency == 1.0
    assert profile.device == "host-cpu"


def test_bigger_products_reach_a_higher_fraction_of_peak(measured, fitted):
    timings, peak, _ = measured
    gemms = sorted((t for t in timings if t.kind == "gemm"), key=lambda t: t.flop)
    tiny, big = gemms[0], gemms[-1]
    assert big.flop / big.seconds > tiny.flop / tiny.seconds
    profile = fitted[0]
    assert profile.gemm_fraction(big.flop, (big.m, big.k, big.n)) > profile.gemm_fraction(
        tiny.flop, (tiny.m, tiny.k, tiny.n))


def test_provenance_names_the_machine_and_the_software(fitted):
    provenance = fitted[0].provenance
    assert provenance["cpu_model"] and isinstance(provenance["cpu_model"], str)
    assert provenance["cpu_count"] == os.cpu_count()
    for name in ("numpy", "numba", "scipy"):
        assert provenance[name] == metadata.version(name)
    assert provenance["grid"]["gemm_widths"] == list(hosttiming.QUICK_GEMM_WIDTHS)
    assert provenance["rows"] == 16 and "date" in provenance


def test_write_read_round_trip(tmp_path, fitted):
    profile, peak, bandwidth = fitted
    path = tmp_path / "host.yaml"
    write_profile(path, "host-cpu", profile, peak, bandwidth)
    back, peaks, bandwidth_back = read_profile(path)
    assert back.device == "host-cpu" and back.provenance == profile.provenance
    for name in PARAMS:
        assert getattr(back, name) == pytest.approx(getattr(profile, name), rel=1e-3)
    assert peaks == {"fp32": pytest.approx(peak, rel=1e-3)}
    assert bandwidth_back == pytest.approx(bandwidth, rel=1e-3)
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))["host-cpu"]
    assert entry["peak_tflop_s"]["fp32"] == pytest.approx(peak / 1e12, rel=1e-3)
    assert entry["hbm_bandwidth_gbyte_s"] == pytest.approx(bandwidth / 1e9, rel=1e-3)
    assert load_profile_file(path)["host-cpu"] == back  # the profiles.yaml shape
    assert back.peak_flop_s == peaks and back.hbm_bandwidth_byte_s == bandwidth_back
    again = tmp_path / "again.yaml"
    write_profile(again, "host-cpu", back, peaks["fp32"], bandwidth_back)
    assert again.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_read_profile_wants_one_complete_device(tmp_path):
    path = tmp_path / "two.yaml"
    write_profile(path, "host-cpu", KNOWN, 1e11, 1e10)
    entry = yaml.safe_load(path.read_text(encoding="utf-8"))["host-cpu"]
    path.write_text(yaml.safe_dump({"a": entry, "b": entry}), encoding="utf-8")
    with pytest.raises(ValueError, match="exactly one device"):
        read_profile(path)
    del entry["hbm_bandwidth_gbyte_s"]
    path.write_text(yaml.safe_dump({"host-cpu": entry}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"host-cpu\.hbm_bandwidth_gbyte_s: missing"):
        read_profile(path)


def test_fit_rejects_incomplete_input():
    timings = synthetic_timings(KNOWN, 1e11, 1e10)
    with pytest.raises(ValueError, match="needs gemm and memory"):
        fit_host_profile([t for t in timings if t.kind == "gemm"], 1e11, 1e10)
    with pytest.raises(ValueError, match="peak_flop_s must be > 0"):
        fit_host_profile(timings, 0.0, 1e10)


def test_measure_host_in_process_on_a_tiny_grid(monkeypatch):
    monkeypatch.setattr(hosttiming, "QUICK_GEMM_BATCHES", (8,))
    monkeypatch.setattr(hosttiming, "QUICK_GEMM_WIDTHS", (8, 16))
    monkeypatch.setattr(hosttiming, "QUICK_MEMORY_BYTES", (4096,))
    timings = measure_host(quick=True, repeats=1)
    assert [(t.kind, t.m, t.n, t.k) for t in timings] == [
        ("gemm", 8, 8, 8),
        ("gemm", 8, 16, 16),
        ("memory", 1, 1024, 0),
    ]
    assert [t.nbytes for t in timings] == [
        4.0 * (64 + 64 + 8 + 128),
        4.0 * (128 + 256 + 16 + 256),
        12288.0,  # sgd_step: read weights and gradients, write weights
    ]
    assert asdict(timings[0])["flop"] == 1024.0
    with pytest.raises(ValueError, match="measure_host: repeats must be >= 1"):
        measure_host(quick=True, repeats=0)


def test_calibrate_host_measures_and_fits(monkeypatch):
    for name, value in (
        ("QUICK_GEMM_BATCHES", (8, 64)),
        ("QUICK_GEMM_WIDTHS", (8, 128)),
        ("QUICK_MEMORY_BYTES", (4096, 2**20)),
        ("PEAK_SGEMM_SIZE", 256),
        ("PEAK_COPY_BYTES", 2**20),
    ):
        monkeypatch.setattr(hosttiming, name, value)
    profile, peak, bandwidth = calibrate.calibrate_host(quick=True, repeats=1)
    assert peak > 0 and bandwidth > 0
    assert 0 < profile.gemm_efficiency <= 1 and profile.kernel_overhead_s > 0
    assert profile.provenance["rows"] == 6
    assert profile.provenance["peaks"].startswith("fp32 ")


def test_measured_table_is_interpolated_between_grid_points():
    timings = synthetic_timings(KNOWN, 1e11, 1e10)
    table = calibrate.gemm_table(timings, KNOWN, 1e11)
    assert table["sides"] == [1, 8, 64, 256] and table["widths"] == [8, 64, 256, 1024, 4096]
    profile = replace(KNOWN, gemm_table=table)
    for t in (t for t in timings if t.kind == "gemm"):  # at a grid point: the measured value
        expected = t.flop / (1e11 * (t.seconds - KNOWN.kernel_overhead_s))
        assert profile.gemm_fraction(t.flop, sides=(t.m, t.n, t.k)) == pytest.approx(
            expected, rel=1e-3)
    between = profile.gemm_fraction(1.0, sides=(32, 128, 128))  # between the grid points
    low = profile.gemm_fraction(1.0, sides=(8, 64, 64))
    high = profile.gemm_fraction(1.0, sides=(64, 256, 256))
    assert low < between < high
    assert profile.gemm_fraction(1.0, sides=(1e6, 1e6, 1e6)) == pytest.approx(
        profile.gemm_fraction(1.0, sides=(256, 4096, 4096)))  # clamped to the grid
