"""The resources running jobs share, and keeping each job's share current: the network
links (flows on the fabric, `engine.network`) and the storage tiers (reads max-min by demand,
checkpoint writes, dcsim/storage/model.py).

When the set of running jobs changes, the links are re-shared and the tiers re-solved; every
job whose share moved is told (`respeed`: it re-estimates its step and keeps its progress).
Under `engine.network: shared` data reads are flows on the fabric beside the training
traffic; a reader whose demand moves after the links were shared asks for one more re-share
at that instant. The storage terms of a running job's step (its stall and amortized
checkpoint pauses, for dcsim/world/pace.py) are planned here and entered in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import simpy

from dcsim.engine.ledger import Ledger
from dcsim.engine.record import Records
from dcsim.fabric.sharing import SharedFabric
from dcsim.fabric.timed import TimedFabric
from dcsim.jobs import JobState
from dcsim.policies import Placement
from dcsim.scenario import JobSpec
from dcsim.storage import StorageModel, checkpoint_bytes, storage_node
from dcsim.world.pace import StorageTerms

__all__ = ["Shares", "allocs_of"]


def allocs_of(placement: Placement) -> list[tuple[int, int]]:
    """(server id, the job's GPUs there) per server of the placement."""
    return [(sid, len(gpus)) for sid, gpus in placement.allocations]


class Shares:
    def __init__(self, env: simpy.Environment, fabric: SharedFabric | TimedFabric | None,
                 storage: StorageModel, ledger: Ledger, records: Records,
                 running: Mapping[int, JobState],
                 respeed: Callable[[JobState, str], None],
                 mtbf_s: Callable[[JobState], float]) -> None:
        self.env, self.storage, self.ledger, self.records = env, storage, ledger, records
        self.shared = fabric if isinstance(fabric, SharedFabric) else None
        self.timed = fabric if isinstance(fabric, TimedFabric) else None
        self.running, self.respeed, self.mtbf_s = running, respeed, mtbf_s
        if self.timed is not None:
            self.timed.on_levels = self.record_levels
        self._reshare_pending = False
        self._reshared: dict[int, float] = {}  # job -> when its demand last forced a re-share

    # ------------------------------------------------------------------ jobs come and go
    def joined(self, job: JobState, estimate: Callable[[JobState], object]) -> None:
        """A job starts on its placement: its flows join the fabric, it restored from its
        iterations done, it joins the shared tiers (`estimate` registers its read demand)."""
        placement = job.placement
        assert placement is not None
        par = job.spec.parallelism
        if self.shared is not None and self.shared.add(job.job_id, dict(placement.allocations),
                                                       par.pp, (par.tp * par.cp, par.ep),
                                                       (par.tp, par.cp)):
            self.share_network()
        if self.timed is not None:
            self.timed.add(job.job_id, dict(placement.allocations), job.spec.parallelism.pp)
        self.ledger.restored(job.job_id, job.iterations_done)
        if not self.storage.active(job.spec):
            return
        self.ledger.opened(job.job_id)
        ckpt = self.storage.checkpoint_spec(job.spec)
        self.storage.join(job.job_id, job.spec)
        estimate(job)  # registers its read demand
        if self.storage.reads_on_fabric:
            self.share_network()
        else:
            self._storage_changed(self.storage.solve() - {job.job_id})
        if ckpt is not None and job.hold_until_s > self.env.now:  # restores its checkpoint
            self.ledger.add(job.job_id, f"read_{ckpt.tier}", checkpoint_bytes(job.spec))

    def left(self, job_id: int) -> None:
        """A job left its GPUs: it leaves the tiers and the fabric (the others re-shared)."""
        self._storage_changed(self.storage.leave(job_id))
        if self.shared is not None and self.shared.remove(job_id):
            self.share_network()
        if self.timed is not None:
            self.timed.remove(job_id)

    # ------------------------------------------------------------------ links
    def link_rates(self, job_id: int
                   ) -> tuple[float | None, float | None, float | None, float | None]:
        """The job's ring, pipeline, expert all-to-all and ring-attention rates on the shared
        fabric (None: not limited by it)."""
        if self.shared is None:
            return None, None, None, None
        fabric = self.shared
        return (fabric.rate(job_id), fabric.p2p_rate(job_id), fabric.a2a_rate(job_id),
                fabric.cp_rate(job_id))

    def share_network(self) -> None:
        """The running jobs' flows changed: re-share the links and tell every job whose
        bandwidth moved (it re-estimates its step time and keeps its progress)."""
        fabric = self.shared
        if fabric is None:
            return
        demands = self.storage.read_demands()
        for job_id, tier, demand in demands:
            placement = self.running[job_id].placement
            assert placement is not None
            n = placement.num_gpus
            fabric.set_reads(job_id, storage_node(tier), {
                sid: demand * len(gpus) / n for sid, gpus in placement.allocations})
        changed = fabric.solve()
        for job_id, tier, _ in demands:
            rate = fabric.read_rate(job_id)
            if rate is not None:
                self.storage.set_read_share(job_id, tier, rate)
        self.record_levels(fabric.utilization, fabric.touched)
        for job_id in changed:
            job = self.running.get(job_id)
            if job is not None:  # (one being launched has no estimate: the launch makes it)
                self.respeed(job, "network share changed")

    def change_link(self, u: str, v: str, up: bool) -> None:
        """A link fails or comes back: flows reroute (or take their shortest paths again), jobs
        cut apart stall, and the links are re-shared."""
        fabric = self.shared or self.timed
        if fabric is None:
            raise RuntimeError("link failures need engine.network: shared or timed")
        (fabric.repair if up else fabric.fail)(u, v)
        detail = f"link {u} - {v} {'repaired' if up else 'failed'}"
        self.records.event(self.env.now, -1, "network", detail)
        self.share_network()

    def record_levels(self, utilization, touched=None) -> None:
        fabric = self.shared or self.timed
        assert fabric is not None
        self.records.links(self.env.now, fabric.router, utilization, touched)

    def _request_reshare(self) -> None:
        """A reader's demand moved after the links were shared (its ring share moved its step):
        re-share them once more at this instant, after the events already due now."""
        if not self._reshare_pending:
            self._reshare_pending = True
            event = self.env.event()
            event.callbacks.append(self._reshare)
            event.succeed()

    def _reshare(self, _event: simpy.Event) -> None:
        self._reshare_pending = False
        self.share_network()

    # ------------------------------------------------------------------ storage
    def storage_terms(self, job: JobState, spec: JobSpec,
                      placement: Placement) -> StorageTerms | None:
        """The storage terms of a running job's step on its placement (None: no storage I/O):
        its read demand is updated at that step (a move may re-share the links), and its data
        and checkpoint plans go to the ledger."""
        if not self.storage.active(spec):
            return None
        job_id, storage = job.job_id, self.storage
        allocs = allocs_of(placement)

        def terms(step_s: float) -> tuple[float, float]:
            moved = storage.update_demand(job_id, spec, allocs, step_s)
            now = self.env.now
            if moved and storage.reads_on_fabric and self._reshared.get(job_id) != now:
                self._reshared[job_id] = now  # once per job and instant: no loop
                self._request_reshare()
            data = storage.plan_data(spec, allocs, step_s, job_id)
            stall = data.stall_s if data is not None else 0.0
            ckpt = storage.plan_checkpoint(spec, allocs, step_s + stall, self.mtbf_s(job), job_id)
            self.ledger.plans(job_id, data, ckpt)
            return stall, ckpt.per_iteration_s if ckpt is not None else 0.0
        return terms

    def _storage_changed(self, moved: set[int]) -> None:
        """Jobs whose shared-tier share moved re-estimate (keeping their progress)."""
        for job_id in sorted(moved):
            job = self.running.get(job_id)
            if job is not None:
                self.respeed(job, "storage share changed")

    def restore_delay_s(self, job: JobState, fallback_s: float) -> float:
        """Restore time a restarted job pays, holding its GPUs without progress: with
        checkpointing on, reading its checkpoint on its (new) placement (size / read bandwidth
        + latency, dcsim.storage); else `fallback_s` (`engine.preemption_overhead_s`)."""
        if job.placement is not None and self.storage.checkpoint_spec(job.spec) is not None:
            est = job.estimate  # the step before checkpoint pauses: its last, else alone
            step_s = est.iteration_s - est.checkpoint_s if est is not None else job.alone_step_s
            plan = self.storage.plan_checkpoint(job.spec, allocs_of(job.placement), step_s,
                                                self.mtbf_s(job), job.job_id)
            if plan is not None:
                return plan.read_s
        return fallback_s

    def account(self, job: JobState, seg_done0: float, done: float) -> None:
        """Storage totals of the segment closing now: stall and checkpoint time (amortized per
        iteration), bytes read per tier, checkpoints written."""
        est = job.estimate
        if est is None or done - seg_done0 <= 0 or not self.storage.active(job.spec):
            return
        self.ledger.segment(job.job_id, est, seg_done0, done)
