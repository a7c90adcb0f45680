"""dcsim.kernels against plain NumPy references written here, gradients against central finite
differences (float64), and tiny seeded training runs that must reduce their loss."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dcsim.kernels import (
    ACTIVATIONS,
    activation_backward,
    activation_forward,
    adam_step,
    conv2d_backward,
    conv2d_forward,
    dense_backward,
    dense_forward,
    dense_forward_backward,
    flatten,
    maxpool2x2_backward,
    maxpool2x2_forward,
    sgd_step,
    softmax_cross_entropy,
    unflatten,
)

DTYPES = [np.float32, np.float64]
TOL = {np.float32: {"rtol": 2e-5, "atol": 2e-5}, np.float64: {"rtol": 1e-11, "atol": 1e-12}}


def close(actual, expected, dtype):
    assert actual.dtype == np.dtype(dtype)
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


def normal(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


# --- NumPy references (computed in float64, the truth both dtypes are held to) ---------------


def ref_activate(z, name):
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "gelu":
        return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3)))
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return z.copy()


def ref_derivative(z, name):
    """sigma'(z), here by the chain rule written out independently of the kernel."""
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "gelu":
        k = np.sqrt(2.0 / np.pi)
        u = k * (z + 0.044715 * z**3)
        return 0.5 * (1 + np.tanh(u)) + 0.5 * z / np.cosh(u) ** 2 * k * (1 + 3 * 0.044715 * z**2)
    if name == "tanh":
        return 1.0 / np.cosh(z) ** 2
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-z))
        return s * (1 - s)
    return np.ones_like(z)


def ref_dense_forward(a_prev, W, b, name):
    z = a_prev @ W.T + b
    return z, ref_activate(z, name)


def ref_dense_backward(dA, a_prev, W, z, name):
    dZ = dA * ref_derivative(z, name)
    return dZ, dZ.T @ a_prev, dZ.sum(axis=0), dZ @ W


def ref_softmax_cross_entropy(logits, labels):
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    n = len(labels)
    onehot = np.eye(logits.shape[1])[labels]
    return -log_p[np.arange(n), labels].mean(), (np.exp(log_p) - onehot) / n


