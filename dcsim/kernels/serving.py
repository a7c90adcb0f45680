"""Continuous batching of one LLM service's replicas, request by request and iteration by
iteration (and dynamic batching of a DNN service's, batch by batch), compiled with numba
(imported lazily: only a run with services loads it).

`advance` moves a service from its current time to `until`: it routes each arrival to a replica
(round robin or least outstanding requests), and runs each replica's iterations. An iteration
takes, in order:
1. every running request whose prompt is in the KV cache: one decode token each; when the cache
   cannot hold one more token for each, the newest running request is preempted (its KV freed;
   it goes back to the head of the queue and recomputes prompt + generated tokens later: vLLM's
   recompute preemption);
2. requests part-way through their prefill: the next chunk of their prompt, within the token
   budget left (`max_tokens`);
3. new requests from the queue, in arrival order, while the budget, `max_seqs` and the KV cache
   (which must hold the whole prompt) allow.
Without chunked prefill an iteration either prefills whole prompts (as many as fit the budget,
at least one) or decodes, prefills first (vLLM's default before chunked prefill).

The iteration's time is a function of its shape (serving/llm.py builds the tables from the
calibrated device profiles): linear layers by the tokens it processes (interpolated in the
table rows T_LIN_X / T_LIN_Y), the output layer by the sequences that produce a token
(T_HEAD_X / T_HEAD_Y), attention by its prefill work and the KV it reads, plus a fixed
overhead. A request's first token comes at the end of the iteration that completes its
prefill, each later token at the end of a decode iteration.

Decoding is kept in aggregate, so an iteration costs the same however many requests decode: a
request that has its prompt in the cache joins its replica's decoders with its token count
and context as of the replica's decode iteration `Q_DK0`; each decode iteration adds a token
to all of them through two counters (R_DEC decoders whose contexts sum to R_SCTX), and the
request is visited again only when it ends (a per-replica heap keyed by the decode iteration
it ends in), is preempted, or fails. Its largest inter-token gap comes from a stack of the
replica's decode-iteration gaps that keeps only those no later gap reaches (`_gap_push`).

`advance_dnn` does the same for a DNN service (one-sample requests, dynamic batching: an idle
replica starts a batch of up to `max_batch` waiting requests once it has that many or the
oldest has waited `timeout`; a batch's time is `batch_s[size]`, serving/dnn.py).

State lives in a few packed arrays the caller owns (serving/service.py keeps named views of
their columns), so `advance` can be called again from where it stopped; it keeps no Python
objects and makes no SimPy events. Speed: each array a compiled function takes costs two
atomic reference-count updates per call, and with one array per field those were most of an
iteration's time. So the state is packed, the functions here are compiled without numba's
reference counting (`_nrt=False`: they allocate nothing and only borrow the caller's arrays),
and the per-iteration ones are inlined (`_start` at a single call site, as each copy adds
compile time).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# request status
NOT_ARRIVED, QUEUED, RUNNING, DONE, DROPPED = 0, 1, 2, 3, 4
# why a request was dropped (and NO_REPLICA below)
NO_DROP, TOO_LONG, QUEUE_FULL = 0, 1, 2
ROUND_ROBIN, LEAST_OUTSTANDING = 0, 1
NO_REPLICA = 3  # (a drop reason) no replica serving or starting
# replica states: off (no GPUs), starting (GPUs held, loading: requests may queue), active
# (routed to and iterating), draining (iterating, not routed to; off once empty)
OFF, STARTING, ACTIVE, DRAINING = 0, 1, 2, 3

# a request's integer columns (qi): its tokens, replica, status and drop reason, tokens made,
# prompt tokens prefilled of `Q_TARGET` (the prompt, or prompt + tokens made when it
# recomputes), KV context, this iteration's prefill chunk (-1: none), the next in its queue,
# preemptions, the decode iteration its counts date from (-1: not decoding) and its place in
# its replica's heap of decode ends
(Q_PROMPT, Q_OUTPUT, Q_REPLICA, Q_STATUS, Q_REASON, Q_GEN, Q_PREF, Q_TARGET, Q_CTX, Q_CHUNK,
 Q_NXT, Q_PREEMPTS, Q_DK0, Q_HPOS) = range(14)
QI_COLS = 14
# its float columns (qf): arrival, first and last token, done, largest inter-token gap
F_ARR, F_FIRST, F_LAST, F_DONE, F_ITL = range(5)
QF_COLS = 5
# a replica's integer columns (rint). R_BUSY_US: microseconds spent iterating, R_WORK: tokens
# or samples processed (the power model reads both). Decoding in aggregate: R_DEC requests
# decode, their contexts sum to R_SCTX, R_DK decode iterations so far (R_DECNOW: the one
# under way decodes); the lengths of its lists in `lst` and of its gap stack (R_NSTK); its
# state (OFF...) and role (0: prefills and decodes; 1: prefills; 2: decodes)
(R_HEAD, R_TAIL, R_QLEN, R_NRUN, R_KV, R_ITERS, R_PREEMPT, R_BUSY_US, R_WORK, R_DEC, R_SCTX,
 R_DK, R_DECNOW, R_NPF, R_NPEND, R_NHEAP, R_NSTK, R_STATE, R_ROLE) = range(19)
R_INT_COLS = 19
RF_END, RF_DEC = 0, 1  # its float columns (rf): its iteration's end, its last decode's end
RF_COLS = 2
# its lists (lst rows): running requests (in the order they started), prefilling ones (the
# same order), those that started decoding since its last decode iteration, and the heap of
# decode ends (keys: the decode iteration; values: the request)
L_RUN, L_PF, L_PEND, L_HKEY, L_HVAL = range(5)
LISTS = 5
GAPS = 4096  # a replica's gap stack (stk[r, 0]: decode iteration, stk[r, 1]: gap)
# counters (ctr): requests by status (ctr[DONE], ctr[DROPPED]), output tokens made (DNN:
# samples), a closed loop's requests sent, KV tokens sent to decode replicas, transfers under
# way (the heap xh: end time, request)
C_TOKENS, C_FILL, C_SENT, C_XN = 5, 6, 7, 8
COUNTS = 9
# the LLM iteration-time table (tab rows)
T_LIN_X, T_LIN_Y, T_HEAD_X, T_HEAD_Y = range(4)


@njit(cache=True, _nrt=False, inline="always")
def _interp(x, tab, row):
    """Piecewise-linear in tab[row] -> tab[row + 1] (proportional outside it)."""
    n = tab.shape[1]
    x0, xn = tab[row, 0], tab[row, n - 1]
    if x <= x0:
        return tab[row + 1, 0] * x / x0 if x0 > 0 else tab[row + 1, 0]
    if x >= xn:
        return tab[row + 1, n - 1] * x / xn
    lo, hi = 0, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if tab[row, mid] <= x:
            lo = mid
        else:
            hi = mid
    f = (x - tab[row, lo]) / (tab[row, hi] - tab[row, lo])
    return tab[row + 1, lo] + f * (tab[row + 1, hi] - tab[row + 1, lo])


@njit(cache=True, _nrt=False)
def _enqueue_front(r, i, rint, qi):
    qi[i, Q_NXT] = rint[r, R_HEAD]
    rint[r, R_HEAD] = i
    if rint[r, R_TAIL] < 0:
        rint[r, R_TAIL] = i
    rint[r, R_QLEN] += 1


@njit(cache=True, _nrt=False)
def _enqueue_back(r, i, rint, qi):
    qi[i, Q_NXT] = -1
    if rint[r, R_TAIL] < 0:
        rint[r, R_HEAD] = i
    else:
        qi[rint[r, R_TAIL], Q_NXT] = i
    rint[r, R_TAIL] = i
    rint[r, R_QLEN] += 1


@njit(cache=True, _nrt=False)
def _pop_front(r, rint, qi):
    i = rint[r, R_HEAD]
    rint[r, R_HEAD] = qi[i, Q_NXT]
    if rint[r, R_HEAD] < 0:
        rint[r, R_TAIL] = -1
    rint[r, R_QLEN] -= 1
    qi[i, Q_NXT] = -1
    return i


@njit(cache=True, _nrt=False)
def _unlist(r, row, n, i, lst):
    """Take i out of replica r's list `row` of n entries (the others keep their order)."""
    j = 0
    while lst[r, row, j] != i:
        j += 1
    for k in range(j, n - 1):
        lst[r, row, k] = lst[r, row, k + 1]
    lst[r, row, n - 1] = -1


