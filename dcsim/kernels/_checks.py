"""Argument checks shared by the kernel wrappers: errors name the function and the argument."""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(where: str, name: str, x: object, ndim: int) -> np.ndarray:
    """`x` as a C-contiguous float32/float64 array of `ndim` dimensions (no dtype conversion)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: {name} must be float32 or float64, got {x.dtype}")
    if x.ndim != ndim:
        raise ValueError(f"{where}: {name} must have {ndim} dimensions, got shape {x.shape}")
    return np.ascontiguousarray(x)


def same_dtype(where: str, **arrays: np.ndarray) -> np.dtype:
    """The one dtype shared by all `arrays`; a mix of float32 and float64 is an error."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) != 1:
        listed = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"{where}: arrays must share one dtype, got {listed}")
    return next(iter(dtypes.values()))


def shape_is(where: str, name: str, x: np.ndarray, shape: tuple[int, ...]) -> None:
    if x.shape != tuple(shape):
        raise ValueError(f"{where}: {name} must have shape {tuple(shape)}, got {x.shape}")


def in_place_array(where: str, name: str, x: object) -> np.ndarray:
    """An array updated in place: float32/float64, C-contiguous (a copy would lose the update)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: {name} must be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: {name} must be float32 or float64, got {x.dtype}")
    if not x.flags.c_contiguous or not x.flags.writeable:
        raise ValueError(
            f"{where}: {name} is updated in place and must be C-contiguous and writeable"
        )
    return x


def positive(where: str, name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{where}: {name} must be > 0, got {value}")
    return float(value)


def in_unit_interval(where: str, name: str, value: float) -> float:
    """A decay rate in [0, 1)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1), got {value}")
    return float(value)
