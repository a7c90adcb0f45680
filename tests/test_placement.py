"""Placement policies: each kind's choice on hand-made server views and in small scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim.engine import Simulation
from dcsim.policies import PLACEMENTS, JobView, ServerView
from dcsim.policies.placement import PlacementPolicy
from dcsim.rng import RandomStreams
from tests.conftest import small_job, small_scenario

A100 = "a100-sxm4-80gb"


def policy(kind: str, **params) -> PlacementPolicy:
    cls = PLACEMENTS.get(kind)
    return cls(cls.Params(**params))


def views(free: dict[int, int], size: int = 8, gpu: str = A100) -> list[ServerView]:
    """Server views with `free[id]` free GPUs (the highest-numbered ones taken)."""
    return [ServerView(i, gpu, size, tuple(range(n))) for i, n in free.items() if n]


def used(placement) -> dict[int, int]:
    return placement.gpus_per_server()


def bound(kind: str, servers: int, topology: dict, network: str = "shared") -> Simulation:
    """A simulation of `servers` dgx-a100-80gb servers; its placement is bound to the network."""
    data = small_scenario(cluster={"servers": [{"type": "dgx-a100-80gb", "count": servers}]},
                          topology=topology, placement={"kind": kind},
                          engine={"network": network})
    return Simulation(dcsim.scenario_from_dict(data))


LEAF_SPINE = {"kind": "leaf-spine", "params": {"servers_per_leaf": 4, "spines": 2,
                                               "oversubscription": 4.0}}


def leaf_of(sim: Simulation, server_id: int) -> str:
    graph = sim.network.graph
    (leaf,) = [v for v in graph[f"server{server_id}"] if v.startswith("leaf")]
    return leaf


def test_registry_lists_every_kind():
    assert {"packed", "first-fit", "spread", "topology-aware", "load-balanced",
            "random"} <= set(PLACEMENTS.names())


# ---------------------------------------------------------------- load-balanced
def test_load_balanced_puts_a_small_job_on_the_least_loaded_server():
    servers = views({0: 2, 1: 6}) + [ServerView(2, A100, 4, (0, 1, 2, 3))]
    # server 2 is empty (0% allocated) though server 1 has more free GPUs (25% allocated)
    assert used(policy("load-balanced").choose(2, servers)) == {2: 2}
    assert used(policy("packed").choose(2, servers)) == {0: 2}  # best fit, for contrast
    # a job that needs several servers: least allocated first, whole servers' free GPUs
    assert used(policy("load-balanced").choose(9, servers)) == {2: 4, 1: 5}


def test_load_balanced_spreads_single_server_jobs_but_never_splits_them():
    free = {i: 8 for i in range(4)}
    lb, packed = [], []
    for kind, out in (("load-balanced", lb), ("packed", packed)):
        state = dict(free)
        for _ in range(4):
            p = used(policy(kind).choose(2, views(state)))
            out.append(p)
            for s, n in p.items():
                state[s] -= n
    assert [list(p) for p in lb] == [[0], [1], [2], [3]]  # one job per server, each whole
    assert [list(p) for p in packed] == [[0], [0], [0], [0]]
    # spread would cut even one 2-GPU job over two servers
    assert len(used(policy("spread").choose(2, views(free)))) == 2


# ---------------------------------------------------------------- random
def draws(seed: int, n: int = 3, count: int = 40) -> list[dict[int, int]]:
    p = policy("random")
    p.bind(streams=RandomStreams(seed))
    free = {0: 8, 1: 8, 2: 3, 3: 5, 4: 8}
    return [used(p.choose(n, views(free))) for _ in range(count)]


def test_random_is_deterministic_per_seed_and_differs_across_seeds():
    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_random_picks_uniformly_among_the_servers_that_fit():
    picks = draws(7, n=4, count=2000)
    assert all(len(p) == 1 and sum(p.values()) == 4 for p in picks)
    counts = np.bincount([next(iter(p)) for p in picks], minlength=5)
    assert counts[2] == 0  # 3 free GPUs: never
    assert counts[[0, 1, 3, 4]] == pytest.approx([500] * 4, abs=80)


def test_random_splits_over_random_servers_only_when_none_fits():
    picks = draws(3, n=20, count=200)
    assert all(sum(p.values()) == 20 for p in picks)
    free = {0: 8, 1: 8, 2: 3, 3: 5, 4: 8}
    assert all(n <= free[s] for p in picks for s, n in p.items())
    assert len({tuple(p) for p in picks}) > 10  # many different server orders


def test_random_stream_is_a_param():
    p = policy("random", stream="other")
    p.bind(streams=RandomStreams(1))
    other = [used(p.choose(3, views({0: 8, 1: 8, 2: 3, 3: 5, 4: 8}))) for _ in range(40)]
    assert other != draws(1)
    with pytest.raises(ValueError):
        policy("random", stream="")


def test_random_runs_are_reproducible_per_seed():
    jobs = [small_job(f"j{i}", arrival_s=10.0 * i, parallelism={"dp": dp}, global_batch=8 * dp)
            for i, dp in enumerate([2, 4, 2, 8, 1, 4, 2, 2])]
    data = small_scenario(jobs, cluster={"servers": [{"type": "dgx-a100-80gb", "count": 4}]},
                          placement={"kind": "random"})

    def segments(seed: int) -> list:
        data["seed"] = seed
        segs = dcsim.simulate(dcsim.scenario_from_dict(data)).segments
        return sorted(zip(segs.job_id, segs.server_id, segs.num_gpus, strict=True))

    assert segments(5) == segments(5)
    assert segments(5) != segments(6)


# ---------------------------------------------------------------- topology-aware
def test_topology_aware_keeps_a_job_under_one_leaf():
    sim = bound("topology-aware", 12, LEAF_SPINE)  # 3 leaves of 4 servers
    # leaf0 has 8 free GPUs (server 0), leaf1 16 (servers 4, 5), leaf2 8 (server 8)
    free = {0: 8, 4: 8, 5: 8, 8: 8}
    chosen = used(sim.placement.choose(16, views(free)))
    assert chosen == {4: 8, 5: 8}
    assert leaf_of(sim, 4) == leaf_of(sim, 5)
    # first-fit and packed take servers 0 and 4: across leaves
    for kind in ("first-fit", "packed"):
        other = used(policy(kind).choose(16, views(free)))
        assert set(other) == {0, 4} and leaf_of(sim, 0) != leaf_of(sim, 4)


def test_topology_aware_takes_fewest_servers_before_locality():
    sim = bound("topology-aware", 12, LEAF_SPINE)
    # leaf0: four servers with 4 free (16 under one leaf); leaves 1 and 2: one 8-free server each
    free = {0: 4, 1: 4, 2: 4, 3: 4, 4: 8, 8: 8}
    assert used(sim.placement.choose(16, views(free))) == {4: 8, 8: 8}


def test_topology_aware_prefers_the_leaf_with_the_least_loaded_uplinks():
    sim = bound("topology-aware", 8, LEAF_SPINE)  # leaves 0 (servers 0-3) and 1 (4-7)
    free = {2: 8, 3: 8, 6: 8, 7: 8}
    assert used(sim.placement.choose(16, views(free))) == {2: 8, 3: 8}  # equal: lower ids
    assert sim.fabric is not None
    links = sim.fabric.router.links
    sim.fabric.utilization = np.array([0.9 if "leaf0" in (a, b) and "spine0" in (a, b) else 0.0
                                       for a, b in links])
    assert used(sim.placement.choose(16, views(free))) == {6: 8, 7: 8}
    # without a flow-level fabric the load is ignored
    isolated = bound("topology-aware", 8, LEAF_SPINE, network="isolated")
    assert isolated.placement.uplink_load() == {}
    assert used(isolated.placement.choose(16, views(free))) == {2: 8, 3: 8}


def test_topology_aware_keeps_a_job_inside_one_fat_tree_pod():
    sim = bound("topology-aware", 16, {"kind": "fat-tree", "params": {"k": 4}})
    # pods of 4 servers, edge switches of 2: server 1 (pod 0), 2 (pod 0), 5, 6, 7 (pod 1)
    free = {1: 8, 2: 8, 5: 8, 6: 8, 7: 8}
    assert set(used(sim.placement.choose(24, views(free)))) == {5, 6, 7}
    assert set(used(policy("packed").choose(24, views(free)))) == {1, 2, 5}


TREES = {"leaf-spine": (12, LEAF_SPINE), "fat-tree": (16, {"kind": "fat-tree", "params": {"k": 4}})}
BOUND = {name: bound("topology-aware", count, topo) for name, (count, topo) in TREES.items()}


def widest(sim: Simulation, server_ids) -> int:
    """The largest hop distance between two of the servers in the topology graph."""
    import networkx as nx

    nodes = [f"server{i}" for i in server_ids]
    return max(nx.shortest_path_length(sim.network.graph, a, b) for a in nodes for b in nodes)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(TREES)), st.data())
def test_topology_aware_never_takes_more_servers_or_hops_than_packed(tree, data):
    sim = BOUND[tree]
    count = TREES[tree][0]
    free = {i: data.draw(st.integers(0, 8)) for i in range(count)}
    total = sum(free.values())
    if total < 9:
        return
    n = data.draw(st.integers(9, total))
    chosen = sim.placement.choose(n, views(free))
    assert chosen.num_gpus == n
    assert all(k <= free[s] for s, k in used(chosen).items())
    packed = used(policy("packed").choose(n, views(free)))
    first_fit = used(policy("first-fit").choose(n, views(free)))
    assert len(used(chosen)) <= len(packed)  # never more servers than the fewest-server rule
    if len(used(chosen)) == len(packed):
        assert widest(sim, used(chosen)) <= widest(sim, packed)
    if len(used(chosen)) == len(first_fit):
        assert widest(sim, used(chosen)) <= widest(sim, first_fit)
    assert sim.placement.choose(n, views(free)) == chosen  # deterministic


def test_topology_aware_single_server_jobs_get_the_best_fit():
    sim = bound("topology-aware", 8, LEAF_SPINE)
    free = {0: 8, 3: 3, 5: 2, 6: 4}
    assert used(sim.placement.choose(2, views(free))) == {5: 2}
    assert used(sim.placement.choose(3, views(free))) == {3: 3}
    assert used(sim.placement.choose(8, views(free))) == {0: 8}


def test_topology_aware_unbound_still_takes_the_fewest_servers():
    p = policy("topology-aware")  # no network: every server as close as any other
    chosen = used(p.choose(12, views({0: 2, 1: 8, 2: 5, 3: 4})))
    assert chosen == {1: 8, 3: 4}  # the biggest, then the best fit for the remaining 4


def test_topology_aware_is_fast_on_a_big_leaf_spine():
    import time

    topo = {"kind": "leaf-spine", "params": {"servers_per_leaf": 16, "spines": 8}}
    sim = bound("topology-aware", 256, topo)
    rng = np.random.default_rng(0)
    states = [views({i: int(rng.integers(0, 9)) for i in range(256)}) for _ in range(50)]
    t0 = time.perf_counter()
    for state in states:
        for n in (16, 64, 256):
            placement = sim.placement.choose(n, state)
            assert placement.num_gpus == n
    assert (time.perf_counter() - t0) / 150 < 0.02  # seconds per multi-server placement


def test_topology_aware_beats_spread_and_packed_on_an_oversubscribed_leaf_spine():
    # three leaves of two servers, 16:1 oversubscribed (a pure data-parallel job spreads over
    # all eight NICs of a DGX: it takes a steep fabric to slow it); an 8-GPU job takes server
    # 0 first, so
    # packed puts the 16-GPU communication-heavy job on servers 1 and 2 (two leaves), spread
    # cuts both jobs over all six servers
    blocker = small_job("blocker", parallelism={"dp": 8}, global_batch=64, iterations=10**6)
    heavy = small_job("allreduce-heavy", arrival_s=1.0, model="gpt2-1.5b",
                      parallelism={"dp": 16, "overlap_grad_comm": False}, global_batch=128,
                      iterations=50)
    topo = {"kind": "leaf-spine", "params": {"servers_per_leaf": 2, "spines": 1,
                                             "oversubscription": 16.0}}
    cluster = {"servers": [{"type": "dgx-a100-80gb", "count": 6}]}
    runs = {}
    for kind in ("topology-aware", "packed", "spread"):
        res = dcsim.simulate(dcsim.scenario_from_dict(small_scenario(
            [blocker, heavy], cluster=cluster, topology=topo, placement={"kind": kind},
            horizon_s=10**5)))
        job = res.jobs.set_index("name").loc["allreduce-heavy"]
        segs = res.segments.query("job_id == 1")
        runs[kind] = (job, sorted(segs.server_id))
    assert runs["topology-aware"][1] == [2, 3]  # leaf1, whole
    assert runs["packed"][1] == [1, 2]  # leaf0 and leaf1
    ta = runs["topology-aware"][0]
    assert runs["packed"][0].jct_s > 1.2 * ta.jct_s
    assert runs["spread"][0].jct_s > 1.2 * ta.jct_s
    assert runs["spread"][0].step_dp_comm_s > 1.5 * ta.step_dp_comm_s


@pytest.mark.parametrize("kind", ["topology-aware", "load-balanced", "random"])
def test_new_kinds_keep_one_gpu_type_and_never_take_more_than_free(kind):
    p = policy(kind)
    servers = views({0: 3, 1: 8, 2: 5}) + views({3: 8, 4: 4}, gpu="h100-sxm5-80gb")
    for n in (1, 4, 8, 12, 16):
        placement = p.choose(n, [s for s in servers if s.gpu_type == A100])
        assert placement.num_gpus == n
        free = {s.server_id: set(s.free) for s in servers}
        for sid, gpus in placement.allocations:
            assert sid in (0, 1, 2) and set(gpus) <= free[sid] and len(set(gpus)) == len(gpus)


# ---------------------------------------------------------------- the free-GPU index
def _cluster(sizes: list[tuple[str, int]]):
    from dcsim import catalog
    from dcsim.hardware import Cluster, Server

    gpus = catalog.gpus()
    return Cluster([Server(i, f"s{i}", gpus[t], g, 1e12, 1e10, 1e-6, 1e11)
                    for i, (t, g) in enumerate(sizes)])


H100 = "h100-sxm5-80gb"


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([A100, H100]), st.sampled_from([2, 4, 8])),
                min_size=1, max_size=24),
       st.lists(st.tuples(st.integers(0, 23), st.integers(1, 8)), max_size=30),
       st.sets(st.integers(0, 23), max_size=3), st.integers(1, 40),
       st.sampled_from(["packed", "first-fit", "spread", "load-balanced", "random",
                        "topology-aware"]))
def test_indexed_placement_matches_the_scan_of_server_views(sizes, takes, down, n, kind):
    """Every built-in policy answers from the cluster's FreeIndex (`pick`) exactly as its scan
    of the server views (`choose`), on random clusters (two GPU types, mixed sizes), partly
    allocated, with servers out of service; the random policy draws the same numbers."""
    from dcsim.policies.views import Placement

    cluster = _cluster(sizes)
    for sid, k in takes:  # allocate some of the lowest free GPUs of some servers
        if sid < len(sizes):
            free = cluster.views()[sid].free
            if free:
                cluster.allocate(Placement(((sid, free[:k]),)))
    for sid in sorted(down):
        if sid < len(sizes) and cluster.num_free(sid) == sizes[sid][1]:
            cluster.down(sid)
    indexed, scanned = policy(kind), policy(kind)
    assert indexed._indexed
    view = JobView(0, "j", n, (H100, A100), 0.0, 0, False, 10, 0.0, 0.0)
    fast = indexed.place(view, cluster.views())
    slow = scanned.place(view, list(cluster.views()))
    assert fast == slow
    if fast is not None:  # and the index still agrees with the views after the allocation
        cluster.allocate(fast)
        for s in cluster.views():
            assert cluster.index.num_free(s.server_id) == s.num_free
        for t in (A100, H100):
            assert cluster.index.free_gpus(t) == sum(s.num_free for s in cluster.views()
                                                     if s.gpu_type == t)