@njit(cache=True, _nrt=False)
def fill_lut(tab, lut):
    """lut[0, k] and lut[1, k]: the linear layers' time for k tokens and the output layer's
    for k sequences (`_interp` of the table, precomputed: an iteration looks them up)."""
    for k in range(lut.shape[1]):
        lut[0, k] = _interp(float(k), tab, T_LIN_X)
        lut[1, k] = _interp(float(k), tab, T_HEAD_X)


@njit(cache=True, _nrt=False)
def init_requests(qi, qf, arrival_s, prompt, output, first, count):
    """Load requests first .. first + count - 1 into their rows (request a: row a % rows):
    not arrived, on no replica, nothing made."""
    rows = qi.shape[0]
    for a in range(first, first + count):
        i = a % rows
        for c in range(QI_COLS):
            qi[i, c] = 0
        qi[i, Q_PROMPT] = prompt[a]
        qi[i, Q_OUTPUT] = output[a]
        for c in (Q_REPLICA, Q_CHUNK, Q_NXT, Q_DK0, Q_HPOS):
            qi[i, c] = -1
        for c in range(QF_COLS):
            qf[i, c] = np.nan
        qf[i, F_ARR] = arrival_s[a]
        qf[i, F_ITL] = 0.0


# ------------------------------------------- a replica's decode ends: an indexed min-heap
@njit(cache=True, _nrt=False)
def _hplace(r, lst, qi, n, k, key, i):
    """Put (key, i) into the hole at k of replica r's heap of n entries, sifting it up or
    down (ties: the lower request index first); qi[i, Q_HPOS] is i's place."""
    while k > 0:
        p = (k - 1) // 2
        pk, pv = lst[r, L_HKEY, p], lst[r, L_HVAL, p]
        if pk < key or (pk == key and pv < i):
            break
        lst[r, L_HKEY, k], lst[r, L_HVAL, k] = pk, pv
        qi[pv, Q_HPOS] = k
        k = p
    while True:
        c = 2 * k + 1
        if c >= n:
            break
        ck, cv = lst[r, L_HKEY, c], lst[r, L_HVAL, c]
        if c + 1 < n:
            dk, dv = lst[r, L_HKEY, c + 1], lst[r, L_HVAL, c + 1]
            if dk < ck or (dk == ck and dv < cv):
                c, ck, cv = c + 1, dk, dv
        if key < ck or (key == ck and i < cv):
            break
        lst[r, L_HKEY, k], lst[r, L_HVAL, k] = ck, cv
        qi[cv, Q_HPOS] = k
        k = c
    lst[r, L_HKEY, k], lst[r, L_HVAL, k] = key, i
    qi[i, Q_HPOS] = k


