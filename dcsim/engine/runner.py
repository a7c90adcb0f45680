"""One job's run segment as a SimPy process, by fidelity, and the accounting of a segment.

`engine.fidelity: steady` (the default): all the remaining iterations are one timeout; nothing
changes a running job's speed without interrupting it, so the iterations in between are
identical and not simulated one by one. `iteration`: one timeout per iteration, checkpoint
pauses taken explicitly. Under `engine.network: timed` a job whose rings cross servers
computes, then moves its exposed data-parallel traffic as flows, each iteration.

Interrupts carry a typed cause (dcsim/jobs.py): `Stop` ends the process (the engine has
already accounted for the job); `Reestimate` keeps the progress so far and goes on at the new
speed. Progress in a segment is `seg_done0 + (now - seg_start_s) / iteration_s`
(`JobState.progress_at`), so accounting at any instant needs no per-iteration events.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from dcsim.fabric.network import Network
from dcsim.fabric.timed import TimedFabric
from dcsim.jobs import JobState, Reestimate, Stop
from dcsim.perf.step import StepEstimate

__all__ = ["Runner", "close_segment", "roll_back"]

EPS = 1e-9


def close_segment(job: JobState, now: float, keep_partial: bool,
                  done: float | None = None) -> float:
    """Close the job's current run segment at `now`: count iterations (whole ones only unless
    `keep_partial`; `done` if given), productive and restore time, and FLOPs; a new segment
    starts at `now`. Returns the iterations done."""
    assert job.estimate is not None
    raw = job.progress_at(now) if done is None else done
    if done is None:
        done = raw if keep_partial else math.floor(raw + EPS)
    done = min(max(done, job.seg_done0), float(job.spec.iterations))
    # productive time: the segment's time past its restore hold, less the share of the
    # progress thrown away (a preempted job's partial iteration)
    ran_s = max(now - max(job.seg_start_s, job.hold_until_s), 0.0)
    gained = raw - job.seg_done0
    job.work_s += ran_s * min(1.0, (done - job.seg_done0) / gained) if gained > EPS else 0.0
    job.model_flop_done += (done - job.seg_done0) * job.estimate.model_flop
    job.iterations_done = done
    job.run_s += now - job.seg_start_s
    job.restore_s += max(min(now, job.hold_until_s) - job.seg_start_s, 0.0)
    job.seg_start_s, job.seg_done0 = now, done
    return done


def roll_back(job: JobState, kept: float) -> float:
    """A failure: the job (its segment closed) keeps only `kept` iterations (its last
    checkpoint); the work since is lost. Returns the iterations lost."""
    assert job.estimate is not None
    lost = job.iterations_done - kept
    lost_s = min(lost * job.estimate.iteration_s, job.work_s)
    job.iterations_done = job.seg_done0 = kept
    # (never below 0: the FLOPs of the work lost, at today's estimate, may differ by a
    # rounding from those counted when it was done)
    job.model_flop_done = max(job.model_flop_done - lost * job.estimate.model_flop, 0.0)
    job.lost_iterations += lost
    job.lost_s += lost_s
    job.work_s -= lost_s
    job.interruptions += 1
    return lost


class Runner:
    """Makes each run segment's process; the engine supplies what the process asks of it:
    `account(job, keep_partial, done)`, `estimate(job)` (its step on its placement now),
    `pause(job, step)` (checkpoint pause after `step` iterations, iteration fidelity) and
    `complete(job)` (all its iterations done)."""

    def __init__(self, env: simpy.Environment, network: Network, timed: TimedFabric | None,
                 steady: bool, account: Callable[[JobState, bool, float | None], None],
                 estimate: Callable[[JobState], StepEstimate],
                 pause: Callable[[JobState, float], float],
                 complete: Callable[[JobState], None]) -> None:
        self.env, self.network, self.timed, self.steady = env, network, timed, steady
        self.account, self.estimate, self.pause, self.complete = (account, estimate, pause,
                                                                  complete)

    def process(self, job: JobState):
        env = self.env
        while True:
            job.seg_start_s, job.seg_done0 = env.now, job.iterations_done
            assert job.estimate is not None
            job.waiting = True  # from here on a change of speed must interrupt the runner
            try:
                hold_s = max(job.hold_until_s - env.now, 0.0)  # restore after preemption
                if self.timed is not None and self.timed.spans_servers(job.job_id):
                    if hold_s > 0:
                        yield env.timeout(hold_s)
                    yield from self._timed_iterations(job)
                elif self.steady:
                    yield env.timeout(hold_s + job.remaining * job.estimate.iteration_s)
                else:
                    if hold_s > 0:
                        yield env.timeout(hold_s)
                    yield from self._iterations(job)
                break
            except simpy.Interrupt as intr:
                if isinstance(intr.cause, Stop):
                    job.waiting = False
                    return  # the engine already accounted for the job
                assert isinstance(intr.cause, Reestimate)
                if env.active_process is not job.process or job.placement is None:
                    if env.active_process is job.process:
                        job.waiting = False
                    return  # stopped (maybe restarted) since: the Stop after this ends us
                if self.timed is not None:  # the iteration resumes with a new transfer
                    self.timed.cancel(job.job_id)
                self.account(job, True, None)
                job.estimate = self.estimate(job)
        job.waiting = False
        self.complete(job)

    def _iterations(self, job: JobState):
        """engine.fidelity: iteration: one timeout per iteration (the last may be partial),
        then the checkpoint pause the iteration crossed, if any."""
        while job.remaining > EPS:
            step = min(1.0, job.remaining)
            est = job.estimate
            assert est is not None
            yield self.env.timeout(step * (est.iteration_s - est.checkpoint_s))
            job.iterations_done += step
            if (pause := self.pause(job, step)) > 0:
                yield self.env.timeout(pause)  # checkpoints taken explicitly

    def _timed_iterations(self, job: JobState):
        """engine.network: timed: each iteration computes, then moves its exposed data-parallel
        traffic over the fabric as flows (see dcsim.fabric.timed)."""
        assert self.timed is not None and job.estimate is not None and job.placement is not None
        est, ring = job.estimate, self.network.ring(job.placement.gpus_per_server())
        dp = job.spec.parallelism.dp
        latency_s = min(est.dp_comm_s, 2 * (dp - 1) * ring.latency_s)
        nbytes = (est.dp_comm_s - latency_s) * ring.bandwidth_byte_s  # at the ring's own rate
        compute_s = est.iteration_s - est.dp_comm_s + latency_s
        while job.remaining > EPS:
            step = min(1.0, job.remaining)
            job.progress_cap = job.iterations_done + step
            yield self.env.timeout(step * compute_s)
            yield self.timed.transfer(job.job_id, step * nbytes, ring.bandwidth_byte_s)
            self.account(job, True, job.iterations_done + step)
        job.progress_cap = math.inf
