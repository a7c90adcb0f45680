"""Building what a scenario describes, before anything runs: `build_world(scenario)`.

A `World` holds the built cluster (servers, GPUs and their allocation state) and network
(the topology graph and each server's insides). The checks of `check_world` build one and
look at it; the engine builds its own (its cluster's allocation state changes as it runs)."""

from __future__ import annotations

from dataclasses import dataclass

from dcsim.fabric import Network
from dcsim.hardware import Cluster, build_cluster, build_network
from dcsim.scenario import Scenario

__all__ = ["World", "build_world"]


@dataclass
class World:
    scenario: Scenario
    cluster: Cluster
    network: Network


def build_world(scenario: Scenario) -> World:
    """The scenario's cluster and network. Raises ClusterError (a server group that cannot be
    built, with its index and key) or ValueError (a topology that cannot be built)."""
    cluster = build_cluster(scenario)
    return World(scenario, cluster, build_network(scenario, cluster))
