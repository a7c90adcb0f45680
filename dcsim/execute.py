"""Execute mode: really train a job's small model through dcsim's kernels, so its loss and
accuracy are measured rather than assumed.

An executable job (``execute:`` in the scenario) has an MLP or the seed article's CIFAR-10 CNN.
:func:`train` builds the model, draws its data set, and runs ``job.iterations`` optimizer steps
of ``job.global_batch`` samples each, with the job's precision and pruning applied to the real
weights:

* precision -- fp32/tf32: plain float32. fp16/bf16: every parameter is rounded to that format
  after each update, and so are the activations fed to the next layer. fp8 (E4M3) and int8:
  the weights are fake-quantized per tensor in the forward pass and the gradients are applied to
  float32 master weights (the straight-through estimator).
* pruning -- after ``round(prune_after * iterations)`` dense steps, ``prune_fraction`` of each
  weight tensor (not the biases) is zeroed by magnitude, and/or 2:4 sparsity keeps the 2 largest
  of every 4 consecutive weights along the input dimension; the pruned weights then stay zero.

Everything random comes from the ``rng`` passed in, split into independent streams for the
weights, the data and the mini-batches: the same seed gives the same records.

    >>> import numpy as np
    >>> from dcsim.scenario.jobs import JobSpec
    >>> job = JobSpec.model_validate({
    ...     "name": "mlp", "global_batch": 32, "iterations": 200, "precision": "fp32",
    ...     "parallelism": {"micro_batch": 32},
    ...     "model": {"kind": "mlp", "inputs": 64, "hidden": [32], "outputs": 10},
    ...     "execute": {"dataset": "digits", "learning_rate": 0.1}})
    >>> result = train(job, np.random.default_rng(0))
    >>> result.final_accuracy > 0.85, len(result.records), result.records[-1].phase
    (True, 200, 'dense')
"""

from __future__ import annotations

import copy
import importlib
import math
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from dcsim.compression import FAKE, PRECISIONS, STORED, fake_quantize, prune_mask
from dcsim.scenario.jobs import JobSpec
from dcsim.scenario.models import CnnModel, MlpModel

__all__ = [
    "PRECISIONS",
    "TrainingRecord",
    "TrainingResult",
    "fake_quantize",
    "prune_mask",
    "train",
]

_HELD_OUT_FRACTION = 0.2
_SYNTHETIC_SAMPLES = {"mlp": 2000, "cnn": 1000}
_SYNTHETIC_TEMPLATE_SD = 0.5  # spread of the class means per feature, in noise std devs
_CNN_IMAGE = (3, 32, 32)
_CNN_CLASSES = 10
_EVAL_CHUNK = 256  # held-out samples per forward pass


@dataclass(frozen=True, slots=True)
class TrainingRecord:
    """One iteration: its mini-batch loss (before the update) and, every ``eval_every``
    iterations and at the last, the held-out accuracy after it (NaN otherwise)."""

    iteration: int
    loss: float
    accuracy: float
    phase: str  # "dense", or "pruned" once the pruning masks are in force


@dataclass(frozen=True)
class TrainingResult:
    """What a training run measured. wall_s counts the training steps only (no data
    preparation, numba compilation or evaluation)."""

    records: list[TrainingRecord]
    wall_s: float
    iterations: int
    final_accuracy: float
    sparsity_achieved: float  # fraction of the weights (not biases) that are zero at the end

    @property
    def wall_s_per_iteration(self) -> float:
        return self.wall_s / self.iterations


# ----------------------------------------------------------------------------- precision
def _kernels() -> ModuleType:
    """dcsim.kernels, imported on first use (it imports numba)."""
    return importlib.import_module("dcsim.kernels")