@njit(cache=True, _nrt=False)
def _hremove(r, lst, rint, qi, k):
    """Remove the entry at place k of replica r's heap."""
    n = rint[r, R_NHEAP] - 1
    rint[r, R_NHEAP] = n
    qi[lst[r, L_HVAL, k], Q_HPOS] = -1
    if k < n:
        _hplace(r, lst, qi, n, k, lst[r, L_HKEY, n], lst[r, L_HVAL, n])


# ------------------------------------------- a replica's inter-token gaps: a record stack
@njit(cache=True, _nrt=False, inline="always")
def _gap_push(r, m, g, stk, rint, lst, qi):
    """Decode iteration m of replica r came g after the one before. The stack keeps the gaps
    no later gap equals or exceeds (decreasing from the bottom), so the largest gap from
    iteration a on is the first entry at or after a (`_gap_max`). When it is full, entries
    before the first gap any running request can ask for go; if none can, the two adjacent
    entries closest in size merge (the later iteration keeps the larger gap: a request that
    started decoding between them sees at most their difference too much)."""
    n = rint[r, R_NSTK]
    while n > 0 and stk[r, 1, n - 1] <= g:
        n -= 1
    if n == stk.shape[2]:
        n = _gap_room(r, m, n, stk, rint, lst, qi)
    stk[r, 0, n], stk[r, 1, n] = m, g
    rint[r, R_NSTK] = n + 1


@njit(cache=True, _nrt=False)
def _gap_room(r, m, n, stk, rint, lst, qi):
    """Make room in replica r's full gap stack (`_gap_push`); returns its new length."""
    lo = m
    for j in range(rint[r, R_NRUN]):
        d0 = qi[lst[r, L_RUN, j], Q_DK0]
        if d0 >= 0 and d0 + 2 < lo:
            lo = d0 + 2
    drop = 0
    while drop < n and stk[r, 0, drop] < lo:
        drop += 1
    if drop == 0:
        best = 0
        for k in range(1, n - 1):
            if stk[r, 1, k] - stk[r, 1, k + 1] < stk[r, 1, best] - stk[r, 1, best + 1]:
                best = k
        stk[r, 1, best + 1] = stk[r, 1, best]
        for k in range(best + 1, n):
            stk[r, 0, k - 1], stk[r, 1, k - 1] = stk[r, 0, k], stk[r, 1, k]
        n -= 1
    else:
        for k in range(drop, n):
            stk[r, 0, k - drop], stk[r, 1, k - drop] = stk[r, 0, k], stk[r, 1, k]
        n -= drop
    return n


@njit(cache=True, _nrt=False)
def _gap_max(r, a, stk, rint):
    """The largest gap of replica r's decode iterations a, a + 1, ... (-1: none yet)."""
    lo, hi = 0, rint[r, R_NSTK]
    while lo < hi:
        mid = (lo + hi) // 2
        if stk[r, 0, mid] < a:
            lo = mid + 1
        else:
            hi = mid
    return stk[r, 1, lo] if lo < rint[r, R_NSTK] else -1.0


