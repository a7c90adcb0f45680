"""Dense (fully connected) layer: forward, backward and a fused forward+backward step.

Batch-major layout: activations are (batch, features), weights are (n_out, n_in), so the forward
pass is ``z = a_prev @ W.T + b`` and ``a = sigma(z)``. The matrix products go to NumPy's BLAS;
bias, activation, its derivative and the bias gradient are fused into numba passes over the
(batch, n_out) block. (``np.dot`` inside numba code would instead call scipy's own copy of
OpenBLAS: a second BLAS thread pool in the process, whose idle-spinning workers compete with
NumPy's on a small host, and seconds more compilation per dtype.)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from dcsim.kernels._checks import float_array, same_dtype, shape_is

ACTIVATIONS = ("identity", "relu", "gelu", "tanh", "sigmoid")
_IDENTITY, _RELU, _GELU, _TANH, _SIGMOID = range(5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


class DenseGrads(NamedTuple):
    """Gradients of one dense layer; each has the shape of what it is the gradient of."""

    dZ: np.ndarray  # (batch, n_out): the deltas, dL/dz
    dW: np.ndarray  # (n_out, n_in)
    db: np.ndarray  # (n_out,)
    dA_prev: np.ndarray  # (batch, n_in)


@njit(cache=True)
def _activate(z, act):
    """sigma(z) for the activation code `act` (a scalar)."""
    if act == _RELU:
        return z if z > 0 else 0.0 * z
    if act == _GELU:
        return 0.5 * z * (1.0 + math.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z * z * z)))
    if act == _TANH:
        return math.tanh(z)
    if act == _SIGMOID:
        if z >= 0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)
    return z + 0.0


@njit(cache=True)
def _derivative(z, a, act):
    """sigma'(z), using the cached output a = sigma(z) where that is cheaper."""
    if act == _RELU:
        return 1.0 if z > 0 else 0.0
    if act == _GELU:
        t = math.tanh(_SQRT_2_OVER_PI * (z + _GELU_CUBIC * z * z * z))
        dt = (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * z * z)
        return 0.5 * (1.0 + t) + 0.5 * z * dt
    if act == _TANH:
        return 1.0 - a * a
    if act == _SIGMOID:
        return a * (1.0 - a)
    return 1.0


@njit(cache=True)
def _activate_flat(z, act, a):
    """a = sigma(z) over 1-D arrays. ReLU, the common case, gets its own loop, which LLVM
    vectorizes (the generic loop, a call per element, runs several times slower)."""
    if act == _RELU:
        for i in range(z.size):
            a[i] = 0.0 if z[i] <= 0 else z[i]  # NaN stays NaN
    else:
        for i in range(z.size):
            a[i] = _activate(z[i], act)


@njit(cache=True)
def _derivative_flat(dA, z, a, act, dZ):
    """dZ = dA * sigma'(z) over 1-D arrays, ReLU again with its own loop."""
    if act == _RELU:
        for i in range(dZ.size):
            dZ[i] = dA[i] if z[i] > 0 else 0.0
    else:
        for i in range(dZ.size):
            dZ[i] = dA[i] * _derivative(z[i], a[i], act)


@njit(cache=True)
def _column_sums_into(x, out):
    """out = x summed over its rows (the batch), accumulated in float64."""
    acc = np.zeros(x.shape[1], np.float64)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            acc[j] += x[i, j]
    for j in range(acc.size):  # a loop: a slice assignment costs seconds of compilation
        out[j] = acc[j]


@njit(cache=True)
def _bias_activate_into(z, b, act, a):
    """In place z += b, then a = sigma(z); z and a are C-contiguous (batch, n_out)."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            z[i, j] += b[j]
    _activate_flat(z.reshape(-1), act, a.reshape(-1))


@njit(cache=True)
def _deltas_into(dA, z, a, act, dZ, db):
    """dZ = dA * sigma'(z) and db = dZ summed over the batch."""
    _derivative_flat(dA.reshape(-1), z.reshape(-1), a.reshape(-1), act, dZ.reshape(-1))
    _column_sums_into(dZ, db)


@njit(cache=True)
def _fused_step_into(z_then_a, b, dA, act, dZ, db):
    """The fused pass of a forward+backward step: with z = z_then_a + b, overwrite z_then_a with
    a = sigma(z), and write dZ = dA * sigma'(z) and db = dZ summed over the batch."""
    acc = np.zeros(dA.shape[1], np.float64)
    for i in range(dA.shape[0]):
        if act == _RELU:  # its own loop, vectorized
            for j in range(dA.shape[1]):
                zij = z_then_a[i, j] + b[j]
                z_then_a[i, j] = 0.0 if zij <= 0 else zij  # NaN stays NaN
                dZ[i, j] = dA[i, j] if zij > 0 else 0.0
                acc[j] += dZ[i, j]
        else:
            for j in range(dA.shape[1]):
                zij = z_then_a[i, j] + b[j]
                z_then_a[i, j] = _activate(zij, act)
                dZ[i, j] = dA[i, j] * _derivative(zij, z_then_a[i, j], act)
                acc[j] += dZ[i, j]
    for j in range(acc.size):
        db[j] = acc[j]


