"""Softmax cross-entropy over a batch of logits, with its gradient."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dcsim.kernels._checks import float_array


@njit(cache=True)
def _softmax_cross_entropy(logits, labels):
    n, k = logits.shape
    grad = np.empty_like(logits)
    inv_n = 1.0 / n
    total = 0.0
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, k):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(k):
            e = math.exp(logits[i, j] - m)  # <= 1: no overflow
            grad[i, j] = e
            s += e
        total += math.log(s) + m - logits[i, labels[i]]
        for j in range(k):
            grad[i, j] = grad[i, j] / s * inv_n
        grad[i, labels[i]] -= inv_n
    return total * inv_n, grad


def softmax_cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy of `logits` (batch, classes) against integer `labels` (batch,).

    Numerically stable (the row maximum is subtracted before exponentiating; the loss is
    accumulated in float64). Returns ``(loss, dlogits)`` where dlogits (batch, classes), in the
    dtype of `logits`, is the gradient of the mean loss: ``(softmax(logits) - onehot) / batch``.
    """
    where = "softmax_cross_entropy"
    logits = float_array(where, "logits", logits, 2)
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{where}: labels must be integers, got {labels.dtype}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"{where}: labels must have shape ({logits.shape[0]},), got {labels.shape}"
        )
    if logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ValueError(f"{where}: logits must be non-empty, got shape {logits.shape}")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(
            f"{where}: labels must be in [0, {logits.shape[1]}), "
            f"got values in [{labels.min()}, {labels.max()}]"
        )
    loss, grad = _softmax_cross_entropy(logits, labels.astype(np.int64))
    return float(loss), grad