@njit(cache=True, _nrt=False)
def _join(r, i, rint, lst, qi):
    """Request i (its prompt in the KV cache) decodes on replica r from its next decode
    iteration: its tokens made and context are as of decode iteration Q_DK0; it ends in
    iteration Q_DK0 + the tokens it has left to make."""
    d0 = rint[r, R_DK]
    qi[i, Q_DK0] = d0
    rint[r, R_DEC] += 1
    rint[r, R_SCTX] += qi[i, Q_CTX]
    n = rint[r, R_NHEAP] + 1
    rint[r, R_NHEAP] = n
    _hplace(r, lst, qi, n, n - 1, d0 + qi[i, Q_OUTPUT] - qi[i, Q_GEN], i)
    lst[r, L_PEND, rint[r, R_NPEND]] = i
    rint[r, R_NPEND] += 1


@njit(cache=True, _nrt=False)
def _settle(r, i, rint, qi, qf, rf, stk):
    """Bring decoding request i's counts, last token time and largest gap up to date with
    replica r's decode iterations; it no longer decodes."""
    n = rint[r, R_DK] - qi[i, Q_DK0]
    if n > 0:
        qi[i, Q_GEN] += n
        qi[i, Q_CTX] += n
        qf[i, F_LAST] = rf[r, RF_DEC]
        g = _gap_max(r, qi[i, Q_DK0] + 2, stk, rint)
        if g > qf[i, F_ITL]:
            qf[i, F_ITL] = g
    qi[i, Q_DK0] = -1


@njit(cache=True, _nrt=False, inline="always")
def _start(r, t, rint, rf, lst, qi, qf, stk, tab, lut, max_tokens, max_seqs, kv_cap, chunked,
           attn_flop_s, kv_read_s, overhead_s):
    """Form replica r's next batch at time t and set its end; idle if there is nothing to do
    (or it is not serving yet)."""
    if rint[r, R_STATE] != ACTIVE and rint[r, R_STATE] != DRAINING:
        rf[r, RF_END] = np.inf
        return
    budget = max_tokens
    # 1. decodes: one token each; preempt the newest while the cache cannot grow by one each
    while rint[r, R_KV] + rint[r, R_DEC] > kv_cap and rint[r, R_NRUN] > 0:
        i = lst[r, L_RUN, rint[r, R_NRUN] - 1]
        if qi[i, Q_DK0] >= 0:  # decoding
            _hremove(r, lst, rint, qi, qi[i, Q_HPOS])
            if qi[i, Q_DK0] == rint[r, R_DK]:  # (no decode iteration since it joined)
                _unlist(r, L_PEND, rint[r, R_NPEND], i, lst)
                rint[r, R_NPEND] -= 1
            _settle(r, i, rint, qi, qf, rf, stk)
            rint[r, R_DEC] -= 1
            rint[r, R_SCTX] -= qi[i, Q_CTX]
        else:  # prefilling: the last of those too
            rint[r, R_NPF] -= 1
        rint[r, R_NRUN] -= 1
        lst[r, L_RUN, rint[r, R_NRUN]] = -1
        rint[r, R_KV] -= qi[i, Q_CTX]
        qi[i, Q_CTX] = 0
        qi[i, Q_PREF] = 0
        qi[i, Q_TARGET] = qi[i, Q_PROMPT] + qi[i, Q_GEN]
        qi[i, Q_STATUS] = QUEUED
        qi[i, Q_PREEMPTS] += 1
        rint[r, R_PREEMPT] += 1
        _enqueue_front(r, i, rint, qi)
    head = rint[r, R_HEAD]
    can_admit = (rint[r, R_QLEN] > 0 and rint[r, R_NRUN] < max_seqs
                 and rint[r, R_KV] + qi[head, Q_TARGET] <= kv_cap
                 and qi[head, Q_PREF] < qi[head, Q_TARGET])
    prefill_only = (not chunked) and (rint[r, R_NPF] > 0 or can_admit)
    # the decodes take their tokens first (a token each), the prefills under way the rest, in
    # running order
    tokens = 0
    seqs = 0
    kv_read = 0  # tokens of KV read
    if not prefill_only:
        d = rint[r, R_DEC]
        tokens = seqs = d
        kv_read = rint[r, R_SCTX]
        rint[r, R_SCTX] += d
        rint[r, R_KV] += d
    attn = 0.0
    for k in range(rint[r, R_NPF]):
        i = lst[r, L_PF, k]
        qi[i, Q_CHUNK] = -1
        if budget - tokens > 0 or (prefill_only and tokens == 0):
            done = qi[i, Q_PREF]
            left = qi[i, Q_TARGET] - done
            c = left if not chunked else min(left, budget - tokens)
            qi[i, Q_CHUNK] = c
            tokens += c
            attn += c * (done + 0.5 * c)
            kv_read += done
            if c >= left:
                seqs += 1
    # 3. admissions
    while (rint[r, R_QLEN] > 0 and rint[r, R_NRUN] < max_seqs
           and (budget - tokens > 0 or (prefill_only and tokens == 0))):
        i = rint[r, R_HEAD]
        want = qi[i, Q_TARGET]
        handed = qi[i, Q_PREF] >= want  # (from a prefill replica, with its KV cache)
        if rint[r, R_KV] + want + handed > kv_cap:
            break
        if handed and prefill_only:
            break
        if not chunked and tokens > 0 and tokens + (1 if handed else want) > budget:
            break
        _pop_front(r, rint, qi)
        lst[r, L_RUN, rint[r, R_NRUN]] = i
        rint[r, R_NRUN] += 1
        qi[i, Q_STATUS] = RUNNING
        qi[i, Q_CTX] = want
        rint[r, R_KV] += want
        if handed:  # it decodes now
            tokens += 1
            seqs += 1
            kv_read += want
            rint[r, R_KV] += 1
            _join(r, i, rint, lst, qi)
            rint[r, R_SCTX] += 1
            continue
        qi[i, Q_PREF] = 0
        c = want if not chunked else min(want, budget - tokens)
        qi[i, Q_CHUNK] = c
        tokens += c
        attn += c * 0.5 * c
        if c >= want:
            seqs += 1
        lst[r, L_PF, rint[r, R_NPF]] = i
        rint[r, R_NPF] += 1
    if tokens == 0:
        rf[r, RF_END] = np.inf
        return
    rint[r, R_DECNOW] = 1 if (not prefill_only and rint[r, R_DEC] > 0) else 0
    n = lut.shape[1]
    lin = lut[0, tokens] if tokens < n else _interp(float(tokens), tab, T_LIN_X)
    head = lut[1, seqs] if seqs < n else _interp(float(seqs), tab, T_HEAD_X)
    dt = overhead_s + lin + head + max(attn * attn_flop_s, float(kv_read) * kv_read_s)
    rf[r, RF_END] = t + dt
    rint[r, R_ITERS] += 1
    rint[r, R_BUSY_US] += int(dt * 1e6 + 0.5)
    rint[r, R_WORK] += tokens


