"""What the failure model needs from the simulation that runs it (`FaultHost`), so that faults
depend on a small protocol and not on the engine's internals. The engine's `Simulation`
implements it; a test double can too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import networkx as nx
    import simpy

    from dcsim.fabric.routing import Router
    from dcsim.hardware import Cluster
    from dcsim.policies.views import Placement
    from dcsim.rng import RandomStreams
    from dcsim.scenario import Scenario

__all__ = ["FaultHost", "HitJob", "FlowRoutes"]


class HitJob(Protocol):
    """A running job as failures see it: which GPUs it holds."""

    job_id: int
    placement: Placement | None


class FlowRoutes(Protocol):
    """A flow-level fabric as failures see it: its links and each job's routes over them."""

    router: Router

    def routes_of(self, job_id: int) -> list[list[int]]: ...


class FaultHost(Protocol):
    """The simulation a failure model runs in: its clock, inputs and built cluster, the jobs
    running now, and the effects a failure has (the host does the accounting)."""

    env: simpy.Environment
    scenario: Scenario
    streams: RandomStreams
    cluster: Cluster

    @property
    def topology(self) -> nx.Graph:
        """Servers and switches (the graph failures pick links and switches from)."""
        ...

    def running_jobs(self) -> Sequence[HitJob]:
        """The jobs running now, in the order they started."""
        ...

    def all_finished(self) -> bool:
        """Whether every job has ended (failure processes may stop)."""
        ...

    def flow_routes(self) -> FlowRoutes | None:
        """The flow-level fabric, if the run has one (then network failures cut flows)."""
        ...

    def interrupt(self, job: HitJob, reason: str) -> None: ...

    def server_down(self, server_id: int) -> None: ...

    def server_up(self, server_id: int) -> None: ...

    def fail_link(self, u: str, v: str) -> None: ...

    def repair_link(self, u: str, v: str) -> None: ...

    def respeed(self, job: HitJob, reason: str) -> None:
        """The job's pace changed (a straggler began or ended): re-estimate it."""
        ...
