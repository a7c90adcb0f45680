"""Flow fabrics, one registered class each: how (and whether) jobs' traffic shares the links.

`engine.network` names one. `isolated`: every job sees its placement's links alone (no flows).
`shared`: each job's collectives are flows re-shared max-min fairly whenever the set of
running jobs changes (dcsim/fabric/sharing.py); its rates set the jobs' step times. `timed`:
each iteration's data-parallel traffic moves as timed transfers that share links while in
flight (dcsim/fabric/timed.py). Adding one is a class with `build` and a registration.
"""

from __future__ import annotations

from typing import ClassVar

import simpy

from dcsim.fabric.network import Network
from dcsim.fabric.sharing import SharedFabric
from dcsim.fabric.timed import TimedFabric
from dcsim.registry import Registry

__all__ = ["FLOW_FABRICS", "FlowFabric"]


class FlowFabric:
    """A way of carrying the jobs' traffic; `build` makes the fabric object a run uses."""

    name: ClassVar[str]
    # whether jobs' data reads from shared storage tiers are flows on it too (else the storage
    # model divides the tiers' bandwidth itself)
    carries_reads: ClassVar[bool] = False

    @staticmethod
    def build(network: Network, env: simpy.Environment) -> SharedFabric | TimedFabric | None:
        raise NotImplementedError


FLOW_FABRICS: Registry[FlowFabric] = Registry("flow fabric")


@FLOW_FABRICS.register("isolated")
class Isolated(FlowFabric):
    """No flows: a job's step time sees its placement's links as if it were alone."""

    @staticmethod
    def build(network: Network, env: simpy.Environment) -> None:
        return None


@FLOW_FABRICS.register("shared")
class Shared(FlowFabric):
    """Steady flows, re-shared max-min fairly when the running jobs change."""

    carries_reads = True

    @staticmethod
    def build(network: Network, env: simpy.Environment) -> SharedFabric:
        return SharedFabric(network.detailed, network.attach)


@FLOW_FABRICS.register("timed")
class Timed(FlowFabric):
    """Each iteration's data-parallel traffic as transfers timed on the shared links."""

    @staticmethod
    def build(network: Network, env: simpy.Environment) -> TimedFabric:
        return TimedFabric(env, network.detailed, None, network.attach)
