"""2-D convolution (NCHW, stride 1), 2x2 max-pooling, and flatten/unflatten.

The convolution is im2col (numba) + NumPy's BLAS: for each sample n, ``cols[n]`` (C*KH*KW, HO*WO)
holds every receptive field and ``out[n] = w.reshape(F, -1) @ cols[n]``. The columns of the whole
batch are held at once: N*C*KH*KW*HO*WO values (75 MB in float32 for 64 CIFAR images at 32x32
with 32 input channels and 3x3 kernels).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dcsim.kernels._checks import float_array, same_dtype, shape_is


@njit(cache=True)
def _im2col(x, kh, kw, pad, ho, wo):
    """cols (N, C*kh*kw, ho*wo): every receptive field of x (N, C, H, W), zero padding `pad`."""
    n, c_in, h, w = x.shape
    cols = np.empty((n, c_in * kh * kw, ho * wo), x.dtype)
    for s in range(n):
        for c in range(c_in):
            for di in range(kh):
                for dj in range(kw):
                    row = (c * kh + di) * kw + dj
                    for oy in range(ho):
                        iy = oy + di - pad
                        for ox in range(wo):
                            ix = ox + dj - pad
                            inside = 0 <= iy < h and 0 <= ix < w
                            cols[s, row, oy * wo + ox] = x[s, c, iy, ix] if inside else 0.0
    return cols


@njit(cache=True)
def _col2im(cols, kh, kw, pad, ho, wo, dx):
    """The adjoint of _im2col: scatter-add cols (N, C*kh*kw, ho*wo) into dx (N, C, H, W)."""
    n, c_in, h, w = dx.shape
    for s in range(n):
        for c in range(c_in):
            for di in range(kh):
                for dj in range(kw):
                    row = (c * kh + di) * kw + dj
                    for oy in range(ho):
                        iy = oy + di - pad
                        if 0 <= iy < h:
                            for ox in range(wo):
                                ix = ox + dj - pad
                                if 0 <= ix < w:
                                    dx[s, c, iy, ix] += cols[s, row, oy * wo + ox]


def _padding(where: str, padding: str | int, kh: int, kw: int) -> int:
    if padding == "valid":
        return 0
    if padding == "same":
        if kh != kw or kh % 2 == 0:
            raise ValueError(f"{where}: padding='same' needs a square, odd kernel, got {kh}x{kw}")
        return (kh - 1) // 2
    if isinstance(padding, int | np.integer) and not isinstance(padding, bool) and padding >= 0:
        return int(padding)
    raise ValueError(f"{where}: padding must be 'same', 'valid' or an int >= 0, got {padding!r}")


def _conv_args(where: str, x, w, padding) -> tuple[np.ndarray, np.ndarray, int, tuple[int, int]]:
    x = float_array(where, "x", x, 4)
    w = float_array(where, "w", w, 4)
    same_dtype(where, x=x, w=w)
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"{where}: w has {w.shape[1]} input channels but x has {x.shape[1]}")
    pad = _padding(where, padding, w.shape[2], w.shape[3])
    ho, wo = x.shape[2] + 2 * pad - w.shape[2] + 1, x.shape[3] + 2 * pad - w.shape[3] + 1
    if ho < 1 or wo < 1:
        raise ValueError(
            f"{where}: kernel {w.shape[2:]} does not fit input {x.shape[2:]} with padding {pad}"
        )
    return x, w, pad, (ho, wo)


def conv2d_forward(x, w, b, padding: str | int = "same") -> np.ndarray:
    """2-D convolution (cross-correlation, as in deep-learning frameworks), stride 1, NCHW.

    x (N, C, H, W), w (F, C, KH, KW), b (F,); padding 'same' (odd square kernels: output H x W),
    'valid' (no padding) or an int (zeros on each side). Returns out (N, F, HO, WO) with
    HO = H + 2*pad - KH + 1 and WO = W + 2*pad - KW + 1.
    """
    where = "conv2d_forward"
    x, w, pad, (ho, wo) = _conv_args(where, x, w, padding)
    b = float_array(where, "b", b, 1)
    same_dtype(where, x=x, b=b)
    shape_is(where, "b", b, (w.shape[0],))
    cols = _im2col(x, w.shape[2], w.shape[3], pad, ho, wo)
    out = np.matmul(w.reshape(w.shape[0], -1), cols)  # (N, F, HO*WO)
    out += b[:, None]
    return out.reshape(x.shape[0], w.shape[0], ho, wo)


def conv2d_backward(dout, x, w, padding: str | int = "same") -> tuple[np.ndarray, ...]:
    """Gradients of conv2d_forward: dout (N, F, HO, WO) with the forward's x, w and padding.

    Returns ``(dx, dw, db)`` with the shapes of x (N, C, H, W), w (F, C, KH, KW) and b (F,).
    """
    where = "conv2d_backward"
    x, w, pad, (ho, wo) = _conv_args(where, x, w, padding)
    dout = float_array(where, "dout", dout, 4)
    same_dtype(where, x=x, dout=dout)
    shape_is(where, "dout", dout, (x.shape[0], w.shape[0], ho, wo))
    kh, kw = w.shape[2:]
    cols = _im2col(x, kh, kw, pad, ho, wo)
    d = dout.reshape(dout.shape[0], dout.shape[1], -1)  # (N, F, HO*WO)
    dw = np.matmul(d, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dx = np.zeros_like(x)
    _col2im(np.matmul(w.reshape(w.shape[0], -1).T, d), kh, kw, pad, ho, wo, dx)
    return dx, dw, d.sum(axis=(0, 2))


@njit(cache=True)
def _maxpool2x2_forward(x):
    n, c, h, w = x.shape
    out = np.empty((n, c, h // 2, w // 2), x.dtype)
    arg = np.empty((n, c, h // 2, w // 2), np.int8)
    for s in range(n):
        for k in range(c):
            for i in range(h // 2):
                for j in range(w // 2):
                    best, where = x[s, k, 2 * i, 2 * j], 0
                    for q in range(1, 4):
                        v = x[s, k, 2 * i + q // 2, 2 * j + q % 2]
                        if v > best:
                            best, where = v, q
                    out[s, k, i, j] = best
                    arg[s, k, i, j] = where
    return out, arg


@njit(cache=True)
def _maxpool2x2_backward(dout, arg, h, w):
    n, c, ho, wo = dout.shape
    dx = np.zeros((n, c, h, w), dout.dtype)
    for s in range(n):
        for k in range(c):
            for i in range(ho):
                for j in range(wo):
                    q = arg[s, k, i, j]
                    dx[s, k, 2 * i + q // 2, 2 * j + q % 2] = dout[s, k, i, j]
    return dx


def maxpool2x2_forward(x) -> tuple[np.ndarray, np.ndarray]:
    """2x2 max-pooling with stride 2 over x (N, C, H, W); an odd last row/column is dropped.

    Returns ``(out, argmax)``, both (N, C, H // 2, W // 2); argmax (int8) is the position of the
    maximum in its window, 0..3 in row-major order (2*dy + dx), the first one on ties.
    """
    x = float_array("maxpool2x2_forward", "x", x, 4)
    return _maxpool2x2_forward(x)


def maxpool2x2_backward(dout, argmax, x_shape: tuple[int, int, int, int]) -> np.ndarray:
    """Gradient of maxpool2x2_forward: routes dout (N, C, H//2, W//2) to each window's argmax.

    Returns dx with shape `x_shape` (N, C, H, W); zero everywhere but at the maxima.
    """
    where = "maxpool2x2_backward"
    dout = float_array(where, "dout", dout, 4)
    n, c, h, w = (int(v) for v in x_shape)
    shape_is(where, "dout", dout, (n, c, h // 2, w // 2))
    argmax = np.ascontiguousarray(argmax, dtype=np.int8)
    shape_is(where, "argmax", argmax, dout.shape)
    return _maxpool2x2_backward(dout, argmax, h, w)


def flatten(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, C*H*W), a view when x is C-contiguous; unflatten undoes it."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"flatten: x must have a batch axis and features, got shape {x.shape}")
    return x.reshape(x.shape[0], -1)


def unflatten(d: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(N, C*H*W) -> `shape` (N, C, H, W): the inverse of flatten, for gradients."""
    d = np.asarray(d)
    if d.size != int(np.prod(shape)) or d.shape[0] != shape[0]:
        raise ValueError(f"unflatten: cannot reshape {d.shape} to {tuple(shape)}")
    return d.reshape(shape)
