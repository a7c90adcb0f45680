"""One service's run: its requests' state arrays, advanced by the continuous-batching kernel
(dcsim/kernels/serving.py) window by window, its sampled timeline, and its results: one row
per request, one row per service, and the summary's serving keys (docs/serving.md).

Every request ends in exactly one state: served, dropped (with a reason) or in flight (arrived,
not finished when the service stopped), or not arrived (the run ended before its arrival):
requests = served + dropped + in flight + not arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from dcsim import catalog
from dcsim.energy.account import PowerSpan
from dcsim.energy.model import PowerModel
from dcsim.errors import SimulationError
from dcsim.scenario.serving import ClosedStream, ServiceSpec
from dcsim.serving.dnn import DnnCost
from dcsim.serving.llm import LlmCost
from dcsim.serving.requests import Requests

__all__ = ["ServiceRun", "REQUEST_COLUMNS", "SERVICE_COLUMNS", "TIMELINE_COLUMNS",
           "service_summary"]

NOT_ARRIVED, QUEUED, RUNNING, DONE, DROPPED = range(5)
STATUS_NAMES = np.array(["not_arrived", "in_flight", "in_flight", "served", "dropped"],
                        dtype=object)
REASONS = np.array(["", "longer than max_len or the KV cache", "queue full",
                    "no replica serving or starting", "replica failed"], dtype=object)
REPLICA_FAILED = 4  # (a drop reason, set here: kernels/serving.py has the others)
STATUS = pd.Categorical(STATUS_NAMES, categories=["not_arrived", "in_flight", "served",
                                                  "dropped"])
REASON = pd.Categorical(REASONS, categories=list(REASONS))
REQUEST_COLUMNS = ["service", "request_id", "arrival_s", "prompt_tokens", "output_tokens",
                   "replica", "status", "reason", "ttft_s", "tpot_s", "e2e_s", "max_itl_s",
                   "preemptions", "slo_met"]
TIMELINE_COLUMNS = ["service", "time_s", "arrived", "served", "dropped", "queued", "running",
                    "replicas", "starting", "draining", "gpus", "kv_used_fraction",
                    "arrival_rate_per_s", "output_tokens_per_s"]
SERVICE_COLUMNS = [
    "service", "model", "gpu_type", "replicas", "tp", "gpus", "kv_capacity_tokens",
    "requests", "served", "dropped", "in_flight", "not_arrived", "preemptions",
    "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "tpot_p50_s", "tpot_p99_s", "e2e_p50_s",
    "e2e_p99_s", "max_itl_p99_s", "slo_percentile", "slo_attainment", "slo_met",
    "goodput_per_s", "throughput_per_s", "output_tokens_per_s", "tokens_per_s_per_gpu",
    "replicas_min", "replicas_max", "replica_starts", "replica_failures", "jobs_preempted",
    "start_s", "end_s", "gpu_hours", "output_tokens", "energy_kwh", "cost_usd",
    "usd_per_m_output_tokens"]


@dataclass
class _Sample:
    time_s: float
    arrived: int
    served: int
    dropped: int
    queued: int
    running: int
    kv_used: float
    tokens: int
    active: int
    starting: int
    draining: int
    gpus: int
    busy_us: int  # all replicas' iterating time so far (microseconds)
    work: int  # tokens (LLM) or samples (DNN) processed so far


class ServiceRun:
    """A service's state between calls of the kernel."""

    def __init__(self, index: int, spec: ServiceSpec, cost: LlmCost | DnnCost,
                 requests: Requests) -> None:
        from dcsim.kernels import serving as k  # numba: only when a service runs

        self.index, self.spec, self.cost = index, spec, cost

        n, r = len(requests), spec.max_replicas
        # the kernel's packed state (kernels/serving.py), with a named view of each column
        # (int32: 56 bytes a request; every column stays far below 2**31, `advance` checks
        # the one that grows with time)
        self.qi = np.empty((n, k.QI_COLS), np.int32)
        self.qf = np.empty((n, k.QF_COLS))
        qi, qf = self.qi, self.qf
        k.init_requests(qi, qf, requests.arrival_s, requests.prompt, requests.output)
        # (views: a closed loop's arrival times are set as its requests are sent)
        self.requests = replace(requests, arrival_s=qf[:, k.F_ARR], prompt=qi[:, k.Q_PROMPT],
                                output=qi[:, k.Q_OUTPUT])
        self.replica, self.status, self.reason = (qi[:, k.Q_REPLICA], qi[:, k.Q_STATUS],
                                                  qi[:, k.Q_REASON])
        self.generated, self.preempts = qi[:, k.Q_GEN], qi[:, k.Q_PREEMPTS]
        self.first_t, self.done_t, self.max_itl = (qf[:, k.F_FIRST], qf[:, k.F_DONE],
                                                   qf[:, k.F_ITL])
        self.rint = np.zeros((r, k.R_INT_COLS), np.int64)
        self.rint[:, k.R_HEAD] = self.rint[:, k.R_TAIL] = -1  # empty queues
        self.rf = np.zeros((r, k.RF_COLS))
        self.rf[:, k.RF_END] = np.inf
        width = spec.batching.max_seqs if spec.is_llm else spec.dynamic_batching.max_batch
        self.lst = np.full((r, k.LISTS if spec.is_llm else 1, width), -1, np.int64)  # (DNN: L_RUN)
        self.stk = np.zeros((r, 2, k.GAPS if spec.is_llm else 1))  # inter-token gap stacks
        self.ctr = np.zeros(k.COUNTS, np.int64)
        leaves = 1 << max(0, r - 1).bit_length()  # the replicas' tournament tree
        self.tree = np.full(2 * leaves, -1, np.int64)
        self.tree[leaves:leaves + r] = np.arange(r)
        self.counts = self.ctr[:k.C_TOKENS]  # requests by status
        self.state = self.rint[:, k.R_STATE]  # OFF, STARTING, ACTIVE, ...
        self.state[:spec.replicas] = k.ACTIVE
        self.end_t, self.run = self.rf[:, k.RF_END], self.lst[:, k.L_RUN, :]
        self.held: list = [None] * r  # each replica's placement while it holds GPUs
        self.held_since = np.full(r, np.nan)
        self.ready_s = np.full(r, np.inf)  # when a starting replica serves
        self.gpu_seconds = 0.0
        self.replica_starts = 0
        self.replica_failures = 0
        self.jobs_preempted = 0
        self.low_since = math.nan  # since when the load has allowed fewer replicas
        closed = isinstance(spec.requests, ClosedStream)
        # a closed loop's clients (-1: an open stream) and how many requests they have sent
        self.wave = spec.requests.concurrency if closed else -1
        self.ctr[k.C_FILL] = min(self.wave, n) if closed else n
        # disaggregation: each replica's role (0: both; 1: prefill; 2: decode), the KV
        # transfer's time (set by engine/serve.py) and the transfers under way (a heap; the
        # KV tokens sent so far are ctr[C_SENT])
        self.role = self.rint[:, k.R_ROLE]
        if spec.disaggregation is not None:
            self.role[:spec.disaggregation.prefill_replicas] = 1
            self.role[spec.disaggregation.prefill_replicas:] = 2
        self.xfer_s_token = 0.0
        self.xfer_s_token_alone = 0.0  # (on an unshared path)
        self.xfer_s = 0.0
        self.xh = np.zeros((n if spec.disaggregation is not None else 1, 2))
        self.cursor = 0
        self.rr = 0
        self.now = 0.0
        self.start_s = 0.0
        self.stop_s = math.nan  # when it stopped serving (drained or cut short)
        self.samples: list[_Sample] = []
        self.energy_kwh = math.nan  # its GPUs' energy, once `power_spans` has priced them

    @property
    def last_arrival_s(self) -> float:
        return float(self.requests.arrival_s[-1]) if len(self.requests) else 0.0

    @property
    def drained(self) -> bool:
        """Every request has arrived and none is queued or running."""
        return (self.cursor == len(self.requests)
                and self.counts[DONE] + self.counts[DROPPED] == len(self.requests))

    def advance(self, until: float) -> None:
        from dcsim.kernels.serving import (
            LEAST_OUTSTANDING,
            R_DK,
            ROUND_ROBIN,
            advance,
            advance_dnn,
        )

        spec, c, b = self.spec, self.cost, self.spec.batching
        routing = LEAST_OUTSTANDING if spec.routing == "least-outstanding" else ROUND_ROBIN
        if isinstance(c, DnnCost):
            d = spec.dynamic_batching
            self.cursor, self.rr = advance_dnn(
                self.now, until, self.cursor, self.qi, self.qf, self.rint, self.rf, self.lst,
                self.ctr, routing, self.rr, d.max_batch, d.timeout_s,
                -1 if d.max_queue is None else d.max_queue, c.batch_s, self.wave)
            self.now = until
            return
        self.cursor, self.rr = advance(
            self.now, until, self.cursor, self.qi, self.qf, self.rint, self.rf, self.lst,
            self.stk, self.ctr, self.xh, self.tree, c.table, routing, self.rr, b.max_tokens,
            b.max_seqs, c.kv_capacity_tokens, spec.max_len,
            -1 if b.max_queue is None else b.max_queue, b.chunked_prefill, c.attn_flop_s,
            c.kv_read_s, c.overhead_s, self.wave, self.xfer_s_token, self.xfer_s)
        self.now = until
        if self.rint[:, R_DK].max(initial=0) > 2**31 - 2**20:  # (a request's Q_DK0 is int32)
            raise SimulationError(f"service {spec.name}: a replica ran more than 2**31 decode "
                                  f"iterations; run a shorter stretch")

    def ready(self, t: float) -> None:
        """Starting replicas whose weights have loaded by t serve from now."""
        from dcsim.kernels.serving import ACTIVE

        done = self.ready_s <= t
        self.state[done] = ACTIVE
        self.ready_s[done] = np.inf

    def hold(self, r: int, placement, t: float) -> None:
        """Replica r takes `placement`'s GPUs at t."""
        self.held[r], self.held_since[r] = placement, t

    def free(self, r: int, t: float):
        """Replica r gives its GPUs back at t; returns its placement."""
        placement, self.held[r] = self.held[r], None
        self.gpu_seconds += (t - self.held_since[r]) * self.spec.tp
        self.held_since[r] = math.nan
        return placement

    def fail_replica(self, r: int) -> None:
        """Replica r fails (its server went down): the requests it was running or held queued
        are dropped (`replica failed`: the answer they had is lost), and it is off."""
        from dcsim.kernels import serving as k

        qi, rint = self.qi, self.rint
        lost = [int(i) for i in self.run[r, :rint[r, k.R_NRUN]]]
        i = int(rint[r, k.R_HEAD])
        while i >= 0:
            lost.append(i)
            i = int(qi[i, k.Q_NXT])
        for i in lost:
            if qi[i, k.Q_DK0] >= 0:  # decoding: the tokens it made count
                qi[i, k.Q_GEN] += rint[r, k.R_DK] - qi[i, k.Q_DK0]
            qi[i, k.Q_STATUS] = DROPPED
            qi[i, k.Q_REASON] = REPLICA_FAILED
            qi[i, [k.Q_CTX, k.Q_PREF]] = 0
            qi[i, [k.Q_NXT, k.Q_CHUNK, k.Q_DK0, k.Q_HPOS]] = -1
        self.counts[DROPPED] += len(lost)
        self.lst[r] = -1
        for col in (k.R_NRUN, k.R_QLEN, k.R_KV, k.R_DEC, k.R_SCTX, k.R_DECNOW, k.R_NPF,
                    k.R_NPEND, k.R_NHEAP, k.R_NSTK):
            rint[r, col] = 0
        rint[r, k.R_HEAD] = rint[r, k.R_TAIL] = -1
        self.end_t[r] = np.inf
        self.state[r] = k.OFF
        self.ready_s[r] = np.inf
        self.replica_failures += 1

    def in_system(self) -> int:
        from dcsim.kernels.serving import R_NRUN, R_QLEN

        return int(self.rint[:, R_QLEN].sum() + self.rint[:, R_NRUN].sum())

    def sample(self, t: float) -> None:
        from dcsim.kernels.serving import (
            ACTIVE,
            C_TOKENS,
            DRAINING,
            R_BUSY_US,
            R_KV,
            R_NRUN,
            R_QLEN,
            R_WORK,
            STARTING,
        )

        serving = int(np.count_nonzero((self.state == ACTIVE) | (self.state == DRAINING)))
        self.samples.append(_Sample(
            t, self.cursor, int(self.counts[DONE]), int(self.counts[DROPPED]),
            int(self.rint[:, R_QLEN].sum()), int(self.rint[:, R_NRUN].sum()),
            (float(self.rint[:, R_KV].sum()) / (self.cost.kv_capacity_tokens * max(serving, 1))
             if self.cost.kv_capacity_tokens else math.nan),
            int(self.ctr[C_TOKENS]), int(np.count_nonzero(self.state == ACTIVE)),
            int(np.count_nonzero(self.state == STARTING)),
            int(np.count_nonzero(self.state == DRAINING)),
            sum(p is not None for p in self.held) * self.spec.tp,
            int(self.rint[:, R_BUSY_US].sum()), int(self.rint[:, R_WORK].sum())))

    def power_spans(self, model: PowerModel, flop_per_work: float) -> list[PowerSpan]:
        """The service's GPUs as power spans, one per sample window it held GPUs in: each
        draws idle power, plus, for the share of its GPU-seconds its replicas spent
        iterating, the power model's draw at the activity of that work (the larger of the
        memory-bound activity, as decoding is, and the compute activity of its FLOP rate:
        `flop_per_work` FLOPs per token or sample). An iteration counts in the window it
        starts in. Job id -1 - the service's index."""
        spec = self.spec
        gpu = spec.gpu_type
        idle = model.gpu(gpu).idle_w
        peak = catalog.gpus()[gpu].peak_flop_s[spec.precision]
        out = []
        for a, b in zip(self.samples, self.samples[1:], strict=False):
            dt = b.time_s - a.time_s
            if dt <= 0 or a.gpus == 0:
                continue
            busy = (b.busy_us - a.busy_us) * 1e-6 * spec.tp  # GPU-seconds iterating
            watts = idle
            if busy > 0:
                u = (b.work - a.work) * flop_per_work / (busy * peak)
                activity = max(model.memory_bound,
                               min(1.0, model.compute_floor + u / model.compute_saturation))
                share = min(1.0, busy / (a.gpus * dt))
                watts = idle + (model.phase_w(gpu, activity) - idle) * share
            out.append(PowerSpan(-1 - self.index, a.time_s, a.time_s, b.time_s, a.gpus, idle,
                                 idle, watts))
        self.energy_kwh = sum(p.num_gpus * p.running_w * (p.end_s - p.start_s)
                              for p in out) / 3.6e6
        return out

    # ------------------------------------------------------------------ results
    def _slo_met(self, ttft: np.ndarray, tpot: np.ndarray, e2e: np.ndarray,
                 served: np.ndarray) -> np.ndarray:
        slo = self.spec.slo
        met = served.copy()
        if slo is None:
            return met
        with np.errstate(invalid="ignore"):
            if slo.ttft_s is not None:
                met &= ttft <= slo.ttft_s
            if slo.tpot_s is not None:
                met &= np.isnan(tpot) | (tpot <= slo.tpot_s)
            if slo.e2e_s is not None:
                met &= e2e <= slo.e2e_s
        return met

    def metrics(self) -> dict[str, np.ndarray]:
        """Each request's latencies (NaN where they do not apply), whether it was served and
        whether it met the SLO: the columns requests.csv and the service row are made of."""
        q = self.requests
        served = self.status == DONE
        ttft = self.first_t - q.arrival_s
        e2e = self.done_t - q.arrival_s
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(served & (q.output > 1),
                            (self.done_t - self.first_t) / (q.output - 1), np.nan)
        itl = np.where(served & (q.output > 1), self.max_itl, np.nan)
        return {"served": served, "ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e,
                "max_itl_s": itl, "slo_met": self._slo_met(ttft, tpot, e2e, served)}

    def request_frame(self, services: list[str] | None = None,
                      m: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
        """One row per request. The text columns are categoricals (`services`: the names the
        service column may take, so that frames of several services concatenate as one)."""
        q = self.requests
        m = m if m is not None else self.metrics()
        n = len(q)
        names = services or [self.spec.name]
        return pd.DataFrame({
            "service": pd.Categorical.from_codes(np.full(n, names.index(self.spec.name),
                                                         np.int8), names),
            "request_id": np.arange(n),
            # (a closed loop's requests never sent: no arrival time)
            "arrival_s": np.where(np.isfinite(q.arrival_s), q.arrival_s, np.nan),
            "prompt_tokens": q.prompt.astype(np.int64), "output_tokens": q.output.astype(np.int64),
            "replica": self.replica.astype(np.int64), "status": STATUS.take(self.status),
            "reason": REASON.take(self.reason), "ttft_s": m["ttft_s"], "tpot_s": m["tpot_s"],
            "e2e_s": m["e2e_s"], "max_itl_s": m["max_itl_s"],
            "preemptions": self.preempts.astype(np.int64), "slo_met": m["slo_met"]},
            columns=REQUEST_COLUMNS)

    def timeline_frame(self) -> pd.DataFrame:
        rows = []
        prev: _Sample | None = None
        for s in self.samples:
            dt = s.time_s - prev.time_s if prev is not None else 0.0
            rate = (s.arrived - prev.arrived) / dt if prev is not None and dt > 0 else math.nan
            tok = (s.tokens - prev.tokens) / dt if prev is not None and dt > 0 else math.nan
            rows.append((self.spec.name, s.time_s, s.arrived, s.served, s.dropped, s.queued,
                         s.running, s.active, s.starting, s.draining, s.gpus, s.kv_used, rate,
                         tok))
            prev = s
        return pd.DataFrame(rows, columns=TIMELINE_COLUMNS)

    def service_row(self, m: dict[str, np.ndarray] | None = None) -> dict:
        """The service's row of services.csv (`m`: its `metrics()`, if already made)."""
        spec, q = self.spec, self.requests
        m = m if m is not None else self.metrics()
        served = m["served"]
        by_status = np.bincount(self.status, minlength=DROPPED + 1)
        tokens = float(self.ctr[5])  # (kernels/serving.py C_TOKENS: made so far)
        pcts = {}
        for col, ps in (("ttft_s", (50, 90, 99)), ("tpot_s", (50, 99)), ("e2e_s", (50, 99)),
                        ("max_itl_s", (99,))):
            v = m[col][served]
            v = v[~np.isnan(v)]
            got = np.percentile(v, ps) if v.size else [math.nan] * len(ps)
            pcts.update({f"{col[:-2]}_p{p}_s": float(x) for p, x in zip(ps, got, strict=True)})
        n_served, n_dropped = int(by_status[DONE]), int(by_status[DROPPED])
        in_flight = int(by_status[QUEUED] + by_status[RUNNING])
        ended = n_served + n_dropped
        met = int(m["slo_met"].sum())
        span = max(self.stop_s - self.start_s, 1e-9)
        window = max(min(self.stop_s, self.last_arrival_s) - (float(q.arrival_s[0])
                                                              if len(q) else 0.0), 1e-9)
        slo = spec.slo
        p = slo.percentile if slo else 99.0
        row = {
            "service": spec.name, "model": spec.model.name or spec.model.kind,
            "gpu_type": spec.gpu_type,
            "replicas": spec.replicas, "tp": spec.tp, "gpus": spec.num_gpus,
            "kv_capacity_tokens": self.cost.kv_capacity_tokens,
            "requests": len(q), "served": n_served, "dropped": n_dropped,
            "in_flight": in_flight, "not_arrived": int(by_status[NOT_ARRIVED]),
            "preemptions": int(self.preempts.sum()),
            **pcts,
            "slo_percentile": p,
            "slo_attainment": met / ended if (slo and ended) else math.nan,
            "slo_met": bool(slo and ended and met / ended >= p / 100.0),
            "goodput_per_s": met / window if slo else math.nan,
            "throughput_per_s": n_served / window,
            "output_tokens_per_s": tokens / span,
            "tokens_per_s_per_gpu": tokens / max(self.gpu_seconds, 1e-9),
            # (while serving: not the last row, after it stopped)
            "replicas_min": min((x.active for x in self.samples if x.gpus),
                                default=spec.replicas),
            "replicas_max": max((x.active for x in self.samples if x.gpus),
                                default=spec.replicas),
            "replica_starts": self.replica_starts,
            "replica_failures": self.replica_failures, "jobs_preempted": self.jobs_preempted,
            "start_s": self.start_s, "end_s": self.stop_s,
            "gpu_hours": self.gpu_seconds / 3600.0,
            "output_tokens": int(tokens),
            # its GPUs' energy while it held them (`power_spans`; NaN before they are priced)
            "energy_kwh": self.energy_kwh,
            # with a `cost:` section (engine/collect.py `serving_cost`)
            "cost_usd": math.nan, "usd_per_m_output_tokens": math.nan,
        }
        return row


def service_summary(services: pd.DataFrame, jobs: pd.DataFrame) -> dict:
    """The summary's serving keys (all services together), with the GPU-hours split between
    serving and training."""
    if services.empty:
        return {}
    total = int(services["requests"].sum())
    attain = services["slo_attainment"].dropna()
    return {
        "services": len(services),
        "requests_total": total,
        "requests_served": int(services["served"].sum()),
        "requests_dropped": int(services["dropped"].sum()),
        "requests_in_flight": int(services["in_flight"].sum()),
        "requests_not_arrived": int(services["not_arrived"].sum()),
        "serving_gpu_hours": float(services["gpu_hours"].sum()),
        "training_gpu_hours": float((jobs["num_gpus"] * jobs["run_s"]).sum() / 3600.0),
        "serving_slo_attainment_min": float(attain.min()) if len(attain) else math.nan,
        # per service: the headline latencies (services.csv has them all)
        "service_results": {str(r["service"]): {k: r[k] for k in (
            "requests", "served", "dropped", "in_flight", "ttft_p50_s", "ttft_p99_s",
            "tpot_p50_s", "tpot_p99_s", "e2e_p99_s", "slo_attainment", "goodput_per_s",
            "output_tokens_per_s", "cost_usd", "usd_per_m_output_tokens")}
            for r in services.to_dict("records")},
    }
