"""Timed flows: jobs' communication phases as flows that carry bytes over the topology graph.

`engine.network: timed` runs each iteration of a job that spans servers as a compute phase
followed by a communication phase. The communication phase moves the iteration's exposed
data-parallel traffic: one flow per ring hop and local rank, as `SharedFabric` routes them, each
carrying `nbytes`. All flows in flight, of all jobs, share the links max-min fairly; a flow's
rate is also capped at its job's per-GPU ring bandwidth alone (the job cannot go faster than its
own ring, see `Network.ring`). Rates are recomputed only when the set of flows changes (a
transfer starts, a flow finishes, a job leaves, a link fails or comes back); the next
completion is then rescheduled. A link's level is then what is really carried: jobs load the
network only while they communicate, so two jobs whose phases interleave do not slow each other.

Compared with `shared` (continuous presence), `timed` costs one event per iteration and flow
completion, and shows burstiness; alone, both give the step-time model's iteration time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import simpy

from dcsim.fabric.routing import Router
from dcsim.fabric.sharing import STALL_RATE, GpusOf, gpu_lists, pipeline_routes, ring_routes
from dcsim.fabric.solver import Routes, max_min_rates_trusted, routes_to_csr

__all__ = ["TimedFabric"]

DONE_RTOL = 1e-9  # a flow with less than this fraction of its bytes left has finished
MIN_WAKE_S = 1e-9  # the shortest wait to a flow's completion: a finish is at most 1 ns late


@dataclass(eq=False)
class _Transfer:
    job_id: int
    routes: list[list[int]]  # empty: the job's servers are cut apart (it stalls)
    cap: float  # bytes/s per flow
    remaining: np.ndarray  # bytes left per flow
    nbytes: float
    event: simpy.Event
    rates: np.ndarray = field(default_factory=lambda: np.zeros(0))
    flat: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    lens: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _arrays(routes: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Routes as one array of link indices and each flow's length."""
    csr = routes_to_csr(routes)
    return csr.indices, np.diff(csr.indptr)


