"""Inference services in the simulation (docs/serving.md): each service's replicas take their
GPUs at time 0, before any training job, and keep them until the service has drained (its
last request finished, or `drain_s` after its last arrival); then the GPUs go back to the
training jobs' rounds.

A service is one SimPy process that wakes every `sample_s` (and at its end, and when a
starting replica is ready): the continuous-batching kernel advances all its replicas'
iterations up to that time in one call, and the timeline is sampled. No SimPy event is made
per request, iteration or token.

With `autoscale`, a service's replica count follows its load at each sample. Services come
first: a replica that finds no free GPU of its type preempts training jobs for one
(`reclaim`, the fewest jobs, then the fewest GPUs; they restart from their last progress like
any preempted job). A replica scaled down drains and gives its GPUs back: training jobs use
them until the service wants them again (GPU lending).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import simpy

from dcsim.energy.account import PowerSpan
from dcsim.energy.model import PowerModel
from dcsim.engine.shares import Shares
from dcsim.errors import Problem, ScenarioError
from dcsim.hardware import Cluster
from dcsim.rng import RandomStreams
from dcsim.scenario import Scenario
from dcsim.scenario.serving import Autoscale, ServiceSpec
from dcsim.serving.dnn import DnnCost
from dcsim.serving.requests import make_requests
from dcsim.serving.service import (
    REQUEST_COLUMNS,
    SERVICE_COLUMNS,
    TIMELINE_COLUMNS,
    ServiceRun,
    service_summary,
)
from dcsim.storage.tiers import SHARED_TIERS, StorageSystem
from dcsim.world.serving import replica_placements, service_cost

__all__ = ["Serving"]


def _starts(spec: ServiceSpec) -> Autoscale:
    """How a replica of `spec` starts after time 0 (a cold start, and whether it may reclaim
    GPUs): its `autoscale`, else the defaults (a fixed service's replica restarting after a
    failure)."""
    return spec.autoscale or Autoscale(max_replicas=spec.replicas)


class Serving:
    """The services of one simulation."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, cluster: Cluster,
                 network, storage: StorageSystem, streams: RandomStreams,
                 changed: Callable[[], None], reclaim: Callable[[str, int, str], int],
                 shares: Shares | None = None) -> None:
        """`changed()`: the services took or gave back GPUs. `reclaim(gpu_type, gpus, why)`:
        preempt training jobs to free `gpus` GPUs of `gpu_type` in one server; returns how
        many jobs it preempted (0: it could not)."""
        self.env, self.cluster, self.changed, self.reclaim = env, cluster, changed, reclaim
        self.storage = storage
        # the shared fabric (engine.network: shared): disaggregated services' KV transfers
        # are flows on it, re-demanded each sample
        self.shares = shares
        self._kv_sent: dict[int, int] = {}  # service -> KV tokens sent at the last sample
        self.loads: dict[str, list[float]] = {}  # shared tier -> when its loads in progress end
        self.runs: list[ServiceRun] = []
        self.notes: list[str] = []
        self.keep_requests = scenario.outputs.requests  # requests.csv: one row per request
        for i, spec in enumerate(scenario.services):
            requests = make_requests(spec.requests, streams.stream(f"services.{spec.name}"),
                                     scenario.base_dir, f"services.{i}.requests")
            if not spec.is_llm:  # a DNN request is one sample (a trace's tokens do not count)
                requests.prompt[:] = 1
                requests.output[:] = 1
            placements = replica_placements(spec, cluster)
            if placements is None:  # (check_world refuses this)
                raise ScenarioError([Problem("scenario", None, f"services.{i}.replicas",
                                             "the replicas do not fit the cluster")])
            ring = network.ring({placements[0].server_ids[0]: spec.tp})
            cost = service_cost(spec, ring.intra_bandwidth, ring.intra_latency_s)
            run = ServiceRun(i, spec, cost, requests, stream=not self.keep_requests)
            if spec.disaggregation is not None:
                self._kv_transfer(run, network, cluster, placements)
            for r, p in enumerate(placements):
                cluster.allocate(p)
                run.hold(r, p, env.now)
            self.runs.append(run)
            self._note_slo(run)

    @staticmethod
    def _kv_transfer(run: ServiceRun, network, cluster: Cluster, placements) -> None:
        """A disaggregated service's KV transfer time: each of a replica's tp GPUs sends its
        share of the cache (`kv_bytes_per_token` per GPU and token) to its peer on the
        decode replica at `kv_transfer_gbyte_s`, else over the first prefill and decode
        replicas' path (NVLink inside a server, else each GPU's share of the NICs), plus that
        path's latency: the rate on an unshared path (`_kv_flows` slows it by the share the
        fabric gives the service's transfers)."""
        spec = run.spec
        assert spec.disaggregation is not None
        pre = placements[0].server_ids[0]
        dec = placements[spec.disaggregation.prefill_replicas].server_ids[0]
        if pre == dec:
            ring = network.ring({pre: spec.tp})
            bandwidth, latency = ring.intra_bandwidth, ring.intra_latency_s
        else:
            # every GPU of the two servers sending at once: each its share of the NICs
            width = min(cluster.servers[pre].num_gpus, cluster.servers[dec].num_gpus)
            ring = network.ring({pre: width, dec: width})
            bandwidth, latency = ring.bandwidth_byte_s, ring.latency_s
        if spec.disaggregation.kv_transfer_gbyte_s is not None:
            bandwidth = spec.disaggregation.kv_transfer_gbyte_s * 1e9
        run.xfer_s_token = run.xfer_s_token_alone = (run.cost.memory.kv_bytes_per_token
                                                     / bandwidth)
        run.xfer_s = latency

    def _kv_flows(self, run: ServiceRun, window_s: float) -> None:
        """Under `engine.network: shared`, a disaggregated service's KV transfers are flows
        on the fabric: from each prefill replica's server to each decode replica's server
        (those on another server), the KV bytes sent over the last `window_s` (0: none, the
        service stops) spread evenly over them, as a demand the max-min sharing caps beside
        the training jobs' rings. The next window's transfers run at the fraction of the
        demand the fabric gave (at most the path's own bandwidth): a feedback per sample, not
        per transfer."""
        fabric = self.shares.shared if self.shares is not None else None
        if fabric is None:
            return
        from dcsim.fabric.topology import server_node

        spec = run.spec
        assert spec.disaggregation is not None
        from dcsim.kernels.serving import C_SENT

        sent = int(run.ctr[C_SENT])
        tokens = sent - self._kv_sent.get(run.index, 0)
        self._kv_sent[run.index] = sent
        demand = (tokens * run.cost.memory.kv_bytes_per_token * spec.tp / window_s
                  if window_s > 0 else 0.0)
        split = spec.disaggregation.prefill_replicas
        pre = sorted({p.server_ids[0] for p in run.held[:split] if p is not None})
        dec = sorted({p.server_ids[0] for p in run.held[split:] if p is not None})
        flows = {}
        for s in pre:
            to = [d for d in dec if d != s]
            flows[s] = {d: demand / (len(pre) * len(to)) for d in to} if to else {}
        ids = [-(run.index + 1) * 10_000_000 - s for s in pre]
        changed = False
        for s, job_id in zip(pre, ids, strict=True):
            changed |= fabric.set_reads(job_id, server_node(s), flows[s])
        if changed:
            self.shares.share_network()
        fractions = [fabric.read_rate(j) / sum(flows[s].values())
                     for s, j in zip(pre, ids, strict=True)
                     if flows[s] and fabric.read_rate(j) is not None]
        got = min(fractions, default=1.0)
        run.xfer_s_token = run.xfer_s_token_alone / max(min(got, 1.0), 1e-6)

    def _note_slo(self, run: ServiceRun) -> None:
        """Requests whose prefill alone, on an idle replica, misses the TTFT target (DNN
        services: a batch of one that misses the TTFT or end-to-end target)."""
        spec, q, c = run.spec, run.requests, run.cost
        slo = spec.slo
        if isinstance(c, DnnCost):
            targets = [x for x in (slo.ttft_s, slo.e2e_s) if x is not None] if slo else []
            alone = float(c.batch_s[1])
            if targets and len(q) and alone > min(targets):
                self.notes.append(f"service {spec.name}: no request can meet its SLO "
                                  f"({min(targets):g} s): a batch of one takes {alone:.3g} s")
            return
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
        sample_at = self.env.now + spec.sample_s
        while True:
            t = min(sample_at, end, float(run.ready_s.min()))
            yield self.env.timeout(t - self.env.now)
            run.advance(t)
            run.ready(t)
            end = run.last_arrival_s + spec.drain_s  # (a closed loop's grows as it runs)
            if t >= sample_at or t >= end:
                if t >= sample_at:
                    sample_at += spec.sample_s
                if spec.autoscale is not None:
                    self._scale(run, t)
                else:
                    self._restore(run, t)
                self._release_drained(run, t)
                if spec.disaggregation is not None:
                    self._kv_flows(run, spec.sample_s)
                run.sample(t)
                if run.drained or t >= end:
                    break
        self._stop(run)

    # ------------------------------------------------------------------ autoscaling
    def _scale(self, run: ServiceRun, t: float) -> None:
        """Replicas for the load now: up at once, down after `scale_down_after_s` of less."""
        from dcsim.kernels.serving import ACTIVE, DRAINING, OFF, STARTING

        a = run.spec.autoscale
        assert a is not None
        want = min(max(math.ceil(run.in_system() / a.target_per_replica), a.min_replicas),
                   a.max_replicas)
        up = np.flatnonzero((run.state == ACTIVE) | (run.state == STARTING))
        if want > len(up):
            run.low_since = math.nan
            need = want - len(up)
            for r in np.flatnonzero(run.state == DRAINING)[:need]:  # loaded: back at once
                run.state[r] = ACTIVE
                need -= 1
            for r in np.flatnonzero(run.state == OFF)[:need]:
                if not self._start_replica(run, int(r), t):
                    break
        elif want < len(up):
            if math.isnan(run.low_since):
                run.low_since = t
            if t - run.low_since >= a.scale_down_after_s:
                # the highest-numbered active replicas drain; one stays active
                active = np.flatnonzero(run.state == ACTIVE)
                drain = min(len(up) - want, len(active) - 1)
                if drain > 0:
                    run.state[active[len(active) - drain:]] = DRAINING
                run.low_since = math.nan
        else:
            run.low_since = math.nan

    def _restore(self, run: ServiceRun, t: float) -> None:
        """A fixed service restarts the replicas a failure took, on any free GPUs of its type
        (reclaiming them from training jobs if need be), with a cold start."""
        from dcsim.kernels.serving import OFF

        for r in np.flatnonzero(run.state[:run.spec.replicas] == OFF):
            if not self._start_replica(run, int(r), t):
                break

    def server_down(self, server_id: int) -> None:
        """A server fails (before the cluster takes it out): every replica on it fails now,
        its queued and running requests are dropped (reason `replica failed`), and its GPUs
        are released. The service restarts replicas elsewhere at its next sample (`_scale` or
        `_restore`)."""
        now = self.env.now
        for run in self.runs:
            hit = [r for r, p in enumerate(run.held)
                   if p is not None and server_id in p.server_ids]
            if not hit or not math.isnan(run.stop_s):
                continue
            run.advance(now)
            for r in hit:
                run.fail_replica(r)
                self.cluster.release(run.free(r, now))
            run.advance(now)  # (a closed loop sends its next requests now)
            run.sample(now)  # a timeline row (and power window) at the failure
        self.changed()

    def _start_replica(self, run: ServiceRun, r: int, t: float) -> bool:
        """Replica r takes GPUs (preempting training jobs if need be and allowed) and starts
        loading its weights; False if no GPUs could be had."""
        from dcsim.kernels.serving import STARTING

        spec = run.spec
        a = _starts(spec)
        got = replica_placements(spec, self.cluster, 1)
        if got is None and a.reclaim:
            run.jobs_preempted += self.reclaim(spec.gpu_type, spec.tp,
                                               f"GPUs reclaimed by service {spec.name}")
            got = replica_placements(spec, self.cluster, 1)
        if got is None:
            return False
        self.cluster.allocate(got[0])
        run.hold(r, got[0], t)
        run.state[r] = STARTING
        run.ready_s[r] = t + a.startup_s + self._load_s(spec, got[0].server_ids[0], t,
                                                        run.cost.memory.weights * spec.tp)
        run.replica_starts += 1
        self.changed()
        return True

    def _load_s(self, spec: ServiceSpec, server_id: int, t: float, nbytes: float) -> float:
        """Seconds to read a replica's `nbytes` of weights from its `weights_from` tier: the
        tier's latency plus the bytes at the read bandwidth of the server's own tier, or of a
        shared tier divided among the loads from it still in progress at `t` (this one
        included; later loads do not slow it). Reads are not flows on the fabric."""
        name = _starts(spec).weights_from
        if name in SHARED_TIERS:
            tier = self.storage.shared[name]
            busy = [end for end in self.loads.get(name, []) if end > t]
            seconds = tier.latency_s + nbytes * (len(busy) + 1) / tier.read_byte_s
            self.loads[name] = [*busy, t + seconds]
            return seconds
        tier = self.storage.local(name, server_id)
        return tier.latency_s + nbytes / tier.read_byte_s

    def _release_drained(self, run: ServiceRun, t: float) -> None:
        """Draining replicas with nothing left give their GPUs back."""
        from dcsim.kernels.serving import DRAINING, OFF, R_NRUN, R_QLEN

        empty = (run.state == DRAINING) & (run.rint[:, R_QLEN] + run.rint[:, R_NRUN] == 0)
        if not empty.any():
            return
        for r in np.flatnonzero(empty):
            run.state[r] = OFF
            self.cluster.release(run.free(int(r), t))
        self.changed()

    def _stop(self, run: ServiceRun) -> None:
        from dcsim.kernels.serving import OFF

        run.stop_s = self.env.now
        if run.spec.disaggregation is not None:
            self._kv_flows(run, 0.0)  # its flows leave the fabric
        for r, p in enumerate(run.held):
            if p is not None:
                self.cluster.release(run.free(r, self.env.now))
        run.state[:] = OFF
        run.ready_s[:] = np.inf
        run.sample(self.env.now)  # the timeline's last row: no replicas, no GPUs
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
                for r, p in enumerate(run.held):
                    if p is not None:
                        run.free(r, end_s)

    def power_spans(self, model: PowerModel) -> list[PowerSpan]:
        """Every service's GPUs as power spans (`ServiceRun.power_spans`): FLOPs per token
        2 x the parameters (the products), per sample the model's forward pass."""
        from dcsim.perf.zoo import model_stats

        out = []
        for run in self.runs:
            per = (2.0 * run.cost.params if run.spec.is_llm
                   else model_stats(run.spec.model).forward_flop_per_sample)
            out += run.power_spans(model, per)
        return out

    def frames(self, jobs: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict]:
        names = [r.spec.name for r in self.runs]
        metrics = [None if r.stream else r.metrics() for r in self.runs]
        rows = [r.service_row(m) for r, m in zip(self.runs, metrics, strict=True)]
        requests = ([r.request_frame(names, m) for r, m in zip(self.runs, metrics, strict=True)]
                    if self.keep_requests else [])
        services = pd.DataFrame(rows, columns=SERVICE_COLUMNS)
        frames = {
            "requests": (pd.concat(requests, ignore_index=True) if requests
                         # (outputs.requests: false: no table, not even its header)
                         else pd.DataFrame(columns=REQUEST_COLUMNS if self.keep_requests
                                           else None)),
            "services": services,
            "service_timeline": (pd.concat([r.timeline_frame() for r in self.runs],
                                           ignore_index=True) if self.runs
                                 else pd.DataFrame(columns=TIMELINE_COLUMNS)),
        }
        summary = service_summary(services, jobs)
        if self.notes:
            summary["serving_notes"] = list(self.notes)
        for r, row in zip(self.runs, rows, strict=True):
            assert row["served"] + row["dropped"] == int(r.counts[3] + r.counts[4]), \
                "request accounting"
        return frames, summary
