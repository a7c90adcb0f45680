"""The registry and base types of `dcsim.perf.nets`: its package imports them and
every member, so that each member registers; members import this module, not the package."""


from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from dcsim.registry import Registry

__all__ = ["Op", "Net", "NetBuilder", "NETS", "matmul", "memory", "gather", "conv", "dense",
           "Widths"]

# a list of layer widths in a builder's params: 1 to 64 layers of 1 to 65,536 each
Widths = Annotated[tuple[Annotated[int, Field(ge=1, le=65536)], ...],
                   Field(min_length=1, max_length=64)]


@dataclass(frozen=True, slots=True)
class Op:
    name: str
    kind: str  # "matmul", "memory" or "gather"
    m: float = 0.0  # matmul: output rows per sample (pixels, tokens); per step if steps > 1
    k: float = 0.0
    n: float = 0.0
    groups: int = 1
    inputs: float = 0.0  # matmul: activation elements read per sample and step (default m k)
    elems: float = 0.0  # memory / gather: elements per sample
    passes: float = 1.0  # memory: element passes (reads + writes) forward
    weights: float = 0.0  # parameters
    param_tensors: int = 0  # parameter tensors (weight, bias, norm scale and shift)
    steps: int = 1  # sequential time steps (one kernel each)
    count: int = 1  # copies in sequence, each with its own weights
    reuse: int = 1  # passes through the same weights per step (a generator run 6 times)
    saved: float = 0.0  # activation elements kept for the backward pass, per sample
    backward: bool = True  # False: no gradient flows (frozen, or the data side of a gather)
    host_ops: float = 1.0  # framework calls per copy forward (a fused RNN layer: 1 for T steps)
    sparse_grad: bool = False  # gather: only the rows looked up are updated (sparse gradient)
    launches: float = 1.0  # kernels per copy and step (0: fused into the previous op's kernel)

    @property
    def flop(self) -> float:
        """Forward FLOPs per sample (all copies, all steps)."""
        if self.kind != "matmul":
            return 0.0
        return (2.0 * self.m * self.k * self.n / self.groups * self.steps * self.count
                * self.reuse)

    @property
    def outputs(self) -> float:
        """Output elements per sample per copy (and step)."""
        return self.m * self.n if self.kind == "matmul" else self.elems


def matmul(name: str, m: float, k: float, n: float, *, groups: int = 1,
           inputs: float | None = None, bias: bool = True, steps: int = 1, count: int = 1,
           saved: float | None = None, host_ops: float = 1.0, backward: bool = True) -> Op:
    """A product whose weights are (k / groups) x n per group; saves its input for backward."""
    return Op(name, "matmul", m=m, k=k, n=n, groups=groups,
              inputs=m * k if inputs is None else inputs,
              weights=k * n / groups + (n if bias else 0), param_tensors=2 if bias else 1,
              steps=steps, count=count,
              saved=(m * k if inputs is None else inputs) * steps if saved is None else saved,
              host_ops=host_ops, backward=backward)


def memory(name: str, elems: float, passes: float = 2.0, *, count: int = 1, steps: int = 1,
           saved: float = 0.0, weights: float = 0.0, param_tensors: int = 0,
           host_ops: float = 1.0) -> Op:
    return Op(name, "memory", elems=elems, passes=passes, count=count, steps=steps, saved=saved,
              weights=weights, param_tensors=param_tensors, host_ops=host_ops)


def gather(name: str, rows: float, width: float, table_rows: float, count: int = 1,
           sparse_grad: bool = False) -> Op:
    """`rows` lookups of `width` elements per sample from a table of `table_rows` rows (0: a
    table counted elsewhere, e.g. tied to an output layer). A dense gradient (PyTorch's
    default) makes the optimizer update the whole table every step; a sparse one only the
    rows looked up."""
    return Op(name, "gather", elems=rows * width, weights=table_rows * width,
              param_tensors=1 if table_rows else 0, count=count, sparse_grad=sparse_grad)


def conv(name: str, size: float, c_in: int, c_out: int, kernel: int = 3, stride: int = 1,
         *, groups: int = 1, dims: int = 2, norm: bool = True, act: bool = True,
         bias: bool = False, transposed: bool = False) -> list[Op]:
    """A convolution on a `size`^dims input (same padding), then batch norm and an
    activation (in place, as torchvision does): the product saves its input, the norm its
    input, the activation its output."""
    out = size * stride if transposed else -(-size // stride)
    per_out = (c_in // groups) * kernel ** dims
    weights = per_out * c_out + (c_out if bias else 0)
    if transposed:  # each input pixel's c_in values spread over kernel^dims outputs
        prod = Op(name, "matmul", m=size ** dims, k=c_in, n=c_out * kernel ** dims,
                  inputs=size ** dims * c_in, weights=weights,
                  param_tensors=2 if bias else 1, saved=size ** dims * c_in)
    else:
        prod = Op(name, "matmul", m=out ** dims, k=per_out * groups, n=c_out, groups=groups,
                  inputs=size ** dims * c_in, weights=weights,
                  param_tensors=2 if bias else 1, saved=size ** dims * c_in)
    ops = [prod]
    pixels = out ** dims
    elems = pixels * c_out
    if norm:
        ops.append(memory(f"{name}.norm", elems, passes=4, saved=elems, weights=2 * c_out,
                          param_tensors=2))
    if act:
        ops.append(memory(f"{name}.act", elems, passes=2, saved=elems if not norm else 0.0))
    return ops


def dense(name: str, n_in: float, n_out: float, rows: float = 1.0, *, act: bool = False,
          bias: bool = True) -> list[Op]:
    """A fully connected layer over `rows` vectors per sample (tokens), optionally followed by
    an activation."""
    ops = [matmul(name, rows, n_in, n_out, bias=bias)]
    if act:
        ops.append(memory(f"{name}.act", rows * n_out, passes=2, saved=rows * n_out))
    return ops


@dataclass(frozen=True)
class Net:
    """A network's forward pass of one sample, and the training step around it."""

    ops: tuple[Op, ...]
    optimizer: str = "sgd"  # "sgd" (momentum) or "adam": bytes and kernels per parameter
    # forward passes per step through all ops (CycleGAN runs its generators several times:
    # give them as repeated ops instead); backward passes likewise
    host_s_per_step: float = 0.0  # host time per step outside the framework ops (RL env)
    host_s_per_sample: float = 0.0  # host time per sample that the loader does not hide
    # input decoding per sample on one reference CPU core, spread over the data-loader workers
    # and overlapped with the step (JPEG decoding and augmentation)
    decode_s_per_sample: float = 0.0
    input_bytes_per_sample: float = 0.0  # copied host -> GPU each step
    rollout: int = 0  # > 0: a step runs the ops this many times at batch 1, one after another
    # (an RL rollout of environment steps), whatever the job's batch
    processes: int = 1  # training processes sharing the GPU (A3C's workers)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> float:
        return sum(op.weights * (1 if op.kind == "gather" else op.count) for op in self.ops)

    @property
    def forward_flop(self) -> float:
        return sum(op.flop for op in self.ops)

    @property
    def saved_elems(self) -> float:
        return sum(op.saved * op.count * op.reuse for op in self.ops if op.backward)

    @property
    def param_tensors(self) -> int:
        return sum(op.param_tensors * (1 if op.kind == "gather" else op.count) for op in self.ops)


class NetBuilder:
    """An architecture: `Params` (typed, strict) -> `build(params) -> Net`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def build(self, params: Any) -> Net:
        raise NotImplementedError


NETS: Registry[NetBuilder] = Registry("network architecture")
