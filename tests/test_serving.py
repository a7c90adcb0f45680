"""Inference services (docs/serving.md): the LLM replica's costs, the continuous-batching
kernel's semantics against hand-computed timings, conservation of requests, request streams,
the Azure trace reader, bad input, and services beside training jobs."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from dcsim import catalog, scenario_from_dict, simulate
from dcsim.errors import ScenarioError
from dcsim.rng import RandomStreams
from dcsim.scenario import GptModel
from dcsim.scenario.serving import ServiceSpec
from dcsim.serving.llm import ServingFitError, llm_cost, params_of
from dcsim.serving.requests import Requests, make_requests, read_azure_llm
from dcsim.serving.service import ServiceRun
from tests.conftest import REPO

AZURE = REPO / "data" / "traces" / "azure_llm_2023"
H100 = catalog.gpus()["h100-sxm5-80gb"]


def _model(name: str) -> GptModel:
    return GptModel(**catalog.model_presets()[name], name=name)


def _cost(name="llama3-8b", tp=1, max_tokens=8192, max_seqs=256, fraction=0.9, overhead=None):
    return llm_cost(_model(name), H100, tp, "bf16", max_tokens, max_seqs, fraction, 450e9,
                    2e-6, overhead)


def _spec(**kw) -> ServiceSpec:
    d = {"name": "s", "model": "llama3-8b", "gpu_type": "h100-sxm5-80gb", "replicas": 1,
         "requests": {"kind": "poisson", "rate_per_s": 1, "duration_s": 10,
                      "prompt_tokens": {"mean": 100}, "output_tokens": {"mean": 10}}}
    d.update(kw)
    return ServiceSpec.model_validate(d)


def _run(spec: ServiceSpec, arrivals, prompts, outputs, until=1e6, cost=None) -> ServiceRun:
    req = Requests(np.asarray(arrivals, float), np.asarray(prompts, np.int64),
                   np.asarray(outputs, np.int64), len(arrivals))
    b = spec.batching
    run = ServiceRun(0, spec, cost or _cost(max_tokens=b.max_tokens, max_seqs=b.max_seqs,
                                            fraction=b.memory_fraction), req)
    run.advance(until)
    run.stop_s = until
    return run


# ---------------------------------------------------------------- the replica's costs
def test_published_parameter_counts_and_kv_bytes():
    for name, billions in (("llama3-8b", 8.03), ("llama3-70b", 70.55), ("llama2-7b", 6.74),
                           ("llama2-70b", 68.98)):
        assert sum(params_of(_model(name))) / 1e9 == pytest.approx(billions, abs=0.01)
    # Llama 3 8B in bf16: 2 x 32 layers x 8 KV heads x 128 x 2 bytes = 128 KiB per token
    assert _cost().memory.kv_bytes_per_token == 131072
    # tp 8 over 8 KV heads: one head per GPU
    assert _cost("llama3-70b", tp=8).memory.kv_bytes_per_token == 2 * 80 * 128 * 2


def test_decode_is_bound_by_streaming_the_weights_and_prefill_by_compute():
    c = _cost(overhead=0.0)
    weights_s = c.memory.weights / (H100.hbm_bandwidth_byte_s * 0.85)
    one = c.decode_s(1, 100)
    assert weights_s <= one <= 1.3 * weights_s  # batch 1: the weights once per token
    assert c.decode_s(32, 100) < 1.3 * one  # a batch shares the weights
    # a long prefill runs at most at peak: >= 2 x params x tokens / peak
    assert c.prefill_s(4096, 8192) >= 2 * c.params * 4096 / H100.peak_flop_s["bf16"]
    assert c.prefill_s(4096, 8192) > 3 * c.prefill_s(1024, 8192)  # and grows with it


def test_kv_capacity_follows_memory_and_a_model_that_does_not_fit_says_why():
    assert _cost(fraction=0.9).kv_capacity_tokens > 2 * _cost(fraction=0.5).kv_capacity_tokens
    with pytest.raises(ServingFitError, match=r"weights 141\.1 GB"):
        _cost("llama3-70b", tp=1)
    assert _cost("llama3-70b", tp=4).kv_capacity_tokens > 100_000


# ---------------------------------------------------------------- the kernel
def test_a_lone_request_takes_its_prefill_then_one_decode_per_token():
    spec = _spec(batching={"max_tokens": 512})
    c = _cost(max_tokens=512)
    run = _run(spec, [1.0], [1200], [5], cost=c)
    f = run.request_frame().iloc[0]
    prefill = c.prefill_s(1200, 512)  # three chunks: 512, 512, 176
    assert f.ttft_s == pytest.approx(prefill, rel=1e-12)
    decodes = sum(c.decode_s(1, 1200 + k) for k in range(4))
    assert f.e2e_s == pytest.approx(prefill + decodes, rel=1e-12)
    assert f.tpot_s == pytest.approx(decodes / 4, rel=1e-12)
    assert f.status == "served" and run.counts[3] == 1


def _gap_stack(capacity: int):
    from dcsim.kernels import serving as k

    rint = np.zeros((1, k.R_INT_COLS), np.int64)
    lst = np.full((1, k.LISTS, 4), -1, np.int64)
    qi = np.full((4, k.QI_COLS), -1, np.int64)
    return k, rint, lst, qi, np.zeros((1, 2, capacity))


def test_the_gap_stack_answers_the_largest_gap_since_any_iteration():
    k, rint, lst, qi, stk = _gap_stack(8)
    rng = np.random.default_rng(1)
    gaps = {}
    # one request decodes, from five iterations back: older entries may go (it asks from its
    # second decode on), and the rest fit
    rint[0, k.R_NRUN] = 1
    lst[0, k.L_RUN, 0] = 0
    for m in range(2, 400):
        qi[0, k.Q_DK0] = max(0, m - 5)
        gaps[m] = float(rng.choice([rng.uniform(0, 1), 1 - m / 400]))  # noise and a decline
        k._gap_push(0, m, gaps[m], stk, rint, lst, qi)
        for a in range(max(2, m - 3), m + 1):
            assert k._gap_max(0, a, stk, rint) == max(gaps[j] for j in range(a, m + 1))
    assert k._gap_max(0, 400, stk, rint) == -1.0  # none yet


def test_a_full_gap_stack_merges_and_never_underestimates():
    k, rint, lst, qi, stk = _gap_stack(4)
    rint[0, k.R_NRUN] = 1
    lst[0, k.L_RUN, 0] = 0
    qi[0, k.Q_DK0] = 0  # decoding since the start: nothing may go, so entries merge
    gaps = {m: 1.0 / m for m in range(2, 40)}  # each smaller than the last
    for m, g in gaps.items():
        k._gap_push(0, m, g, stk, rint, lst, qi)
        for a in range(2, m + 1):
            true = max(gaps[j] for j in range(a, m + 1))
            assert true <= k._gap_max(0, a, stk, rint) <= gaps[max(2, a - 4 * 40)]
    assert rint[0, k.R_NSTK] == 4


def test_inter_token_gaps_match_between_a_full_and_a_small_gap_stack():
    arrivals = np.sort(np.random.default_rng(2).uniform(0, 30, 400))
    outputs = np.random.default_rng(3).integers(2, 400, 400)
    spec = _spec()
    full = _run(spec, arrivals, [300] * 400, outputs)

    small = ServiceRun(0, spec, _cost(), Requests(arrivals, np.full(400, 300, np.int64),
                                                 outputs.astype(np.int64), 400))
    small.stk = np.zeros((1, 2, 16))
    small.advance(1e6)
    a, b = full.request_frame(), small.request_frame()
    assert (a.status == "served").all() and a.e2e_s.equals(b.e2e_s)
    # the small stack drops or merges entries: never below the true largest gap
    assert (b.max_itl_s >= a.max_itl_s).all()
    assert (b.max_itl_s == a.max_itl_s).mean() > 0.5


def test_requests_in_one_batch_share_iterations():
    run = _run(_spec(), [0.0, 0.0, 0.0], [100, 100, 100], [20, 20, 20])
    f = run.request_frame()
    # the first starts the idle replica at once; the two behind it join the next iteration
    # together: their first tokens and completions come at the same instants
    assert f.ttft_s[1] == f.ttft_s[2] > f.ttft_s[0] and f.e2e_s[1] == f.e2e_s[2]


def test_round_robin_and_least_outstanding_routing():
    t = np.arange(12) * 1e-3
    rr = _run(_spec(replicas=3, routing="round-robin"), t, [50] * 12, [400] * 12)
    assert list(rr.replica) == [i % 3 for i in range(12)]
    lo = _run(_spec(replicas=3, routing="least-outstanding"), t, [50] * 12, [400] * 12)
    assert np.bincount(lo.replica, minlength=3).tolist() == [4, 4, 4]


def test_a_full_kv_cache_preempts_and_recomputes_and_every_request_is_served():
    c = _cost(fraction=0.25)  # a small cache (~20k tokens)
    n = 40
    run = _run(_spec(batching={"memory_fraction": 0.25}), np.zeros(n), [2000] * n, [600] * n,
               cost=c)
    f = run.request_frame()
    assert (f.status == "served").all()
    assert f.preemptions.sum() > 0
    assert run.rint[:, 4].sum() == 0  # the cache is empty again


def test_queue_limits_and_too_long_requests_are_dropped_with_reasons():
    run = _run(_spec(batching={"max_queue": 2, "max_seqs": 1}), np.zeros(6), [100] * 6,
               [50] * 6)
    f = run.request_frame()
    # one runs, two wait, the rest find the queue full
    assert (f.status == "dropped").sum() == 3 and set(f.reason[f.status == "dropped"]) == {
        "queue full"}
    long = _run(_spec(), [0.0, 1.0], [9000, 10], [10, 10])  # llama3-8b: 8,192 tokens
    g = long.request_frame()
    assert g.status.tolist() == ["dropped", "served"]
    assert g.reason[0] == "longer than max_len or the KV cache"


def test_without_chunked_prefill_prompts_are_prefilled_whole():
    spec = _spec(batching={"chunked_prefill": False, "max_tokens": 512})
    c = _cost(max_tokens=512)
    run = _run(spec, [0.0], [1200], [2], cost=c)
    one_pass = c.iteration_s(1200, 1, 1200 * 600, 0)
    assert run.request_frame().ttft_s[0] == pytest.approx(one_pass, rel=1e-12)


def test_conservation_when_cut_short():
    rng = np.random.default_rng(0)
    n = 3000
    t = np.sort(rng.uniform(0, 100, n))
    run = _run(_spec(replicas=2), t, rng.integers(10, 3000, n), rng.integers(1, 500, n),
               until=60.0)
    f = run.request_frame()
    counts = f.status.value_counts()
    assert counts.sum() == n
    assert counts["served"] + counts.get("dropped", 0) + counts["in_flight"] \
        + counts["not_arrived"] == n
    assert (f.arrival_s[f.status == "not_arrived"] > 60).all()
    assert counts["served"] == run.counts[3]


# ---------------------------------------------------------------- request streams
def test_synthetic_streams_have_their_rates_and_spreads():
    rng = RandomStreams(3).stream("x")
    base = {"rate_per_s": 50, "duration_s": 2000, "prompt_tokens": {"mean": 500, "sigma": 1},
            "output_tokens": {"mean": 100, "max": 300}}
    p = make_requests(_spec(requests={"kind": "poisson", **base}).requests, rng, ".", "s")
    assert len(p) == pytest.approx(100_000, rel=0.02)
    assert p.prompt.mean() == pytest.approx(500, rel=0.05) and p.output.max() == 100
    g = make_requests(_spec(requests={"kind": "gamma", "cv": 3, **base}).requests, rng, ".", "s")
    gaps = np.diff(g.arrival_s)
    assert gaps.std() / gaps.mean() == pytest.approx(3, rel=0.1)
    d = make_requests(_spec(requests={"kind": "diurnal", "period_s": 1000, "peak_s": 250,
                                      "peak_to_mean": 1.8, **base}).requests, rng, ".", "s")
    phase = d.arrival_s % 1000
    peak, trough = ((phase > 200) & (phase < 300)).sum(), ((phase > 700) & (phase < 800)).sum()
    assert peak / trough == pytest.approx(1.8 / 0.2, rel=0.15)


def test_the_azure_trace_as_its_source_counts_it():
    for name, rows, median_prompt, median_output in (("code", 8819, 1469, 13),
                                                     ("conv", 19366, 1020, 129)):
        path = AZURE / f"AzureLLMInferenceTrace_{name}.csv"
        raw = pd.read_csv(path)  # an independent reading
        q = read_azure_llm(path)
        assert len(q) == rows == len(raw)
        assert int(np.median(q.prompt)) == median_prompt == int(raw.ContextTokens.median())
        assert int(np.median(q.output)) == median_output
        span = (pd.to_datetime(raw.TIMESTAMP).iloc[-1]
                - pd.to_datetime(raw.TIMESTAMP).iloc[0]).total_seconds()
        assert q.arrival_s[-1] == pytest.approx(span, abs=1e-6)
    scaled = read_azure_llm(AZURE / "AzureLLMInferenceTrace_code.csv", time_scale=0.5, loops=3)
    assert len(scaled) == 3 * 8819 and np.all(np.diff(scaled.arrival_s) >= 0)
    assert scaled.arrival_s[8819] > scaled.arrival_s[8818]


def test_bad_trace_rows_are_located(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,374,44\n"
                 "2023-11-16 18:15:45.0,396,109\n2023-11-16 18:15:51.2,-5,55\n"
                 "yesterday,1,1\n2023-11-16 18:15:52,91,0\n")
    with pytest.raises(ScenarioError) as err:
        read_azure_llm(p)
    text = str(err.value)
    assert f"{p}:3:TIMESTAMP: 2023-11-16 18:15:45.0 is before the previous row" in text
    assert f"{p}:4:ContextTokens" in text and f"{p}:5:TIMESTAMP: not a time" in text
    assert f"{p}:6:GeneratedTokens" in text
    p.write_text("time,prompt\n1,2\n")
    with pytest.raises(ScenarioError, match="missing columns TIMESTAMP, ContextTokens"):
        read_azure_llm(p)


# ---------------------------------------------------------------- in a scenario
def _scenario(services, jobs=None, **kw):
    return {"name": "serve", "seed": 4,
            "cluster": {"servers": [{"type": "dgx-h100", "count": 2}]},
            "workload": {"jobs": jobs if jobs is not None else [
                {"name": "t", "model": "llama2-7b", "global_batch": 64, "iterations": 200,
                 "parallelism": {"dp": 16, "micro_batch": 1, "zero": 1}}]},
            "services": services, **kw}


CHAT = {"name": "chat", "model": "llama3-8b", "gpu_type": "h100-sxm5-80gb", "replicas": 4,
        "requests": {"kind": "gamma", "cv": 2, "rate_per_s": 8, "duration_s": 600,
                     "prompt_tokens": {"mean": 1000, "sigma": 0.8, "max": 6000},
                     "output_tokens": {"mean": 200, "sigma": 0.8, "max": 1000}},
        "slo": {"ttft_s": 0.5, "tpot_s": 0.05}, "sample_s": 30}


def test_a_service_beside_a_training_job_takes_its_gpus_first_and_gives_them_back():
    res = simulate(scenario_from_dict(_scenario([CHAT])))
    s = res.summary()
    svc = res.services.iloc[0]
    assert svc.requests == s["requests_total"] == len(res.requests)
    assert svc.served + svc.dropped + svc.in_flight + svc.not_arrived == svc.requests
    assert svc.served == svc.requests  # drained
    assert 0 < svc.ttft_p50_s <= svc.ttft_p99_s and svc.slo_attainment > 0.9
    # the 16-GPU job waits for the service's 4 GPUs
    job = res.jobs.iloc[0]
    assert job.start_s == pytest.approx(svc.end_s)
    assert s["serving_gpu_hours"] == pytest.approx(4 * svc.end_s / 3600)
    tl = res.service_timeline
    assert tl.time_s.is_monotonic_increasing and tl.served.iloc[-1] == svc.served
    assert s["gpu_utilization"] <= 1.0


def test_same_seed_same_bytes_and_the_tables_round_trip(tmp_path):
    from dcsim import load_results

    sc = scenario_from_dict(_scenario([CHAT], jobs=[]))
    a, b = simulate(sc), simulate(sc)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for name in ("requests.csv", "services.csv", "service_timeline.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    back = load_results(tmp_path / "a")
    assert len(back.requests) == len(a.requests) and back.services.service[0] == "chat"


def test_the_horizon_leaves_requests_in_flight_and_not_arrived():
    res = simulate(scenario_from_dict(_scenario([CHAT], jobs=[], horizon_s=300)))
    svc = res.services.iloc[0]
    assert svc.not_arrived > 0 and svc.end_s == 300
    assert svc.served + svc.dropped + svc.in_flight + svc.not_arrived == svc.requests


def test_a_run_without_services_writes_no_serving_tables(tmp_path):
    from tests.conftest import small_scenario

    simulate(scenario_from_dict(small_scenario())).save(tmp_path)
    assert not (tmp_path / "requests.csv").exists()


@pytest.mark.parametrize("change, message", [
    ({"model": "llama3-70b"}, "services.0.model: llama3-70b on 1 x h100-sxm5-80gb in bf16: does "
                              "not fit"),
    ({"gpu_type": "a100-sxm4-80gb"}, "the cluster has no a100-sxm4-80gb servers"),
    ({"tp": 16}, "tp 16 is more than the 8 GPUs of one h100-sxm5-80gb server"),
    ({"replicas": 17}, "17 replicas of 1 x h100-sxm5-80gb do not fit"),
    ({"model": "resnet50"}, "requests: a DNN service's request is one sample: remove "
                            "prompt_tokens and output_tokens (cnn model)"),
    ({"dynamic_batching": {"max_batch": 8}}, "dynamic_batching is for DNN services"),
    ({"requests": {"kind": "poisson", "rate_per_s": 1, "duration_s": 10}},
     "requests.prompt_tokens: an LLM service's requests need prompt_tokens and output_tokens"),
    ({"slo": {"percentile": 90}}, "give at least one of ttft_s, tpot_s, e2e_s"),
    ({"requests": {"kind": "trace", "path": "nowhere.csv"}}, "services.0.requests.path: no such "
                                                             "file"),
    ({"autoscale": {"min_replicas": 3, "max_replicas": 2}},
     "min_replicas (3) must be <= max_replicas (2)"),
    ({"autoscale": {"max_replicas": 2}}, "replicas (4, the start) must be within autoscale's"),
    ({"autoscale": {"max_replicas": 4, "target_per_replica": 0}}, "target_per_replica"),
    ({"autoscale": {"max_replicas": 17}}, "services.0.autoscale.max_replicas: 17 replicas of 1 "
                                          "GPUs are more than the cluster's 16 h100-sxm5-80gb"),
])
def test_bad_services_are_located_errors(write_yaml, change, message):
    from dcsim import load_scenario

    path = write_yaml(_scenario([{**CHAT, **change}]))
    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(path)


def test_without_the_request_table_the_service_results_are_the_same(tmp_path):
    data = _scenario([CHAT], jobs=[])
    full = simulate(scenario_from_dict(data))
    data["outputs"] = {"requests": False}
    lean = simulate(scenario_from_dict(data))
    assert len(full.requests) == full.services.requests[0] > 0
    assert lean.requests.empty and lean.requests.columns.empty
    pd.testing.assert_frame_equal(lean.services, full.services)
    lean.save(tmp_path)
    assert not (tmp_path / "requests.csv").exists() and (tmp_path / "services.csv").exists()
    from dcsim import load_results

    assert load_results(tmp_path).services.served[0] == full.services.served[0]


@pytest.mark.parametrize("service", [
    {**CHAT, "routing": "round-robin"},
    {**CHAT, "disaggregation": {"prefill_replicas": 1}},
    {"name": "img", "model": "resnet50", "gpu_type": "h100-sxm5-80gb", "replicas": 2,
     "requests": {"kind": "poisson", "rate_per_s": 2000, "duration_s": 20},
     "slo": {"e2e_s": 0.05}},
])
def test_a_streaming_service_reuses_rows_and_gives_the_same_results(monkeypatch, tmp_path,
                                                                     service):
    """Without the request table, a service holds only the requests in flight: 16 rows at
    first here, doubled as needed, recycled as requests end; a failure drops requests on the
    way. Every number is the same as with a row per request."""
    import dcsim.serving.service as svc

    trace = tmp_path / "failures.csv"
    trace.write_text("time_s,component,target,repair_s\n10,host,0,30\n")
    data = _scenario([service], jobs=[], faults={"trace": {"path": str(trace)}},
                     outputs={"requests": False})
    monkeypatch.setattr(svc, "STREAM_ROWS", 10**9)
    whole = simulate(scenario_from_dict(data))
    monkeypatch.setattr(svc, "STREAM_ROWS", 16)
    streamed = simulate(scenario_from_dict(data))
    s = streamed.services.iloc[0]
    assert s.replica_failures > 0 and s.dropped > 0 and s.served > 1000
    pd.testing.assert_frame_equal(streamed.services, whole.services)
    pd.testing.assert_frame_equal(streamed.service_timeline, whole.service_timeline)


def test_a_streaming_run_holds_only_the_requests_in_flight(monkeypatch):
    import dcsim.serving.service as svc

    monkeypatch.setattr(svc, "STREAM_ROWS", 4)
    n = 400
    t = np.sort(np.random.default_rng(5).uniform(0, 100, n))
    req = Requests(t, np.full(n, 500, np.int64), np.full(n, 50, np.int64), n)
    spec = _spec(replicas=2)
    run = ServiceRun(0, spec, _cost(), req, stream=True)
    for until in np.arange(10.0, 200.0, 10.0):
        run.advance(until)
    whole = _run(spec, t, [500] * n, [50] * n)
    assert run.stream and run.qi.shape[0] < n / 4 and run.retired == n
    row, ref = run.service_row(), whole.service_row(whole.metrics())
    keys = ["served", "dropped", "in_flight", "not_arrived", "preemptions", "ttft_p50_s",
            "ttft_p99_s", "tpot_p99_s", "e2e_p99_s", "max_itl_p99_s", "output_tokens"]
    assert row["served"] == n and [row[k] for k in keys] == [ref[k] for k in keys]


def test_an_unreachable_ttft_is_reported_before_the_requests_miss_it():
    tight = {**CHAT, "slo": {"ttft_s": 0.05}}
    res = simulate(scenario_from_dict(_scenario([tight], jobs=[])))
    notes = res.summary()["serving_notes"]
    assert len(notes) == 1 and "cannot meet ttft_s 0.05 s even alone" in notes[0]
    assert res.services.slo_attainment[0] < 1


def _failing(tmp_path, service, jobs=None, when=100.0, repair=300.0):
    """Two DGX H100s; server 0 (the service's replicas are packed there) fails at `when`."""
    trace = tmp_path / "failures.csv"
    trace.write_text(f"time_s,component,target,repair_s\n{when},host,0,{repair}\n")
    data = _scenario([service], jobs=jobs if jobs is not None else [],
                     faults={"trace": {"path": str(trace)}})
    return simulate(scenario_from_dict(data))


def test_a_failed_server_drops_its_replicas_requests_and_they_restart_elsewhere(tmp_path):
    res = _failing(tmp_path, CHAT)
    svc, q, tl = res.services.iloc[0], res.requests, res.service_timeline
    lost = q[q.reason == "replica failed"]
    # the four replicas were on server 0: what they held is dropped at the failure, no later
    assert svc.replica_failures == 4 and len(lost) > 0 and (lost.arrival_s <= 100).all()
    assert svc.served + svc.dropped + svc.in_flight + svc.not_arrived == svc.requests
    # they restart on server 1 at the next sample (a cold start), and serve again
    assert svc.replica_starts == 4
    after = tl[tl.time_s > 100]
    assert after.replicas.iloc[0] == 0 and after.replicas.iloc[-2] == 4
    assert (q.status == "served").sum() > 0.9 * len(q)
    # requests arriving before the restart are dropped with that reason; from the restart
    # on they queue on the starting replicas
    restart = after.time_s[after.starting > 0].min()
    down = q[(q.arrival_s > 100) & (q.arrival_s < restart)]
    assert len(down) > 0 and (down.reason == "no replica serving or starting").all()
    assert (q[q.arrival_s > restart].status == "served").all()


def test_an_autoscaled_service_replaces_its_failed_replicas(tmp_path):
    svc = {**CHAT, "replicas": 2, "autoscale": {"min_replicas": 2, "max_replicas": 4}}
    res = _failing(tmp_path, svc)
    s = res.services.iloc[0]
    assert s.replica_failures >= 2 and s.replica_starts >= 2
    assert s.served + s.dropped + s.in_flight + s.not_arrived == s.requests


def test_dlrm_v2_has_its_published_size_and_is_served_at_nvidias_batch():
    from dcsim.perf.zoo import model_stats
    from dcsim.scenario import DlrmModel
    from dcsim.tools.serving_validation import DLRM_V2_PAIRS, dlrm_v2_row

    m = DlrmModel(**catalog.model_presets()["dlrm-v2"], name="dlrm-v2")
    st = model_stats(m)
    assert sum(m.lookups) == 214
    # 204,184,588 rows x 128; the dense part: bottom 171,392 + cross 3 x 3,542,400 + top
    # 5,245,953 parameters, ~2 FLOPs each per user-item pair
    assert st.sharded_params + st.params == pytest.approx(204_184_588 * 128 + 16_044_545,
                                                          rel=1e-6)
    assert 2 * 16.0e6 <= st.forward_flop_per_sample <= 2 * 16.2e6
    pairs_s, implied = dlrm_v2_row()
    assert DLRM_V2_PAIRS[0] <= implied <= DLRM_V2_PAIRS[1]  # (docs/validation.md)
    with pytest.raises(ValueError, match="lookups has 2 entries and embedding_rows 26"):
        DlrmModel(**{**catalog.model_presets()["dlrm-v2"], "lookups": [1, 2]})


def test_fp8_needs_a_gpu_with_fp8():
    with pytest.raises(ServingFitError, match="no fp8 math"):
        llm_cost(_model("llama3-8b"), catalog.gpus()["a100-sxm4-80gb"], 1, "fp8", 8192, 256,
                 0.9, 3e11, 2e-6)
    assert math.isfinite(llm_cost(_model("llama3-8b"), H100, 1, "fp8", 8192, 256, 0.9, 3e11,
                                  2e-6).decode_s(1, 10))


# ---------------------------------------------------------------- autoscaling and lending
def test_a_starting_replica_queues_requests_and_serves_them_once_loaded():
    from dcsim.kernels.serving import ACTIVE, OFF, STARTING

    spec = _spec(replicas=1, autoscale={"max_replicas": 2})
    req = Requests(np.array([1.0, 2.0]), np.array([100, 100]), np.array([10, 10]), 2)
    run = ServiceRun(0, spec, _cost(), req)
    run.state[:] = [OFF, STARTING]
    run.ready_s[1] = 5.0
    run.advance(5.0)
    assert (run.status == 1).all() and (run.replica == 1).all()  # queued on the loading one
    run.ready(5.0)
    assert run.state[1] == ACTIVE
    run.advance(100.0)
    run.stop_s = 100.0
    f = run.request_frame()
    assert (f.status == "served").all() and f.ttft_s[0] > 4.0 and f.ttft_s[1] > 3.0


def test_with_no_replica_serving_or_starting_requests_are_dropped_with_that_reason():
    from dcsim.kernels.serving import OFF

    spec = _spec(replicas=1, autoscale={"max_replicas": 2})
    req = Requests(np.array([1.0]), np.array([100]), np.array([10]), 1)
    run = ServiceRun(0, spec, _cost(), req)
    run.state[:] = OFF
    run.advance(10.0)
    run.stop_s = 10.0
    f = run.request_frame()
    assert f.status[0] == "dropped" and f.reason[0] == "no replica serving or starting"


def _lending(autoscale: bool, reclaim: bool = True, seed: int = 3) -> dict:
    """One DGX H100: a chat service whose load rises and falls twice in 40 minutes, beside seven
    1-GPU training jobs that want ~26 minutes each."""
    svc = {"name": "chat", "model": "llama3-8b", "gpu_type": "h100-sxm5-80gb", "replicas": 1,
           "requests": {"kind": "diurnal", "rate_per_s": 6, "duration_s": 2400,
                        "period_s": 1200, "peak_s": 600, "peak_to_mean": 2,
                        "prompt_tokens": {"mean": 1000, "sigma": 0.5, "max": 4000},
                        "output_tokens": {"mean": 200, "sigma": 0.5, "max": 800}},
           "slo": {"ttft_s": 1.0}, "sample_s": 10}
    if autoscale:
        svc["autoscale"] = {"max_replicas": 4, "target_per_replica": 8,
                            "scale_down_after_s": 60, "reclaim": reclaim}
    else:
        svc["replicas"] = 4
    jobs = [{"name": f"t{i}", "model": "gpt2-1.5b", "global_batch": 16, "iterations": 3000,
             "parallelism": {"dp": 1, "micro_batch": 4}} for i in range(7)]
    return {"name": "lend", "seed": seed,
            "cluster": {"servers": [{"type": "dgx-h100", "count": 1}]},
            "workload": {"jobs": jobs}, "services": [svc]}


def test_autoscaling_follows_the_load_reclaims_gpus_and_lends_them_back():
    res = simulate(scenario_from_dict(_lending(autoscale=True)))
    svc, tl, s = res.services.iloc[0], res.service_timeline, res.summary()
    assert svc.replicas_min == 1 and svc.replicas_max == 4 and svc.replica_starts >= 3
    # up with the first peak, down in the trough, up again with the second
    r = tl.replicas.to_numpy()
    first_top = int(np.argmax(r == 4))
    assert r[0] == 1 and first_top > 0 and (r[first_top:] == 1).any()
    assert (r[first_top:][np.argmax(r[first_top:] == 1):] == 4).any()
    assert (tl.gpus == tl.replicas + tl.starting + tl.draining).all()  # tp 1
    # the GPUs came from training jobs: each preemption is an event that says so
    reclaimed = res.events[res.events.detail == "GPUs reclaimed by service chat"]
    assert svc.jobs_preempted == len(reclaimed) > 0
    assert (reclaimed.event == "preempted").all()
    assert s["jobs_completed"] == 7 and svc.served == svc.requests  # nothing lost either side
    # the service's GPU-hours are what it held: less than 4 replicas for its whole life
    assert s["serving_gpu_hours"] == pytest.approx(svc.gpu_hours)
    assert svc.gpu_hours < 4 * svc.end_s / 3600 * 0.8
    assert s["gpu_utilization"] <= 1.0


def test_lending_shortens_training_and_without_reclaim_the_service_waits():
    fixed = simulate(scenario_from_dict(_lending(autoscale=False)))
    lent = simulate(scenario_from_dict(_lending(autoscale=True)))
    polite = simulate(scenario_from_dict(_lending(autoscale=True, reclaim=False)))
    # four fixed replicas leave four GPUs: three jobs wait a whole job's time
    assert fixed.summary()["queue_mean_s"] > 500
    assert lent.summary()["makespan_s"] < 0.8 * fixed.summary()["makespan_s"]
    assert lent.services.gpu_hours[0] < 0.7 * fixed.services.gpu_hours[0]
    # without reclaim no job is preempted and the service stays at one replica while the
    # seven jobs hold the other GPUs
    p = polite.services.iloc[0]
    assert p.jobs_preempted == 0 and not (polite.events.event == "preempted").any()
    first_job_end = polite.jobs.end_s.min()
    tl = polite.service_timeline
    assert (tl.replicas[tl.time_s < first_job_end] == 1).all() and p.replicas_max > 1
    assert p.served + p.dropped + p.in_flight + p.not_arrived == p.requests


def test_autoscaling_is_deterministic(tmp_path):
    sc = scenario_from_dict(_lending(autoscale=True))
    a, b = simulate(sc), simulate(sc)
    a.save(tmp_path / "a")
    b.save(tmp_path / "b")
    for name in ("requests.csv", "services.csv", "service_timeline.csv", "jobs.csv",
                 "events.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_a_cold_start_reads_the_weights_from_its_storage_tier():
    from dcsim import Simulation

    data = _lending(autoscale=True)
    data["services"][0]["autoscale"]["weights_from"] = "pfs"
    data["storage"] = {"pfs": {"read_gbyte_s": 10, "latency_s": 0.001}}
    sim = Simulation(scenario_from_dict(data))
    spec = sim.serving.runs[0].spec
    # a shared tier: its read bandwidth divided among the loads in progress
    assert sim.serving._load_s(spec, 0, 0.0, 20e9) == pytest.approx(0.001 + 2.0)
    assert sim.serving._load_s(spec, 0, 1.0, 20e9) == pytest.approx(0.001 + 4.0)
    assert sim.serving._load_s(spec, 0, 100.0, 20e9) == pytest.approx(0.001 + 2.0)
    # a local tier: the replica's server's NVMe (DGX H100: 8 x 7 GB/s)
    spec = spec.model_copy(update={"autoscale": spec.autoscale.model_copy(
        update={"weights_from": "nvme"})})
    nvme = sim.storage.system.local("nvme", 0)
    assert nvme.read_byte_s == pytest.approx(56e9)
    assert sim.serving._load_s(spec, 0, 0.0, 56e9) == pytest.approx(nvme.latency_s + 1.0)


def test_weights_from_a_disabled_tier_is_a_located_error(write_yaml):
    from dcsim import load_scenario

    data = _lending(autoscale=True)
    data["storage"] = {"object": {"enabled": False}}
    data["services"][0]["autoscale"]["weights_from"] = "object"
    with pytest.raises(ScenarioError, match=r"services\.0\.autoscale\.weights_from: storage "
                                            r"tier object is disabled"):
        load_scenario(write_yaml(data))


def test_the_plots_of_a_lending_run(tmp_path):
    from dcsim.plotting import gpu_split, save_plots

    res = simulate(scenario_from_dict(_lending(autoscale=True)))
    names = {p.name for p in save_plots(res, tmp_path)}
    assert {"latency_cdf.png", "service_load.png", "gpu_split.png"} <= names
    ax = gpu_split(res.service_timeline, res.gpu_timeline)
    service, training, idle = ax.collections  # one band each, stacked
    tops = [np.max(c.get_paths()[0].vertices[:, 1]) for c in ax.collections]
    assert tops[-1] == pytest.approx(8)  # the stack reaches the cluster's 8 GPUs
    assert 4 <= tops[0] <= 4 + 1e-9  # the service held at most its 4 replicas' GPUs


def test_lent_gpu_hours_are_training_inside_the_reserve():
    from benchmarks.study_colocation import lent_gpu_hours

    # reserve 4; the service holds 4, then 1 (at 1 h), then 4 (at 3 h); training runs 4 GPUs
    # from 0 and 6 from 2 h: inside the reserve min(training, 4 - held) = 0, 3 (1-2 h), 3
    # (2-3 h), 0: 2 GPU-hours x 3
    st = pd.DataFrame({"service": "s", "time_s": [0.0, 3600, 10800, 14400],
                       "gpus": [4, 1, 4, 0]})
    gt = pd.DataFrame({"time_s": [0.0, 3600, 7200, 10800, 14400],
                       "allocated_gpus": [8, 5, 7, 10, 0]})
    assert lent_gpu_hours(st, gt, 4) == pytest.approx(6.0)


# ---------------------------------------------------------------- DNN services
def _dnn_spec(**kw) -> ServiceSpec:
    d = {"name": "img", "model": "resnet50", "gpu_type": "h100-sxm5-80gb", "replicas": 1,
         "precision": "int8", "requests": {"kind": "poisson", "rate_per_s": 1, "duration_s": 10}}
    d.update(kw)
    return ServiceSpec.model_validate(d)


def test_a_dnn_batch_takes_the_step_models_forward_pass():
    from dcsim.perf.calibrated import CalibratedStepModel
    from dcsim.serving.dnn import _job, batch_grid, dnn_cost

    spec = _dnn_spec(dynamic_batching={"max_batch": 64, "batch_overhead_s": 1e-4})
    c = dnn_cost(spec, H100)
    from dcsim.fabric.network import RingPath

    ring = RingPath(1e11, 1e-6, 1e11, 1e-6, 1, 1)
    for b in (1, 8, 48, 64):  # on the grid: exactly the forward pass + the overhead
        assert b in batch_grid(64)
        want = CalibratedStepModel().forward_s(_job(spec, b), H100, ring, True) + 1e-4
        assert c.batch_s[b] == pytest.approx(want, rel=1e-12)
    assert c.batch_s[0] == 0 and np.all(np.diff(c.batch_s) > 0)  # a bigger batch takes longer
    per_sample = c.batch_s[1:] / np.arange(1, 65)
    assert per_sample[-1] < per_sample[0] / 4  # ... and less per sample
    # ResNet-50 holds 25.6 M parameters: int8 weights ~26 MB
    assert c.memory.weights == pytest.approx(25.6e6, rel=0.02)


def test_a_dnn_that_does_not_fit_says_why():
    from dcsim.serving.dnn import dnn_cost

    # the Criteo DLRM's embedding tables (~26 G parameters) in fp32: ~105 GB of weights
    with pytest.raises(ServingFitError, match=r"does not fit at max_batch 32: per GPU: 85\.5 GB"
                                              r".*weights 104\.\d\d GB"):
        dnn_cost(_dnn_spec(model="dlrm-criteo", precision="fp32"), H100)
    assert dnn_cost(_dnn_spec(model="dlrm-criteo", precision="int8"), H100).memory.weights < 30e9


def _dnn_run(spec, arrivals, until=1e6):
    from dcsim.serving.dnn import dnn_cost

    n = len(arrivals)
    req = Requests(np.asarray(arrivals, float), np.ones(n, np.int64), np.ones(n, np.int64), n)
    run = ServiceRun(0, spec, dnn_cost(spec, H100), req)
    run.advance(until)
    run.stop_s = until
    return run


def test_dynamic_batching_waits_for_a_full_batch_or_the_timeout():
    spec = _dnn_spec(dynamic_batching={"max_batch": 4, "timeout_s": 0.01})
    t = [0.0, 0.001, 0.002,  # three: the oldest's timeout starts them at 0.01
         1.0, 1.0, 1.0, 1.0,  # a full batch: at once
         2.0, 2.0, 2.0, 2.0, 2.0, 2.0]  # four at once; two wait for the batch, then time out
    run = _dnn_run(spec, t)
    c, f = run.cost, run.request_frame()
    b = c.batch_s
    done = f.arrival_s + f.e2e_s
    assert done[:3].tolist() == pytest.approx([0.01 + b[3]] * 3, rel=1e-12)
    assert done[3:7].tolist() == pytest.approx([1.0 + b[4]] * 4, rel=1e-12)
    assert done[7:11].tolist() == pytest.approx([2.0 + b[4]] * 4, rel=1e-12)
    # the last two: the replica frees at 2 + b[4]; they have waited since 2.0
    start = max(2.0 + b[4], 2.0 + 0.01)
    assert done[11:].tolist() == pytest.approx([start + b[2]] * 2, rel=1e-12)
    assert (f.ttft_s == f.e2e_s).all() and f.tpot_s.isna().all()
    assert run.rint[0, 5] == 4  # four batches


def test_dnn_conservation_with_a_full_queue_and_a_cut():
    spec = _dnn_spec(replicas=2, routing="round-robin",
                     dynamic_batching={"max_batch": 8, "max_queue": 3, "timeout_s": 0.0})
    t = np.sort(np.random.default_rng(1).uniform(0, 0.05, 400))
    run = _dnn_run(spec, t, until=0.03)
    f = run.request_frame()
    counts = f.status.value_counts()
    assert counts.sum() == 400 and counts["dropped"] > 0 and counts["not_arrived"] > 0
    assert set(f.reason[f.status == "dropped"]) == {"queue full"}
    assert (f.status == "in_flight").sum() == run.rint[:, 2].sum() + run.rint[:, 3].sum()


DNN = {"name": "img", "model": "resnet50", "gpu_type": "h100-sxm5-80gb", "replicas": 2,
       "precision": "int8", "dynamic_batching": {"max_batch": 64, "timeout_s": 0.002},
       "requests": {"kind": "gamma", "cv": 2, "rate_per_s": 3000, "duration_s": 60},
       "slo": {"e2e_s": 0.05}, "sample_s": 10}


def test_llm_and_dnn_services_beside_training():
    res = simulate(scenario_from_dict(_scenario([CHAT, DNN])))
    sv = res.services.set_index("service")
    img = sv.loc["img"]
    assert img.served == img.requests > 150_000 and img.slo_attainment > 0.99
    assert math.isnan(img.tpot_p99_s) and img.kv_capacity_tokens == 0
    assert sv.loc["chat"].served == sv.loc["chat"].requests
    s = res.summary()
    assert s["requests_total"] == sv.requests.sum() == len(res.requests)
    assert res.jobs.iloc[0].start_s == pytest.approx(max(sv.end_s))  # 16 GPUs: after both
    tl = res.service_timeline[res.service_timeline.service == "img"]
    assert tl.kv_used_fraction.isna().all() and tl.served.iloc[-1] == img.served


@pytest.mark.parametrize("change, message", [
    ({"batching": {"max_tokens": 512}}, "batching is for LLM services; this cnn model is a DNN"),
    ({"tp": 2}, "tp 2: a DNN service's replica is one GPU"),
    ({"model": "dlrm-criteo", "precision": "fp32"}, "services.1.model: dlrm-criteo on 1 x "
                                                    "h100-sxm5-80gb in fp32: does not fit"),
    ({"precision": "fp8", "gpu_type": "a100-sxm4-80gb"}, "the cluster has no a100-sxm4-80gb"),
])
def test_bad_dnn_services_are_located_errors(write_yaml, change, message):
    from dcsim import load_scenario

    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(write_yaml(_scenario([CHAT, {**DNN, **change}])))


def test_a_dnn_slo_no_batch_can_meet_is_reported():
    res = simulate(scenario_from_dict(_scenario([{**DNN, "slo": {"e2e_s": 1e-4}}], jobs=[])))
    notes = res.summary()["serving_notes"]
    assert len(notes) == 1 and "no request can meet its SLO (0.0001 s)" in notes[0]


def test_an_inference_engine_forward_pass_is_its_products_at_the_precisions_rate():
    from dcsim.fabric.network import RingPath
    from dcsim.perf.calibrated import CalibratedStepModel
    from dcsim.serving.dnn import _job

    model, ring = CalibratedStepModel(), RingPath(1e11, 1e-6, 1e11, 1e-6, 1, 1)
    for name in ("resnet50", "bert-large"):
        spec = {p: _dnn_spec(model=name, precision=p) for p in ("int8", "fp16")}
        fused = {p: model.forward_s(_job(s, 256), H100, ring, True) for p, s in spec.items()}
        eager = model.forward_s(_job(spec["fp16"], 256), H100, ring, False)
        from dcsim.perf.zoo import model_stats

        flop = model_stats(spec["int8"].model).forward_flop_per_sample * 256
        assert flop / H100.peak_flop_s["int8"] < fused["int8"] < fused["fp16"] < eager


def test_mlperf_offline_rows_stay_where_the_docs_say():
    from dcsim.tools.serving_validation import mlperf_rows

    err = {label.split(" H100")[0]: pred / meas - 1 for label, pred, meas in mlperf_rows()}
    assert -0.30 < err["resnet50"] < -0.20  # docs/validation.md: -25%
    assert -0.60 < err["bert-99 padded to 384"] < -0.50
    assert abs(err["bert-99 at 172 real tokens (assumed)"]) < 0.05


def test_a_services_cost_is_its_gpu_hours_at_its_gpu_types_rate():
    data = _scenario([CHAT], jobs=[], cost={}, power={"price_usd_per_mwh": 80})
    res = simulate(scenario_from_dict(data))
    s, svc = res.summary(), res.services.iloc[0]
    # one server type: the cluster's capital and maintenance per GPU-hour
    rate = ((s["tco_capital_usd_per_year"] + s["tco_maintenance_usd_per_year"])
            / (s["total_gpus"] * 8760))
    assert svc.cost_usd == pytest.approx(svc.gpu_hours * rate)
    assert svc.usd_per_m_output_tokens == pytest.approx(svc.cost_usd / svc.output_tokens * 1e6)
    assert s["service_results"]["chat"]["usd_per_m_output_tokens"] == pytest.approx(
        svc.usd_per_m_output_tokens)
    # two server types: each GPU type pays for its own servers
    data["cluster"]["servers"] = [{"type": "dgx-h100", "count": 1},
                                  {"type": "dgx-a100-80gb", "count": 1}]
    data["cost"] = {"servers": {"dgx-h100": 600_000}}
    h100 = simulate(scenario_from_dict(data)).services.iloc[0]
    data["services"] = [{**CHAT, "gpu_type": "a100-sxm4-80gb"}]
    a100 = simulate(scenario_from_dict(data)).services.iloc[0]
    assert h100.cost_usd / h100.gpu_hours > 1.5 * a100.cost_usd / a100.gpu_hours
    # without a cost section: no cost
    assert math.isnan(simulate(scenario_from_dict(_scenario([CHAT], jobs=[]))).services
                      .cost_usd[0])


# ---------------------------------------------------------------- closed-loop clients
def _closed(c, n, **kw):
    return {"kind": "closed", "concurrency": c, "requests": n, **kw}


def test_a_closed_loop_sends_the_next_request_when_one_is_answered():
    from dcsim.serving.requests import make_requests

    spec = _spec(replicas=2, requests=_closed(2, 7, prompt_tokens={"mean": 300},
                                              output_tokens={"mean": 40}))
    req = make_requests(spec.requests, np.random.default_rng(0), ".", "x")
    assert req.arrival_s[:2].tolist() == [0, 0] and np.isinf(req.arrival_s[2:]).all()
    run = ServiceRun(0, spec, _cost(), req)
    run.advance(1e6)
    run.stop_s = 1e6
    f = run.request_frame()
    assert (f.status == "served").all()
    done = np.sort(f.arrival_s + f.e2e_s)
    # every request after the first two is sent the instant an earlier one is answered
    assert set(f.arrival_s[2:]) <= set(done[:5])
    # at most two requests in the system at any time
    for t in f.arrival_s:
        assert ((f.arrival_s <= t) & (f.arrival_s + f.e2e_s > t)).sum() <= 2


def test_a_closed_loop_cut_short_leaves_requests_never_sent():
    data = _scenario([{**CHAT, "requests": _closed(4, 10_000, prompt_tokens={"mean": 500},
                                                    output_tokens={"mean": 100})}],
                     jobs=[], horizon_s=120)
    res = simulate(scenario_from_dict(data))
    svc, q = res.services.iloc[0], res.requests
    assert svc.served > 50 and svc.not_arrived > 0
    assert q.arrival_s[q.status == "not_arrived"].isna().all()
    assert svc.served + svc.dropped + svc.in_flight + svc.not_arrived == svc.requests == 10_000
    assert svc.in_flight <= 4


def test_a_dnn_closed_loop_with_drops_still_ends():
    spec = _dnn_spec(requests=_closed(50, 2000),
                     dynamic_batching={"max_batch": 8, "max_queue": 10})
    from dcsim.serving.dnn import dnn_cost
    from dcsim.serving.requests import make_requests

    req = make_requests(spec.requests, np.random.default_rng(0), ".", "x")
    run = ServiceRun(0, spec, dnn_cost(spec, H100), req)
    run.advance(1e6)
    run.stop_s = 1e6
    f = run.request_frame()
    assert (f.status == "dropped").sum() > 0 and f.status.isin(["served", "dropped"]).all()


def test_the_nim_curve_saturates_where_the_docs_say():
    from dcsim.tools.serving_validation import predict_closed

    ttft, itl, tput = predict_closed(150)
    assert tput == pytest.approx(920.9, rel=0.06) and itl == pytest.approx(0.0929, rel=0.05)
    assert ttft == pytest.approx(34.8, rel=0.12)


def test_serving_gpus_draw_power_by_how_busy_they_are():
    from dcsim.energy.model import PowerModel

    gpu = PowerModel().gpu("h100-sxm5-80gb")
    light = simulate(scenario_from_dict(_scenario([{**CHAT, "requests": {
        **CHAT["requests"], "rate_per_s": 1}}], jobs=[])))
    heavy = simulate(scenario_from_dict(_scenario([{**CHAT, "requests": {
        **CHAT["requests"], "rate_per_s": 16}}], jobs=[])))
    watts = {}
    for name, res in (("light", light), ("heavy", heavy)):
        svc, s = res.services.iloc[0], res.summary()
        watts[name] = svc.energy_kwh * 1e3 / svc.gpu_hours  # mean W per held GPU
        assert gpu.idle_w < watts[name] < gpu.tdp_w
        assert s["energy_serving_kwh"] == pytest.approx(svc.energy_kwh)
        assert s["energy_gpu_kwh"] >= svc.energy_kwh  # (the idle GPUs beside it)
    assert watts["heavy"] > watts["light"] + 50
    # a training job's energy is its own: the same with or without a service beside it
    alone = simulate(scenario_from_dict(_scenario([], jobs=None) | {"services": []}))
    beside = simulate(scenario_from_dict(_scenario([CHAT])))
    assert beside.jobs.energy_kwh[0] == pytest.approx(alone.jobs.energy_kwh[0], rel=1e-9)


# ---------------------------------------------------------------- prefill/decode disaggregation
def test_a_disaggregated_request_prefills_on_one_replica_and_decodes_on_another():
    c = _cost()
    together = _run(_spec(replicas=1), [1.0], [1000], [5], cost=c).request_frame().iloc[0]
    spec = _spec(replicas=2, disaggregation={"prefill_replicas": 1})
    req = Requests(np.array([1.0]), np.array([1000]), np.array([5]), 1)
    run = ServiceRun(0, spec, c, req)
    run.xfer_s_token, run.xfer_s = 2e-6, 1e-3
    run.advance(1e6)
    run.stop_s = 1e6
    apart = run.request_frame().iloc[0]
    assert apart.status == "served" and apart.replica == 1  # decoded on the decode replica
    assert apart.ttft_s == pytest.approx(together.ttft_s, rel=1e-12)  # the same prefill
    # the decodes are the same; the KV transfer of the 1,000-token prompt comes between
    assert apart.e2e_s - together.e2e_s == pytest.approx(1e-3 + 2e-6 * 1000, rel=1e-9)
    # the longest gap: the transfer and the first decode
    assert apart.max_itl_s == pytest.approx(1e-3 + 2e-3 + c.decode_s(1, 1000), rel=1e-9)
    assert run.rint[:, 4].sum() == 0  # both caches empty


def test_disaggregation_in_a_scenario_conserves_requests_and_uses_both_pools():
    svc = {**CHAT, "replicas": 4, "disaggregation": {"prefill_replicas": 1}}
    res = simulate(scenario_from_dict(_scenario([svc], jobs=[])))
    s, q = res.services.iloc[0], res.requests
    assert s.served == s.requests and set(q.replica) == {1, 2, 3}  # answered by decoders
    # one prefill replica for four: first tokens wait more than with four that do both
    both = simulate(scenario_from_dict(_scenario([CHAT], jobs=[]))).services.iloc[0]
    assert s.ttft_p99_s > both.ttft_p99_s


@pytest.mark.parametrize("change, message", [
    ({"disaggregation": {"prefill_replicas": 4}}, "must leave decode replicas"),
    ({"disaggregation": {"prefill_replicas": 1}, "autoscale": {"max_replicas": 4}},
     "disaggregation with autoscale is not modelled yet"),
])
def test_bad_disaggregation_is_a_located_error(write_yaml, change, message):
    from dcsim import load_scenario

    with pytest.raises(ScenarioError, match=re.escape(message)):
        load_scenario(write_yaml(_scenario([{**CHAT, **change}])))


def test_kv_transfers_are_flows_on_the_shared_fabric_beside_training():
    def run(disaggregated: bool):
        svc = {**CHAT, "replicas": 12,
               "requests": {**CHAT["requests"], "rate_per_s": 40, "duration_s": 300}}
        if disaggregated:  # prefill on server 0, decode on server 1
            svc["disaggregation"] = {"prefill_replicas": 8}
        data = {"name": "kv", "seed": 1,
                "cluster": {"servers": [{"type": "dgx-h100", "count": 3,
                                         "nics": [{"type": "eth100", "count": 1}]}]},
                # 12 GPUs: the rest of server 1 and server 2, its ring through server 1's link
                "workload": {"jobs": [{"name": "t", "model": "gpt2-1.5b", "global_batch": 96,
                                       "iterations": 200,
                                       "parallelism": {"dp": 12, "micro_batch": 8}}]},
                "services": [svc]}
        return simulate(scenario_from_dict(data))

    alone, shared = run(False), run(True)
    busiest = shared.links.groupby("link").utilization.max()
    assert busiest["server0->switch"] > 0.05  # the KV cache going to server 1
    assert "server0->switch" not in set(alone.links.link)
    # both sides feel it: the job's ring shares server 1's link with the KV flows
    assert shared.jobs.run_s[0] > 1.03 * alone.jobs.run_s[0]
    assert shared.services.max_itl_p99_s[0] > alone.services.max_itl_p99_s[0]
