"""Inference services in the simulation (docs/serving.md): each service's replicas take their
GPUs at time 0, before any training job, and keep them until the service has drained (its
last request finished, or `drain_s` after its last arrival); then the GPUs go back to the
training jobs' rounds.

A service is one SimPy process that wakes every `sample_s` (and at its end): the
continuous-batching kernel advances all its replicas' iterations up to that time in one call,
and the timeline is sampled. No SimPy event is made per request, iteration or token.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import simpy

from dcsim.errors import Problem, ScenarioError
from dcsim.hardware import Cluster
from dcsim.rng import RandomStreams
from dcsim.scenario import Scenario
from dcsim.serving.requests import make_requests
from dcsim.serving.service import (
    REQUEST_COLUMNS,
    SERVICE_COLUMNS,
    TIMELINE_COLUMNS,
    ServiceRun,
    service_summary,
)
from dcsim.world.serving import replica_placements, service_cost

__all__ = ["Serving"]


class Serving:
    """The services of one simulation."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, cluster: Cluster,
                 network, streams: RandomStreams, changed: Callable[[], None]) -> None:
        self.env, self.cluster, self.changed = env, cluster, changed
        self.runs: list[ServiceRun] = []
        self.notes: list[str] = []
        for i, spec in enumerate(scenario.services):
            requests = make_requests(spec.requests, streams.stream(f"services.{spec.name}"),
                                     scenario.base_dir, f"services.{i}.requests")
            placements = replica_placements(spec, cluster)
            if placements is None:  # (check_world refuses this)
                raise ScenarioError([Problem("scenario", None, f"services.{i}.replicas",
                                             "the replicas do not fit the cluster")])
            for p in placements:
                cluster.allocate(p)
            ring = network.ring({placements[0].server_ids[0]: spec.tp})
            cost = service_cost(spec, ring.intra_bandwidth, ring.intra_latency_s)
            run = ServiceRun(i, spec, cost, requests)
            run.placements = placements
            self.runs.append(run)
            self._note_slo(run)

    def _note_slo(self, run: ServiceRun) -> None:
        """Requests whose prefill alone, on an idle replica, misses the TTFT target."""
        spec, q, c = run.spec, run.requests, run.cost
        slo = spec.slo
        if slo is None or slo.ttft_s is None or not len(q):
            return
        ok = (q.prompt + q.output <= spec.max_len) & (q.prompt + q.output <= c.kv_capacity_tokens)
        if not ok.any():
            return
        longest = int(q.prompt[ok].max())
        alone = c.prefill_s(longest, spec.batching.max_tokens)
        if alone <= slo.ttft_s:
            return
        # the shortest prompt that misses (prefill time grows with the prompt)
        lo, hi = 1, longest
        while lo < hi:
            mid = (lo + hi) // 2
            if c.prefill_s(mid, spec.batching.max_tokens) > slo.ttft_s:
                hi = mid
            else:
                lo = mid + 1
        n = int((q.prompt[ok] >= lo).sum())
        self.notes.append(f"service {spec.name}: {n:,} of {int(ok.sum()):,} requests cannot "
                          f"meet ttft_s {slo.ttft_s:g} s even alone on a replica (prompts of "
                          f">= {lo:,} tokens; the longest, {longest:,}, takes {alone:.3g} s "
                          f"to prefill)")

    def start(self) -> None:
        for run in self.runs:
            self.env.process(self._serve(run))

    def _serve(self, run: ServiceRun):
        spec = run.spec
        end = run.last_arrival_s + spec.drain_s
        run.sample(self.env.now)
        while True:
            t = min(self.env.now + spec.sample_s, end)
            yield self.env.timeout(t - self.env.now)
            run.advance(t)
            run.sample(t)
            if run.drained or t >= end:
                break
        self._stop(run)

    def _stop(self, run: ServiceRun) -> None:
        run.stop_s = self.env.now
        for p in run.placements:
            self.cluster.release(p)
        run.placements = []
        self.changed()

    def open(self) -> bool:
        """Is any service still serving?"""
        return any(math.isnan(r.stop_s) for r in self.runs)

    def finish(self, end_s: float) -> None:
        """At the end of the run: services cut short by the horizon advance to it."""
        for run in self.runs:
            if math.isnan(run.stop_s):
                if run.now < end_s:
                    run.advance(end_s)
                    run.sample(end_s)
                run.stop_s = end_s

    def frames(self, jobs: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict]:
        requests = [r.request_frame() for r in self.runs]
        rows = [r.service_row(f) for r, f in zip(self.runs, requests, strict=True)]
        services = pd.DataFrame(rows, columns=SERVICE_COLUMNS)
        frames = {
            "requests": (pd.concat(requests, ignore_index=True) if requests
                         else pd.DataFrame(columns=REQUEST_COLUMNS)),
            "services": services,
            "service_timeline": (pd.concat([r.timeline_frame() for r in self.runs],
                                           ignore_index=True) if self.runs
                                 else pd.DataFrame(columns=TIMELINE_COLUMNS)),
        }
        summary = service_summary(services, jobs)
        if self.notes:
            summary["serving_notes"] = list(self.notes)
        for r in self.runs:
            kept = int(np.count_nonzero(r.status == 3) + np.count_nonzero(r.status == 4))
            assert kept == int(r.counts[3] + r.counts[4]), "request accounting"
        return frames, summary
