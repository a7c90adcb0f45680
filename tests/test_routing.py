"""Routing: shortest paths, deterministic ECMP spreading, link failure, with the solver."""

from __future__ import annotations

import numpy as np
import pytest

from dcsim.fabric.routing import Router
from dcsim.fabric.solver import max_min_rates
from dcsim.fabric.topology import TOPOLOGIES, ServerPort


def leaf_spine(servers=4, per_leaf=2, spines=2, oversubscription=1.0):
    cls = TOPOLOGIES.get("leaf-spine")
    topo = cls(cls.Params(servers_per_leaf=per_leaf, spines=spines,
                          oversubscription=oversubscription))
    return topo.build([ServerPort(server_id=i, nic_byte_s=100e9, nic_latency_s=1e-6)
                       for i in range(servers)])


def test_routes_are_shortest_and_deterministic():
    router = Router(leaf_spine())
    same_leaf = router.route("server0", "server1")
    across = router.route("server0", "server2", flow_key="a")
    assert len(same_leaf) == 2 and len(across) == 4  # server-leaf-server / -leaf-spine-leaf-
    assert Router(leaf_spine()).route("server0", "server2", flow_key="a") == across
    assert router.route("server3", "server3") == []
    assert len(router.capacity) == 2 * router.graph.number_of_edges()


def test_ecmp_spreads_flows_over_the_spines():
    router = Router(leaf_spine(spines=4))
    spines_used = {router.links[router.route("server0", "server2", k)[1]][1] for k in range(64)}
    assert spines_used == {"spine0", "spine1", "spine2", "spine3"}


def test_flows_share_the_oversubscribed_uplink_max_min_fairly():
    router = Router(leaf_spine(spines=1, oversubscription=2.0))
    # two flows leave leaf0 for leaf1: its uplink carries (2 x 100) / 2 = 100 GB/s in all
    routes = router.routes([("server0", "server2", 0), ("server1", "server3", 0)])
    rates = max_min_rates(routes, router.capacity)
    assert rates == pytest.approx([50e9, 50e9])
    alone = max_min_rates(router.routes([("server0", "server2", 0)]), router.capacity)
    assert alone == pytest.approx([100e9])


def test_a_failed_link_reroutes_or_splits():
    router = Router(leaf_spine(spines=2))
    before = {router.links[i] for i in router.route("server0", "server2", 1)}
    spine = next(b for a, b in before if a == "leaf0")
    router.remove("leaf0", spine)
    after = {router.links[i] for i in router.route("server0", "server2", 1)}
    assert ("leaf0", spine) not in after and len(after) == 4
    router.remove("server0", "leaf0")
    with pytest.raises(ValueError, match="no path from server0 to server2"):
        router.route("server0", "server2")
    with pytest.raises(KeyError, match="already failed"):
        router.remove("server0", "leaf0")
    with pytest.raises(KeyError, match="no link"):
        router.remove("server0", "spine0")
    assert len(router.failed) == 4
    assert np.all(router.capacity > 0)  # the solver still gets a valid capacity array


