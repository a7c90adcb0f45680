"""Servers' insides as graph nodes: GPUs, NICs, PCIe switches, NVSwitch (fabric/internals.py)."""

from __future__ import annotations

import pytest

import dcsim
from dcsim.engine import Simulation
from dcsim.fabric.sharing import SharedFabric
from tests.conftest import small_job, small_scenario


def _network(cluster):
    return Simulation(dcsim.scenario_from_dict(small_scenario(cluster=cluster))).network


def test_a_dgx_a100_has_its_gpus_nics_and_pcie_switches():
    net = _network({"servers": [{"type": "dgx-a100-80gb", "count": 2}]})
    kinds = {}
    for node, kind in net.detailed.nodes(data="kind"):
        if node.startswith("server0."):
            kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == {"gpu": 8, "nic": 8, "pcie-switch": 4, "nvswitch": 1, "cpu": 1}
    # GPUDirect: each GPU leaves through a NIC on its own PCIe switch, two GPUs per switch
    assert net.attach["server0.gpu0"] == ["server0.gpu0", "server0.pcie0", "server0.nic0",
                                          "server0"]
    assert net.attach["server0.gpu1"][2] == "server0.nic1"
    assert net.attach["server0.gpu7"][1:3] == ["server0.pcie3", "server0.nic7"]
    edge = net.detailed.edges["server0.gpu0", "server0.nvswitch"]
    assert edge["bandwidth_byte_s"] == pytest.approx(300e9)  # A100 NVLink 600 GB/s / 2
    assert net.detailed.edges["server0.nic0", "server0"]["bandwidth_byte_s"] == 24e9
    assert set(net.graph) < set(net.detailed)  # the server-level graph is untouched


def test_gpus_on_a_switch_without_a_nic_go_through_the_cpu():
    group = {"name": "few-nics", "gpu": "a100-sxm4-80gb", "gpus_per_server": 8,
             "nics": [{"type": "hdr200", "count": 2}], "count": 2}
    net = _network({"servers": [group]})
    assert net.attach["server0.gpu0"] == ["server0.gpu0", "server0.pcie0", "server0.nic0",
                                          "server0"]
    assert net.attach["server0.gpu7"] == ["server0.gpu7", "server0.pcie3", "server0.cpu",
                                          "server0.pcie2", "server0.nic1", "server0"]


def test_flows_run_gpu_to_gpu_and_a_shared_nic_splits_its_bandwidth():
    net = _network({"servers": [{"type": "pcie-4gpu", "count": 2}]})
    fabric = SharedFabric(net.detailed, net.attach)
    fabric.add(7, {0: (0, 1, 2, 3), 1: (0, 1, 2, 3)})
    fabric.solve()
    first = fabric.router.links[fabric.router.route("server0.gpu2", "server1.gpu2", 0)[0]]
    assert first == ("server0.gpu2", "server0.pcie0")
    assert fabric.rate(7) == pytest.approx(24e9 / 4)  # one HDR200 NIC for four GPUs


def test_a_failed_nic_link_stalls_the_job_until_repaired():
    data = small_scenario([small_job("two-servers", model="gpt2-1.5b", parallelism={"dp": 16},
                                     global_batch=128, iterations=200)])
    plain = dcsim.simulate(dcsim.scenario_from_dict(data)).jobs.iloc[0]
    sim = Simulation(dcsim.scenario_from_dict(data))

    def chaos(env):
        yield env.timeout(5.0)
        sim.fail_link("server0.nic3", "server0")
        yield env.timeout(50.0)
        sim.repair_link("server0.nic3", "server0")

    sim.env.process(chaos(sim.env))
    cut = sim.run().jobs.iloc[0]
    assert cut.end_s == pytest.approx(plain.end_s + 50.0, rel=1e-6)


@pytest.mark.parametrize(("which", "internal", "fabric"), [("fabric", False, True),
                                                          ("all", True, True),
                                                          ("none", False, False)])
def test_outputs_link_levels_chooses_the_links_recorded(repo, which, internal, fabric):
    res = dcsim.simulate(dcsim.load_scenario(repo / "scenarios/contention.yaml",
                                             [f"outputs.link_levels={which}"]))
    names = set(res.links.link)
    assert any("." in n for n in names) == internal
    assert ("leaf0->spine0" in names) == fabric
