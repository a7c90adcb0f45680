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
LATENCY_COLUMNS = ("ttft_s", "tpot_s", "e2e_s", "max_itl_s")
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


STREAM_ROWS = 1 << 18  # rows a streaming service starts with (~25 MB)


def _kernel():
    """kernels/serving.py, whose constants name the columns of the request rows (imported
    lazily: numba; any ServiceRun has loaded it already)."""
    from dcsim.kernels import serving

    return serving


class _Ended:
    """The counts and latencies of requests whose rows were reused (streaming)."""

    def __init__(self) -> None:
        self.by_status = np.zeros(5, np.int64)
        self.preemptions = 0
        self.met = 0
        self.latencies: dict[str, list[np.ndarray]] = {c: [] for c in LATENCY_COLUMNS}

    def add(self, m: dict[str, np.ndarray], qi: np.ndarray) -> None:
        k = _kernel()
        self.by_status += np.bincount(qi[:, k.Q_STATUS], minlength=5)
        self.preemptions += int(qi[:, k.Q_PREEMPTS].sum())
        self.met += int(m["slo_met"].sum())
        for c in LATENCY_COLUMNS:
            self.latencies[c].append(m[c][m["served"]])


class ServiceRun:
    """A service's state between calls of the kernel."""

    def __init__(self, index: int, spec: ServiceSpec, cost: LlmCost | DnnCost,
                 requests: Requests, stream: bool = False) -> None:
        """`stream`: hold only the requests in flight (rows recycled as requests end, their
        results kept as numbers: no per-request table); a closed loop never streams."""
        from dcsim.kernels import serving as k  # numba: only when a service runs

        self.index, self.spec, self.cost = index, spec, cost

        n, r = len(requests), spec.max_replicas
        closed = isinstance(spec.requests, ClosedStream)
        self.n = n
        self.stream = stream and not closed and n > STREAM_ROWS
        rows = STREAM_ROWS if self.stream else n
        # the kernel's packed state (kernels/serving.py): request a in row a % rows (int32:
        # 56 bytes a request; every column stays far below 2**31, `advance` checks the one
        # that grows with time)
        self.qi = np.empty((rows, k.QI_COLS), np.int32)
        self.qf = np.empty((rows, k.QF_COLS))
        self.src = requests
        self.loaded = 0  # requests 0 .. loaded - 1 have been given rows
        self.retired = 0  # (streaming) requests 0 .. retired - 1 ended and were counted
        self._ended = _Ended()
        if self.stream:
            self.requests = requests
        else:
            self._load()
            # (views: a closed loop's arrival times are set as its requests are sent)
            self.requests = replace(requests, arrival_s=self.qf[:, k.F_ARR],
                                    prompt=self.qi[:, k.Q_PROMPT],
                                    output=self.qi[:, k.Q_OUTPUT])
        self.rint = np.zeros((r, k.R_INT_COLS), np.int64)
        self.rint[:, k.R_HEAD] = self.rint[:, k.R_TAIL] = -1  # empty queues
        self.rf = np.zeros((r, k.RF_COLS))
        self.rf[:, k.RF_END] = np.inf
        width = spec.batching.max_seqs if spec.is_llm else spec.dynamic_batching.max_batch
        width = max(1, min(width, n))  # (a batch is never larger than the requests)
        self.lst = np.full((r, k.LISTS if spec.is_llm else 1, width), -1, np.int64)  # (DNN: L_RUN)
        self.stk = np.zeros((r, 2, k.GAPS if spec.is_llm else 1))  # inter-token gap stacks
        self.ctr = np.zeros(k.COUNTS, np.int64)
        if isinstance(cost, LlmCost):  # iteration-time tables, and lookups up to a full batch
            self.tab = cost.table
            self.lut = np.zeros((2, spec.batching.max_tokens + spec.batching.max_seqs + 1))
            k.fill_lut(self.tab, self.lut)
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
        self.xh = np.zeros((rows if spec.disaggregation is not None else 1, 2))
        self.cursor = 0
        self.rr = 0
        self.now = 0.0
        self.start_s = 0.0
        self.stop_s = math.nan  # when it stopped serving (drained or cut short)
        self.samples: list[_Sample] = []
        self.energy_kwh = math.nan  # its GPUs' energy, once `power_spans` has priced them

    # each request row's columns (streaming: the rows of the requests in flight)
    replica = property(lambda self: self.qi[:, _kernel().Q_REPLICA])
    status = property(lambda self: self.qi[:, _kernel().Q_STATUS])
    reason = property(lambda self: self.qi[:, _kernel().Q_REASON])
    generated = property(lambda self: self.qi[:, _kernel().Q_GEN])
    preempts = property(lambda self: self.qi[:, _kernel().Q_PREEMPTS])
    first_t = property(lambda self: self.qf[:, _kernel().F_FIRST])
    done_t = property(lambda self: self.qf[:, _kernel().F_DONE])
    max_itl = property(lambda self: self.qf[:, _kernel().F_ITL])

    @property
    def last_arrival_s(self) -> float:
        return float(self.requests.arrival_s[-1]) if len(self.requests) else 0.0

    @property
    def drained(self) -> bool:
        """Every request has arrived and none is queued or running."""
        return (self.cursor == len(self.requests)
                and self.counts[DONE] + self.counts[DROPPED] == len(self.requests))

    def advance(self, until: float) -> None:
        """Run the kernel to `until`. Streaming, in stretches: each ends at the next arrival
        without a row (rows of ended requests are counted and reused; when every row is in
        flight, there are twice as many)."""
        if not self.stream:
            self._kernel(until)
            return
        arrival = self.src.arrival_s
        while True:
            self._retire()
            self._load()
            nxt = float(arrival[self.loaded]) if self.loaded < self.n else math.inf
            self._kernel(min(until, nxt))
            if nxt > until:
                return
            self._retire()
            if self.loaded - self.retired == self.qi.shape[0]:
                self._grow()

    def _kernel(self, until: float) -> None:
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
                self.now, until, self.cursor, self.loaded, self.qi, self.qf, self.rint, self.rf,
                self.lst, self.ctr, routing, self.rr, d.max_batch, d.timeout_s,
                -1 if d.max_queue is None else d.max_queue, c.batch_s, self.wave)
            self.now = until
            return
        self.cursor, self.rr = advance(
            self.now, until, self.cursor, self.loaded, self.qi, self.qf, self.rint, self.rf,
            self.lst, self.stk, self.ctr, self.xh, self.tree, self.tab, self.lut, routing,
            self.rr, b.max_tokens, b.max_seqs, c.kv_capacity_tokens, spec.max_len,
            -1 if b.max_queue is None else b.max_queue, b.chunked_prefill, c.attn_flop_s,
            c.kv_read_s, c.overhead_s, self.wave, self.xfer_s_token, self.xfer_s)
        self.now = until
        if self.rint[:, R_DK].max(initial=0) > 2**31 - 2**20:  # (a request's Q_DK0 is int32)
            raise SimulationError(f"service {spec.name}: a replica ran more than 2**31 decode "
                                  f"iterations; run a shorter stretch")

    # ------------------------------------------------------------ rows (streaming)
    def _segments(self, a: int, b: int) -> list[slice]:
        """The rows of requests a .. b - 1 (at most two runs of rows)."""
        rows = self.qi.shape[0]
        if b <= a:
            return []
        lo, hi = a % rows, (b - 1) % rows + 1
        return [slice(lo, hi)] if lo < hi else [slice(lo, rows), slice(0, hi)]

    def _load(self) -> None:
        """Give rows to the next requests, as many as are free."""
        from dcsim.kernels.serving import init_requests

        new = min(self.n, self.retired + self.qi.shape[0])
        if new > self.loaded:
            q = self.src
            init_requests(self.qi, self.qf, q.arrival_s, q.prompt, q.output, self.loaded,
                          new - self.loaded)
            self.loaded = new

    def _retire(self) -> None:
        """Count the requests that ended, oldest first up to the first still in flight, and
        free their rows."""
        from dcsim.kernels.serving import first_unfinished

        end = first_unfinished(self.qi, self.retired, self.loaded)
        for rows in self._segments(self.retired, end):
            self._ended.add(self._row_metrics(self.qi[rows], self.qf[rows]), self.qi[rows])
        self.retired = end

    def _grow(self) -> None:
        """Twice the rows: every row holds a request in flight. The requests keep their
        numbers; their rows, and every reference to them, move."""
        from dcsim.kernels import serving as k

        old, rows = self.qi.shape[0], 2 * self.qi.shape[0]
        live = np.arange(self.retired, self.loaded)
        moved = np.full(old, -1, np.int64)  # old row -> new row
        moved[live % old] = live % rows
        qi = np.empty((rows, k.QI_COLS), np.int32)
        qf = np.empty((rows, k.QF_COLS))
        qi[live % rows], qf[live % rows] = self.qi[live % old], self.qf[live % old]

        def to_new(v: np.ndarray) -> np.ndarray:
            return np.where(v >= 0, moved[np.maximum(v, 0)], v)

        qi[live % rows, k.Q_NXT] = to_new(qi[live % rows, k.Q_NXT])
        for col in (k.R_HEAD, k.R_TAIL):
            self.rint[:, col] = to_new(self.rint[:, col])
        for row in (k.L_RUN, k.L_PF, k.L_PEND, k.L_HVAL)[:self.lst.shape[1]]:  # (DNN: L_RUN)
            self.lst[:, row, :] = to_new(self.lst[:, row, :])
        xh = np.zeros((rows if self.spec.disaggregation is not None else 1, 2))
        m = int(self.ctr[k.C_XN])
        xh[:m, 0] = self.xh[:m, 0]
        xh[:m, 1] = to_new(self.xh[:m, 1].astype(np.int64))
        self.qi, self.qf, self.xh = qi, qf, xh

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
        whether it met the SLO: the columns requests.csv and the service row are made of
        (not streaming: then each request has its row)."""
        assert not self.stream, "a streaming service keeps no per-request rows"
        return self._row_metrics(self.qi, self.qf)

    def _row_metrics(self, qi: np.ndarray, qf: np.ndarray) -> dict[str, np.ndarray]:
        """`metrics` of the requests in these rows (kernels/serving.py's columns)."""
        k = _kernel()
        arrival, first, done = qf[:, k.F_ARR], qf[:, k.F_FIRST], qf[:, k.F_DONE]
        output = qi[:, k.Q_OUTPUT]
        served = qi[:, k.Q_STATUS] == DONE
        ttft = first - arrival
        e2e = done - arrival
        with np.errstate(invalid="ignore", divide="ignore"):
            tpot = np.where(served & (output > 1), (done - first) / (output - 1), np.nan)
        itl = np.where(served & (output > 1), qf[:, k.F_ITL], np.nan)
        return {"served": served, "ttft_s": ttft, "tpot_s": tpot, "e2e_s": e2e,
                "max_itl_s": itl, "slo_met": self._slo_met(ttft, tpot, e2e, served)}

    def ended(self, m: dict[str, np.ndarray] | None = None
              ) -> tuple[np.ndarray, int, int, dict[str, np.ndarray]]:
        """(requests by status, preemptions, requests that met the SLO, each latency column
        of the served requests): all requests, with or without their rows (`m`: their
        `metrics()`, if already made)."""
        if not self.stream:
            m = m if m is not None else self.metrics()
            return (np.bincount(self.status, minlength=5), int(self.preempts.sum()),
                    int(m["slo_met"].sum()), {c: m[c][m["served"]] for c in LATENCY_COLUMNS})
        done = _Ended()
        done.by_status += self._ended.by_status
        done.preemptions, done.met = self._ended.preemptions, self._ended.met
        done.latencies = {c: list(v) for c, v in self._ended.latencies.items()}
        for rows in self._segments(self.retired, self.loaded):  # those with rows
            done.add(self._row_metrics(self.qi[rows], self.qf[rows]), self.qi[rows])
        done.by_status[NOT_ARRIVED] += self.n - self.loaded  # (never given a row)
        return (done.by_status, done.preemptions, done.met,
                {c: np.concatenate(v) if v else np.zeros(0) for c, v in done.latencies.items()})

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
        by_status, preemptions, met, latencies = self.ended(m)
        tokens = float(self.ctr[_kernel().C_TOKENS])  # (made so far)
        pcts = {}
        for col, ps in (("ttft_s", (50, 90, 99)), ("tpot_s", (50, 99)), ("e2e_s", (50, 99)),
                        ("max_itl_s", (99,))):
            v = latencies[col]
            v = v[~np.isnan(v)]
            got = np.percentile(v, ps) if v.size else [math.nan] * len(ps)
            pcts.update({f"{col[:-2]}_p{p}_s": float(x) for p, x in zip(ps, got, strict=True)})
        n_served, n_dropped = int(by_status[DONE]), int(by_status[DROPPED])
        in_flight = int(by_status[QUEUED] + by_status[RUNNING])
        ended = n_served + n_dropped
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
            "preemptions": preemptions,
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
