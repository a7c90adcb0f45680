"""The `philly` workload generator and its fit (dcsim/workload/philly.py,
dcsim/tools/fit_philly.py)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

import dcsim
from dcsim.errors import ScenarioError
from dcsim.rng import RandomStreams
from dcsim.tools import fit_philly
from dcsim.workload import build_workload
from dcsim.workload.philly import philly_fit
from tests.conftest import REPO, small_scenario

TRACE = REPO / "data/traces/philly/philly.csv"
# The trace's own numbers (data/traces/README.md of the shared data; pandas on the CSV).
PHILLY_JOBS = {1: 76627, 2: 1818, 4: 1870, 8: 1643, 16: 199 + 7, 32: 67 + 7, 64: 6, 128: 3}
PHILLY_MEDIAN_S, PHILLY_MEAN_S = 1144.0, 13135.9


def philly(**gen):
    return {"generator": {"kind": "philly", "num_jobs": 100, **gen}}


def jobs_of(seed: int = 1, **gen):
    sc = dcsim.scenario_from_dict(small_scenario(workload=philly(**gen)))
    return build_workload(sc, RandomStreams(seed)).jobs


# ----------------------------------------------------------------------------- the fit
def test_shipped_fit_is_philly():
    raw = philly_fit().raw
    assert raw["jobs"] == sum(PHILLY_JOBS.values()) == 82247
    assert raw["gpu_jobs"] == PHILLY_JOBS  # 12 GPUs merged into 16, 24 into 32
    assert raw["durations"]["median_s"] == PHILLY_MEDIAN_S
    assert raw["durations"]["mean_s"] == PHILLY_MEAN_S
    # 2017-09-04 10:30:41 .. 2017-12-22 08:02:11
    assert raw["arrivals"]["span_s"] == 9408690.0
    assert np.mean(raw["arrivals"]["hour_of_day"]) == pytest.approx(1, abs=1e-3)
    assert np.mean(raw["arrivals"]["day_of_week"]) == pytest.approx(1, abs=1e-3)
    groups = [g["gpus"] for g in raw["durations"]["groups"]]
    assert groups == [[1], [2], [4], [8], [16], [32, 64, 128]]
    text = (REPO / "dcsim/catalog/philly_fit.yaml").read_text()
    assert "CC BY 4.0" in text and "Apache-2.0" in text
    assert "python -m dcsim.tools.fit_philly" in text


@pytest.mark.skipif(not TRACE.is_file(), reason="the Philly trace is not in data/traces")
def test_fit_script_reproduces_the_shipped_fit(tmp_path):
    out = tmp_path / "fit.yaml"
    assert fit_philly.main([str(TRACE), "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text()) == philly_fit().raw


def test_fit_merges_rare_counts_and_pools_small_groups(tmp_path):
    rows = ["timestamp,duration,num_gpus,gpu_time,cluster"]
    rows += [f"2017-10-02 0{i % 10}:00:00,{10 + i},1,0,a" for i in range(100)]  # a Monday
    rows += [f"2017-10-03 12:00:00,{1000 + i},{g},0,a" for i, g in enumerate([12, 3, 8, 64])]
    rows += ["2017-10-03 12:30:00,500,2,0,a"] * 60
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    f = fit_philly.fit(fit_philly.read_trace(path))
    assert f["gpu_jobs"] == {1: 100, 2: 60, 4: 1, 8: 1, 16: 1, 64: 1}  # 3 -> 4, 12 -> 16
    # fewer than 50 jobs: pooled with the next smaller counts
    assert [g["gpus"] for g in f["durations"]["groups"]] == [[1], [2, 4, 8, 16, 64]]
    assert f["durations"]["groups"][0]["quantiles_s"][0] == 10
    assert f["durations"]["groups"][0]["quantiles_s"][-1] == 109
    hours = f["arrivals"]["hour_of_day"]
    assert hours[12] == max(hours) and hours[20] == 0


def test_fit_script_says_when_the_trace_is_missing(tmp_path, capsys):
    assert fit_philly.main([str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "trace not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- sampling
def test_sampled_gpu_counts_and_run_times_follow_the_fit():
    fit = philly_fit()
    rng = np.random.default_rng(3)
    drawn, given = fit.sample_gpus(rng, 200_000)
    assert (drawn == given).all()
    total = sum(PHILLY_JOBS.values())
    for g, n in PHILLY_JOBS.items():
        p = n / total
        assert abs(np.mean(drawn == g) - p) < 4 * np.sqrt(p * (1 - p) / len(drawn)) + 1e-5, g
    d = fit.sample_durations(rng, drawn)
    assert np.median(d) == pytest.approx(PHILLY_MEDIAN_S, rel=0.03)
    assert d.mean() == pytest.approx(PHILLY_MEAN_S, rel=0.08)  # heavy tail: the top 1% is half
    for group in fit.raw["durations"]["groups"]:
        one = fit.sample_durations(rng, np.full(50_000, group["gpus"][-1]))
        assert np.median(one) == pytest.approx(group["median_s"], rel=0.05), group["gpus"]
        assert one.mean() == pytest.approx(group["mean_s"], rel=0.15), group["gpus"]


def test_generated_jobs_match_the_fit():
    jobs = jobs_of(num_jobs=5000)
    gpus = np.array([j.num_gpus for j in jobs])
    assert abs(np.mean(gpus == 1) - 0.9317) < 0.01
    assert abs(np.mean(gpus == 8) - 0.0200) < 0.006
    assert abs(np.mean(gpus == 4) - 0.0227) < 0.006
    dur = np.array([j.duration_s for j in jobs])
    assert np.median(dur) == pytest.approx(PHILLY_MEDIAN_S, rel=0.1)
    assert dur.mean() == pytest.approx(PHILLY_MEAN_S, rel=0.3)
    for j in jobs[:50]:
        p = j.parallelism
        assert (p.tp, p.pp) == (1, 1) and p.dp == j.num_gpus
        assert j.global_batch == p.micro_batch * p.dp
        assert j.reference_gpu == "p100-sxm2-16gb" and j.iterations is None
    areas = [j.name.rsplit("-", 1)[0] for j in jobs]
    assert areas.count("image-recognition") / len(areas) == pytest.approx(0.4, abs=0.03)
    assert areas.count("nlp") / len(areas) == pytest.approx(0.3, abs=0.03)
    models = {j.name.rsplit("-", 1)[0]: j.model.name for j in jobs}
    assert models == {"image-recognition": "resnet50", "nlp": "bert-base",
                      "recommendation": "dlrm-kaggle", "medical-imaging": "densenet121"}


def test_same_seed_same_jobs_other_seed_other_jobs():
    a, b, c = jobs_of(1, num_jobs=300), jobs_of(1, num_jobs=300), jobs_of(2, num_jobs=300)
    assert a == b
    assert a != c
    assert [j.arrival_s for j in a] != [j.arrival_s for j in c]
    assert [j.duration_s for j in a] != [j.duration_s for j in c]


def test_each_quantity_has_its_own_stream():
    """Changing the mix changes the applications only: arrivals, GPUs and run times keep."""
    a = jobs_of(num_jobs=300)
    b = jobs_of(num_jobs=300, apps={"nlp": {"weight": 5}})
    assert [j.arrival_s for j in a] == [j.arrival_s for j in b]
    assert [j.num_gpus for j in a] == [j.num_gpus for j in b]
    assert [j.duration_s for j in a] == [j.duration_s for j in b]
    assert [j.name for j in a] != [j.name for j in b]


def test_apps_override_field_by_field_and_add_areas():
    jobs = jobs_of(num_jobs=400, apps={
        "nlp": {"model": "bert-large", "per_gpu_batch": 8},
        "speech": {"weight": 0.5, "model": "resnet50", "per_gpu_batch": 16, "precision": "fp32"},
        "recommendation": {"weight": 0}})
    by_area = {j.name.rsplit("-", 1)[0]: j for j in jobs}
    assert set(by_area) == {"image-recognition", "nlp", "medical-imaging", "speech"}
    nlp = by_area["nlp"]
    assert nlp.model.name == "bert-large" and nlp.parallelism.micro_batch == 8
    assert nlp.precision == "fp16"  # kept from the default
    assert by_area["speech"].precision == "fp32"


# ----------------------------------------------------------------------------- arrivals
def hour_counts(jobs) -> np.ndarray:
    t = np.array([j.arrival_s for j in jobs])
    return np.bincount((t // 3600).astype(int) % 24, minlength=24)


def test_diurnal_arrivals_follow_the_hour_profile():
    prof = philly_fit().hour_of_day
    peak, trough = np.argsort(prof)[-4:], np.argsort(prof)[:4]
    counts = hour_counts(jobs_of(num_jobs=6000))
    expected = prof[peak].sum() / prof[trough].sum()  # about 2.5
    assert counts[peak].sum() / counts[trough].sum() == pytest.approx(expected, rel=0.15)
    flat = hour_counts(jobs_of(num_jobs=6000, arrivals="poisson"))
    assert flat[peak].sum() / flat[trough].sum() == pytest.approx(1, abs=0.15)


def test_start_hour_shifts_the_profile():
    prof = philly_fit().hour_of_day
    counts = hour_counts(jobs_of(num_jobs=6000, start_hour=12))
    shifted = np.roll(prof, -12)  # simulated hour h is clock hour h + 12
    peak, trough = np.argsort(shifted)[-4:], np.argsort(shifted)[:4]
    assert counts[peak].sum() > 2 * counts[trough].sum()


@pytest.mark.parametrize("arrivals", ["poisson", "diurnal"])
def test_mean_rate_is_load_times_the_fitted_rate(arrivals):
    rate = philly_fit().mean_rate_per_s
    for load in (1.0, 3.0):
        t = [j.arrival_s for j in jobs_of(num_jobs=4000, arrivals=arrivals, load=load)]
        assert len(t) / t[-1] == pytest.approx(load * rate, rel=0.06)
        assert t[0] > 0 and t == sorted(t)


def test_weekly_profile_slows_weekends():
    rate = philly_fit().mean_rate_per_s
    t = np.array([j.arrival_s for j in jobs_of(num_jobs=8000, weekly=True, load=0.5)])
    day = (t // 86400).astype(int) % 7
    weekday = np.isin(day, [1, 2, 3, 4]).sum() / 4  # Tue..Fri, per day
    weekend = np.isin(day, [5, 6]).sum() / 2
    assert weekday > 1.5 * weekend
    assert rate > 0


# ----------------------------------------------------------------------------- max_gpus
def test_max_gpus_clips_or_redraws():
    clipped = np.array([j.num_gpus for j in jobs_of(num_jobs=20000, max_gpus=4)])
    assert clipped.max() == 4
    pmf = dict(zip(philly_fit().gpu_counts, philly_fit().gpu_pmf, strict=True))
    above = sum(p for g, p in pmf.items() if g >= 4)  # 4, 8, 16, ... all become 4
    assert np.mean(clipped == 4) == pytest.approx(above, abs=0.006)
    redrawn = np.array([j.num_gpus for j in jobs_of(num_jobs=20000, max_gpus=4,
                                                    over_max="redraw")])
    assert redrawn.max() == 4
    assert np.mean(redrawn == 4) == pytest.approx(pmf[4] / (pmf[1] + pmf[2] + pmf[4]), abs=0.005)
    odd = np.array([j.num_gpus for j in jobs_of(num_jobs=3000, max_gpus=6)])
    assert odd.max() == 6


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("gen", "message"), [
    ({"num_jobs": 0}, "workload.generator.num_jobs: Input should be greater than 0"),
    ({"arrivals": "hourly"}, "workload.generator.arrivals: Input should be 'poisson' or 'diurnal'"),
    ({"load": 0}, "workload.generator.load: Input should be greater than 0"),
    ({"start_hour": 24}, "workload.generator.start_hour: Input should be less than 24"),
    ({"max_gpus": 0}, "workload.generator.max_gpus: Input should be greater than 0"),
    ({"over_max": "drop"}, "workload.generator.over_max: Input should be 'clip' or 'redraw'"),
    ({"reference_gpu": "k40"}, "workload.generator.reference_gpu: unknown GPU type 'k40'"),
    ({"reference_gpu": "p40-24gb"},
     "workload.generator: apps.image-recognition: reference_gpu p40-24gb has no fp16 support"),
    ({"mean_interarrival_s": 5}, "workload.generator.mean_interarrival_s: unknown key"),
    ({"kind": "gamma"}, "workload.generator: unknown generator kind; valid: poisson, philly"),
    ({"apps": {"nlp": {"precision": "bf16"}}},
     "workload.generator: apps.nlp: reference_gpu p100-sxm2-16gb has no bf16 support"),
    ({"apps": {"nlp": {"per_gpu_batch": 0}}},
     "workload.generator.apps.nlp.per_gpu_batch: Input should be greater than 0"),
    ({"apps": {"nlp": {"model": "bert-huge"}}},
     "workload.generator.apps.nlp.model: unknown model preset 'bert-huge'"),
    ({"apps": {"nlp": {"colour": 1}}}, "workload.generator.apps.nlp.colour: unknown key"),
    ({"apps": {"x": {"weight": 1}}}, "workload.generator.apps.x.model: required key is missing"),
    ({"apps": {k: {"weight": 0} for k in ("image-recognition", "nlp", "recommendation",
                                           "medical-imaging")}},
     "workload.generator: apps: at least one application needs a weight > 0"),
])
def test_bad_options_are_located_errors(gen, message):
    data = small_scenario(workload={"generator": {"kind": "philly", "num_jobs": 5, **gen}})
    with pytest.raises(ScenarioError) as exc:
        dcsim.scenario_from_dict(data)
    assert message in str(exc.value)


def test_poisson_generator_keeps_its_shape():
    data = small_scenario(workload={"generator": {
        "num_jobs": 5, "mean_interarrival_s": 3, "max_gpus": 4,
        "mix": [{"weight": 1, "job": small_scenario()["workload"]["jobs"][0]}]}})
    with pytest.raises(ScenarioError, match="workload.generator.max_gpus: unknown key"):
        dcsim.scenario_from_dict(data)


# ----------------------------------------------------------------------------- end to end
def test_small_philly_scenario_runs_end_to_end():
    data = small_scenario(workload=philly(num_jobs=40, max_gpus=16, load=20), seed=4)
    res = dcsim.simulate(dcsim.scenario_from_dict(data))
    s = res.summary()
    assert s["jobs_read"] == s["jobs_submitted"] == 40
    assert s["jobs_rejected"] == 0, s["rejection_reasons"]
    assert s["jobs_completed"] == 40
    assert s["gpu_utilization"] > 0


def test_the_default_apps_fit_every_catalog_training_gpu():
    """Every default area fits in memory on one GPU of the reference (16 GB) and on an A100."""
    from dcsim import catalog
    from dcsim.scenario.workload import PHILLY_APPS

    jobs = [{"name": f"{app}-{gpu}", "model": d["model"], "gpu_type": gpu,
             "parallelism": {"dp": 1, "micro_batch": d["per_gpu_batch"]},
             "global_batch": d["per_gpu_batch"], "precision": d["precision"], "iterations": 1}
            for app, d in PHILLY_APPS.items()
            for gpu in ("p100-sxm2-16gb", "a100-sxm4-80gb")]
    assert all(catalog.gpus()[j["gpu_type"]].supports("fp16") for j in jobs)
    data = small_scenario(jobs, cluster={"servers": [
        {"type": "dgx-a100-80gb", "count": 1},
        {"name": "old", "count": 1, "gpus_per_server": 8, "gpu": "p100-sxm2-16gb",
         "nics": [{"type": "hdr200"}]}]})
    s = dcsim.simulate(dcsim.scenario_from_dict(data)).summary()
    assert s["jobs_rejected"] == 0, s["rejection_reasons"]
    assert s["jobs_completed"] == len(jobs)