@pytest.mark.parametrize(("kind", "params", "servers"), [
    ("single-switch", {}, 5),
    ("leaf-spine", {"servers_per_leaf": 3, "spines": 3}, 11),
    ("fat-tree", {"k": 4}, 16),
    ("fat-tree", {"k": 6}, 40),
    ("rail-optimized", {"rails": 4, "servers_per_unit": 3, "spines": 2}, 10),
    ("dragonfly", {"groups": 3, "routers_per_group": 3, "servers_per_router": 2}, 17),
])
def test_switched_routing_gives_networkx_shortest_paths_and_their_ecmp_choice(kind, params,
                                                                               servers):
    """On switched fabrics the router walks the switch graph by path counts; it must list the
    same shortest paths, in the same order, as networkx on the whole graph, and an ECMP hash
    must pick the same one of them (so results do not depend on the method)."""
    import networkx as nx

    from dcsim.fabric.routing import _stable_hash

    cls = TOPOLOGIES.get(kind)
    graph = cls(cls.Params(**params)).build(
        [ServerPort(server_id=i, nic_byte_s=100e9, nic_latency_s=1e-6) for i in range(servers)])
    router = Router(graph)
    assert router._switched
    rng = np.random.default_rng(0)
    for a, b in rng.integers(0, servers, size=(40, 2)).tolist():
        src, dst = f"server{a}", f"server{b}"
        if a == b:
            continue
        expected = sorted(nx.all_shortest_paths(graph, src, dst))
        assert router.paths(src, dst) == expected
        for key in range(5):
            nodes = expected[_stable_hash((src, dst, key)) % len(expected)]
            hops = zip(nodes, nodes[1:], strict=False)
            assert router.route(src, dst, key) == [router.link_indices(x, y)[0]
                                                   for x, y in hops]
    pairs = rng.integers(0, servers, size=(20, 2)).tolist()

    def same_as_networkx() -> None:
        for a, b in pairs:
            if a != b and nx.has_path(graph, f"server{a}", f"server{b}"):
                assert router.paths(f"server{a}", f"server{b}") == sorted(
                    nx.all_shortest_paths(graph, f"server{a}", f"server{b}"))

    # failed links, one between switches (if any) and one from a server, each followed by the
    # cached switch graph; then both repaired
    between = next(((u, v) for u, v in graph.edges if "server" not in u + v), None)
    hung = next((u, v) for u, v in graph.edges if "server" in u + v)
    failed = [e for e in (between, hung) if e is not None]
    for u, v in failed:
        router.remove(u, v)
        graph.remove_edge(u, v)
        same_as_networkx()
    for u, v in failed:
        router.restore(u, v)
        graph.add_edge(u, v)
        same_as_networkx()


@pytest.mark.parametrize(("kind", "params", "servers"), [
    ("leaf-spine", {"servers_per_leaf": 3, "spines": 3}, 12),
    ("fat-tree", {"k": 4}, 16),
    ("rail-optimized", {"rails": 2, "servers_per_unit": 3, "spines": 2}, 9),
    ("dragonfly", {"groups": 3, "routers_per_group": 2, "servers_per_router": 2}, 12),
])
def test_a_link_moves_no_route_it_says_it_does_not(kind, params, servers):
    """`Router.moved_by(u, v)` (asked with the link there): a pair it clears routes the same
    with and without the link, after a failure and after a repair, for every ECMP key; and it
    clears fewer pairs than all (the shared fabric re-routes only those jobs)."""
    cls = TOPOLOGIES.get(kind)
    graph = cls(cls.Params(**params)).build(
        [ServerPort(server_id=i, nic_byte_s=100e9, nic_latency_s=1e-6) for i in range(servers)])
    router = Router(graph)
    pairs = [(f"server{a}", f"server{b}") for a in range(servers) for b in range(servers)
             if a != b]
    links = sorted({tuple(sorted(e)) for e in graph.edges})
    cleared = total = 0
    for u, v in links[::max(1, len(links) // 12)]:
        before = {(a, b, k): router.route(a, b, k) for a, b in pairs for k in range(3)}
        moved = router.moved_by(u, v)
        keep = [(a, b) for a, b in pairs if not moved(a, b)]
        cleared += len(pairs) - len(keep)
        total += len(pairs)
        router.remove(u, v)
        for a, b in keep:
            for k in range(3):
                assert router.route(a, b, k) == before[a, b, k], (u, v, a, b, k)
        router.restore(u, v)
        moved = router.moved_by(u, v)
        for a, b in pairs:
            for k in range(3):
                assert router.route(a, b, k) == before[a, b, k]  # repaired: as before
        assert [p for p in pairs if not moved(*p)] == keep
    assert 0 < cleared < total
