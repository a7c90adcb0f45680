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
calibrated device profiles): linear layers by the tokens it processes (interpolated in
`lin_tokens` / `lin_s`), the output layer by the sequences that produce a token (`head_seqs` /
`head_s`), attention by its prefill work and the KV it reads, plus a fixed overhead. A request's
first token comes at the end of the iteration that completes its prefill, each later token at
the end of a decode iteration.

`advance_dnn` does the same for a DNN service (one-sample requests, dynamic batching: an idle
replica starts a batch of up to `max_batch` waiting requests once it has that many or the
oldest has waited `timeout`; a batch's time is `batch_s[size]`, serving/dnn.py).

State lives in arrays the caller owns (serving/service.py), so `advance` can be called again
from where it stopped; it keeps no Python objects and makes no SimPy events.
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

# per-replica integer state columns (R_BUSY_US: microseconds spent iterating, R_WORK: tokens
# or samples processed; the power model reads both, serving/service.py)
R_HEAD, R_TAIL, R_QLEN, R_NRUN, R_KV, R_ITERS, R_PREEMPT, R_BUSY_US, R_WORK = range(9)
R_INT_COLS = 9


@njit(cache=True)
def _interp(x, xs, ys):
    n = xs.shape[0]
    if x <= xs[0]:
        return ys[0] * x / xs[0] if xs[0] > 0 else ys[0]
    if x >= xs[n - 1]:
        return ys[n - 1] * x / xs[n - 1]
    lo, hi = 0, n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if xs[mid] <= x:
            lo = mid
        else:
            hi = mid
    f = (x - xs[lo]) / (xs[hi] - xs[lo])
    return ys[lo] + f * (ys[hi] - ys[lo])


@njit(cache=True)
def _enqueue_front(r, i, rint, nxt):
    nxt[i] = rint[r, R_HEAD]
    rint[r, R_HEAD] = i
    if rint[r, R_TAIL] < 0:
        rint[r, R_TAIL] = i
    rint[r, R_QLEN] += 1


@njit(cache=True)
def _enqueue_back(r, i, rint, nxt):
    nxt[i] = -1
    if rint[r, R_TAIL] < 0:
        rint[r, R_HEAD] = i
    else:
        nxt[rint[r, R_TAIL]] = i
    rint[r, R_TAIL] = i
    rint[r, R_QLEN] += 1


@njit(cache=True)
def _pop_front(r, rint, nxt):
    i = rint[r, R_HEAD]
    rint[r, R_HEAD] = nxt[i]
    if rint[r, R_HEAD] < 0:
        rint[r, R_TAIL] = -1
    rint[r, R_QLEN] -= 1
    nxt[i] = -1
    return i


@njit(cache=True)
def _start(r, t, state, rint, run, end_t, status, prompt, generated, prefilled, target, ctx,
           chunk, nxt, preempts, max_tokens, max_seqs, kv_cap, chunked, lin_tokens, lin_s,
           head_seqs, head_s, attn_flop_s, kv_read_s, overhead_s):
    """Form replica r's next batch at time t and set its end; idle if there is nothing to do
    (or it is not serving yet)."""
    if state[r] != ACTIVE and state[r] != DRAINING:
        end_t[r] = np.inf
        return
    budget = max_tokens
    # 1. decodes: one token each; preempt the newest while the cache cannot grow by one each
    decodes = 0
    prefilling = False
    for j in range(rint[r, R_NRUN]):
        i = run[r, j]
        if prefilled[i] >= target[i]:
            decodes += 1
        else:
            prefilling = True
    while rint[r, R_KV] + decodes > kv_cap and rint[r, R_NRUN] > 0:
        j = rint[r, R_NRUN] - 1
        i = run[r, j]
        if prefilled[i] >= target[i]:
            decodes -= 1
        rint[r, R_NRUN] -= 1
        rint[r, R_KV] -= ctx[i]
        ctx[i] = 0
        prefilled[i] = 0
        target[i] = prompt[i] + generated[i]
        status[i] = QUEUED
        preempts[i] += 1
        rint[r, R_PREEMPT] += 1
        _enqueue_front(r, i, rint, nxt)
        prefilling = False
        for k in range(rint[r, R_NRUN]):
            if prefilled[run[r, k]] < target[run[r, k]]:
                prefilling = True
    head = rint[r, R_HEAD]
    can_admit = (rint[r, R_QLEN] > 0 and rint[r, R_NRUN] < max_seqs
                 and rint[r, R_KV] + target[head] <= kv_cap and prefilled[head] < target[head])
    prefill_only = (not chunked) and (prefilling or can_admit)
    # 1 and 2 in one pass: the decodes take their tokens first (`decodes` of the budget), the
    # prefills under way the rest, in running order
    tokens = 0 if prefill_only else decodes
    seqs = 0
    attn = 0.0
    kv_read = 0.0
    for j in range(rint[r, R_NRUN]):
        i = run[r, j]
        chunk[i] = -1
        left = target[i] - prefilled[i]
        if left <= 0:
            if not prefill_only:
                chunk[i] = 0
                seqs += 1
                kv_read += ctx[i]
                ctx[i] += 1
                rint[r, R_KV] += 1
        elif budget - tokens > 0 or (prefill_only and tokens == 0):
            c = left if not chunked else min(left, budget - tokens)
            chunk[i] = c
            tokens += c
            attn += c * (prefilled[i] + 0.5 * c)
            kv_read += prefilled[i]
            if prefilled[i] + c >= target[i]:
                seqs += 1
    # 3. admissions
    while (rint[r, R_QLEN] > 0 and rint[r, R_NRUN] < max_seqs
           and (budget - tokens > 0 or (prefill_only and tokens == 0))):
        i = rint[r, R_HEAD]
        handed = prefilled[i] >= target[i]  # (from a prefill replica, with its KV cache)
        if rint[r, R_KV] + target[i] + handed > kv_cap:
            break
        if handed and prefill_only:
            break
        if not chunked and tokens > 0 and tokens + (1 if handed else target[i]) > budget:
            break
        _pop_front(r, rint, nxt)
        run[r, rint[r, R_NRUN]] = i
        rint[r, R_NRUN] += 1
        status[i] = RUNNING
        ctx[i] = target[i]
        rint[r, R_KV] += target[i]
        if prefilled[i] >= target[i]:  # handed over with its KV cache: it decodes now
            chunk[i] = 0
            tokens += 1
            seqs += 1
            kv_read += ctx[i]
            ctx[i] += 1
            rint[r, R_KV] += 1
            continue
        prefilled[i] = 0
        c = target[i] if not chunked else min(target[i], budget - tokens)
        chunk[i] = c
        tokens += c
        attn += c * 0.5 * c
        if c >= target[i]:
            seqs += 1
    if tokens == 0:
        end_t[r] = np.inf
        return
    dt = (overhead_s + _interp(float(tokens), lin_tokens, lin_s)
          + _interp(float(seqs), head_seqs, head_s)
          + max(attn * attn_flop_s, kv_read * kv_read_s))
    end_t[r] = t + dt
    rint[r, R_ITERS] += 1
    rint[r, R_BUSY_US] += int(dt * 1e6 + 0.5)
    rint[r, R_WORK] += tokens


@njit(cache=True)
def _finish(r, t, rint, run, status, output, generated, prefilled, target, ctx, chunk,
            first_t, last_t, done_t, max_itl, counts, role, prompt, xfer_s_token, xfer_s,
            ht, hi, hn):
    """Apply replica r's iteration that ends at t: prefill progress and tokens. On a prefill
    replica (role 1) a request whose first token this made leaves for a decode replica: its KV
    cache is freed here and it arrives there after the transfer (`xfer_s` + `xfer_s_token`
    x its context), on the heap ht/hi."""
    handoff = role[r] == 1
    j = 0
    while j < rint[r, R_NRUN]:
        i = run[r, j]
        c = chunk[i]
        made = False
        if c > 0:
            prefilled[i] += c
            made = prefilled[i] >= target[i]
        elif c == 0:
            made = True
        chunk[i] = -1
        if made:
            generated[i] += 1
            if first_t[i] != first_t[i]:  # NaN: the first token
                first_t[i] = t
            else:
                gap = t - last_t[i]
                if gap > max_itl[i]:
                    max_itl[i] = gap
            last_t[i] = t
            done = generated[i] >= output[i]
            if done or handoff:
                if done:
                    status[i] = DONE
                    done_t[i] = t
                    counts[DONE] += 1
                else:  # to a decode replica, with the KV cache it has (the first
                    # token's is written by the decode that reads it, as on one replica)
                    context = prompt[i] + generated[i] - 1
                    target[i] = context
                    prefilled[i] = context
                    _heap_push(ht, hi, hn, t + xfer_s + xfer_s_token * context, i)
                    hn[1] += context  # (tokens of KV sent, for the fabric's demand)
                rint[r, R_KV] -= ctx[i]
                ctx[i] = 0
                for k in range(j, rint[r, R_NRUN] - 1):
                    run[r, k] = run[r, k + 1]
                rint[r, R_NRUN] -= 1
                continue
        j += 1


@njit(cache=True)
def _refill(t, arr_t, counts, wave, fill):
    """A closed loop (`wave` clients, -1: none): each request that ended (served or dropped)
    sends the next at t; `fill[0]` requests have been sent (given arrival times)."""
    if wave < 0:
        return
    target = min(arr_t.shape[0], wave + counts[DONE] + counts[DROPPED])
    while fill[0] < target:
        arr_t[fill[0]] = t
        fill[0] += 1


@njit(cache=True)
def _heap_push(ht, hi, hn, t, i):
    """Push (t, i) on the binary min-heap ht/hi of hn[0] entries."""
    k = hn[0]
    hn[0] += 1
    while k > 0:
        parent = (k - 1) // 2
        if ht[parent] <= t:
            break
        ht[k], hi[k] = ht[parent], hi[parent]
        k = parent
    ht[k], hi[k] = t, i


@njit(cache=True)
def _heap_pop(ht, hi, hn):
    """Pop the entry with the smallest t; returns its i."""
    top = hi[0]
    hn[0] -= 1
    last_t, last_i = ht[hn[0]], hi[hn[0]]
    k = 0
    while True:
        child = 2 * k + 1
        if child >= hn[0]:
            break
        if child + 1 < hn[0] and ht[child + 1] < ht[child]:
            child += 1
        if ht[child] >= last_t:
            break
        ht[k], hi[k] = ht[child], hi[child]
        k = child
    ht[k], hi[k] = last_t, last_i
    return top


@njit(cache=True)
def _route(state, rint, routing, rr, role, want_role):
    """The replica of role `want_role` (0: a replica that does both; 1: prefill; 2: decode)
    for the next request: among active replicas (else starting ones), the next in
    round-robin order from `rr`, or the one with the fewest queued and running requests
    (lowest index on ties); -1 if none is active or starting."""
    replicas = state.shape[0]
    for want in (ACTIVE, STARTING):
        if routing == ROUND_ROBIN:
            for k in range(replicas):
                q = (rr + k) % replicas
                if state[q] == want and role[q] == want_role:
                    return q
        else:
            r = -1
            best = 0
            for q in range(replicas):
                if state[q] == want and role[q] == want_role:
                    load = rint[q, R_QLEN] + rint[q, R_NRUN]
                    if r < 0 or load < best:
                        best = load
                        r = q
            if r >= 0:
                return r
    return -1


@njit(cache=True)
def _admit(i, state, rint, routing, rr, role, want_role, replica, status, reason, counts,
           max_queue, nxt):
    """Request i arrives: to a replica of `want_role` (`_route`), queued at its back, or
    dropped with its reason (no replica serving or starting; the queue full). Returns (the
    replica or -1, the round-robin counter)."""
    r = _route(state, rint, routing, rr, role, want_role)
    if r < 0:
        status[i] = DROPPED
        reason[i] = NO_REPLICA
        counts[DROPPED] += 1
        return -1, rr
    if routing == ROUND_ROBIN:
        rr = r + 1
    replica[i] = r
    if max_queue >= 0 and rint[r, R_QLEN] >= max_queue:
        status[i] = DROPPED
        reason[i] = QUEUE_FULL
        counts[DROPPED] += 1
        return -1, rr
    status[i] = QUEUED
    _enqueue_back(r, i, rint, nxt)
    return r, rr


@njit(cache=True)
def advance(t_now, until, cursor, arr_t, prompt, output, replica, status, reason, generated,
            prefilled, target, ctx, chunk, nxt, preempts, first_t, last_t, done_t, max_itl, rint,
            run, end_t, counts, state, routing, rr, max_tokens, max_seqs, kv_cap, max_len,
            max_queue, chunked, lin_tokens, lin_s, head_seqs, head_s, attn_flop_s, kv_read_s,
            overhead_s, wave, fill, role, xfer_s_token, xfer_s, ht, hi, hn):
    """Run the service from `t_now` to time `until`; returns (next arrival index, round-robin
    counter). Replicas route and iterate by `state` (OFF, STARTING, ACTIVE, DRAINING).
    `counts[DONE]` and `counts[DROPPED]` count the requests served and dropped so far.
    With disaggregation (`role` 1: prefill, 2: decode replicas; 0 everywhere: none) arrivals
    go to prefill replicas and requests whose KV transfer has ended (the heap ht/hi) to
    decode replicas, least outstanding first. At one instant: iteration ends (replicas in
    index order), then transfers, then arrivals."""
    n = arr_t.shape[0]
    replicas = end_t.shape[0]
    a = cursor
    # replicas that became active since the last call start on their queues now
    for r in range(replicas):
        if state[r] == ACTIVE and end_t[r] == np.inf and rint[r, R_QLEN] > 0:
            _start(r, t_now, state, rint, run, end_t, status, prompt, generated, prefilled,
                   target, ctx, chunk, nxt, preempts, max_tokens, max_seqs, kv_cap, chunked,
                   lin_tokens, lin_s, head_seqs, head_s, attn_flop_s, kv_read_s, overhead_s)
    last = t_now
    while True:
        if wave >= 0:  # a closed loop's next requests
            _refill(last, arr_t, counts, wave, fill)
        na = arr_t[a] if a < n else np.inf
        r_best = -1
        ne = np.inf
        for r in range(replicas):
            if end_t[r] < ne:
                ne = end_t[r]
                r_best = r
        nh = ht[0] if hn[0] > 0 else np.inf
        if nh < ne and nh <= na:  # a KV transfer ends: to a decode replica
            if nh > until:
                break
            i = _heap_pop(ht, hi, hn)
            last = nh
            r = _route(state, rint, LEAST_OUTSTANDING, 0, role, 2)
            if r < 0:
                status[i] = DROPPED
                reason[i] = NO_REPLICA
                counts[DROPPED] += 1
                continue
            replica[i] = r
            status[i] = QUEUED
            _enqueue_back(r, i, rint, nxt)
            if end_t[r] == np.inf:
                _start(r, nh, state, rint, run, end_t, status, prompt, generated, prefilled,
                       target, ctx, chunk, nxt, preempts, max_tokens, max_seqs, kv_cap,
                       chunked, lin_tokens, lin_s, head_seqs, head_s, attn_flop_s, kv_read_s,
                       overhead_s)
            continue
        if ne <= na:
            if ne > until:
                break
            _finish(r_best, ne, rint, run, status, output, generated, prefilled, target, ctx,
                    chunk, first_t, last_t, done_t, max_itl, counts, role, prompt,
                    xfer_s_token, xfer_s, ht, hi, hn)
            _start(r_best, ne, state, rint, run, end_t, status, prompt, generated, prefilled,
                   target, ctx, chunk, nxt, preempts, max_tokens, max_seqs, kv_cap, chunked,
                   lin_tokens, lin_s, head_seqs, head_s, attn_flop_s, kv_read_s, overhead_s)
            last = ne
            continue
        if na > until:
            break
        i = a
        a += 1
        last = na
        target[i] = prompt[i]
        if prompt[i] + output[i] > max_len or prompt[i] + output[i] > kv_cap:
            status[i] = DROPPED
            reason[i] = TOO_LONG
            counts[DROPPED] += 1
            continue
        r, rr = _admit(i, state, rint, routing, rr, role, role.min(),  # (1: disaggregated)
                       replica, status, reason, counts, max_queue, nxt)
        if r >= 0 and end_t[r] == np.inf:
            _start(r, na, state, rint, run, end_t, status, prompt, generated, prefilled, target,
                   ctx, chunk, nxt, preempts, max_tokens, max_seqs, kv_cap, chunked, lin_tokens,
                   lin_s, head_seqs, head_s, attn_flop_s, kv_read_s, overhead_s)
    return a, rr


# ---------------------------------------------------------------- DNN services
@njit(cache=True)
def _try_batch(r, t, state, rint, run, end_t, arr_t, status, nxt, max_batch, timeout,
               batch_s):
    """Dynamic batching: idle replica r starts a batch at t of the requests waiting (at most
    `max_batch`) if it has `max_batch` of them or the oldest has waited `timeout`."""
    if end_t[r] != np.inf or rint[r, R_QLEN] == 0:
        return
    if state[r] != ACTIVE and state[r] != DRAINING:
        return
    if rint[r, R_QLEN] < max_batch and t < arr_t[rint[r, R_HEAD]] + timeout:
        return
    b = min(rint[r, R_QLEN], max_batch)
    for k in range(b):
        i = _pop_front(r, rint, nxt)
        run[r, k] = i
        status[i] = RUNNING
    rint[r, R_NRUN] = b
    rint[r, R_ITERS] += 1
    rint[r, R_BUSY_US] += int(batch_s[b] * 1e6 + 0.5)
    rint[r, R_WORK] += b
    end_t[r] = t + batch_s[b]


@njit(cache=True)
def advance_dnn(t_now, until, cursor, arr_t, replica, status, reason, generated, first_t,
                done_t, nxt, rint, run, end_t, counts, state, routing, rr, max_batch, timeout,
                max_queue, batch_s, wave, fill, role):
    """Run a DNN service from `t_now` to `until` (dynamic batching of one-sample requests);
    returns (next arrival index, round-robin counter). Batch ends come before timeouts, and
    both before arrivals at the same instant, replicas in index order; a request's answer (its
    first and last token) comes at the end of its batch."""
    n = arr_t.shape[0]
    replicas = end_t.shape[0]
    a = cursor
    for r in range(replicas):  # replicas that became active since the last call
        _try_batch(r, t_now, state, rint, run, end_t, arr_t, status, nxt, max_batch, timeout,
                   batch_s)
    last = t_now
    while True:
        if wave >= 0:  # a closed loop's next requests
            _refill(last, arr_t, counts, wave, fill)
        na = arr_t[a] if a < n else np.inf
        r_best = -1
        ne = np.inf
        for r in range(replicas):
            if end_t[r] < np.inf:
                t_r = end_t[r]
            elif rint[r, R_QLEN] > 0 and (state[r] == ACTIVE or state[r] == DRAINING):
                t_r = max(arr_t[rint[r, R_HEAD]] + timeout, t_now)
            else:
                continue
            if t_r < ne:
                ne = t_r
                r_best = r
        if r_best >= 0 and ne <= na:
            if ne > until:
                break
            if end_t[r_best] == ne:  # the batch ends: its requests are answered
                for k in range(rint[r_best, R_NRUN]):
                    i = run[r_best, k]
                    run[r_best, k] = -1
                    status[i] = DONE
                    generated[i] = 1
                    first_t[i] = ne
                    done_t[i] = ne
                    counts[DONE] += 1
                rint[r_best, R_NRUN] = 0
                end_t[r_best] = np.inf
            _try_batch(r_best, ne, state, rint, run, end_t, arr_t, status, nxt, max_batch,
                       timeout, batch_s)
            last = ne
            continue
        if na > until:
            break
        i = a
        a += 1
        last = na
        r, rr = _admit(i, state, rint, routing, rr, role, 0, replica, status, reason, counts,
                       max_queue, nxt)
        if r >= 0:
            _try_batch(r, na, state, rint, run, end_t, arr_t, status, nxt, max_batch,
                       timeout, batch_s)
    return a, rr
