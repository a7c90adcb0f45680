"""Fit the GPU device profiles to the published measurements (data/reference).

    python -m dcsim.tools.fit_profiles [--out dcsim/catalog/profiles.yaml]

For each GPU type that has reference rows (A100: Korthikanti et al.; H100: Megatron-Core), finds
the ONE set of compute parameters (matrix-product efficiency and its size dependence, memory
efficiency, kernel overhead) that minimizes mean + max absolute relative error over all of that
GPU's rows (Nelder-Mead from several starting points, parameters kept in their physical ranges).
The link efficiencies are not fitted: they come from the NCCL bus bandwidths of
data/reference/README.md section 3 (LINK_EFFICIENCY below). H200 gets the H100 parameters (same
compute and NVLink; its own HBM bandwidth and memory come from the catalog). GPUs without
reference rows (V100, A100 PCIe) get no fitted profile and use the generic one (see
dcsim.perf.profile.profile_for). Writes the YAML with provenance.
"""

from __future__ import annotations

import argparse
import datetime as _dt
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import yaml

from dcsim.perf.calibrated import CalibratedStepModel
from dcsim.perf.profile import PARAMS, DeviceProfile
from dcsim.tools.validation import Case, reference_cases

__all__ = ["fit_profile", "fit_all", "BOUNDS"]

# physical ranges: (low, high) for each parameter, in PARAMS order
BOUNDS = {
    "gemm_efficiency": (0.3, 0.98),
    "gemm_half_gflop": (0.01, 2.0),
    "memory_efficiency": (0.5, 0.95),
    "kernel_overhead_s": (1e-6, 1e-4),
    "nvlink_efficiency": (0.3, 1.0),
    "network_efficiency": (0.3, 1.0),
}
LOG_SCALE = {"gemm_half_gflop", "kernel_overhead_s"}
FITTED = ("gemm_efficiency", "gemm_half_gflop", "memory_efficiency", "kernel_overhead_s")
# measured NCCL bus bandwidth / nominal per-direction link bandwidth (reference section 3):
# A100 NVLink3 ring ~230 of 300 GB/s; DGX-A100 multi-node 192 GB/s = 8 x 24 GB/s HDR (1.0);
# H100 NVLink4 ring ~370 of 450 GB/s; NDR400 46-49 GB/s per NIC = its effective 47 GB/s (1.0).
LINK_EFFICIENCY = {
    "a100-sxm4-80gb": {"nvlink_efficiency": 230 / 300, "network_efficiency": 1.0},
    "h100-sxm5-80gb": {"nvlink_efficiency": 370 / 450, "network_efficiency": 1.0},
}
COPIES = {"h200-sxm-141gb": "h100-sxm5-80gb"}
# not fitted (the Megatron rows are GPU bound): the host time of a PyTorch eager call on a
# current server CPU, for layer-by-layer networks on these GPUs (the job tables' fitted hosts
# of 2017-19 show 34-58 us; a current one ~20 us: an estimate)
HOST_OP_OVERHEAD_S = 2e-5


def _decode(x: np.ndarray) -> dict[str, float]:
    """Unconstrained vector -> the FITTED parameters inside BOUNDS (logistic; log scale where
    marked)."""
    out = {}
    for value, name in zip(x, FITTED, strict=True):
        lo, hi = BOUNDS[name]
        u = 0.5 * (1.0 + np.tanh(0.5 * value))  # the logistic function, overflow-free
        if name in LOG_SCALE:
            out[name] = float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))
        else:
            out[name] = float(lo + u * (hi - lo))
    return out


def errors(device: str, params: dict[str, float], cases: Sequence[Case]) -> np.ndarray:
    model = CalibratedStepModel({device: DeviceProfile(device, **params)})
    return np.array([(c.predict(model) - c.measured) / c.measured for c in cases])


def fit_profile(device: str, cases: Sequence[Case], starts: int = 6, seed: int = 0,
                log: Callable[[str], None] = print) -> tuple[dict[str, float], np.ndarray]:
    from scipy.optimize import minimize

    links = LINK_EFFICIENCY[device]

    def objective(x: np.ndarray) -> float:
        e = np.abs(errors(device, {**_decode(x), **links}, cases))
        return float(e.mean() + e.max())

    rng = np.random.default_rng(seed)
    best = None
    for k in range(starts):
        x0 = rng.normal(0.0, 1.0, len(FITTED)) if k else np.zeros(len(FITTED))
        res = minimize(objective, x0, method="Nelder-Mead",
                       options={"maxiter": 600, "xatol": 1e-3, "fatol": 1e-5})
        log(f"  {device}: start {k + 1}/{starts}: objective {res.fun:.4f}")
        if best is None or res.fun < best.fun:
            best = res
    assert best is not None
    params = {**_decode(best.x), **links}
    return params, errors(device, params, cases)


def fit_all(log: Callable[[str], None] = print) -> dict[str, dict]:
    cases = reference_cases()
    by_gpu: dict[str, list[Case]] = {}
    for c in cases:
        by_gpu.setdefault(c.gpu.name, []).append(c)
    today = _dt.date.today().isoformat()
    out: dict[str, dict] = {}
    for device, rows in sorted(by_gpu.items()):
        params, errs = fit_profile(device, rows, log=log)
        out[device] = {**{k: float(f"{v:.4g}") for k, v in params.items()},
                       "op_overhead_s": HOST_OP_OVERHEAD_S, "provenance": {
            "method": "python -m dcsim.tools.fit_profiles: Nelder-Mead, mean + max |relative "
                      "error|; link efficiencies from NCCL bus bandwidths (reference section 3)",
            "fitted_on": sorted({c.source for c in rows}),
            "rows": len(rows),
            "mean_abs_error": round(float(np.abs(errs).mean()), 4),
            "max_abs_error": round(float(np.abs(errs).max()), 4),
            "date": today,
        }}
    for device, source in COPIES.items():
        if source in out:
            out[device] = {**{k: out[source][k] for k in (*PARAMS, "op_overhead_s")},
                           "provenance": {
                "method": f"copied from {source}: same compute and NVLink, no reference rows",
                "date": today}}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcsim.tools.fit_profiles", description=__doc__)
    parser.add_argument("--out", default=str(Path(__file__).parent.parent / "catalog"
                                             / "profiles.yaml"))
    args = parser.parse_args(argv)
    fitted = fit_all()
    out = Path(args.out)
    kept = yaml.safe_load(out.read_text(encoding="utf-8")) if out.is_file() else {}
    kept = {k: v for k, v in (kept or {}).items() if k not in fitted}  # e.g. host-cpu
    header = ("# Device profiles of the calibrated step-time model (dcsim/perf/profile.py).\n"
              "# GPU entries: written by `python -m dcsim.tools.fit_profiles`; host-cpu: `dcsim\n"
              "# calibrate` on the development machine (see its provenance). Do not edit by "
              "hand.\n")
    out.write_text(header + yaml.safe_dump({**kept, **fitted}, sort_keys=True), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
