"""The `philly` workload generator: jobs drawn from distributions fitted to the Philly trace.

The fit (dcsim/catalog/philly_fit.yaml, written by `python -m dcsim.tools.fit_philly`) gives
the GPU-count pmf, run-time quantiles per group of GPU counts, the mean arrival rate and
hour-of-day / day-of-week rate profiles. docs/scenario-reference.md#philly-generator has the
formulas.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np
import yaml

from dcsim.rng import RandomStreams
from dcsim.scenario.jobs import JobSpec
from dcsim.scenario.workload import PhillyGeneratorSpec

__all__ = ["PhillyFit", "philly_fit", "generate_philly"]

HOUR_S = 3600.0
DAY_S = 24 * HOUR_S
WEEK_S = 7 * DAY_S


@dataclass(frozen=True)
class PhillyFit:
    gpu_counts: np.ndarray  # the GPU counts of the pmf, ascending
    gpu_pmf: np.ndarray  # their probabilities (sum 1)
    probs: np.ndarray  # quantile probabilities, 0 .. 1
    log_quantiles: dict[int, np.ndarray]  # GPU count -> log run-time quantiles of its group
    median_s: float  # the trace's overall median and mean run time
    mean_s: float
    mean_rate_per_s: float
    hour_of_day: np.ndarray  # 24 relative rates, mean 1
    day_of_week: np.ndarray  # 7 relative rates (0 = Monday), mean 1
    raw: dict

    def sample_gpus(self, rng: np.random.Generator, n: int, max_gpus: int | None = None,
                    over_max: str = "clip") -> tuple[np.ndarray, np.ndarray]:
        """(drawn Philly counts, counts the jobs get): clipped to max_gpus, or drawn from the
        pmf restricted to counts <= max_gpus (renormalized) with over_max 'redraw'."""
        pmf = self.gpu_pmf
        if max_gpus is not None and over_max == "redraw":
            pmf = np.where(self.gpu_counts <= max_gpus, pmf, 0.0)
            if pmf.sum() == 0:  # max_gpus below the smallest count: all get max_gpus
                pmf = self.gpu_pmf
        drawn = self.gpu_counts[rng.choice(len(pmf), size=n, p=pmf / pmf.sum())]
        given = drawn if max_gpus is None else np.minimum(drawn, max_gpus)
        return drawn, given

    def sample_durations(self, rng: np.random.Generator, gpus: np.ndarray) -> np.ndarray:
        """Run times (s) by inverse CDF: one uniform per job, interpolated linearly in
        log(run time) between the quantiles of the job's GPU-count group."""
        u = rng.random(len(gpus))
        out = np.empty(len(gpus))
        for g, logq in self.log_quantiles.items():
            sel = gpus == g
            out[sel] = np.exp(np.interp(u[sel], self.probs, logq))
        return out

    def rate(self, t: np.ndarray, load: float, diurnal: bool, weekly: bool,
             start_hour: float) -> np.ndarray:
        """Arrival rate (jobs/s) at simulated times t: load x mean rate x h(hour) [x d(day)]."""
        base = load * self.mean_rate_per_s
        if not diurnal:
            return np.full(np.shape(t), base)
        clock = np.asarray(t) + start_hour * HOUR_S
        r = base * self.hour_of_day[(clock // HOUR_S).astype(int) % 24]
        if weekly:
            r = r * self.day_of_week[(clock // DAY_S).astype(int) % 7]
        return r

    def arrivals(self, rng: np.random.Generator, n: int, load: float, diurnal: bool,
                 weekly: bool, start_hour: float) -> np.ndarray:
        """n arrival times of a (non-homogeneous) Poisson process, by thinning (Lewis and
        Shedler 1979): candidates at the peak rate, each kept with probability rate(t) / peak."""
        base = load * self.mean_rate_per_s
        if not diurnal:
            return np.cumsum(rng.exponential(1.0 / base, size=n))
        peak = base * self.hour_of_day.max() * (self.day_of_week.max() if weekly else 1.0)
        times: list[np.ndarray] = []
        kept, t0 = 0, 0.0
        while kept < n:
            m = max(64, int(1.5 * (n - kept) * peak / base))
            cand = t0 + np.cumsum(rng.exponential(1.0 / peak, size=m))
            keep = cand[rng.random(m) * peak < self.rate(cand, load, True, weekly, start_hour)]
            times.append(keep)
            kept += len(keep)
            t0 = float(cand[-1])
        return np.concatenate(times)[:n]


@cache
def philly_fit() -> PhillyFit:
    raw = yaml.safe_load(resources.files("dcsim.catalog").joinpath("philly_fit.yaml").read_text())
    counts = np.array(sorted(int(g) for g in raw["gpu_pmf"]))
    pmf = np.array([float(raw["gpu_pmf"][g]) for g in counts])
    d = raw["durations"]
    logq = {}
    for group in d["groups"]:
        q = np.log(np.array(group["quantiles_s"], dtype=float))
        for g in group["gpus"]:
            logq[int(g)] = q
    a = raw["arrivals"]
    return PhillyFit(
        gpu_counts=counts, gpu_pmf=pmf / pmf.sum(), probs=np.array(d["probs"], dtype=float),
        log_quantiles=logq, median_s=float(d["median_s"]), mean_s=float(d["mean_s"]),
        mean_rate_per_s=float(a["mean_rate_per_s"]),
        hour_of_day=np.array(a["hour_of_day"], dtype=float),
        day_of_week=np.array(a["day_of_week"], dtype=float), raw=raw)


def generate_philly(gen: PhillyGeneratorSpec, streams: RandomStreams) -> list[JobSpec]:
    """The jobs, in arrival order. Streams: workload.arrivals (arrival process),
    workload.gpus (GPU counts), workload.durations (run times), workload.mix (application)."""
    fit = philly_fit()
    n = gen.num_jobs
    times = fit.arrivals(streams.stream("workload.arrivals"), n, gen.load,
                         gen.arrivals == "diurnal", gen.weekly, gen.start_hour)
    drawn, gpus = fit.sample_gpus(streams.stream("workload.gpus"), n, gen.max_gpus, gen.over_max)
    durations = fit.sample_durations(streams.stream("workload.durations"), drawn)
    names = list(gen.apps)
    weights = np.array([gen.apps[k].weight for k in names])
    picks = streams.stream("workload.mix").choice(len(names), size=n, p=weights / weights.sum())
    templates = {}
    jobs = []
    for i in range(n):
        key = (names[picks[i]], int(gpus[i]))
        if key not in templates:
            templates[key] = gen.template(*key)
        jobs.append(templates[key].model_copy(update={
            "name": f"{key[0]}-{i}", "arrival_s": float(times[i]),
            "duration_s": float(durations[i])}))
    return jobs
