"""Pipeline schedules, executed: the bubble emerges from the order of operations.

Each of `p` devices holds `v` model chunks (virtual stage `c * p + d` lives on device `d`). A
schedule is, per device, the ordered list of forward and backward passes of micro-batches through
its chunks; `run_schedule` executes those lists under the data dependencies (a forward needs the
previous virtual stage's forward of that micro-batch, a backward needs the next stage's backward,
plus a point-to-point transfer between devices) and returns when the last backward ends.

Orders (Huang et al. 2019, GPipe; Narayanan et al. 2021, PipeDream-flush 1F1B and Megatron's
interleaved 1F1B):
- gpipe: all forwards, then all backwards;
- 1f1b: `p - d - 1` warm-up forwards, then one forward / one backward, then the remaining backwards;
- interleaved: 1F1B over `v` chunks per device, micro-batches taken in groups of `p`.
"""

from __future__ import annotations

from functools import cache

import numpy as np

__all__ = ["SCHEDULES", "device_orders", "run_schedule", "pipeline_makespan"]

SCHEDULES = ("gpipe", "1f1b", "interleaved")
FWD, BWD = 0, 1


def _interleaved_chunk(k: int, p: int, v: int, forward: bool) -> tuple[int, int]:
    """(chunk, micro-batch) of a device's k-th forward (or backward) in Megatron's order."""
    group, within = divmod(k, p * v)
    chunk = within // p
    if not forward:
        chunk = v - 1 - chunk
    return chunk, group * p + within % p


def device_orders(schedule: str, p: int, m: int, v: int = 1) -> list[list[tuple[int, int, int]]]:
    """Per device, its ordered ops as (FWD or BWD, chunk, micro-batch)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown pipeline schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if schedule != "interleaved" and v != 1:
        raise ValueError(f"{schedule} has one chunk per device (virtual_stages 1), got {v}")
    if schedule == "interleaved" and m % p:
        raise ValueError(
            f"the interleaved schedule needs micro-batches ({m}) divisible by pp ({p})")
    orders = []
    for d in range(p):
        if schedule == "gpipe":
            ops = [(FWD, 0, i) for i in range(m)] + [(BWD, 0, i) for i in range(m)]
        else:
            total = m * v
            if schedule == "1f1b":
                warmup = min(p - d - 1, total)
            else:
                warmup = min((p - d - 1) * 2 + (v - 1) * p, total)
            fwd = [(FWD, *_interleaved_chunk(k, p, v, True)) for k in range(total)]
            bwd = [(BWD, *_interleaved_chunk(k, p, v, False)) for k in range(total)]
            ops = fwd[:warmup]
            for k in range(total - warmup):
                ops += [fwd[warmup + k], bwd[k]]
            ops += bwd[total - warmup:]
        orders.append(ops)
    return orders


def _execute(kind, chunk, mb, count, p, v, m, t_fwd, t_bwd, t_p2p):  # pragma: no cover - numba
    """Run the per-device op lists (flattened into arrays) under their dependencies."""
    n_stages = p * v
    f_done = np.full((n_stages, m), -1.0)
    b_done = np.full((n_stages, m), -1.0)
    free = np.zeros(p)
    pos = np.zeros(p, dtype=np.int64)
    offset = np.zeros(p + 1, dtype=np.int64)
    for d in range(p):
        offset[d + 1] = offset[d] + count[d]
    remaining = offset[p]
    end = 0.0
    while remaining > 0:
        progressed = False
        for d in range(p):
            while pos[d] < count[d]:
                i = offset[d] + pos[d]
                stage = chunk[i] * p + d
                j = mb[i]
                if kind[i] == 0:
                    if stage == 0:
                        ready = 0.0
                    elif f_done[stage - 1, j] < 0:
                        break
                    else:
                        ready = f_done[stage - 1, j] + t_p2p
                    start = max(free[d], ready)
                    f_done[stage, j] = start + t_fwd[stage]
                    free[d] = f_done[stage, j]
                else:
                    if stage == n_stages - 1:
                        if f_done[stage, j] < 0:
                            break
                        ready = f_done[stage, j]
                    elif b_done[stage + 1, j] < 0:
                        break
                    else:
                        ready = b_done[stage + 1, j] + t_p2p
                    start = max(free[d], ready)
                    b_done[stage, j] = start + t_bwd[stage]
                    free[d] = b_done[stage, j]
                end = max(end, free[d])
                pos[d] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            return -1.0  # a deadlock: the orders are inconsistent
    return end


@cache
def _compiled():
    from numba import njit

    return njit(cache=True)(_execute)


@cache
def _flat_orders(schedule: str, p: int, m: int, v: int):
    orders = device_orders(schedule, p, m, v)
    flat = [op for ops in orders for op in ops]
    arr = np.array(flat, dtype=np.int64).reshape(-1, 3)
    count = np.array([len(ops) for ops in orders], dtype=np.int64)
    return arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), count


def _per_stage(t: float | np.ndarray, n: int) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(t, dtype=np.float64), (n,))
    return np.ascontiguousarray(arr)


def run_schedule(schedule: str, p: int, m: int, v: int, t_fwd: float | np.ndarray,
                 t_bwd: float | np.ndarray, t_p2p: float = 0.0, compiled: bool = True) -> float:
    """Time from the first forward to the last backward. `t_fwd` and `t_bwd` are the times of
    one micro-batch through one virtual stage: a number, or one per virtual stage (p x v)."""
    kind, chunk, mb, count = _flat_orders(schedule, p, m, v)
    fn = _compiled() if compiled else _execute
    n = p * v
    end = fn(kind, chunk, mb, count, p, v, m, _per_stage(t_fwd, n), _per_stage(t_bwd, n),
             float(t_p2p))
    if end < 0:
        raise RuntimeError(f"pipeline schedule {schedule} deadlocked (p={p}, m={m}, v={v})")
    return float(end)


def pipeline_makespan(schedule: str, p: int, m: int, v: int, t_fwd: float | np.ndarray,
                      t_bwd: float | np.ndarray, t_p2p: float = 0.0) -> float:
    """As run_schedule, with the one-stage case short-cut (no dependencies to wait for)."""
    if p == 1:
        return float(m * (np.sum(_per_stage(t_fwd, v)) + np.sum(_per_stage(t_bwd, v))))
    return run_schedule(schedule, p, m, v, t_fwd, t_bwd, t_p2p)