@njit(cache=True, _nrt=False, inline="always")
def _finish(r, t, rint, rf, lst, qi, qf, stk, ctr, xh, xfer_s_token, xfer_s):
    """Apply replica r's iteration that ends at t: a token for each decoding request, prefill
    progress. On a prefill replica (role 1) a request whose first token this made leaves for
    a decode replica: its KV cache is freed here and it arrives there after the transfer
    (`xfer_s` + `xfer_s_token` x its context), on the heap xh."""
    if rint[r, R_DECNOW]:
        rint[r, R_DECNOW] = 0
        m = rint[r, R_DK] + 1
        rint[r, R_DK] = m
        if m >= 2:
            _gap_push(r, m, t - rf[r, RF_DEC], stk, rint, lst, qi)
        rf[r, RF_DEC] = t
        ctr[C_TOKENS] += rint[r, R_DEC]
        for k in range(rint[r, R_NPEND]):  # their first decoded token
            i = lst[r, L_PEND, k]
            gap = t - qf[i, F_LAST]
            if gap > qf[i, F_ITL]:
                qf[i, F_ITL] = gap
        rint[r, R_NPEND] = 0
        while rint[r, R_NHEAP] > 0 and lst[r, L_HKEY, 0] <= m:  # their last
            i = lst[r, L_HVAL, 0]
            _hremove(r, lst, rint, qi, 0)
            _settle(r, i, rint, qi, qf, rf, stk)
            qi[i, Q_STATUS] = DONE
            qf[i, F_DONE] = t
            ctr[DONE] += 1
            rint[r, R_DEC] -= 1
            rint[r, R_SCTX] -= qi[i, Q_CTX]
            rint[r, R_KV] -= qi[i, Q_CTX]
            qi[i, Q_CTX] = 0
            _unlist(r, L_RUN, rint[r, R_NRUN], i, lst)
            rint[r, R_NRUN] -= 1
    handoff = rint[r, R_ROLE] == 1
    kept = 0
    for k in range(rint[r, R_NPF]):
        i = lst[r, L_PF, k]
        c = qi[i, Q_CHUNK]
        qi[i, Q_CHUNK] = -1
        if c > 0:
            qi[i, Q_PREF] += c
            if qi[i, Q_PREF] >= qi[i, Q_TARGET]:  # a token
                qi[i, Q_GEN] += 1
                ctr[C_TOKENS] += 1
                if qf[i, F_FIRST] != qf[i, F_FIRST]:  # NaN: the first token
                    qf[i, F_FIRST] = t
                else:
                    gap = t - qf[i, F_LAST]
                    if gap > qf[i, F_ITL]:
                        qf[i, F_ITL] = gap
                qf[i, F_LAST] = t
                done = qi[i, Q_GEN] >= qi[i, Q_OUTPUT]
                if done or handoff:
                    if done:
                        qi[i, Q_STATUS] = DONE
                        qf[i, F_DONE] = t
                        ctr[DONE] += 1
                    else:  # to a decode replica, with the KV cache it has (the first
                        # token's is written by the decode that reads it, as on one replica)
                        context = qi[i, Q_PROMPT] + qi[i, Q_GEN] - 1
                        qi[i, Q_TARGET] = context
                        qi[i, Q_PREF] = context
                        _xpush(xh, ctr, t + xfer_s + xfer_s_token * context, i)
                        ctr[C_SENT] += context  # (tokens of KV sent, for the fabric's demand)
                    rint[r, R_KV] -= qi[i, Q_CTX]
                    qi[i, Q_CTX] = 0
                    _unlist(r, L_RUN, rint[r, R_NRUN], i, lst)
                    rint[r, R_NRUN] -= 1
                else:
                    _join(r, i, rint, lst, qi)
                continue
        lst[r, L_PF, kept] = i
        kept += 1
    rint[r, R_NPF] = kept


