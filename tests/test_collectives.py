"""Collectives, nccl-tests style: bus-bandwidth factors, algorithms, the CLI."""

from __future__ import annotations

import json

import pytest

from dcsim.cli import main
from dcsim.perf.collectives import bus_factor, collective


def test_bus_factors_follow_nccl_tests():
    assert bus_factor("all_reduce", 8) == pytest.approx(2 * 7 / 8)
    assert bus_factor("all_gather", 8) == bus_factor("reduce_scatter", 8) == pytest.approx(7 / 8)
    assert bus_factor("broadcast", 8) == 1.0


def test_large_messages_approach_the_link_and_small_ones_pay_latency():
    big = collective("all_reduce", 2**30, "dgx-a100-80gb", 1)
    small = collective("all_reduce", 1024, "dgx-a100-80gb", 1)
    assert big.busbw_gbyte_s == pytest.approx(300 * 230 / 300, rel=0.01)  # NVLink x efficiency
    assert small.busbw_gbyte_s < big.busbw_gbyte_s / 100
    # the ring: 2 (n - 1) / n x S over the link, plus 2 (n - 1) steps of latency
    assert big.time_s == pytest.approx(2**30 * 2 * 7 / 8 / 230e9 + 14 * 1e-6, rel=1e-3)
    assert big.algbw_gbyte_s == pytest.approx(2**30 / big.time_s / 1e9)


def test_across_nodes_the_nics_bound_the_ring_and_tree_saves_latency():
    one = collective("all_reduce", 2**30, "dgx-a100-80gb", 1)
    four = collective("all_reduce", 2**30, "dgx-a100-80gb", 4)
    assert four.busbw_gbyte_s < one.busbw_gbyte_s
    assert four.busbw_gbyte_s == pytest.approx(8 * 24, rel=0.02)  # 8 HDR NICs per node
    small_ring = collective("all_reduce", 4096, "dgx-a100-80gb", 16, "ring")
    small_tree = collective("all_reduce", 4096, "dgx-a100-80gb", 16, "tree")
    assert small_tree.time_s < small_ring.time_s


def test_all_to_all_across_nodes_follows_the_rule_of_thumb():
    for nodes in (2, 4, 8):
        r = collective("all_to_all", 2**30, "dgx-h100", nodes)
        assert r.busbw_gbyte_s == pytest.approx(nodes / (nodes - 1) * 47, rel=0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown op 'gossip'"):
        collective("gossip", 1, "dgx-h100")
    with pytest.raises(ValueError, match="unknown server"):
        collective("all_reduce", 1, "dgx-z")
    with pytest.raises(ValueError, match="size_bytes must be > 0"):
        collective("all_reduce", 0, "dgx-h100")


def test_cli_table_json_and_errors(capsys):
    assert main(["collective", "--server", "dgx-h100", "--nodes", "2", "--op", "all_gather",
                 "--size-bytes", "1048576", "--size-bytes", "1073741824"]) == 0
    out = capsys.readouterr().out
    assert "# all_gather, ring, 16 ranks on 2 x dgx-h100" in out and "busbw" in out
    assert main(["collective", "--json", "--size-bytes", "1e9"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["ranks"] == 8 and row["busbw_gbyte_s"] > 200
    assert main(["collective", "--server", "nope"]) == 2
    assert "unknown server 'nope'" in capsys.readouterr().err


def test_nvls_reduces_in_the_switch_faster_than_the_ring():
    ring = collective("all_reduce", 2**30, "dgx-h100", 1, "ring")
    nvls = collective("all_reduce", 2**30, "dgx-h100", 1, "nvls")
    assert nvls.busbw_gbyte_s == pytest.approx(480, rel=0.02)  # the reference figure it is fit to
    assert 1.2 < nvls.busbw_gbyte_s / ring.busbw_gbyte_s < 1.4
    small = collective("all_reduce", 2**10, "dgx-h100", 1, "nvls")
    assert small.busbw_gbyte_s < 0.01 * nvls.busbw_gbyte_s  # latency-bound
    for args, msg in (((2**20, "dgx-a100-80gb", 1), "has none"),
                      ((2**20, "dgx-h100", 2), "inside one node"),):
        with pytest.raises(ValueError, match=msg):
            collective("all_reduce", *args, "nvls")
    with pytest.raises(ValueError, match="all_reduce only"):
        collective("all_gather", 2**20, "dgx-h100", 1, "nvls")
    assert main(["collective", "--server", "dgx-a100-80gb", "--algorithm", "nvls"]) == 2