def activation_code(where: str, activation: str) -> int:
    """The integer the kernels use for `activation`; an unknown name lists the valid ones."""
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"{where}: unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATIONS.index(activation)


def activation_forward(z, activation: str = "relu") -> np.ndarray:
    """a = sigma(z) elementwise, for z of any shape (e.g. a conv output (N, F, H, W))."""
    z = np.asarray(z, order="C")  # keeps 0-d arrays 0-d, unlike np.ascontiguousarray
    _check_float("activation_forward", "z", z)
    code = activation_code("activation_forward", activation)
    a = np.empty_like(z)
    _activate_flat(z.reshape(-1), code, a.reshape(-1))
    return a


def activation_backward(dA, z, a, activation: str = "relu") -> np.ndarray:
    """dZ = dA * sigma'(z) elementwise, given the cached z and a = sigma(z) (any shape)."""
    where = "activation_backward"
    dA, z, a = (np.asarray(x, order="C") for x in (dA, z, a))
    for name, x in (("dA", dA), ("z", z), ("a", a)):
        _check_float(where, name, x)
        shape_is(where, name, x, dA.shape)
    same_dtype(where, dA=dA, z=z, a=a)
    code = activation_code(where, activation)
    dZ = np.empty_like(dA)
    _derivative_flat(dA.reshape(-1), z.reshape(-1), a.reshape(-1), code, dZ.reshape(-1))
    return dZ


def _check_float(where: str, name: str, x: np.ndarray) -> None:
    float_array(where, name, x, x.ndim)


def _layer(where: str, a_prev, W, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a_prev = float_array(where, "a_prev", a_prev, 2)
    W = float_array(where, "W", W, 2)
    b = float_array(where, "b", b, 1)
    same_dtype(where, a_prev=a_prev, W=W, b=b)
    shape_is(where, "W", W, (W.shape[0], a_prev.shape[1]))
    shape_is(where, "b", b, (W.shape[0],))
    return a_prev, W, b


def _batch_out(where: str, name: str, x, a_prev: np.ndarray, W: np.ndarray) -> np.ndarray:
    x = float_array(where, name, x, 2)
    shape_is(where, name, x, (a_prev.shape[0], W.shape[0]))
    same_dtype(where, a_prev=a_prev, **{name: x})
    return x


def dense_forward(a_prev, W, b, activation: str = "relu") -> tuple[np.ndarray, np.ndarray]:
    """Forward pass of a dense layer.

    a_prev (batch, n_in), W (n_out, n_in), b (n_out,), all float32 or all float64.
    Returns ``(z, a)``, both (batch, n_out): ``z = a_prev @ W.T + b`` and ``a = sigma(z)``.
    """
    a_prev, W, b = _layer("dense_forward", a_prev, W, b)
    code = activation_code("dense_forward", activation)
    z = a_prev @ W.T
    a = np.empty_like(z)
    _bias_activate_into(z, b, code, a)
    return z, a


def dense_backward(dA, a_prev, W, z, a, activation: str = "relu") -> DenseGrads:
    """Backward pass of a dense layer, from the forward pass's cached `z` and `a`.

    dA, z, a (batch, n_out); a_prev (batch, n_in); W (n_out, n_in).
    Returns DenseGrads(dZ (batch, n_out), dW (n_out, n_in), db (n_out,), dA_prev (batch, n_in)).
    """
    where = "dense_backward"
    a_prev = float_array(where, "a_prev", a_prev, 2)
    W = float_array(where, "W", W, 2)
    shape_is(where, "W", W, (W.shape[0], a_prev.shape[1]))
    dA, z, a = (_batch_out(where, n, x, a_prev, W) for n, x in (("dA", dA), ("z", z), ("a", a)))
    same_dtype(where, a_prev=a_prev, W=W)
    code = activation_code(where, activation)
    dZ, db = np.empty_like(dA), np.empty(dA.shape[1], dA.dtype)
    _deltas_into(dA, z, a, code, dZ, db)
    return DenseGrads(dZ, dZ.T @ a_prev, db, dZ @ W)


def dense_forward_backward(
    a_prev, W, b, dA, activation: str = "relu"
) -> tuple[np.ndarray, DenseGrads]:
    """One dense layer's forward and backward in one call, given the output gradient `dA`.

    Three matrix products (``z = a_prev @ W.T``, ``dW = dZ.T @ a_prev``, ``dA_prev = dZ @ W``)
    with bias, activation, derivative and bias gradient fused into one pass between them.
    a_prev (batch, n_in), W (n_out, n_in), b (n_out,), dA (batch, n_out).
    Returns ``(a, DenseGrads(dZ, dW, db, dA_prev))``.
    """
    where = "dense_forward_backward"
    a_prev, W, b = _layer(where, a_prev, W, b)
    dA = _batch_out(where, "dA", dA, a_prev, W)
    code = activation_code(where, activation)
    a = a_prev @ W.T  # z until the fused pass turns it into a
    dZ, db = np.empty_like(dA), np.empty(dA.shape[1], dA.dtype)
    _fused_step_into(a, b, dA, code, dZ, db)
    return a, DenseGrads(dZ, dZ.T @ a_prev, db, dZ @ W)