@njit(cache=True, _nrt=False)
def _refill(t, qf, ctr, wave):
    """A closed loop (`wave` clients, -1: none): each request that ended (served or dropped)
    sends the next at t; ctr[C_FILL] requests have been sent (given arrival times)."""
    if wave < 0:
        return
    target = min(qf.shape[0], wave + ctr[DONE] + ctr[DROPPED])
    while ctr[C_FILL] < target:  # (a closed loop's requests each have their own row)
        qf[ctr[C_FILL], F_ARR] = t
        ctr[C_FILL] += 1


@njit(cache=True, _nrt=False)
def _xpush(xh, ctr, t, i):
    """Push (t, i) on the binary min-heap xh of ctr[C_XN] entries."""
    k = ctr[C_XN]
    ctr[C_XN] += 1
    while k > 0:
        parent = (k - 1) // 2
        if xh[parent, 0] <= t:
            break
        xh[k, 0], xh[k, 1] = xh[parent, 0], xh[parent, 1]
        k = parent
    xh[k, 0], xh[k, 1] = t, i


@njit(cache=True, _nrt=False)
def _xpop(xh, ctr):
    """Pop the entry with the smallest t; returns its i."""
    top = int(xh[0, 1])
    ctr[C_XN] -= 1
    n = ctr[C_XN]
    last_t, last_i = xh[n, 0], xh[n, 1]
    k = 0
    while True:
        child = 2 * k + 1
        if child >= n:
            break
        if child + 1 < n and xh[child + 1, 0] < xh[child, 0]:
            child += 1
        if xh[child, 0] >= last_t:
            break
        xh[k, 0], xh[k, 1] = xh[child, 0], xh[child, 1]
        k = child
    xh[k, 0], xh[k, 1] = last_t, last_i
    return top


@njit(cache=True, _nrt=False)
def _route(rint, routing, rr, want_role):
    """The replica of role `want_role` (0: a replica that does both; 1: prefill; 2: decode)
    for the next request: among active replicas (else starting ones), the next in
    round-robin order from `rr`, or the one with the fewest queued and running requests
    (lowest index on ties); -1 if none is active or starting."""
    replicas = rint.shape[0]
    for want in (ACTIVE, STARTING):
        if routing == ROUND_ROBIN:
            for k in range(replicas):
                q = (rr + k) % replicas
                if rint[q, R_STATE] == want and rint[q, R_ROLE] == want_role:
                    return q
        else:
            r = -1
            best = 0
            for q in range(replicas):
                if rint[q, R_STATE] == want and rint[q, R_ROLE] == want_role:
                    load = rint[q, R_QLEN] + rint[q, R_NRUN]
                    if r < 0 or load < best:
                        best = load
                        r = q
            if r >= 0:
                return r
    return -1


@njit(cache=True, _nrt=False)
def _drop(i, why, qi, ctr):
    qi[i, Q_STATUS] = DROPPED
    qi[i, Q_REASON] = why
    ctr[DROPPED] += 1


