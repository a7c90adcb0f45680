"""Turn a scenario's workload section into job specs, counting what was read and skipped."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dcsim.errors import Problem
from dcsim.rng import RandomStreams
from dcsim.scenario import GeneratorSpec, JobSpec, Scenario
from dcsim.scenario.workload import DeadlineSpec, PhillyGeneratorSpec
from dcsim.workload.philly import generate_philly
from dcsim.workload.traces import TraceLoad, load_trace

__all__ = ["WorkloadResult", "build_workload"]


@dataclass(frozen=True)
class WorkloadResult:
    jobs: list[JobSpec]  # sorted by arrival time (stable)
    rows_read: int  # = accepted (len(jobs)) + rows skipped (distinct rows of `skipped`)
    skipped: list[Problem] = field(default_factory=list)

    @property
    def rows_skipped(self) -> int:
        return len({(p.source, p.line) for p in self.skipped})


def _generate(gen: GeneratorSpec, streams: RandomStreams) -> list[JobSpec]:
    arrivals = streams.stream("workload.arrivals")
    mix = streams.stream("workload.mix")
    noise = streams.stream("workload.iterations")
    weights = np.array([m.weight for m in gen.mix])
    times = np.cumsum(arrivals.exponential(gen.mean_interarrival_s, size=gen.num_jobs))
    picks = mix.choice(len(gen.mix), size=gen.num_jobs, p=weights / weights.sum())
    scale = noise.lognormal(0.0, gen.iterations_sigma, size=gen.num_jobs)
    jobs = []
    for i, (t, k, f) in enumerate(zip(times, picks, scale, strict=True)):
        template = gen.mix[k].job
        jobs.append(template.model_copy(update={
            "name": f"{template.name}-{i}",
            "arrival_s": float(t),
            "iterations": max(1, round(template.iterations * float(f))),
        }))
    return jobs


def build_workload(scenario: Scenario, streams: RandomStreams,
                   trace: TraceLoad | None = None) -> WorkloadResult:
    """The scenario's jobs by arrival: inline, from its trace (`trace`, if already read) or
    drawn by its generator from `streams`."""
    w = scenario.workload
    skipped: list[Problem] = []
    if w.jobs is not None:
        jobs = list(w.jobs)
        read = len(jobs)
    elif w.trace is not None:
        trace = trace if trace is not None else load_trace(scenario)  # (memo: traces.py)
        jobs, skipped, read = list(trace.jobs), list(trace.skipped), trace.rows_read
    else:
        assert w.generator is not None
        if isinstance(w.generator, PhillyGeneratorSpec):
            jobs = generate_philly(w.generator, streams)
        else:
            jobs = _generate(w.generator, streams)
        read = len(jobs)
    jobs.sort(key=lambda j: j.arrival_s)
    if w.deadlines is not None:
        jobs = _with_deadlines(jobs, w.deadlines, streams)
    return WorkloadResult(jobs=jobs, rows_read=read, skipped=skipped)


def _with_deadlines(jobs: list[JobSpec], spec: DeadlineSpec,
                    streams: RandomStreams) -> list[JobSpec]:
    """`workload.deadlines`: a deadline (and `deferrable`) for a `fraction` of the jobs, drawn
    in arrival order; jobs with their own deadline keep it, and a job that says whether it is
    deferrable keeps that."""
    draws = streams.stream("workload.deadlines").random(len(jobs))
    update = {"deadline_s": spec.deadline_s, "deadline_slack": spec.slack,
              "deferrable": spec.deferrable}
    return [job.model_copy(update=update if "deferrable" not in job.model_fields_set
                           else {k: v for k, v in update.items() if k != "deferrable"})
            if u < spec.fraction and job.deadline_s is None and job.deadline_slack is None
            else job for job, u in zip(jobs, draws, strict=True)]