@dataclass(eq=False)
class _Param:
    value: np.ndarray  # the float32 master copy, updated in place
    is_weight: bool  # weights are pruned and fake-quantized; biases are not
    mask: np.ndarray | None = None
    moments: tuple[np.ndarray, np.ndarray] | None = None  # Adam's m and v


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> list[_Param]:
    w = (rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(np.float32)
    return [_Param(w, True), _Param(np.zeros(shape[0], np.float32), False)]


class _Dense:
    def __init__(self, n_in: int, n_out: int, activation: str, rng: np.random.Generator):
        self.activation = activation
        self.params = _he(rng, (n_out, n_in), n_in)

    def forward(self, x, w, b):
        k = _kernels()
        z, a = k.dense_forward(x, w, b, self.activation)
        return a, (x, w, z, a)

    def backward(self, d, cache):
        k = _kernels()
        g = k.dense_backward(d, *cache, self.activation)
        return g.dA_prev, [g.dW, g.db]


class _ConvRelu:
    """3x3 'same' convolution followed by ReLU."""

    def __init__(self, c_in: int, c_out: int, rng: np.random.Generator):
        self.params = _he(rng, (c_out, c_in, 3, 3), c_in * 9)

    def forward(self, x, w, b):
        k = _kernels()
        z = k.conv2d_forward(x, w, b, "same")
        a = k.activation_forward(z, "relu")
        return a, (x, w, z, a)

    def backward(self, d, cache):
        k = _kernels()
        x, w, z, a = cache
        dx, dw, db = k.conv2d_backward(k.activation_backward(d, z, a, "relu"), x, w, "same")
        return dx, [dw, db]


class _MaxPool:
    params: tuple[_Param, ...] = ()

    def forward(self, x):
        k = _kernels()
        out, argmax = k.maxpool2x2_forward(x)
        return out, (argmax, x.shape)

    def backward(self, d, cache):
        k = _kernels()
        return k.maxpool2x2_backward(d, *cache), []


class _Flatten:
    params: tuple[_Param, ...] = ()

    def forward(self, x):
        k = _kernels()
        return k.flatten(x), x.shape

    def backward(self, d, shape):
        k = _kernels()
        return np.ascontiguousarray(k.unflatten(d, shape)), []


class _Network:
    """A sequence of layers; the forward pass sees each parameter through `precision`."""

    def __init__(self, layers: list[Any], precision: str):
        self.layers = layers
        self.precision = precision
        self.params = [p for layer in layers for p in layer.params]

    def _view(self, p: _Param) -> np.ndarray:
        return (
            FAKE[self.precision](p.value) if p.is_weight and self.precision in FAKE else p.value
        )

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        caches = []
        round_activations = STORED.get(self.precision)
        for layer in self.layers:
            if layer.params and round_activations:
                x = round_activations(x)
            x, cache = layer.forward(x, *(self._view(p) for p in layer.params))
            caches.append(cache)
        return x, caches

    def backward(self, d: np.ndarray, caches: list[Any]) -> list[np.ndarray]:
        grads: list[np.ndarray] = []
        for layer, cache in zip(reversed(self.layers), reversed(caches), strict=True):
            d, layer_grads = layer.backward(d, cache)
            grads[:0] = layer_grads
        return grads


def _build(job: JobSpec, rng: np.random.Generator) -> _Network:
    m = job.model
    if isinstance(m, MlpModel):
        widths = [m.inputs, *m.hidden, m.outputs]
        acts = ["relu"] * len(m.hidden) + ["identity"]
        layers: list[Any] = [
            _Dense(i, o, a, rng) for i, o, a in zip(widths[:-1], widths[1:], acts, strict=True)
        ]
    elif isinstance(m, CnnModel) and m.arch == "cifar10-cnn":
        flat = 64 * (_CNN_IMAGE[1] // 4) * (_CNN_IMAGE[2] // 4)
        layers = [
            _ConvRelu(_CNN_IMAGE[0], 32, rng),
            _MaxPool(),
            _ConvRelu(32, 64, rng),
            _MaxPool(),
            _Flatten(),
            _Dense(flat, 128, "relu", rng),
            _Dense(128, _CNN_CLASSES, "identity", rng),
        ]
    else:
        raise ValueError(
            f"job {job.name!r}: execute trains an mlp or the cifar10-cnn, not {m.kind}"
        )
    net = _Network(layers, job.precision)
    _store(net)
    return net


def _store(net: _Network) -> None:
    """Round the parameters, in place, to a storage precision (fp16/bf16); zero pruned ones."""
    rounding = STORED.get(net.precision)
    for p in net.params:
        if rounding:
            p.value[...] = rounding(p.value)
        if p.mask is not None:
            p.value *= p.mask


# ----------------------------------------------------------------------------- data
class _Data(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _split(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> _Data:
    order = rng.permutation(len(y))
    n_test = int(round(_HELD_OUT_FRACTION * len(y)))
    test, train = order[:n_test], order[n_test:]
    return _Data(x[train], y[train], x[test], y[test])


def _digits(rng: np.random.Generator) -> _Data:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    return _split(x, digits.target.astype(np.int64), rng)


def _synthetic(
    shape: tuple[int, ...], classes: int, samples: int, rng: np.random.Generator
) -> _Data:
    """Class-conditioned Gaussians: a random mean template per class (N(0, 0.5**2) per feature)
    plus unit noise. Images (C, H, W) get templates made of 4x4 blocks of one value, so that
    neighbouring pixels correlate as in photographs."""
    coarse = (shape[0], shape[1] // 4, shape[2] // 4) if len(shape) == 3 else shape
    templates = rng.standard_normal((classes, *coarse))
    if len(shape) == 3:
        templates = templates.repeat(4, axis=2).repeat(4, axis=3)
    templates *= _SYNTHETIC_TEMPLATE_SD
    y = rng.integers(0, classes, samples)
    x = (templates[y] + rng.standard_normal((samples, *shape))).astype(np.float32)
    return _split(x, y, rng)


def _dataset(job: JobSpec, rng: np.random.Generator) -> _Data:
    assert job.execute is not None
    m = job.model
    if job.execute.dataset == "digits":
        return _digits(rng)
    if isinstance(m, MlpModel):
        return _synthetic((m.inputs,), m.outputs, _SYNTHETIC_SAMPLES["mlp"], rng)
    return _synthetic(_CNN_IMAGE, _CNN_CLASSES, _SYNTHETIC_SAMPLES["cnn"], rng)


# ----------------------------------------------------------------------------- training
@dataclass
class _Trainer:
    net: _Network
    optimizer: str
    lr: float
    steps: int = 0  # optimizer steps taken (Adam's bias correction counts them)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        """One optimizer step on the mini-batch (x, y); returns its loss before the update."""
        k = _kernels()
        logits, caches = self.net.forward(x)
        loss, dlogits = k.softmax_cross_entropy(logits, y)
        self.steps += 1
        for p, g in zip(self.net.params, self.net.backward(dlogits, caches), strict=True):
            if p.mask is not None:
                g = g * p.mask
            if self.optimizer == "sgd":
                k.sgd_step(p.value, g, self.lr)
            else:
                if p.moments is None:
                    p.moments = (np.zeros_like(p.value), np.zeros_like(p.value))
                k.adam_step(p.value, g, *p.moments, self.steps, self.lr)
        _store(self.net)
        return loss

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        correct = 0
        for start in range(0, len(y), _EVAL_CHUNK):
            logits, _ = self.net.forward(x[start : start + _EVAL_CHUNK])
            correct += int(np.sum(np.argmax(logits, axis=1) == y[start : start + _EVAL_CHUNK]))
        return correct / len(y)

    def prune(self, job: JobSpec) -> None:
        for p in self.net.params:
            if p.is_weight:
                p.mask = prune_mask(p.value, job.prune_fraction, job.sparsity)
        _store(self.net)

    def sparsity(self) -> float:
        weights = [p.value for p in self.net.params if p.is_weight]
        return sum(int(np.count_nonzero(w == 0)) for w in weights) / sum(w.size for w in weights)


def _warm_up(trainer: _Trainer, data: _Data, batch: int) -> None:
    """Compile the kernels (numba) with one step and one evaluation on a copy, untimed."""
    spare = copy.deepcopy(trainer)
    idx = np.arange(batch) % len(data.y_train)
    spare.step(data.x_train[idx], data.y_train[idx])
    spare.accuracy(data.x_test[:2], data.y_test[:2])


def train(job: JobSpec, rng: np.random.Generator) -> TrainingResult:
    """Train `job`'s model for job.iterations steps and measure its loss and accuracy.

    Each iteration is one optimizer step on job.global_batch samples drawn (with replacement)
    from the training split; the held-out accuracy is measured every execute.eval_every
    iterations and after the last. With prune_after = 1 the pruning comes after the last step,
    without fine-tuning: the records stay "dense" and final_accuracy is the pruned model's.
    parallelism.micro_batch does not split the step: accumulating the micro-batches' gradients
    would give the same update as this one pass over the global batch.
    """
    ex = job.execute
    if ex is None:
        raise ValueError(f"job {job.name!r}: train needs an execute section")
    init_rng, data_rng, batch_rng = rng.spawn(3)
    trainer = _Trainer(_build(job, init_rng), ex.optimizer, ex.learning_rate)
    data = _dataset(job, data_rng)
    _warm_up(trainer, data, job.global_batch)
    prunes = job.prune_fraction > 0 or job.sparsity == "2:4"
    prune_at = round(ex.prune_after * job.iterations) if prunes else job.iterations + 1
    records: list[TrainingRecord] = []
    wall_s = 0.0
    for it in range(1, job.iterations + 1):
        if it == prune_at + 1:
            trainer.prune(job)
        idx = batch_rng.integers(0, len(data.y_train), job.global_batch)
        x, y = data.x_train[idx], data.y_train[idx]
        start = time.perf_counter()
        loss = trainer.step(x, y)
        wall_s += time.perf_counter() - start
        evaluate = it % ex.eval_every == 0 or it == job.iterations
        accuracy = trainer.accuracy(data.x_test, data.y_test) if evaluate else math.nan
        records.append(TrainingRecord(it, loss, accuracy, "pruned" if it > prune_at else "dense"))
    final_accuracy = records[-1].accuracy
    if prune_at == job.iterations:
        trainer.prune(job)
        final_accuracy = trainer.accuracy(data.x_test, data.y_test)
    return TrainingResult(records, wall_s, job.iterations, final_accuracy, trainer.sparsity())
