"""Compute kernels of the seed article's networks: dense layers, softmax cross-entropy, a small
CNN's conv2d and max-pooling, and SGD/Adam updates. float32 and float64 throughout.

Each public function checks its arguments (errors name the function and the argument) and calls
a numba kernel compiled on first use and cached on disk. Importing this package imports numba,
so nothing in ``dcsim`` imports it at module level.

    >>> import numpy as np
    >>> from dcsim.kernels import dense_forward, softmax_cross_entropy
    >>> rng = np.random.default_rng(0)
    >>> x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), np.zeros(2)
    >>> z, a = dense_forward(x, W, b, activation="identity")
    >>> loss, dlogits = softmax_cross_entropy(a, np.array([0, 1, 1, 0]))
    >>> dlogits.shape
    (4, 2)
"""

from __future__ import annotations

from dcsim.kernels.conv import (
    conv2d_backward,
    conv2d_forward,
    flatten,
    maxpool2x2_backward,
    maxpool2x2_forward,
    unflatten,
)
from dcsim.kernels.dense import (
    ACTIVATIONS,
    DenseGrads,
    activation_backward,
    activation_forward,
    dense_backward,
    dense_forward,
    dense_forward_backward,
)
from dcsim.kernels.loss import softmax_cross_entropy
from dcsim.kernels.optim import adam_step, sgd_step

__all__ = [
    "ACTIVATIONS",
    "DenseGrads",
    "activation_backward",
    "activation_forward",
    "adam_step",
    "conv2d_backward",
    "conv2d_forward",
    "dense_backward",
    "dense_forward",
    "dense_forward_backward",
    "flatten",
    "maxpool2x2_backward",
    "maxpool2x2_forward",
    "sgd_step",
    "softmax_cross_entropy",
    "unflatten",
]