def windows(x, kh, kw, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    return np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # N C HO WO KH KW


def ref_conv2d_forward(x, w, b, pad):
    return np.einsum("nchwij,fcij->nfhw", windows(x, *w.shape[2:], pad), w) + b[:, None, None]


def ref_conv2d_backward(dout, x, w, pad):
    kh, kw = w.shape[2:]
    ho, wo = dout.shape[2:]
    dw = np.einsum("nchwij,nfhw->fcij", windows(x, kh, kw, pad), dout)
    dxp = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * pad, x.shape[3] + 2 * pad))
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + ho, j : j + wo] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    dx = dxp[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, dout.sum(axis=(0, 2, 3))


def ref_maxpool2x2(x):
    n, c, h, w = x.shape
    blocks = x[:, :, : h // 2 * 2, : w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    flat = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    return flat.max(axis=-1), flat.argmax(axis=-1)


def ref_maxpool2x2_backward(dout, argmax, shape):
    n, c, ho, wo = dout.shape
    flat = np.zeros((n, c, ho, wo, 4))
    np.put_along_axis(flat, argmax[..., None].astype(np.int64), dout[..., None], axis=-1)
    dx = np.zeros(shape)
    dx[:, :, : ho * 2, : wo * 2] = (
        flat.reshape(n, c, ho, wo, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * 2, wo * 2)
    )
    return dx


def ref_adam(p, g, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    p = p - lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
    return p, m, v


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of x (in place)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + eps
        up = f()
        x[i] = saved - eps
        down = f()
        x[i] = saved
        grad[i] = (up - down) / (2 * eps)
    return grad


def grad_close(analytic, numeric):
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


# --- dense ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_matches_numpy(activation, dtype):
    rng = np.random.default_rng(1)
    a_prev, W, b, dA = (normal(rng, s) for s in [(6, 5), (4, 5), (4,), (6, 4)])
    z, a = dense_forward(*(x.astype(dtype) for x in (a_prev, W, b)), activation)
    z_ref, a_ref = ref_dense_forward(a_prev, W, b, activation)
    close(z, z_ref, dtype)
    close(a, a_ref, dtype)
    grads = dense_backward(*(x.astype(dtype) for x in (dA, a_prev, W, z_ref, a_ref)), activation)
    for got, want in zip(grads, ref_dense_backward(dA, a_prev, W, z_ref, activation), strict=True):
        close(got, want, dtype)
    a_fused, fused = dense_forward_backward(
        *(x.astype(dtype) for x in (a_prev, W, b, dA)), activation
    )
    close(a_fused, a_ref, dtype)
    for got, want in zip(fused, grads, strict=True):
        close(got, want, dtype)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_gradients_match_finite_differences(activation):
    rng = np.random.default_rng(2)
    a_prev, W, b, G = (normal(rng, s) for s in [(3, 4), (5, 4), (5,), (3, 5)])

    def loss():
        return float((dense_forward(a_prev, W, b, activation)[1] * G).sum())

    z, a = dense_forward(a_prev, W, b, activation)
    dZ, dW, db, dA_prev = dense_backward(G, a_prev, W, z, a, activation)
    grad_close(dW, numerical_grad(loss, W))
    grad_close(db, numerical_grad(loss, b))
    grad_close(dA_prev, numerical_grad(loss, a_prev))
    grad_close(dZ, numerical_grad(lambda: float((ref_activate(z, activation) * G).sum()), z))


@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_activation_of_any_shape(dtype):
    rng = np.random.default_rng(3)
    z, dA = normal(rng, (2, 3, 4, 4)), normal(rng, (2, 3, 4, 4))
    for name in ACTIVATIONS:
        a = activation_forward(z.astype(dtype), name)
        close(a, ref_activate(z, name), dtype)
        dZ = activation_backward(dA.astype(dtype), z.astype(dtype), a, name)
        close(dZ, dA * ref_derivative(z.astype(dtype).astype(np.float64), name), dtype)


# --- softmax cross-entropy ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_matches_numpy(dtype):
    rng = np.random.default_rng(4)
    logits, labels = normal(rng, (7, 5)), rng.integers(0, 5, size=7)
    loss, grad = softmax_cross_entropy(logits.astype(dtype), labels)
    loss_ref, grad_ref = ref_softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(loss_ref, rel=TOL[dtype]["rtol"], abs=TOL[dtype]["atol"])
    close(grad, grad_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_is_stable_for_huge_logits(dtype):
    logits = np.array([[1e4, 0.0, -1e4], [-5e3, 5e3, 5e3]], dtype=dtype)
    loss, grad = softmax_cross_entropy(logits, np.array([0, 2]))
    assert loss == pytest.approx(np.log(2) / 2, rel=1e-6)
    close(grad, np.array([[0, 0, 0], [0, 0.25, -0.25]]), dtype)


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    logits, labels = normal(rng, (4, 3)), rng.integers(0, 3, size=4)
    _, grad = softmax_cross_entropy(logits, labels)
    grad_close(grad, numerical_grad(lambda: softmax_cross_entropy(logits, labels)[0], logits))


# --- conv2d, max-pooling, flatten -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("padding", "pad", "kernel"), [("same", 1, 3), ("valid", 0, 3), (2, 2, 2)])
def test_conv2d_matches_numpy(padding, pad, kernel, dtype):
    rng = np.random.default_rng(6)
    x, w, b = normal(rng, (2, 3, 6, 5)), normal(rng, (4, 3, kernel, kernel)), normal(rng, (4,))
    out = conv2d_forward(x.astype(dtype), w.astype(dtype), b.astype(dtype), padding)
    close(out, ref_conv2d_forward(x, w, b, pad), dtype)
    dout = normal(rng, out.shape)
    grads = conv2d_backward(dout.astype(dtype), x.astype(dtype), w.astype(dtype), padding)
    for got, want in zip(grads, ref_conv2d_backward(dout, x, w, pad), strict=True):
        close(got, want, dtype)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_gradients_match_finite_differences(padding):
    rng = np.random.default_rng(7)
    x, w, b = normal(rng, (2, 2, 5, 5)), normal(rng, (3, 2, 3, 3)), normal(rng, (3,))
    G = normal(rng, conv2d_forward(x, w, b, padding).shape)

    def loss():
        return float((conv2d_forward(x, w, b, padding) * G).sum())

    dx, dw, db = conv2d_backward(G, x, w, padding)
    grad_close(dx, numerical_grad(loss, x))
    grad_close(dw, numerical_grad(loss, w))
    grad_close(db, numerical_grad(loss, b))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw", [(4, 6), (5, 7)])
def test_maxpool2x2_matches_numpy(hw, dtype):
    rng = np.random.default_rng(8)
    x = normal(rng, (2, 3, *hw)).astype(dtype)
    out, argmax = maxpool2x2_forward(x)
    out_ref, argmax_ref = ref_maxpool2x2(x)
    close(out, out_ref, dtype)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dout = normal(rng, out.shape).astype(dtype)
    close(
        maxpool2x2_backward(dout, argmax, x.shape),
        ref_maxpool2x2_backward(dout, argmax_ref, x.shape),
        dtype,
    )


def test_maxpool2x2_gradient_matches_finite_differences():
    rng = np.random.default_rng(9)
    x = normal(rng, (1, 2, 4, 5))
    G = normal(rng, (1, 2, 2, 2))
    out, argmax = maxpool2x2_forward(x)
    numeric = numerical_grad(lambda: float((maxpool2x2_forward(x)[0] * G).sum()), x)
    grad_close(maxpool2x2_backward(G, argmax, x.shape), numeric)


def test_maxpool2x2_ties_go_to_the_first_maximum():
    out, argmax = maxpool2x2_forward(np.ones((1, 1, 2, 2)))
    assert out[0, 0, 0, 0] == 1 and argmax[0, 0, 0, 0] == 0


def test_flatten_and_unflatten_round_trip():
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    flat = flatten(x)
    assert flat.shape == (2, 48) and np.shares_memory(flat, x)
    np.testing.assert_array_equal(unflatten(flat, x.shape), x)


# --- optimizers -----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_matches_numpy(momentum, dtype):
    rng = np.random.default_rng(10)
    p0, grads = normal(rng, (3, 4)), [normal(rng, (3, 4)) for _ in range(3)]
    p, velocity = p0.astype(dtype), np.zeros((3, 4), dtype) if momentum else None
    p_ref, v_ref = p0.copy(), np.zeros((3, 4))
    for g in grads:
        sgd_step(p, g.astype(dtype), 0.05, momentum=momentum, velocity=velocity)
        v_ref = momentum * v_ref + g
        p_ref = p_ref - 0.05 * v_ref
    close(p, p_ref, dtype)
    if momentum:
        close(velocity, v_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_matches_numpy(dtype):
    rng = np.random.default_rng(11)
    p0, grads = normal(rng, (3, 4)), [normal(rng, (3, 4)) for _ in range(4)]
    p, m, v = p0.astype(dtype), np.zeros((3, 4), dtype), np.zeros((3, 4), dtype)
    p_ref, m_ref, v_ref = p0.copy(), np.zeros((3, 4)), np.zeros((3, 4))
    for step, g in enumerate(grads, start=1):
        adam_step(p, g.astype(dtype), m, v, step, lr=0.01)
        p_ref, m_ref, v_ref = ref_adam(p_ref, g, m_ref, v_ref, step, lr=0.01)
    close(p, p_ref, dtype)
    close(m, m_ref, dtype)
    close(v, v_ref, dtype)


# --- errors name what and where -------------------------------------------------------------


def test_errors_name_the_function_and_the_argument():
    x, W, b = np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(4)
    with pytest.raises(ValueError, match="unknown activation 'swish'; valid: identity, relu"):
        dense_forward(x, W, b, "swish")
    with pytest.raises(TypeError, match=r"dense_forward: arrays must share one dtype.*W=float32"):
        dense_forward(x, W.astype(np.float32), b)
    with pytest.raises(ValueError, match=r"dense_forward: W must have shape \(4, 2\)"):
        dense_forward(np.zeros((2, 2)), W, b)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(ValueError, match="param is updated in place and must be C-contiguous"):
        sgd_step(np.zeros((4, 4))[:, ::2], np.zeros((4, 2)), 0.1)
    with pytest.raises(ValueError, match="momentum=0.9 needs a velocity array"):
        sgd_step(np.zeros(3), np.zeros(3), 0.1, momentum=0.9)
    with pytest.raises(ValueError, match="padding='same' needs a square, odd kernel"):
        conv2d_forward(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 2, 2)), np.zeros(1), "same")


def test_importing_dcsim_does_not_import_the_kernels():
    code = "import sys, dcsim; assert 'dcsim.kernels' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- end to end: tiny seeded training runs --------------------------------------------------


def separable_blobs(rng, n=128, features=4):
    """Two Gaussian blobs on either side of a random hyperplane, labels 0/1."""
    direction = rng.standard_normal(features)
    direction /= np.linalg.norm(direction)
    labels = rng.integers(0, 2, size=n)
    x = rng.standard_normal((n, features)) + np.outer(2.0 * labels - 1.0, 2.0 * direction)
    return x, labels


@pytest.mark.parametrize("dtype", DTYPES)
def test_two_layer_mlp_learns_a_separable_dataset(dtype):
    rng = np.random.default_rng(12)
    x, labels = separable_blobs(rng)
    x = x.astype(dtype)
    params = [
        normal(rng, (16, 4), dtype) * 0.5,
        np.zeros(16, dtype),
        normal(rng, (2, 16), dtype) * 0.25,
        np.zeros(2, dtype),
    ]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    losses = []
    for step in range(1, 61):
        W1, b1, W2, b2 = params
        z1, h = dense_forward(x, W1, b1, "relu")
        _, logits = dense_forward(h, W2, b2, "identity")
        loss, dlogits = softmax_cross_entropy(logits, labels)
        _, dW2, db2, dh = dense_backward(dlogits, h, W2, logits, logits, "identity")
        _, dW1, db1, _ = dense_backward(dh, x, W1, z1, h, "relu")
        for p, g, (m, v) in zip(params, [dW1, db1, dW2, db2], moments, strict=True):
            adam_step(p, g, m, v, step, lr=0.03)
        losses.append(loss)
    accuracy = (logits.argmax(axis=1) == labels).mean()
    assert losses[-1] < 0.1 * losses[0]
    assert accuracy > 0.95


def test_tiny_cnn_reduces_its_loss():
    """conv3x3 -> relu -> maxpool -> flatten -> dense, on images whose class is where a bright
    square sits (top or bottom half); plain SGD with momentum."""
    rng = np.random.default_rng(13)
    n = 32
    labels = rng.integers(0, 2, size=n)
    images = 0.1 * normal(rng, (n, 1, 8, 8), np.float32)
    for i, label in enumerate(labels):
        top = 4 * label + rng.integers(0, 2)
        images[i, 0, top : top + 2, 2:6] += 1.0
    params = [
        0.3 * normal(rng, (4, 1, 3, 3), np.float32),
        np.zeros(4, np.float32),
        0.1 * normal(rng, (2, 64), np.float32),
        np.zeros(2, np.float32),
    ]
    velocities = [np.zeros_like(p) for p in params]
    losses = []
    for _ in range(30):
        w, b, W, c = params
        z = conv2d_forward(images, w, b, "same")
        a = activation_forward(z, "relu")
        pooled, argmax = maxpool2x2_forward(a)
        _, logits = dense_forward(flatten(pooled), W, c, "identity")
        loss, dlogits = softmax_cross_entropy(logits, labels)
        _, dW, dc, dflat = dense_backward(dlogits, flatten(pooled), W, logits, logits, "identity")
        da = maxpool2x2_backward(unflatten(dflat, pooled.shape), argmax, a.shape)
        _, dw, db = conv2d_backward(activation_backward(da, z, a, "relu"), images, w, "same")
        for p, g, vel in zip(params, [dw, db, dW, dc], velocities, strict=True):
            sgd_step(p, g, 0.1, momentum=0.9, velocity=vel)
        losses.append(loss)
    assert losses[-1] < 0.1 * losses[0]


def test_benchmark_script_runs_and_writes_its_json(tmp_path):
    """A smoke run of `python -m benchmarks.bench_kernels` at toy sizes (no speed is asserted)."""
    from benchmarks.bench_kernels import main

    out = tmp_path / "kernels.json"
    toy = "--batch 8 --widths 16 32 --rounds 1 --repeats 1 --peak-size 64"
    no_waiting = "--pause-s 0 --max-width-s 0 --min-block-s 0 --load-sample-s 0"
    args = ["--out", str(out), *toy.split(), *no_waiting.split()]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert [r["width"] for r in result["rows"]] == [16, 32]
    assert all(r["max_relative_difference"] < 1e-5 for r in result["rows"])


def test_relu_propagates_nan_rather_than_hiding_it():
    x, W, b = np.array([[0.0, -1.0, 2.0]]), np.eye(3), np.array([np.nan, 0.0, 0.0])
    z = x + b
    outputs = [activation_forward(z), dense_forward(x, W, b)[1]]
    outputs.append(dense_forward_backward(x, W, b, np.ones((1, 3)))[0])
    for a in outputs:
        assert np.isnan(a[0, 0]) and a[0, 1] == 0 and a[0, 2] == 2
