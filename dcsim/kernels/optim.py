"""Optimizer updates, in place: SGD (optionally with momentum) and Adam.

Each call updates one parameter array from its gradient; the state arrays (velocity, first and
second moments) belong to the caller, have the parameter's shape and dtype, and start at zero.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dcsim.kernels._checks import in_place_array, in_unit_interval, positive, same_dtype, shape_is


@njit(cache=True)
def _sgd(p, g, lr):
    for i in range(p.size):
        p[i] -= lr * g[i]


@njit(cache=True)
def _sgd_momentum(p, g, v, lr, momentum):
    for i in range(p.size):
        v[i] = momentum * v[i] + g[i]
        p[i] -= lr * v[i]


@njit(cache=True)
def _adam(p, g, m, v, lr, beta1, beta2, eps, step):
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    for i in range(p.size):
        m[i] = beta1 * m[i] + (1.0 - beta1) * g[i]
        v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i]
        p[i] -= lr * (m[i] / correction1) / (math.sqrt(v[i] / correction2) + eps)


def _state(where: str, param, **arrays) -> list[np.ndarray]:
    """param and the arrays updated with it, all in place, as flat views; grad may be a copy."""
    param = in_place_array(where, "param", param)
    flat = [param.reshape(-1)]
    for name, a in arrays.items():
        a = np.ascontiguousarray(a) if name == "grad" else in_place_array(where, name, a)
        shape_is(where, name, a, param.shape)
        flat.append(a.reshape(-1))
    same_dtype(where, param=param, **arrays)
    return flat


def sgd_step(param, grad, lr: float, *, momentum: float = 0.0, velocity=None) -> None:
    """One SGD step, in place: ``param -= lr * grad``.

    With momentum > 0 (the PyTorch form): ``velocity = momentum * velocity + grad`` then
    ``param -= lr * velocity``; `velocity` (param's shape and dtype, zeros at the start) is
    required and updated in place. param must be C-contiguous; any shape.
    """
    where = "sgd_step"
    lr = positive(where, "lr", lr)
    momentum = in_unit_interval(where, "momentum", momentum)
    if momentum == 0.0:
        if velocity is not None:
            raise ValueError(f"{where}: velocity given but momentum is 0")
        _sgd(*_state(where, param, grad=grad), lr)
        return
    if velocity is None:
        raise ValueError(
            f"{where}: momentum={momentum} needs a velocity array (zeros at the start)"
        )
    _sgd_momentum(*_state(where, param, grad=grad, velocity=velocity), lr, momentum)


def adam_step(
    param,
    grad,
    m,
    v,
    step: int,
    lr: float = 1e-3,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> None:
    """One Adam step (Kingma & Ba, with bias correction), in place on param, m and v.

    ``m = beta1*m + (1-beta1)*grad``; ``v = beta2*v + (1-beta2)*grad**2``;
    ``param -= lr * (m / (1-beta1**step)) / (sqrt(v / (1-beta2**step)) + eps)``.
    `step` counts from 1; m and v have param's shape and dtype and start at zero.
    """
    where = "adam_step"
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 1:
        raise ValueError(f"{where}: step must be an int >= 1 (steps count from 1), got {step!r}")
    lr, eps = positive(where, "lr", lr), positive(where, "eps", eps)
    beta1 = in_unit_interval(where, "beta1", beta1)
    beta2 = in_unit_interval(where, "beta2", beta2)
    p, g, m_flat, v_flat = _state(where, param, grad=grad, m=m, v=v)
    _adam(p, g, m_flat, v_flat, lr, beta1, beta2, eps, int(step))
