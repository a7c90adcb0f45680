"""Precision and pruning applied to real weights: the forward-pass values of a weight tensor
under each training dtype (fake quantization), and magnitude / 2:4 pruning masks. Used by
execute mode (dcsim.execute) so that their effect on accuracy is measured."""

from __future__ import annotations

import numpy as np

__all__ = ["PRECISIONS", "fake_quantize", "prune_mask", "STORED", "FAKE"]

PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
_FP8_E4M3_MAX = 448.0
_FP8_E4M3_MANTISSA_BITS = 3
_FP8_E4M3_MIN_EXPONENT = -6  # smallest normal exponent; below it the spacing is fixed
_INT8_MAX = 127.0


def _round_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 (the top 16 bits, rounded to nearest even) -> float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    bits = bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return (bits & np.uint32(0xFFFF0000)).view(np.float32)


def _round_fp16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def _fake_fp8(w: np.ndarray) -> np.ndarray:
    """FP8 E4M3 fake quantization: scale the tensor so its largest magnitude is 448, round the
    mantissa to 3 bits (fixed spacing 2**-9 below the smallest normal), scale back."""
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0:
        return np.zeros_like(w, dtype=np.float32)
    scaled = w.astype(np.float64) * (_FP8_E4M3_MAX / amax)
    _, exponent = np.frexp(scaled)  # scaled = m * 2**exponent with 0.5 <= |m| < 1
    exponent = np.maximum(exponent - 1, _FP8_E4M3_MIN_EXPONENT)
    step = np.ldexp(1.0, exponent - _FP8_E4M3_MANTISSA_BITS)
    q = np.clip(np.round(scaled / step) * step, -_FP8_E4M3_MAX, _FP8_E4M3_MAX)
    return (q * (amax / _FP8_E4M3_MAX)).astype(np.float32)


def _fake_int8(w: np.ndarray) -> np.ndarray:
    """Symmetric per-tensor int8 fake quantization: scale = max|w| / 127."""
    amax = float(np.max(np.abs(w))) if w.size else 0.0
    if amax == 0.0:
        return np.zeros_like(w, dtype=np.float32)
    scale = amax / _INT8_MAX
    q = np.clip(np.round(w.astype(np.float64) / scale), -_INT8_MAX, _INT8_MAX)
    return (q * scale).astype(np.float32)


STORED = {"fp16": _round_fp16, "bf16": _round_bf16}  # parameters and activations rounded
FAKE = {"fp8": _fake_fp8, "int8": _fake_int8}  # weights fake-quantized in the forward pass


def fake_quantize(w: np.ndarray, precision: str) -> np.ndarray:
    """The float32 values a weight tensor `w` takes in the forward pass at `precision`.

    fp32/tf32: w itself; fp16/bf16: w rounded to that format; fp8: per-tensor scaled E4M3;
    int8: symmetric per-tensor int8 (at most 255 distinct values).

    >>> w = np.linspace(-1, 1, 1000, dtype=np.float32)
    >>> len(np.unique(fake_quantize(w, "int8")))
    255
    """
    if precision not in PRECISIONS:
        raise ValueError(
            f"fake_quantize: unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}"
        )
    w = np.asarray(w, dtype=np.float32)
    rounding = STORED.get(precision) or FAKE.get(precision)
    return rounding(w) if rounding else w


# ----------------------------------------------------------------------------- pruning
def prune_mask(w: np.ndarray, fraction: float = 0.0, sparsity: str = "none") -> np.ndarray:
    """Which weights of `w` (out, in...) survive pruning: a bool array of w's shape.

    `fraction` of the weights, the smallest in magnitude, are dropped; with ``sparsity="2:4"``
    the 2 largest of every 4 consecutive weights along the input dimension (the trailing axes,
    flattened) are kept, of those left. A last group shorter than 4 keeps its 2 largest.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"prune_mask: fraction must be in [0, 1), got {fraction}")
    if sparsity not in ("none", "2:4"):
        raise ValueError(f"prune_mask: unknown sparsity {sparsity!r}; valid: none, 2:4")
    magnitude = np.abs(np.asarray(w, dtype=np.float64)).reshape(-1)
    keep = np.ones(magnitude.size, dtype=bool)
    keep[np.argsort(magnitude, kind="stable")[: int(round(fraction * magnitude.size))]] = False
    if sparsity == "2:4":
        keep &= _two_of_four(np.where(keep, magnitude, 0.0).reshape(w.shape[0], -1)).reshape(-1)
    return keep.reshape(w.shape)


def _two_of_four(magnitude: np.ndarray) -> np.ndarray:
    rows, cols = magnitude.shape
    padded = np.full((rows, -(-cols // 4) * 4), -1.0)  # padding is never among the 2 largest
    padded[:, :cols] = magnitude
    groups = padded.reshape(rows, -1, 4)
    keep = np.zeros(groups.shape, dtype=bool)
    np.put_along_axis(keep, np.argsort(groups, axis=-1, kind="stable")[..., 2:], True, axis=-1)
    return keep.reshape(rows, -1)[:, :cols]


# ----------------------------------------------------------------------------- network
