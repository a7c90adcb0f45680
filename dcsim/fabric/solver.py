"""Flow-level max-min fair bandwidth: progressive filling (water-filling) over shared links.

Every flow crosses a set of links; every link has a capacity in bytes/s. Max-min fairness raises
all rates together; when a link fills up (its remaining capacity divided by the number of
still-growing flows on it is the smallest such share), the flows on it freeze at that share, and
the capacity they use is subtracted from every other link they cross. Repeat until every flow is
frozen. Links that tie for the smallest share (exactly, or within a relative ``1e-12``) all fill
in the same round.

Routes come as CSR arrays (`Routes`: flow ``f`` crosses ``indices[indptr[f]:indptr[f + 1]]``)
or as a list of per-flow link lists, converted by `routes_to_csr`.

    >>> import numpy as np
    >>> from dcsim.fabric.solver import max_min_rates
    >>> # a 2-link line: flow 0 crosses both links, flows 1 and 2 one link each
    >>> max_min_rates([[0, 1], [0], [1]], np.array([10.0, 20.0])).tolist()
    [5.0, 5.0, 15.0]

The loop is a numba kernel, compiled on first use (numba is imported then, not at import time)
and cached on disk. Each round costs O(links still in play) plus the route entries of the flows
it freezes, so a solve is O(links * rounds + route entries).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["Routes", "max_min_rates", "max_min_rates_trusted", "routes_to_csr"]

TIE_RTOL = 1e-12  # links whose share is within this of the smallest fill in the same round


class Routes(NamedTuple):
    """Flow routes in CSR form: flow ``f`` crosses links ``indices[indptr[f]:indptr[f + 1]]``."""

    indptr: np.ndarray  # (n_flows + 1,) int64, starts at 0, non-decreasing
    indices: np.ndarray  # (indptr[-1],) int64 link indices

    @property
    def n_flows(self) -> int:
        return len(self.indptr) - 1


def routes_to_csr(routes: Sequence[Sequence[int]]) -> Routes:
    """The CSR form of a list of per-flow link lists.

    >>> routes_to_csr([[0, 1], [], [1]])
    Routes(indptr=array([0, 2, 2, 3]), indices=array([0, 1, 1]))
    """
    lengths = np.fromiter((len(r) for r in routes), dtype=np.int64, count=len(routes))
    indptr = np.zeros(len(routes) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    flat = np.asarray(list(itertools.chain.from_iterable(routes)))
    if flat.size == 0:
        flat = np.zeros(0, dtype=np.int64)
    if flat.ndim != 1 or not np.issubdtype(flat.dtype, np.integer):
        raise TypeError(f"routes: link indices must be integers, got dtype {flat.dtype}")
    return Routes(indptr, flat.astype(np.int64, copy=False))


def max_min_rates(
    routes: Routes | Sequence[Sequence[int]],
    capacity: np.ndarray,
    *,
    max_rate: float = np.inf,
) -> np.ndarray:
    """Each flow's max-min fair rate (bytes/s), as a float64 array of shape (n_flows,).

    `routes`: a `Routes` (CSR arrays) or a list of per-flow link-index lists; a flow may not
    cross the same link twice. `capacity`: (n_links,) link capacities in bytes/s, finite and
    > 0. `max_rate`: a cap on every flow's rate (a NIC limit, say); flows with an empty route
    get exactly `max_rate`, so ``inf`` by default.
    """
    csr = routes if isinstance(routes, Routes) else routes_to_csr(routes)
    capacity = _check_capacity(capacity)
    indptr, indices = _check_routes(csr, len(capacity))
    if np.isnan(max_rate) or not max_rate > 0:
        raise ValueError(f"max_rate must be > 0 (inf for no cap), got {max_rate}")
    transpose, water_fill = _kernels()
    link_ptr, link_flows, dup_flow, dup_link = transpose(indptr, indices, len(capacity))
    if dup_flow >= 0:
        raise ValueError(f"routes: flow {dup_flow} crosses link {dup_link} more than once")
    return water_fill(indptr, indices, link_ptr, link_flows, capacity, float(max_rate), TIE_RTOL)


def max_min_rates_trusted(routes: Routes, capacity: np.ndarray) -> np.ndarray:
    """`max_min_rates` for callers that build well-formed CSR routes themselves (int64
    indptr/indices in range, capacities finite and > 0): the same rates, without the input
    checks (the fabrics call this on every re-solve). A flow crossing a link twice still
    raises."""
    transpose, water_fill = _kernels()
    link_ptr, link_flows, dup_flow, dup_link = transpose(routes.indptr, routes.indices,
                                                         len(capacity))
    if dup_flow >= 0:
        raise ValueError(f"routes: flow {dup_flow} crosses link {dup_link} more than once")
    return water_fill(routes.indptr, routes.indices, link_ptr, link_flows, capacity, np.inf,
                      TIE_RTOL)


def _check_capacity(capacity: object) -> np.ndarray:
    cap = np.asarray(capacity)
    if cap.ndim != 1 or not (np.issubdtype(cap.dtype, np.floating) or cap.dtype.kind in "iu"):
        raise TypeError(
            f"capacity must be a 1-D array of numbers, got shape {cap.shape} dtype {cap.dtype}"
        )
    cap = np.ascontiguousarray(cap, dtype=np.float64)
    bad = ~(np.isfinite(cap) & (cap > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"capacity[{i}] must be finite and > 0, got {cap[i]}")
    return cap


def _check_routes(csr: Routes, n_links: int) -> tuple[np.ndarray, np.ndarray]:
    indptr, indices = np.asarray(csr.indptr), np.asarray(csr.indices)
    for name, a in (("indptr", indptr), ("indices", indices)):
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise TypeError(
                f"routes.{name} must be a 1-D integer array, got shape {a.shape} dtype {a.dtype}"
            )
    if indptr.size == 0 or indptr[0] != 0 or indptr[-1] != indices.size:
        raise ValueError(
            f"routes.indptr must start at 0 and end at len(indices)={indices.size}, "
            f"got {indptr[:1].tolist()}...{indptr[-1:].tolist()}"
        )
    if np.any(np.diff(indptr) < 0):
        raise ValueError("routes.indptr must be non-decreasing")
    bad = (indices < 0) | (indices >= n_links)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        flow = int(np.searchsorted(indptr, j, side="right") - 1)
        raise ValueError(
            f"routes: flow {flow} crosses link {indices[j]}, out of range for "
            f"capacity of {n_links} links"
        )
    as_i64 = functools.partial(np.ascontiguousarray, dtype=np.int64)
    return as_i64(indptr), as_i64(indices)


@functools.cache
def _kernels():
    """`_transpose` and `_water_fill` compiled by numba (imported here, on first use)."""
    from numba import njit

    return njit(cache=True)(_transpose), njit(cache=True)(_water_fill)


def _transpose(indptr, indices, n_links):
    """Link -> flows CSR of the flow -> links CSR; (-1, -1) or the first (flow, link) repeat."""
    n_flows = indptr.size - 1
    link_ptr = np.zeros(n_links + 1, dtype=np.int64)
    for j in range(indices.size):
        link_ptr[indices[j] + 1] += 1
    for link in range(n_links):
        link_ptr[link + 1] += link_ptr[link]
    fill = link_ptr[:-1].copy()
    last_flow = np.full(n_links, -1, dtype=np.int64)
    link_flows = np.empty(indices.size, dtype=np.int64)
    for f in range(n_flows):
        for j in range(indptr[f], indptr[f + 1]):
            link = indices[j]
            if last_flow[link] == f:
                return link_ptr, link_flows, f, link
            last_flow[link] = f
            link_flows[fill[link]] = f
            fill[link] += 1
    return link_ptr, link_flows, -1, -1


def _water_fill(indptr, indices, link_ptr, link_flows, capacity, max_rate, rtol):
    """Progressive filling over the flow -> links CSR and its link -> flows transpose."""
    n_flows, n_links = indptr.size - 1, capacity.size
    rates = np.full(n_flows, max_rate)  # flows never frozen by a link end at the cap
    remaining = capacity.copy()
    growing = link_ptr[1:] - link_ptr[:-1]  # unfrozen flows per link
    frozen = np.zeros(n_flows, dtype=np.bool_)
    active = np.flatnonzero(growing > 0)  # links that had unfrozen flows last round
    n_active = active.size
    shares = np.empty(n_links)
    bottlenecks = np.empty(n_links, dtype=np.int64)
    while n_active > 0:
        share, kept = np.inf, 0
        for i in range(n_active):  # drop links left without unfrozen flows; find the min share
            link = active[i]
            if growing[link] > 0:
                active[kept] = link
                shares[kept] = max(remaining[link], 0.0) / growing[link]
                share = min(share, shares[kept])
                kept += 1
        n_active = kept
        if n_active == 0 or share >= max_rate:
            break
        limit, n_bottlenecks = share * (1.0 + rtol), 0
        for i in range(n_active):
            if shares[i] <= limit:
                bottlenecks[n_bottlenecks] = active[i]
                n_bottlenecks += 1
        for b in range(n_bottlenecks):
            link = bottlenecks[b]
            for j in range(link_ptr[link], link_ptr[link + 1]):
                f = link_flows[j]
                if not frozen[f]:
                    frozen[f] = True
                    rates[f] = share
                    for k in range(indptr[f], indptr[f + 1]):
                        remaining[indices[k]] -= share
                        growing[indices[k]] -= 1
    return rates
