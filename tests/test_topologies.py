"""The topology builders: shapes and counts for small sizes, validation, and full simulations."""

from __future__ import annotations

import networkx as nx
import pytest
import yaml
from pydantic import ValidationError

import dcsim
from dcsim.errors import ScenarioError
from dcsim.fabric.topology import TOPOLOGIES, ServerPort, server_node
from tests.conftest import small_job, small_scenario

NIC = 200e9


def ports(n: int, nic_byte_s: float = NIC) -> list[ServerPort]:
    return [ServerPort(server_id=i, nic_byte_s=nic_byte_s, nic_latency_s=1e-6) for i in range(n)]


def build(kind: str, n: int, **params) -> nx.Graph:
    cls = TOPOLOGIES.get(kind)
    return cls(cls.Params(**params)).build(ports(n))


def counts(g: nx.Graph) -> tuple[int, int, int]:
    kinds = [k for _, k in g.nodes(data="kind")]
    return kinds.count("server"), kinds.count("switch"), g.number_of_edges()


def assert_sound(g: nx.Graph) -> None:
    assert nx.is_connected(g)
    assert all(d["bandwidth_byte_s"] > 0 for _, _, d in g.edges(data=True))
    assert all(d["latency_s"] >= 0 for _, _, d in g.edges(data=True))


@pytest.mark.parametrize(
    ("kind", "n", "params", "expected"),
    [
        ("fat-tree", 16, {"k": 4}, (16, 20, 48)),
        ("fat-tree", 5, {"k": 4}, (5, 20, 37)),  # the whole switch fabric, 5 host links
        ("fat-tree", 2, {"k": 2}, (2, 5, 6)),
        (
            "rail-optimized",
            6,
            {"rails": 4, "servers_per_unit": 4, "spines": 2},
            (6, 2 * 4 + 2, 6 * 4 + 8 * 2),
        ),
        ("torus", 12, {"dims": [3, 4]}, (12, 0, 24)),
        ("torus", 27, {"dims": [3, 3, 3]}, (27, 0, 81)),
        ("torus", 7, {"dims": [3, 4]}, (7, 0, 9)),  # partly filled
        (
            "dragonfly",
            20,
            {"groups": 3, "routers_per_group": 4, "servers_per_router": 2},
            (20, 12, 20 + 3 * 6 + 3),
        ),
    ],
)
def test_shapes(kind, n, params, expected):
    g = build(kind, n, **params)
    assert counts(g) == expected
    assert_sound(g)
    assert {server_node(i) for i in range(n)} <= set(g)


def test_fat_tree_is_full_bisection_by_default():
    g = build("fat-tree", 16, k=4)
    cut = nx.minimum_cut_value(g.to_directed(), "server0", "server15", capacity="bandwidth_byte_s")
    assert cut == pytest.approx(NIC)
    assert {d["bandwidth_byte_s"] for _, _, d in g.edges(data=True)} == {NIC}
    assert {
        d["bandwidth_byte_s"]
        for *_, d in build("fat-tree", 2, k=4, link_gbyte_s=50).edges("core0", data=True)
    } == {50e9}


def test_fat_tree_edge_switch_holds_k_over_2_servers():
    g = build("fat-tree", 16, k=4)
    assert sorted(g["pod0-edge0"]) == ["pod0-agg0", "pod0-agg1", "server0", "server1"]
    assert sorted(g["pod3-edge1"]) == ["pod3-agg0", "pod3-agg1", "server14", "server15"]


def test_rail_links_carry_nic_total_over_rails():
    g = build("rail-optimized", 3, rails=8, servers_per_unit=32, spines=4)
    rails = [d["bandwidth_byte_s"] for _, _, d in g.edges("server0", data=True)]
    assert sorted(g["server0"]) == sorted(f"su0-leaf{r}" for r in range(8))
    assert rails == [pytest.approx(NIC / 8)] * 8
    assert g.edges["su0-leaf3", "spine0"]["bandwidth_byte_s"] == pytest.approx(3 * NIC / 8 / 4)


def test_torus_link_bandwidth():
    g = build("torus", 8, dims=[2, 2, 2])
    assert g.degree("server0") == 3  # size-2 dimensions: one link each way
    assert g.edges["server0", "server1"]["bandwidth_byte_s"] == pytest.approx(NIC / 6)
    assert build("torus", 9, dims=[3, 3], link_gbyte_s=10).edges["server0", "server1"][
        "bandwidth_byte_s"
    ] == pytest.approx(10e9)
    assert set(build("torus", 12, dims=[3, 4])["server0"]) == {
        "server1",
        "server3",
        "server4",
        "server8",
    }


