"""The cost of a layer-by-layer network (dcsim/perf/nets) on one device: GPU time, kernel
launches and framework calls per micro-batch, and one training step around them.

GPU time, per op and micro-batch of b samples (costs.Device: a roofline with fitted
efficiencies, plus a fixed time per kernel):
- a product: max(F / (peak e(F)), bytes / (HBM m)) per call, F = 2 b m k n / groups; bytes =
  its input and output activations and its weights; a recurrent product makes one such call
  per time step, of b rows each, so a small batch leaves the device mostly idle; backward is
  two products (data and weight gradients);
- an elementwise or reduction kernel: bytes / (HBM m), backward twice the bytes;
- an embedding lookup: its rows' bytes at half the streaming bandwidth (random rows),
  backward twice that (atomic scatter-adds), plus a table-sized write for a dense gradient.

The host issues every framework call (PyTorch eager: tens of microseconds each on the CPUs of
the era, the profile's `op_overhead_s`) asynchronously, so a step takes
max(GPU time, host time) + the profile's `step_overhead_s` (the Python loop, loss readback,
data-loader hand-off), plus host work the loader does not hide (`Net.host_s_per_sample`) and
host time of its own (`Net.host_s_per_step`, an RL environment). An RL rollout (`Net.rollout`)
runs its forward pass at batch 1 once per environment step and waits for each (the action
depends on it); worker processes sharing the GPU queue their kernels behind each other.

The optimizer updates each parameter tensor with a few kernels (SGD with momentum 3, Adam 8,
plain SGD 1) moving 20, 32 or 12 bytes per parameter; a dense embedding gradient makes it
sweep the whole table, a sparse one only the rows looked up.
"""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.perf.costs import Device
from dcsim.perf.nets import Net, Op

__all__ = ["NetCost", "net_cost", "fused_forward_s", "optimizer_cost", "OPTIMIZERS"]

# reading embedding rows at random addresses reaches about half of the streaming bandwidth
# (rows of 64-512 bytes; an estimate, as DLRM and NCF profiles on GPUs show them memory bound
# below their copy bandwidth)
GATHER_EFFICIENCY = 0.5
# optimizer -> (kernels per parameter tensor, bytes per parameter)
OPTIMIZERS = {"sgd": (3, 20.0), "adam": (8, 32.0), "sgd-plain": (1, 12.0), "none": (0, 0.0)}


@dataclass(frozen=True, slots=True)
class NetCost:
    """One micro-batch: GPU seconds forward and backward, and framework calls."""

    forward_s: float
    backward_s: float
    forward_calls: float
    backward_calls: float
    flop: float  # forward FLOPs

    @property
    def host_calls(self) -> float:
        return self.forward_calls + self.backward_calls


def _op_cost(op: Op, dev: Device, b: int, act: float, wb: float) -> tuple[float, float, float]:
    """(forward s, backward s, framework calls forward) of one copy of `op` for b samples (a
    backward pass makes as many calls again, where gradients flow)."""
    calls = op.host_ops
    if op.kind == "matmul":
        rows = b * op.m
        flop = 2.0 * rows * op.k * op.n / op.groups
        nbytes = (b * op.inputs + rows * op.n) * act + op.weights * wb
        sides = (rows, op.k / op.groups, op.n / op.groups)
        fwd = op.steps * dev.gemm(flop, nbytes, sides=sides)
        return fwd, 2.0 * fwd if op.backward else 0.0, calls
    if op.kind == "gather":
        # rows at random addresses: a fraction of the streaming bandwidth; backward scatters
        # the gradients back with atomic adds (twice the traffic), and a dense gradient
        # (PyTorch's default) is a whole table-sized tensor written each pass
        fwd = dev.memory(b * op.elems * wb / GATHER_EFFICIENCY)
        bwd = 2.0 * fwd
        if not op.sparse_grad and op.weights:
            bwd += dev.memory(op.weights * 4.0)
        return fwd, bwd if op.backward else 0.0, calls
    launch = dev.profile.kernel_overhead_s * op.launches
    fwd = op.steps * (dev.memory(b * op.elems * op.passes * act, overhead=False) + launch)
    bwd = op.steps * (dev.memory(2 * b * op.elems * op.passes * act, overhead=False) + launch)
    return fwd, bwd if op.backward else 0.0, calls


def net_cost(net: Net, dev: Device, b: int, act: float, wb: float) -> NetCost:
    """GPU time and framework calls of one micro-batch of `b` samples (activations of `act`
    bytes, weights of `wb` bytes)."""
    fwd = bwd = calls_f = calls_b = 0.0
    for op in net.ops:
        f, g, c = _op_cost(op, dev, b, act, wb)
        k = op.count * op.reuse
        fwd, bwd, calls_f = fwd + k * f, bwd + k * g, calls_f + k * c
        calls_b += k * c if op.backward else 0.0
    return NetCost(fwd, bwd, calls_f, calls_b, b * net.forward_flop)


def fused_forward_s(net: Net, dev: Device, b: int, w: float) -> float:
    """GPU seconds of one forward pass of `b` samples as an inference engine runs it
    (TensorRT-style): its products and embedding lookups only, activations and weights of `w`
    bytes; normalizations are folded into the weights and the elementwise kernels
    (activations, residual adds, softmax, pooling) fused into the products' epilogues; the
    engine replays prebuilt kernels, so no framework call paces it."""
    total = 0.0
    for op in net.ops:
        if op.kind == "memory":
            continue
        f, _, _ = _op_cost(op, dev, b, w, w)
        total += op.count * op.reuse * f
    return total


def optimizer_cost(net: Net, dev: Device, dense_params: float, sparse_rows_elems: float
                   ) -> tuple[float, float]:
    """(GPU s, framework calls) of one optimizer step over `dense_params` parameters (this
    GPU's share) and `sparse_rows_elems` embedding elements touched by sparse gradients."""
    kernels, per_param = OPTIMIZERS[net.optimizer]
    calls = kernels * net.param_tensors
    if not calls:
        return 0.0, 0.0
    gpu = (dev.memory((dense_params + sparse_rows_elems) * per_param, overhead=False)
           + calls * dev.profile.kernel_overhead_s)
    return gpu, float(calls)
