"""Network fabric: topology graphs and the bandwidth a job's collectives see."""

from dcsim.fabric import topologies_more  # noqa: F401  (registers fat-tree, torus, ...)
from dcsim.fabric.network import Network
from dcsim.fabric.topology import TOPOLOGIES, Topology

__all__ = ["Network", "TOPOLOGIES", "Topology"]