class TimedFabric:
    """Transfers of bytes over the topology graph, sharing links max-min fairly while in flight.

    `on_levels(utilization)` is called after every re-solve with each directed link's carried
    rate over its capacity (an array indexed like `router.links`)."""

    def __init__(self, env: simpy.Environment, graph: nx.Graph,
                 on_levels: Callable[[np.ndarray], None] | None = None,
                 attach: Mapping[str, Sequence[str]] | None = None) -> None:
        self.env = env
        self.router = Router(graph, attach)
        self._jobs: dict[int, tuple[dict[int, tuple[int, ...]], int]] = {}  # GPUs, pp
        # every job that spans servers, timed or not (its rings may stay inside servers)
        self._placed: dict[int, tuple[dict[int, tuple[int, ...]], int]] = {}
        # job id -> its ring routes, and as arrays (_arrays); cached until a link changes
        self._ring_routes: dict[int, tuple[list[list[int]], np.ndarray, np.ndarray]] = {}
        self._transfers: dict[int, _Transfer] = {}  # job id -> its transfer in flight
        self.on_levels = on_levels  # (the engine sets it after the build)
        self._updated_s = 0.0
        self._version = 0  # bumped on every re-solve: older wake-ups are stale
        self.utilization = np.zeros(len(self.router.links))

    # ------------------------------------------------------------------ jobs
    def add(self, job_id: int, gpus: GpusOf, pp: int = 1) -> None:
        """A running job's GPUs (server id -> GPU indices in rank order, or how many) and its
        pipeline stages."""
        if len(gpus) > 1:
            lists = gpu_lists(gpus)
            self._placed[job_id] = (lists, pp)  # for routes_of, timed or not
            try:
                if not ring_routes(self.router, job_id, lists, pp):
                    return  # every stage's ring is inside one server: no flows to time
            except ValueError:
                pass  # cut apart already: its transfers stall until a repair
            self._jobs[job_id] = (lists, pp)

    def spans_servers(self, job_id: int) -> bool:
        """Whether the job's data-parallel rings cross servers (its iterations are timed)."""
        return job_id in self._jobs

    def remove(self, job_id: int) -> None:
        """The job left its GPUs: its transfer in flight (if any) is dropped."""
        self._jobs.pop(job_id, None)
        self._placed.pop(job_id, None)
        self._ring_routes.pop(job_id, None)
        self.cancel(job_id)

    def cancel(self, job_id: int) -> None:
        """Drop the job's transfer in flight, if any: its event never fires."""
        if self._transfers.pop(job_id, None) is not None:
            self._reshare(advance=True)

    # ------------------------------------------------------------------ transfers
    def transfer(self, job_id: int, nbytes: float, cap_byte_s: float) -> simpy.Event:
        """Start moving `nbytes` on each of the job's ring flows; the event fires when all have
        arrived. A job has at most one transfer in flight."""
        if job_id not in self._jobs:
            raise KeyError(f"job {job_id} has no flows on the fabric (add it first)")
        if job_id in self._transfers:
            raise RuntimeError(f"job {job_id} already has a transfer in flight")
        event = self.env.event()
        if nbytes <= 0:
            event.succeed()
            return event
        self._advance()
        routes, flat, lens = self._cached(job_id)
        n = len(routes) if routes else 1
        self._transfers[job_id] = _Transfer(job_id, routes, cap_byte_s, np.full(n, nbytes),
                                            nbytes, event, flat=flat, lens=lens)
        self._reshare(advance=False)
        return event

    def routes_of(self, job_id: int) -> list[list[int]]:
        """Every route the job's flows would take now: its rings and its pipeline send/recv
        (not timed here, but cut by a failure all the same)."""
        if job_id not in self._placed:
            return []
        gpus, pp = self._placed[job_id]
        try:
            rings = self._routes(job_id) if job_id in self._jobs else []
            return [*rings, *pipeline_routes(self.router, job_id, gpus, pp)]
        except ValueError:
            return []

    def _routes(self, job_id: int) -> list[list[int]]:
        return self._cached(job_id)[0]

    def _cached(self, job_id: int) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
        if job_id not in self._ring_routes:
            try:
                routes = ring_routes(self.router, job_id, *self._jobs[job_id])
            except ValueError:  # a failed link split the job's servers apart
                routes = []
            self._ring_routes[job_id] = (routes, *_arrays(routes))
        return self._ring_routes[job_id]

    def fail(self, u: str, v: str) -> None:
        self.router.remove(u, v)
        self._reroute()

    def repair(self, u: str, v: str) -> None:
        self.router.restore(u, v)
        self._reroute()

    def _reroute(self) -> None:
        self._advance()
        self._ring_routes.clear()
        for t in self._transfers.values():
            left = float(t.remaining.max()) if len(t.remaining) else 0.0
            t.routes, t.flat, t.lens = self._cached(t.job_id)
            t.remaining = np.full(len(t.routes) if t.routes else 1, left)
        self._reshare(advance=False)

    # ------------------------------------------------------------------ the clock
    def _advance(self) -> None:
        """Move every flow in flight forward to now at its current rate."""
        dt = self.env.now - self._updated_s
        if dt > 0:
            for t in self._transfers.values():
                if len(t.rates):
                    t.remaining = np.maximum(t.remaining - t.rates * dt, 0.0)
        self._updated_s = self.env.now

    def _reshare(self, advance: bool) -> None:
        if advance:
            self._advance()
        for job_id in [j for j, t in self._transfers.items()
                       if t.routes and not (t.remaining > DONE_RTOL * t.nbytes).any()]:
            self._transfers.pop(job_id).event.succeed()
        self._solve()
        self._version += 1
        wait = self._next_completion_s()
        if wait < np.inf:
            # a flow a rounding error short of done must not wake the fabric at the same
            # instant forever (now + wait == now): wake it a resolvable step later
            wait = max(wait, MIN_WAKE_S, 4 * math.ulp(self.env.now))
            version = self._version
            self.env.timeout(wait).callbacks.append(lambda _: self._wake(version))

    def _wake(self, version: int) -> None:
        if version == self._version:  # nothing changed since this wake-up was set
            self._reshare(advance=True)

    def _next_completion_s(self) -> float:
        soonest = np.inf
        for t in self._transfers.values():
            live = t.remaining > DONE_RTOL * t.nbytes
            if t.routes and live.any():
                soonest = min(soonest, float(np.min(t.remaining[live] / t.rates[live])))
        return soonest

    def _solve(self) -> None:
        """Max-min rates of the live flows; each flow also crosses a private link of its
        transfer's cap (index n_links + k for the k-th live flow)."""
        n_links = len(self.router.links)
        pieces: list[tuple[_Transfer, np.ndarray, np.ndarray, np.ndarray]] = []
        n_live = 0
        for t in self._transfers.values():
            t.rates = np.zeros(len(t.remaining))
            if not t.routes:  # cut apart: crawls at STALL_RATE until a repair reroutes it
                t.rates[:] = STALL_RATE
                continue
            live = np.flatnonzero(t.remaining > DONE_RTOL * t.nbytes)
            if not len(live):
                continue
            if len(live) == len(t.lens):
                flat, lens = t.flat, t.lens
            else:
                alive = np.zeros(len(t.lens), dtype=bool)
                alive[live] = True
                keep = np.repeat(alive, t.lens)
                flat, lens = t.flat[keep], t.lens[live]
            pieces.append((t, live, flat, lens))
            n_live += len(live)
        load = np.zeros(n_links)
        if pieces:
            rates = max_min_rates_trusted(*self._csr(pieces, n_links, n_live))
            at = 0
            for t, live, _, _ in pieces:
                t.rates[live] = rates[at:at + len(live)]
                at += len(live)
            load = np.bincount(np.concatenate([p[2] for p in pieces]),
                               weights=np.repeat(rates, np.concatenate([p[3] for p in pieces])),
                               minlength=n_links)
        self.utilization = load / self.router.capacity
        if self.on_levels is not None:
            self.on_levels(self.utilization)

    def _csr(self, pieces, n_links: int, n_live: int) -> tuple[Routes, np.ndarray]:
        """The live flows' routes, each with its cap link appended, in CSR form, and the
        capacities of the real links followed by the cap links."""
        lens = np.concatenate([p[3] for p in pieces]) + 1
        indptr = np.zeros(n_live + 1, dtype=np.int64)
        np.cumsum(lens, out=indptr[1:])
        indices = np.empty(int(indptr[-1]), dtype=np.int64)
        ends = indptr[1:] - 1
        on_route = np.ones(len(indices), dtype=bool)
        on_route[ends] = False
        indices[on_route] = np.concatenate([p[2] for p in pieces])
        indices[ends] = n_links + np.arange(n_live)
        caps = np.concatenate([np.full(len(p[1]), p[0].cap) for p in pieces])
        return Routes(indptr, indices), np.concatenate([self.router.capacity, caps])