def test_dragonfly_has_one_global_link_per_group_pair():
    g = build("dragonfly", 4, groups=5, routers_per_group=2, servers_per_router=1)
    between = {
        (u.split("-")[0], v.split("-")[0])
        for u, v in g.edges()
        if g.nodes[u]["kind"] == g.nodes[v]["kind"] == "switch"
        and u.split("-")[0] != v.split("-")[0]
    }
    assert len({frozenset(p) for p in between}) == 10
    assert max(g.degree(f"g0-r{r}") for r in range(2)) == 1 + 2 + 1  # local + 2 global + server


@pytest.mark.parametrize(
    ("kind", "params", "key"),
    [
        ("fat-tree", {"k": 3}, "k"),
        ("fat-tree", {"k": 0}, "k"),
        ("fat-tree", {"link_gbyte_s": 0}, "link_gbyte_s"),
        ("fat-tree", {"radix": 4}, "radix"),
        ("rail-optimized", {"rails": 0}, "rails"),
        ("torus", {"dims": [4]}, "dims"),
        ("torus", {"dims": [2, 0]}, "dims"),
        ("dragonfly", {"groups": 0}, "groups"),
        ("graph", {}, "path"),
    ],
)
def test_bad_params_name_the_key(kind, params, key):
    with pytest.raises(ValidationError, match=key):
        TOPOLOGIES.get(kind).Params(**params)


@pytest.mark.parametrize(
    ("kind", "n", "params", "numbers"),
    [
        ("fat-tree", 17, {"k": 4}, "17 servers do not fit; k=4: k^3/4 = 16 hosts"),
        ("torus", 10, {"dims": [3, 3]}, "10 servers do not fit; dims [3, 3]: product = 9"),
        (
            "dragonfly",
            9,
            {"groups": 2, "routers_per_group": 2, "servers_per_router": 2},
            "9 servers do not fit; groups x routers_per_group x servers_per_router = 2 x 2 x 2",
        ),
    ],
)
def test_too_many_servers(kind, n, params, numbers):
    with pytest.raises(ValueError, match=numbers.replace("^", r"\^").replace("[", r"\[")):
        build(kind, n, **params)


