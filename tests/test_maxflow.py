"""The array max-flow (dcsim/fabric/maxflow.py) against networkx: the same value to the bit
where capacities are whole numbers, on random graphs and on every switched topology, through
`Network`'s ring bandwidth (and networkx's value where they are not whole)."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcsim.fabric.maxflow import FlowGraph
from dcsim.fabric.network import Network
from dcsim.fabric.topology import TOPOLOGIES, ServerPort, server_node


@st.composite
def graphs(draw):
    n = draw(st.integers(2, 9))
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    caps = draw(st.lists(st.integers(1, 10**12), min_size=len(chosen), max_size=len(chosen)))
    s, t = draw(st.sampled_from(pairs))
    return n, chosen, [float(c) for c in caps], s, t


@settings(max_examples=150, deadline=None)
@given(graphs())
def test_whole_number_capacities_give_networkx_max_flow_exactly(case):
    n, links, caps, s, t = case
    g = FlowGraph(n, np.array([a for a, _ in links]), np.array([b for _, b in links]),
                  np.array(caps))
    assert g.exact
    expected = nx.DiGraph()
    expected.add_nodes_from(range(n))
    for (a, b), c in zip(links, caps, strict=True):
        expected.add_edge(a, b, capacity=c)
        expected.add_edge(b, a, capacity=c)
    assert g.max_flow({s: math.inf}, {t: math.inf}) == nx.maximum_flow_value(expected, s, t)


def test_fractional_capacities_are_not_called_exact():
    g = FlowGraph(2, np.array([0]), np.array([1]), np.array([2.5]))
    assert not g.exact
    assert g.max_flow({0: math.inf}, {1: math.inf}) == 2.5
    with pytest.raises(ValueError, match="without limit"):
        g.max_flow({0: math.inf}, {0: math.inf})


@pytest.mark.parametrize(("kind", "params", "servers"), [
    ("single-switch", {}, 6),
    ("leaf-spine", {"servers_per_leaf": 4, "spines": 3, "oversubscription": 2.0}, 16),
    ("leaf-spine", {"servers_per_leaf": 3, "spines": 2, "oversubscription": 3.0}, 12),
    # uplinks of 33.3 GB/s (not whole bytes/s): networkx's value
    ("leaf-spine", {"servers_per_leaf": 4, "spines": 2, "oversubscription": 3.0}, 12),
    ("fat-tree", {"k": 4}, 16),
    ("rail-optimized", {"rails": 4, "servers_per_unit": 4, "spines": 2}, 12),
    ("torus", {"dims": [3, 4]}, 12),
    ("dragonfly", {"groups": 3, "routers_per_group": 2, "servers_per_router": 2}, 12),
])
def test_ring_hops_get_networkx_max_flow(kind, params, servers, monkeypatch):
    monkeypatch.setattr(Network, "ARRAY_MAX_FLOW_LINKS", 0)  # arrays on these small fabrics
    cls = TOPOLOGIES.get(kind)
    graph = cls(cls.Params(**params)).build(
        [ServerPort(server_id=i, nic_byte_s=(50e9 if i % 3 else 25e9), nic_latency_s=1e-6)
         for i in range(servers)])
    net = Network(graph, {i: 450e9 for i in range(servers)})
    directed = graph.to_directed()
    rng = np.random.default_rng(1)
    for a, b in rng.integers(0, servers, size=(12, 2)).tolist():
        if a == b:
            continue
        flow, _ = net._pair(a, b)
        assert flow == nx.maximum_flow_value(directed, server_node(a), server_node(b),
                                             capacity="bandwidth_byte_s")
