"""Read-only views that policies receive, and the decisions they return."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JobView", "ServerView", "Placement"]


@dataclass(frozen=True, slots=True)
class JobView:
    job_id: int
    name: str
    num_gpus: int
    gpu_types: tuple[str, ...]  # GPU types the job may run on, in order of preference
    submit_s: float
    priority: int
    running: bool
    iterations: int
    iterations_done: float
    attained_service_gpu_s: float  # GPU-seconds received so far


@dataclass(frozen=True, slots=True)
class ServerView:
    server_id: int
    gpu_type: str
    num_gpus: int
    free: tuple[int, ...]  # indices of the free GPUs

    @property
    def num_free(self) -> int:
        return len(self.free)


@dataclass(frozen=True, slots=True)
class Placement:
    """Which GPUs of which servers a job gets: ((server_id, (gpu index, ...)), ...)."""

    allocations: tuple[tuple[int, tuple[int, ...]], ...]

    @property
    def num_gpus(self) -> int:
        return sum(len(g) for _, g in self.allocations)

    @property
    def server_ids(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self.allocations)

    def gpus_per_server(self) -> dict[int, int]:
        return {s: len(g) for s, g in self.allocations}
