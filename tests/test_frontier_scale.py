"""scenarios/frontier_100k.yaml: the full scenario is what it says (100k+ GPUs, a fat-tree,
failures on); a 1:100 copy of it runs here (the full run is `python -m benchmarks --only
frontier`), with every job accounted for, jobs spanning servers on the shared fabric, and
failures that hit running jobs."""

from __future__ import annotations

import dcsim
from dcsim import catalog
from dcsim.engine import simulate
from tests.conftest import REPO

SCENARIO = REPO / "scenarios" / "frontier_100k.yaml"
# the scenario's own comment gives this copy: 128 servers on a k=8 fat-tree (its full 128
# hosts), 1/100 of the jobs at 1/100 of the arrival rate
SMALL = ["cluster.servers.0.count=128", "topology.params.k=8",
         "workload.generator.num_jobs=2000", "workload.generator.load=2"]


def test_the_full_scenario_is_a_frontier_cluster_with_failures():
    sc = dcsim.load_scenario(SCENARIO)
    gpus = sum(s.count * catalog.servers()[s.type].gpus_per_server
               for s in sc.cluster.servers)
    assert gpus >= 100_000
    assert sc.topology.kind in ("fat-tree", "rail-optimized")
    assert sc.faults is not None and sc.faults.preset == "llama3"
    assert sc.workload.generator.num_jobs == 200_000
    assert f"--set {SMALL[0]}" in SCENARIO.read_text()  # the comment shows the small copy


def test_a_small_copy_runs_with_the_fabric_and_failures():
    # failures 50 x as often, so that some hit the few running jobs of the small copy
    res = simulate(dcsim.load_scenario(SCENARIO, [*SMALL, "faults.preset_scale=50"]))
    s = res.summary()
    assert s["jobs_submitted"] == 2000
    assert s["jobs_completed"] + s["jobs_failed"] + s["jobs_rejected"] + \
        s["jobs_unfinished"] == 2000
    assert s["failures"] > 0 and s["interruptions"] > 0
    assert (res.jobs["num_gpus"] > 8).any()  # jobs that span 8-GPU servers: flows
    assert s["total_gpus"] == 1024
