"""Max-min fair rates: the numba solver against a plain-Python reference; invariants; textbooks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from dcsim.fabric.solver import Routes, max_min_rates, max_min_rates_trusted, routes_to_csr


def reference_max_min(routes, capacity, max_rate=float("inf"), number=Fraction):
    """Progressive filling, the plain way: one bottleneck link per round, in `number` arithmetic
    (exact with Fraction, so exact ties stay exact). Returns a list of floats."""
    remaining = [number(c) for c in capacity]
    rates: list = [None] * len(routes)
    growing = {f for f, r in enumerate(routes) if r}
    while growing:
        shares = {}
        for f in growing:
            for link in routes[f]:
                shares.setdefault(link, []).append(f)
        link, flows = min(shares.items(), key=lambda item: remaining[item[0]] / len(item[1]))
        share = remaining[link] / len(flows)
        if share >= max_rate:
            break
        for f in flows:
            rates[f] = share
            growing.discard(f)
            for k in routes[f]:
                remaining[k] -= share
    return [max_rate if r is None else float(r) for r in rates]


def random_instance(rng, n_flows, n_links, max_hops, integer_capacity):
    routes = [
        rng.choice(n_links, size=rng.integers(0, max_hops + 1), replace=False).tolist()
        for _ in range(n_flows)
    ]
    if integer_capacity:  # small integers: many exact ties
        capacity = rng.integers(1, 5, size=n_links).astype(float)
    else:
        capacity = rng.uniform(1.0, 100.0, size=n_links)
    return routes, capacity


@pytest.mark.parametrize("seed", range(40))
def test_matches_reference_and_invariants(seed):
    rng = np.random.default_rng(seed)
    n_links = int(rng.integers(1, 12))
    routes, capacity = random_instance(
        rng, int(rng.integers(1, 30)), n_links, min(n_links, 4), integer_capacity=seed % 2 == 0
    )
    max_rate = float("inf") if seed % 3 else float(rng.uniform(1.0, 20.0))
    rates = max_min_rates(routes, capacity, max_rate=max_rate)
    expected = reference_max_min(routes, capacity, max_rate)
    np.testing.assert_allclose(rates, expected, rtol=1e-9)
    check_invariants(routes, capacity, rates, max_rate)


def check_invariants(routes, capacity, rates, max_rate):
    load = np.zeros(len(capacity))
    for f, route in enumerate(routes):
        load[route] += rates[f]
    assert np.all(load <= capacity * (1 + 1e-12)), "a link is over capacity"
    saturated = load >= capacity * (1 - 1e-9)
    top = np.zeros(len(capacity))  # the largest rate among each link's flows
    for f, route in enumerate(routes):
        top[route] = np.maximum(top[route], rates[f])
    for f, route in enumerate(routes):
        at_cap = rates[f] >= max_rate * (1 - 1e-12)
        bottlenecked = any(saturated[k] and rates[f] >= top[k] * (1 - 1e-12) for k in route)
        assert at_cap or bottlenecked, f"flow {f} has no bottleneck"


def test_two_link_line():
    # the long flow crosses both links; each short flow crosses one
    rates = max_min_rates([[0, 1], [0], [1]], np.array([1.0, 1.0]))
    np.testing.assert_allclose(rates, [0.5, 0.5, 0.5])
    rates = max_min_rates([[0, 1], [0], [1]], np.array([1.0, 3.0]))
    np.testing.assert_allclose(rates, [0.5, 0.5, 2.5])


def test_parking_lot():
    # 3 links in a line: a long flow over all, one short flow per link, two on the last;
    # the last link (12 / 3 = 4) fills first, the others share what the long flow leaves
    routes = [[0, 1, 2], [0], [1], [2], [2]]
    rates = max_min_rates(routes, np.array([10.0, 10.0, 12.0]))
    np.testing.assert_allclose(rates, [4.0, 6.0, 6.0, 4.0, 4.0])


def test_exact_ties_fill_together():
    # two separate links reach the same share in one round; a third link gets the rest
    routes = [[0], [0], [1, 2], [1], [2]]
    rates = max_min_rates(routes, np.array([2.0, 2.0, 5.0]))
    np.testing.assert_allclose(rates, [1.0, 1.0, 1.0, 1.0, 4.0])


def test_empty_routes_and_cap():
    assert max_min_rates([[], [0]], np.array([3.0])).tolist() == [np.inf, 3.0]
    assert max_min_rates([[], [0]], np.array([3.0]), max_rate=2.0).tolist() == [2.0, 2.0]
    assert max_min_rates([], np.array([3.0])).shape == (0,)


def test_csr_and_list_forms_agree():
    routes = [[0, 2], [1], [2, 1, 0], []]
    csr = routes_to_csr(routes)
    assert csr.indptr.tolist() == [0, 2, 3, 6, 6] and csr.n_flows == 4
    capacity = np.array([4.0, 5.0, 6.0])
    assert max_min_rates(csr, capacity).tolist() == max_min_rates(routes, capacity).tolist()
    raw = Routes(np.array([0, 1, 2], dtype=np.int32), np.array([0, 0], dtype=np.int32))
    assert max_min_rates(raw, np.array([4.0])).tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("routes", "capacity", "kwargs", "error", "match"),
    [
        ([[0]], [-1.0], {}, ValueError, r"capacity\[0\] must be finite and > 0, got -1"),
        ([[0]], [0.0], {}, ValueError, r"capacity\[0\] must be finite and > 0"),
        ([[0]], [np.nan], {}, ValueError, r"capacity\[0\] must be finite"),
        ([[0]], [[1.0]], {}, TypeError, r"capacity must be a 1-D array"),
        ([[0], [0, 3]], [1.0, 1.0], {}, ValueError, r"flow 1 crosses link 3, out of range"),
        ([[-1]], [1.0], {}, ValueError, r"flow 0 crosses link -1, out of range"),
        ([[0], [1, 1]], [1.0, 1.0], {}, ValueError, r"flow 1 crosses link 1 more than once"),
        ([[0.5]], [1.0], {}, TypeError, r"routes: link indices must be integers"),
        ([[0]], [1.0], {"max_rate": 0.0}, ValueError, r"max_rate must be > 0"),
        ([[0]], [1.0], {"max_rate": np.nan}, ValueError, r"max_rate must be > 0"),
    ],
)
def test_bad_input_names_the_argument(routes, capacity, kwargs, error, match):
    with pytest.raises(error, match=match):
        max_min_rates(routes, np.array(capacity), **kwargs)


def test_bad_csr_names_the_argument():
    with pytest.raises(ValueError, match=r"routes.indptr must start at 0 and end at len"):
        max_min_rates(Routes(np.array([0, 3]), np.array([0, 0])), np.array([1.0]))
    with pytest.raises(ValueError, match=r"routes.indptr must be non-decreasing"):
        max_min_rates(Routes(np.array([0, 2, 1, 2]), np.array([0, 0])), np.array([1.0]))
    with pytest.raises(TypeError, match=r"routes.indices must be a 1-D integer array"):
        max_min_rates(Routes(np.array([0, 1]), np.array([0.0])), np.array([1.0]))


def test_reference_float_mode_agrees():
    rng = np.random.default_rng(7)
    routes, capacity = random_instance(rng, 200, 20, 5, integer_capacity=False)
    exact = reference_max_min(routes, capacity)
    np.testing.assert_allclose(reference_max_min(routes, capacity, number=float), exact, rtol=1e-9)
    np.testing.assert_allclose(max_min_rates(routes, capacity), exact, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_trusted_entry_gives_the_checked_rates(seed):
    rng = np.random.default_rng(seed)
    n_links = 40
    routes = [sorted(rng.choice(n_links, size=rng.integers(1, 6), replace=False).tolist())
              for _ in range(300)]
    capacity = rng.uniform(1.0, 10.0, n_links)
    csr = routes_to_csr(routes)
    assert np.array_equal(max_min_rates_trusted(csr, capacity), max_min_rates(routes, capacity))
    with pytest.raises(ValueError, match="more than once"):
        max_min_rates_trusted(routes_to_csr([[1, 1]]), capacity)