@njit(cache=True, _nrt=False)
def _admit(i, rint, routing, rr, want_role, qi, ctr, max_queue):
    """Request i arrives: to a replica of `want_role` (`_route`), queued at its back, or
    dropped with its reason (no replica serving or starting; the queue full). Returns (the
    replica or -1, the round-robin counter)."""
    r = _route(rint, routing, rr, want_role)
    if r < 0:
        _drop(i, NO_REPLICA, qi, ctr)
        return -1, rr
    if routing == ROUND_ROBIN:
        rr = r + 1
    qi[i, Q_REPLICA] = r
    if max_queue >= 0 and rint[r, R_QLEN] >= max_queue:
        _drop(i, QUEUE_FULL, qi, ctr)
        return -1, rr
    qi[i, Q_STATUS] = QUEUED
    _enqueue_back(r, i, rint, qi)
    return r, rr


@njit(cache=True, _nrt=False, inline="always")
def _tree_fix(tree, rf, r):
    """Replica r's iteration end changed: update the tournament tree above it. `tree` holds,
    at each node, the replica (-1: none) whose iteration ends first below it, the lower index
    on ties; leaves are at p + r (p = tree.shape[0] // 2), so tree[1] is the next to end."""
    k = (tree.shape[0] // 2 + r) // 2
    while k >= 1:
        a, b = tree[2 * k], tree[2 * k + 1]
        if a < 0 or (b >= 0 and rf[b, RF_END] < rf[a, RF_END]):
            a = b
        tree[k] = a
        k //= 2


@njit(cache=True, _nrt=False)
def advance(t_now, until, cursor, loaded, qi, qf, rint, rf, lst, stk, ctr, xh, tree, tab, lut,
            routing, rr, max_tokens, max_seqs, kv_cap, max_len, max_queue, chunked, attn_flop_s,
            kv_read_s, overhead_s, wave, xfer_s_token, xfer_s):
    """Run the service from `t_now` to time `until`; returns (next arrival index, round-robin
    counter). Requests 0 .. `loaded` - 1 are in the slots: request a in row a % the rows
    (serving/service.py keeps the rows of those in flight; every list and link here holds
    rows). Replicas route and iterate by their state (OFF, STARTING, ACTIVE, DRAINING).
    ctr[DONE] and ctr[DROPPED] count the requests served and dropped so far. With
    disaggregation (role 1: prefill, 2: decode replicas; 0 everywhere: none) arrivals go to
    prefill replicas and requests whose KV transfer has ended (the heap xh) to decode
    replicas, least outstanding first. At one instant: iteration ends (replicas in index
    order), then transfers, then arrivals."""
    rows = qf.shape[0]
    replicas = rint.shape[0]
    first_role = rint[0, R_ROLE]  # (1 with disaggregation: arrivals go to prefill replicas)
    for r in range(1, replicas):
        first_role = min(first_role, rint[r, R_ROLE])
    for r in range(replicas):  # (the caller may have changed iteration ends)
        _tree_fix(tree, rf, r)
    a = cursor
    last = t_now
    boot = 0  # first, replicas that became active since the last call start on their queues
    while True:
        if boot < replicas:
            r = boot
            boot += 1
            if (rint[r, R_STATE] != ACTIVE or rf[r, RF_END] != np.inf
                    or rint[r, R_QLEN] == 0):
                continue
        else:
            if wave >= 0:  # a closed loop's next requests
                _refill(last, qf, ctr, wave)
            na = qf[a % rows, F_ARR] if a < loaded else np.inf
            r_best = tree[1]
            ne = rf[r_best, RF_END] if r_best >= 0 else np.inf
            nh = xh[0, 0] if ctr[C_XN] > 0 else np.inf
            if nh < ne and nh <= na:  # a KV transfer ends: to a decode replica
                if nh > until:
                    break
                i = _xpop(xh, ctr)
                last = nh
                r = _route(rint, LEAST_OUTSTANDING, 0, 2)
                if r < 0:
                    _drop(i, NO_REPLICA, qi, ctr)
                    continue
                qi[i, Q_REPLICA] = r
                qi[i, Q_STATUS] = QUEUED
                _enqueue_back(r, i, rint, qi)
                if rf[r, RF_END] != np.inf:
                    continue
            elif ne <= na:
                if ne > until:
                    break
                _finish(r_best, ne, rint, rf, lst, qi, qf, stk, ctr, xh, xfer_s_token, xfer_s)
                last = ne
                r = r_best
            else:
                if na > until:
                    break
                i = a % rows
                a += 1
                last = na
                qi[i, Q_TARGET] = qi[i, Q_PROMPT]
                total = qi[i, Q_PROMPT] + qi[i, Q_OUTPUT]
                if total > max_len or total > kv_cap:
                    _drop(i, TOO_LONG, qi, ctr)
                    continue
                r, rr = _admit(i, rint, routing, rr, first_role, qi, ctr, max_queue)
                if r < 0 or rf[r, RF_END] != np.inf:
                    continue
        # (one call site: _start is inlined, and each copy costs compile time)
        _start(r, last, rint, rf, lst, qi, qf, stk, tab, lut, max_tokens, max_seqs, kv_cap,
               chunked, attn_flop_s, kv_read_s, overhead_s)
        _tree_fix(tree, rf, r)
    return a, rr


# ---------------------------------------------------------------- DNN services
@njit(cache=True, _nrt=False)
def _try_batch(r, t, rint, rf, lst, qi, qf, max_batch, timeout, batch_s):
    """Dynamic batching: idle replica r starts a batch at t of the requests waiting (at most
    `max_batch`) if it has `max_batch` of them or the oldest has waited `timeout`."""
    if rf[r, RF_END] != np.inf or rint[r, R_QLEN] == 0:
        return
    if rint[r, R_STATE] != ACTIVE and rint[r, R_STATE] != DRAINING:
        return
    if rint[r, R_QLEN] < max_batch and t < qf[rint[r, R_HEAD], F_ARR] + timeout:
        return
    b = min(rint[r, R_QLEN], max_batch)
    for k in range(b):
        i = _pop_front(r, rint, qi)
        lst[r, L_RUN, k] = i
        qi[i, Q_STATUS] = RUNNING
    rint[r, R_NRUN] = b
    rint[r, R_ITERS] += 1
    rint[r, R_BUSY_US] += int(batch_s[b] * 1e6 + 0.5)
    rint[r, R_WORK] += b
    rf[r, RF_END] = t + batch_s[b]


@njit(cache=True, _nrt=False)
def advance_dnn(t_now, until, cursor, loaded, qi, qf, rint, rf, lst, ctr, routing, rr,
                max_batch, timeout, max_queue, batch_s, wave):
    """Run a DNN service from `t_now` to `until` (dynamic batching of one-sample requests);
    returns (next arrival index, round-robin counter). Batch ends come before timeouts, and
    both before arrivals at the same instant, replicas in index order; a request's answer (its
    first and last token) comes at the end of its batch. Requests and rows as in `advance`."""
    rows = qf.shape[0]
    replicas = rint.shape[0]
    a = cursor
    for r in range(replicas):  # replicas that became active since the last call
        _try_batch(r, t_now, rint, rf, lst, qi, qf, max_batch, timeout, batch_s)
    last = t_now
    while True:
        if wave >= 0:  # a closed loop's next requests
            _refill(last, qf, ctr, wave)
        na = qf[a % rows, F_ARR] if a < loaded else np.inf
        r_best = -1
        ne = np.inf
        for r in range(replicas):
            if rf[r, RF_END] < np.inf:
                t_r = rf[r, RF_END]
            elif rint[r, R_QLEN] > 0 and (rint[r, R_STATE] == ACTIVE
                                          or rint[r, R_STATE] == DRAINING):
                t_r = max(qf[rint[r, R_HEAD], F_ARR] + timeout, t_now)
            else:
                continue
            if t_r < ne:
                ne = t_r
                r_best = r
        if r_best >= 0 and ne <= na:
            if ne > until:
                break
            if rf[r_best, RF_END] == ne:  # the batch ends: its requests are answered
                for k in range(rint[r_best, R_NRUN]):
                    i = lst[r_best, L_RUN, k]
                    lst[r_best, L_RUN, k] = -1
                    qi[i, Q_STATUS] = DONE
                    qi[i, Q_GEN] = 1
                    qf[i, F_FIRST] = ne
                    qf[i, F_DONE] = ne
                    ctr[DONE] += 1
                    ctr[C_TOKENS] += 1
                rint[r_best, R_NRUN] = 0
                rf[r_best, RF_END] = np.inf
            _try_batch(r_best, ne, rint, rf, lst, qi, qf, max_batch, timeout, batch_s)
            last = ne
            continue
        if na > until:
            break
        i = a % rows
        a += 1
        last = na
        r, rr = _admit(i, rint, routing, rr, 0, qi, ctr, max_queue)
        if r >= 0:
            _try_batch(r, na, rint, rf, lst, qi, qf, max_batch, timeout, batch_s)
    return a, rr


@njit(cache=True, _nrt=False)
def first_unfinished(qi, start, end):
    """The first request from `start` (before `end`) that is neither served nor dropped; `end`
    if none is."""
    rows = qi.shape[0]
    a = start
    while a < end:
        st = qi[a % rows, Q_STATUS]
        if st != DONE and st != DROPPED:
            return a
        a += 1
    return end
