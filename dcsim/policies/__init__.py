"""Policies: pure decisions over read-only views (no simpy, no global state)."""

from dcsim.policies.placement import PLACEMENTS, PlacementPolicy
from dcsim.policies.scheduling import SCHEDULERS, Scheduler
from dcsim.policies.views import JobView, Placement, ServerView

__all__ = [
    "PLACEMENTS",
    "SCHEDULERS",
    "JobView",
    "Placement",
    "PlacementPolicy",
    "Scheduler",
    "ServerView",
]