def write_edges(tmp_path, edges, name="g.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"edges": edges}))
    return path


def star_edges(n: int, bw: float = 25.0) -> list[dict]:
    return [
        {"u": f"server{i}", "v": "sw", "bandwidth_gbyte_s": bw, "latency_s": 1e-6} for i in range(n)
    ]


def test_graph_from_yaml(tmp_path):
    g = build("graph", 3, path=write_edges(tmp_path, star_edges(3)))
    assert counts(g) == (3, 1, 3)
    assert g.edges["server0", "sw"]["bandwidth_byte_s"] == pytest.approx(25e9)
    assert_sound(g)


def test_graph_from_graphml(tmp_path):
    src = nx.Graph()
    for e in star_edges(2):
        src.add_edge(e["u"], e["v"], bandwidth_gbyte_s=e["bandwidth_gbyte_s"], latency_s=1e-6)
    nx.write_graphml(src, tmp_path / "g.graphml")
    g = build("graph", 2, path=tmp_path / "g.graphml")
    assert counts(g) == (2, 1, 2)
    assert_sound(g)


@pytest.mark.parametrize(
    ("edges", "n", "message"),
    [
        (star_edges(2), 3, "server node server2 is missing"),
        (star_edges(3), 2, "node server2 is named like a server but the cluster has 2"),
        (
            star_edges(2) + [{"u": "server0", "v": "x", "bandwidth_gbyte_s": 0}],
            2,
            "edge server0 - x: bandwidth_gbyte_s must be > 0",
        ),
        (
            star_edges(2) + [{"u": "a", "v": "b", "bandwidth_gbyte_s": 1}],
            2,
            "disconnected: node a cannot reach",
        ),
        ([{"u": "server0", "v": "sw", "bw": 1}], 1, "edges.0.bandwidth_gbyte_s: Field required"),
        # issue 14: a user graph cannot take over dcsim's own nodes, nor give a link twice
        (star_edges(2) + [{"u": "sw", "v": "storage.pfs", "bandwidth_gbyte_s": 1}], 2,
         "node 'storage.pfs': names starting with storage. are reserved"),
        (star_edges(2) + star_edges(1), 2, "edge server0 - sw is given twice"),
        (star_edges(2) + [{"u": "sw", "v": "sw", "bandwidth_gbyte_s": 1}], 2,
         "edge sw - sw joins a node to itself"),
        ([{"u": "server0", "v": "sw", "bandwidth_gbyte_s": float("inf")}], 1,
         "Input should be a finite number"),
    ],
)
def test_graph_errors_name_the_node_or_edge(tmp_path, edges, n, message):
    with pytest.raises(ValueError, match=message):
        build("graph", n, path=write_edges(tmp_path, edges))


def test_graph_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read topology graph"):
        build("graph", 2, path=tmp_path / "nope.yaml")
    (tmp_path / "bad.graphml").write_bytes(b"<graphml>\xe9</graphml>")
    with pytest.raises(ValueError, match="bad.graphml:1: not UTF-8 text: byte 0xe9"):
        build("graph", 2, path=tmp_path / "bad.graphml")
    (tmp_path / "dup.yaml").write_text("edges: []\nedges: []\n")
    with pytest.raises(ValueError, match="dup.yaml:2: key 'edges' given twice"):
        build("graph", 2, path=tmp_path / "dup.yaml")


def scenario_params(tmp_path) -> list[tuple[str, dict]]:
    return [
        ("fat-tree", {"k": 4}),
        ("rail-optimized", {"servers_per_unit": 2, "spines": 2}),
        ("torus", {"dims": [2, 2]}),
        ("dragonfly", {"groups": 2, "routers_per_group": 2, "servers_per_router": 1}),
        ("graph", {"path": str(write_edges(tmp_path, star_edges(4)))}),
    ]


@pytest.mark.parametrize("index", range(5))
def test_scenario_runs_on_each_topology(tmp_path, index):
    kind, params = scenario_params(tmp_path)[index]
    jobs = [
        small_job("a", parallelism={"dp": 16}, global_batch=64),
        small_job("b", parallelism={"dp": 8}, arrival_s=1.0),
    ]
    data = small_scenario(
        jobs,
        cluster={"servers": [{"type": "dgx-a100-80gb", "count": 4}]},
        topology={"kind": kind, "params": params},
    )
    results = dcsim.simulate(dcsim.scenario_from_dict(data))
    assert len(results.jobs) == 2


def test_bad_topology_param_is_located_in_a_scenario():
    data = small_scenario(topology={"kind": "fat-tree", "params": {"k": 5}})
    with pytest.raises(ScenarioError, match="topology.params.k: k must be even, got 5"):
        dcsim.scenario_from_dict(data)


def test_too_many_servers_is_a_scenario_problem():
    data = small_scenario(
        cluster={"servers": [{"type": "dgx-a100-80gb", "count": 3}]},
        topology={"kind": "fat-tree", "params": {"k": 2}},
    )
    with pytest.raises(ScenarioError, match="topology: fat-tree: 3 servers do not fit"):
        dcsim.scenario_from_dict(data)


def test_graph_path_is_relative_to_the_scenario_file(tmp_path, write_yaml):
    import dcsim
    from tests.conftest import small_scenario

    (tmp_path / "net.yaml").write_text(
        "edges:\n"
        "  - {u: server0, v: sw, bandwidth_gbyte_s: 100}\n"
        "  - {u: server1, v: sw, bandwidth_gbyte_s: 100}\n")
    data = small_scenario(topology={"kind": "graph", "params": {"path": "net.yaml"}})
    scenario = dcsim.load_scenario(write_yaml(data))  # in tmp_path, beside net.yaml
    assert dcsim.simulate(scenario).summary()["jobs_completed"] == 1


@pytest.mark.parametrize("kind,params", [
    ("leaf-spine", {"servers_per_leaf": 4, "spines": 2, "oversubscription": 2.0}),
    ("fat-tree", {"k": 4}), ("torus", {"dims": [3, 4]}), ("dragonfly", {})])
def test_ring_bandwidth_cached_by_twin_servers_is_the_max_flow(kind, params):
    """Network caches a pair's max-flow by the two servers' links (twins share it): every
    ring hop still gets the max-flow of its own pair."""
    from dcsim.engine import Simulation

    sc = small_scenario(cluster={"servers": [{"type": "dgx-a100-80gb", "count": 12}]},
                        topology={"kind": kind, "params": params})
    net = Simulation(dcsim.scenario_from_dict(sc)).network
    directed = net.graph.to_directed()
    for sets in ([0, 1], [0, 5], [2, 3, 7, 11], list(range(12))):
        ring = net.ring({s: 8 for s in sets})
        hops = zip(sets, sets[1:] + sets[:1], strict=False)
        flow = min(nx.maximum_flow_value(directed, server_node(a), server_node(b),
                                         capacity="bandwidth_byte_s") for a, b in hops)
        assert ring.bandwidth_byte_s == pytest.approx(min(flow / 8, ring.intra_bandwidth))
