"""When an interrupted job stops retrying (scenario `faults.max_retries` and
`faults.max_retries_without_progress`): the verdict after each interruption."""

from __future__ import annotations

from dcsim.jobs import JobState
from dcsim.scenario.faults import FaultsSpec

__all__ = ["give_up"]

EPS = 1e-9


def give_up(job: JobState, faults: FaultsSpec | None, kept: float, reason: str) -> str | None:
    """Why the job, interrupted (its `interruptions` already counted) and rolled back to
    `kept` iterations, ends `failed`; None if it goes back to the queue. Counts the
    interruptions in a row that let it keep no more iterations than before."""
    if kept > job.kept_iterations + EPS:
        job.kept_iterations, job.stuck_interruptions = kept, 0
    else:
        job.stuck_interruptions += 1
    limit = faults.max_retries if faults is not None else None
    stuck_limit = faults.max_retries_without_progress if faults is not None else None
    if stuck_limit is not None and job.stuck_interruptions >= stuck_limit:
        return (f"no-progress: interrupted {job.stuck_interruptions} times in a row without "
                f"keeping any progress (faults.max_retries_without_progress); last: {reason}")
    if limit is not None and job.interruptions > limit:
        return (f"retry-limit: interrupted {job.interruptions} times "
                f"(faults.max_retries {limit}); last: {reason}")
    return None
