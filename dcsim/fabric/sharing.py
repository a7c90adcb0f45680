"""Jobs sharing the network: each running job that spans servers keeps its traffic on the
topology graph as flows, and the max-min fair solver shares every link between all of them.

A job's GPUs, in placement order, are its ranks; with pipeline parallelism rank r is in stage
r // (GPUs / pp) (Megatron's order: pipeline outermost). Two kinds of flows:

- data-parallel rings, one per stage: each ring hop (server a -> next server b of the stage, in
  id order around the ring) carries one flow per GPU of the stage on a (all its rings run at
  once, one per local rank, as NCCL's channels do), from that GPU to the same-rank GPU of the
  stage on b; a stage on one server has no ring flows. The job's ring bandwidth is the slowest
  of these flows' rates.
- pipeline send/recv: rank i of stage s and rank i of stage s + 1, where on different servers,
  one flow each way (activations forward, gradients back). The job's pipeline bandwidth is the
  slowest of these.

- expert all-to-alls (MoE jobs with ep > 1): within a stage, ranks in Megatron's order
  (tensor and context ranks innermost, then expert, then data), so an expert group is every
  `stride`-th rank (stride = tp x cp) of a run of stride x ep. Between every ordered pair of
  the group's servers, each member GPU on the first sends one flow to the same-position member
  on the second (rail-aligned, as NCCL's PXN routes them). A GPU's flows to the other S - 1
  servers share its way out, so the job's all-to-all rate per GPU is the slowest flow's rate
  x (S - 1).

- context-parallel rings (jobs with cp > 1): a cp group is every tp-th rank of a run of tp x cp
  (Megatron's order); each member sends its KV chunks to the next member of its group, one
  flow where they sit on different servers. The job's ring-attention rate is the slowest.

A job that reads its dataset from a shared storage tier (`storage.<tier>` node, dcsim.storage)
also has one read flow per server, from the tier's node to the server's node, capped at that
server's part of the job's read demand (a virtual link of that capacity): its reads share links
with the rings, and the tier's own links bound all its readers together. The job's read rate is
its demand times the smallest fraction of it any of its servers gets (the slowest loader sets
the stall).

Flows are ECMP-routed GPU to GPU (`routing.Router`) with keys (job, kind, hop, rank). Rates are
recomputed only when the set of running jobs changes. The model treats a job's communication as
continuous: it shares links by the jobs' presence, not by the timing of their communication
phases within an iteration (`timed.py` does that for the rings). A failed link (`fail`) reroutes
the flows that crossed it; a job whose servers it cuts apart stalls (a rate of STALL_RATE) until
the link is repaired (`repair`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

from dcsim.fabric.internals import gpu_node
from dcsim.fabric.routing import Router
from dcsim.fabric.solver import Routes, max_min_rates_trusted, routes_to_csr
from dcsim.fabric.topology import server_node

__all__ = ["SharedFabric", "STALL_RATE", "ring_routes", "pipeline_routes", "a2a_routes",
           "cp_routes", "expert_groups", "stages"]

STALL_RATE = 1.0  # bytes/s of a job whose servers a failure cut apart: it all but stops


GpusOf = Mapping[int, int | Sequence[int]]  # server id -> the job's GPU indices (or a count)


def gpu_lists(gpus: GpusOf) -> dict[int, tuple[int, ...]]:
    return {s: tuple(range(g)) if isinstance(g, int) else tuple(g) for s, g in gpus.items()}


def stages(gpus: Mapping[int, Sequence[int]], pp: int) -> list[dict[int, tuple[int, ...]]]:
    """The job's GPUs per pipeline stage (server id -> GPU indices), ranks in placement order."""
    ranks = [(server, gpu) for server, ids in gpus.items() for gpu in ids]
    size = max(1, len(ranks) // pp)
    out = []
    for s in range(pp):
        stage: dict[int, list[int]] = {}
        for server, gpu in ranks[s * size:(s + 1) * size]:
            stage.setdefault(server, []).append(gpu)
        out.append({k: tuple(v) for k, v in stage.items()})
    return out


def _ends(router: Router, a: int, gpu_a: int, b: int, gpu_b: int) -> tuple[str, str]:
    if router.has_internals:
        return gpu_node(a, gpu_a), gpu_node(b, gpu_b)
    return server_node(a), server_node(b)


def ring_routes(router: Router, job_id: int, gpus: Mapping[int, Sequence[int]], pp: int = 1
                ) -> list[list[int]]:
    """The routes of a job's data-parallel ring flows (module docstring; between the server
    nodes if the graph has no GPUs), ECMP-keyed by (job, stage, hop, rank). Raises ValueError
    if a failure split the servers apart."""
    routes = []
    for st, stage in enumerate(stages(gpus, pp) if pp > 1 else [dict(gpus)]):
        servers = sorted(stage)
        if len(servers) < 2:
            continue
        for hop, (a, b) in enumerate(zip(servers, servers[1:] + servers[:1], strict=False)):
            for rank, gpu in enumerate(stage[a]):
                src, dst = _ends(router, a, gpu, b, stage[b][rank % len(stage[b])])
                routes.append(router.route(src, dst, (job_id, st, hop, rank)))
    return routes


def expert_groups(gpus: Mapping[int, Sequence[int]], pp: int, stride: int, ep: int
                  ) -> list[list[tuple[int, int]]]:
    """Each expert-parallel group's (server, GPU) members, stage by stage (module docstring)."""
    groups = []
    for stage in stages(gpus, pp) if pp > 1 else [dict(gpus)]:
        ranks = [(server, gpu) for server, ids in stage.items() for gpu in ids]
        block = stride * ep
        for start in range(0, len(ranks) - block + 1, block):
            for lane in range(stride):
                groups.append(ranks[start + lane:start + block:stride])
    return groups


def a2a_routes(router: Router, job_id: int, gpus: Mapping[int, Sequence[int]], pp: int,
               stride: int, ep: int) -> tuple[list[list[int]], list[float]]:
    """The routes of a job's expert all-to-all flows and, per flow, the number of other
    servers its sender sends to (its rate x that is the sender's way out)."""
    routes: list[list[int]] = []
    fanout: list[float] = []
    for g, members in enumerate(expert_groups(gpus, pp, stride, ep)):
        on: dict[int, list[int]] = {}
        for server, gpu in members:
            on.setdefault(server, []).append(gpu)
        servers = sorted(on)
        for a in servers:
            for b in servers:
                if a == b:
                    continue
                for i, gpu in enumerate(on[a]):
                    src, dst = _ends(router, a, gpu, b, on[b][i % len(on[b])])
                    routes.append(router.route(src, dst, (job_id, "a2a", g, a, b, i)))
                    fanout.append(float(len(servers) - 1))
    return routes, fanout


def cp_routes(router: Router, job_id: int, gpus: Mapping[int, Sequence[int]], pp: int,
              tp: int, cp: int) -> tuple[list[list[int]], list[float]]:
    """The routes of a job's context-parallel ring flows (each member to the next of its
    group, where on another server), each with fan-out 1."""
    routes: list[list[int]] = []
    for g, members in enumerate(expert_groups(gpus, pp, tp, cp)):
        for k, (a, gpu_a) in enumerate(members):
            b, gpu_b = members[(k + 1) % len(members)]
            if a != b:
                src, dst = _ends(router, a, gpu_a, b, gpu_b)
                routes.append(router.route(src, dst, (job_id, "cp", g, k)))
    return routes, [1.0] * len(routes)


# the flows that run in their own phase of a job's iteration: kind -> how they are built
PHASES = ("a2a", "cp")


def pipeline_routes(router: Router, job_id: int, gpus: Mapping[int, Sequence[int]], pp: int
                    ) -> list[list[int]]:
    """The routes of a job's pipeline send/recv flows between stages on different servers."""
    if pp < 2:
        return []
    ranks = [[(server, gpu) for server, ids in stage.items() for gpu in ids]
             for stage in stages(gpus, pp)]
    routes = []
    for st, (this, after) in enumerate(zip(ranks, ranks[1:], strict=False)):
        for i, ((a, ga), (b, gb)) in enumerate(zip(this, after, strict=False)):
            if a != b:
                fwd, back = _ends(router, a, ga, b, gb), _ends(router, b, gb, a, ga)
                routes.append(router.route(*fwd, (job_id, "p2p", st, i)))
                routes.append(router.route(*back, (job_id, "p2p-back", st, i)))
    return routes


def _local(indices: np.ndarray, used: np.ndarray, n_links: int) -> np.ndarray:
    """Link indices renumbered as positions in `used` (sorted); a virtual link past the
    fabric's (index n_links + k) becomes len(used) + k."""
    if len(used) == n_links:  # every link: positions are indices
        return indices
    out = np.searchsorted(used, indices)
    virtual = indices >= n_links
    if virtual.any():
        out[virtual] += indices[virtual] - n_links
    return out


class SharedFabric:
    SPARSE_RATIO = 8  # solve on the links in use where the fabric has this many times more

    def __init__(self, graph: nx.Graph, attach: Mapping[str, Sequence[str]] | None = None) -> None:
        self.router = Router(graph, attach)
        # job id -> (GPUs, pp, expert layout (stride, ep) or None, context (tp, cp) or None)
        self._jobs: dict[int, tuple[dict[int, tuple[int, ...]], int,
                                    tuple[int, int] | None, tuple[int, int] | None]] = {}
        self._rates: dict[int, float] = {}  # job id -> slowest ring flow rate (bytes/s)
        self._p2p_rates: dict[int, float] = {}  # job id -> slowest pipeline flow rate
        # phase ("a2a", "cp") -> job id -> its rate per GPU
        self._phase_rates: dict[str, dict[int, float]] = {k: {} for k in PHASES}
        # job id -> (ring routes, pipeline routes, phase -> (routes, fan-outs)), or None if
        # a failure cut the job apart
        self._routes: dict[int, tuple[list[list[int]], list[list[int]],
                                      dict[str, tuple[list[list[int]], list[float]]]]
                           | None] = {}
        # job id -> the (server, server) pairs its routes run between (`_forget`)
        self._pairs: dict[int, set[tuple[str, str]]] = {}
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray, int, int,
                                      dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]]
                           | None] = {}
        self.utilization = np.zeros(len(self.router.links))  # per directed link, last solve
        self._every = np.arange(len(self.router.links))
        self._used = np.zeros(0, dtype=np.int64)  # the links the last solve ran on
        self.touched = self._used  # the links whose utilization the last solve may have moved
        # job id -> (storage node, server id -> read demand bytes/s), and the rates got
        self._reads: dict[int, tuple[str, dict[int, float]]] = {}
        self._read_rates: dict[int, float] = {}
        self._read_routes: dict[int, list[list[int]] | None] = {}

    def add(self, job_id: int, gpus: GpusOf, pp: int = 1,
            experts: tuple[int, int] | None = None,
            context: tuple[int, int] | None = None) -> bool:
        """A running job's GPUs (server id -> GPU indices in rank order, or how many), its
        pipeline stages, for a MoE job with ep > 1 its expert layout (tp x cp, ep), and with
        cp > 1 its context layout (tp, cp); only jobs that span servers have flows. True if
        the job has flows (the links need re-sharing)."""
        if len(gpus) > 1:
            self._jobs[job_id] = (gpu_lists(gpus), pp,
                                  experts if experts and experts[1] > 1 else None,
                                  context if context and context[1] > 1 else None)
            return True
        return False

    def remove(self, job_id: int) -> bool:
        """The job left; True if it had flows (the links need re-sharing)."""
        self._rates.pop(job_id, None)
        self._p2p_rates.pop(job_id, None)
        for rates in self._phase_rates.values():
            rates.pop(job_id, None)
        self._routes.pop(job_id, None)
        self._arrays.pop(job_id, None)
        self._pairs.pop(job_id, None)
        reads = self.set_reads(job_id, None, {})
        return (self._jobs.pop(job_id, None) is not None) or reads

    def set_reads(self, job_id: int, node: str | None, demand: Mapping[int, float]) -> bool:
        """The job reads `demand[s]` bytes/s to server s from storage node `node` (None or no
        demand: it reads nothing over the fabric). True if that changed (re-share the links)."""
        new = (node, {s: d for s, d in sorted(demand.items()) if d > 0}) if node else None
        if new is not None and not new[1]:
            new = None
        old = self._reads.get(job_id)
        if new == old or (new and old and new[0] == old[0] and new[1].keys() == old[1].keys()
                          and all(abs(new[1][s] - d) <= 1e-9 * d for s, d in old[1].items())):
            return False
        self._read_routes.pop(job_id, None)
        if new is None:
            self._reads.pop(job_id, None)
            self._read_rates.pop(job_id, None)
        else:
            self._reads[job_id] = new  # type: ignore[assignment]
        return True

    def read_rate(self, job_id: int) -> float | None:
        """The job's storage read rate under sharing (bytes/s), or None if it reads nothing
        over the fabric."""
        return self._read_rates.get(job_id)

    def routes_of(self, job_id: int) -> list[list[int]]:
        """Every route the job's flows take now (rings, pipeline, all-to-alls, storage
        reads)."""
        out: list[list[int]] = []
        if job_id in self._jobs and (these := self._job_routes(job_id)) is not None:
            out += these[0] + these[1]
            for routes, _ in these[2].values():
                out += routes
        if job_id in self._reads and (reads := self._job_read_routes(job_id)) is not None:
            out += reads
        return out

    def rate(self, job_id: int) -> float | None:
        """The job's per-GPU ring bandwidth under sharing, or None if it has no ring flows."""
        return self._rates.get(job_id)

    def p2p_rate(self, job_id: int) -> float | None:
        """The job's bandwidth between pipeline stages under sharing, or None if none of its
        stage boundaries crosses servers."""
        return self._p2p_rates.get(job_id)

    def a2a_rate(self, job_id: int) -> float | None:
        """The job's expert all-to-all rate per GPU off its server under sharing, or None if
        its expert groups stay inside servers (or it has none)."""
        return self._phase_rates["a2a"].get(job_id)

    def cp_rate(self, job_id: int) -> float | None:
        """The job's ring-attention rate per GPU between context-parallel ranks on different
        servers under sharing, or None if its cp groups stay inside servers (or cp is 1)."""
        return self._phase_rates["cp"].get(job_id)

    def fail(self, u: str, v: str) -> None:
        moved = self._moved(u, v)  # (with the link still there)
        self.router.remove(u, v)
        self._forget(moved)

    def repair(self, u: str, v: str) -> None:
        self.router.restore(u, v)
        self._forget(self._moved(u, v))

    def _moved(self, u: str, v: str) -> list[int] | None:
        """The jobs whose cached routes may differ with and without link u - v (asked while
        it is there): those with a pair of servers the router says may move, and those cut
        apart; None (every job) where the router cannot tell. The others would route the
        same again."""
        moved = self.router.moved_by(u, v)
        if moved is None:
            return None
        return [j for j, r in self._routes.items()
                if r is None or any(moved(a, b) for a, b in self._pairs[j])]

    def _forget(self, jobs: list[int] | None) -> None:
        """Drop these jobs' cached routes (None: every job's), so the next solve routes them
        again; storage reads are routed again in any case."""
        if jobs is None:
            self._routes.clear()
            self._arrays.clear()
        for job_id in jobs or ():
            del self._routes[job_id]
            self._arrays.pop(job_id, None)
        self._read_routes.clear()

    def _job_read_routes(self, job_id: int) -> list[list[int]] | None:
        """Routes of the job's read flows, storage node -> each server (cached until a link
        changes), or None if a failure cut the storage off from one of its servers."""
        if job_id not in self._read_routes:
            node, demand = self._reads[job_id]
            try:
                self._read_routes[job_id] = [
                    self.router.route(node, server_node(s), (job_id, "read", s)) for s in demand]
            except ValueError:
                self._read_routes[job_id] = None
        return self._read_routes[job_id]

    def _job_routes(self, job_id: int) -> tuple[
            list[list[int]], list[list[int]],
            dict[str, tuple[list[list[int]], list[float]]]] | None:
        """The job's ring and pipeline routes and its phases' (all-to-alls, context rings)
        routes and fan-outs (cached until a link changes), or None if it is cut apart."""
        if job_id not in self._routes:
            gpus, pp, experts, context = self._jobs[job_id]
            self.router.log = self._pairs[job_id] = set()
            try:
                phases = {}
                if experts:
                    phases["a2a"] = a2a_routes(self.router, job_id, gpus, pp, *experts)
                if context:
                    phases["cp"] = cp_routes(self.router, job_id, gpus, pp, *context)
                self._routes[job_id] = (ring_routes(self.router, job_id, gpus, pp),
                                        pipeline_routes(self.router, job_id, gpus, pp),
                                        phases)
            except ValueError:  # a failed link split the job's servers apart
                self._routes[job_id] = None
            finally:
                self.router.log = None
        return self._routes[job_id]


    def solve(self) -> dict[int, float]:
        """Recompute every job's rates; returns the jobs whose ring, pipeline, all-to-all or
        read rate changed (id -> new ring rate). The rings, pipelines and reads share the
        links max-min fairly. Then, phase by phase (all-to-alls, context rings), each job's
        flows of the phase share with every job's flows of that phase what the other jobs'
        flows leave of each link: a job's own rings and pipeline transfers run at other
        times of its iteration, so they do not slow its phase flows (nor the reverse)."""
        ring: dict[int, float] = {}
        p2p: dict[int, float] = {}
        phase_rates: dict[str, dict[int, float]] = {k: {} for k in PHASES}
        flats: list[np.ndarray] = []
        lens: list[np.ndarray] = []
        segments: list[tuple[int, int, int]] = []  # (job, ring flows, pipeline flows)
        phased: dict[str, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = {
            k: [] for k in PHASES}
        for job_id in sorted(self._jobs):
            arrays = self._job_arrays(job_id)
            if arrays is None:  # cut apart: it stalls
                ring[job_id] = p2p[job_id] = STALL_RATE
                _, _, experts, context = self._jobs[job_id]
                for kind, given in (("a2a", experts), ("cp", context)):
                    if given:
                        phase_rates[kind][job_id] = STALL_RATE
                continue
            flat, flow_lens, n_ring, n_p2p, phases = arrays
            if n_ring + n_p2p:
                flats.append(flat)
                lens.append(flow_lens)
                segments.append((job_id, n_ring, n_p2p))
            for kind, (p_flat, p_lens, fanout) in phases.items():
                if len(fanout):
                    phased[kind].append((job_id, p_flat, p_lens, fanout))
        n_links = len(self.router.links)
        n_train = int(sum(len(x) for x in lens))
        read_routes: list[list[int]] = []
        read_owner, caps, reads = self._read_flows(read_routes, n_links)
        reads_csr = routes_to_csr(read_routes)
        # on a fabric much larger than what the flows cross, the solve runs on the links some
        # flow crosses, numbered in index order (a link no flow crosses never fills, and the
        # others keep their order: the same rates to the bit), so its cost follows the flows,
        # not the size of the fabric; else on every link
        crossed = np.concatenate(
            [*flats, reads_csr.indices[reads_csr.indices < n_links],
             *(p_flat for entries in phased.values() for _, p_flat, _, _ in entries),
             np.zeros(0, dtype=np.int64)])
        used = (np.unique(crossed) if len(crossed) * self.SPARSE_RATIO < n_links
                else self._every)
        n_used = len(used)
        capacity = self.router.capacity[used]
        load = np.zeros(n_used)
        own: dict[int, np.ndarray] = {}  # MoE job -> its rings' and pipelines' load
        if n_train or read_routes:
            flats.append(reads_csr.indices)
            lens.append(np.diff(reads_csr.indptr))
            flow_lens = np.concatenate(lens)
            indptr = np.zeros(len(flow_lens) + 1, dtype=np.int64)
            np.cumsum(flow_lens, out=indptr[1:])
            indices = _local(np.concatenate(flats), used, n_links)
            rates = max_min_rates_trusted(
                Routes(indptr, indices),
                np.concatenate([capacity, np.array(caps)]) if caps else capacity)
            at = 0
            moe = {job_id for entries in phased.values() for job_id, *_ in entries}
            for (job_id, n_ring, n_p2p), job_lens in zip(segments, lens, strict=False):
                if n_ring:
                    ring[job_id] = float(rates[at:at + n_ring].min())
                if n_p2p:
                    p2p[job_id] = float(rates[at + n_ring:at + n_ring + n_p2p].min())
                if job_id in moe:
                    first = int(indptr[at])
                    links = indices[first:first + int(job_lens.sum())]
                    own[job_id] = np.bincount(
                        links, weights=np.repeat(rates[at:at + n_ring + n_p2p], job_lens),
                        minlength=n_used)
                at += n_ring + n_p2p
            for job_id, rate, cap in zip(read_owner, rates[n_train:], caps, strict=True):
                total = sum(self._reads[job_id][1].values())
                reads[job_id] = min(reads.get(job_id, total), total * float(rate) / cap)
            carried = indices < n_used  # not the reads' virtual cap links
            load = np.bincount(indices[carried], weights=np.repeat(rates, flow_lens)[carried],
                               minlength=n_used)
        added = np.zeros(n_used)
        for kind, entries in phased.items():
            if entries:
                added += self._solve_phase(entries, used, capacity, load, own,
                                           phase_rates[kind])
        load = load + added
        if n_used == n_links:
            self.utilization = load / capacity
        else:
            self.utilization[self._used] = 0.0
            self.utilization[used] = load / capacity
        self.touched = used if n_used == n_links else np.union1d(self._used, used)
        self._used = used

        def moved(old: dict[int, float], new: dict[int, float]) -> set[int]:
            return {j for j, r in new.items() if j not in old or abs(old[j] - r) > 1e-9 * r}

        changed = moved(self._rates, ring) | moved(self._p2p_rates, p2p)
        changed |= moved(self._read_rates, reads)
        for kind in PHASES:
            changed |= moved(self._phase_rates[kind], phase_rates[kind])
        self._rates, self._p2p_rates, self._read_rates = ring, p2p, reads
        self._phase_rates = phase_rates
        return {j: ring.get(j, 0.0) for j in sorted(changed)}

    def _solve_phase(self, experts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
                     used: np.ndarray, capacity: np.ndarray, load: np.ndarray,
                     own: dict[int, np.ndarray], out: dict[int, float]) -> np.ndarray:
        """Each job's rate per GPU in one phase (into `out`: the slowest flow's rate x its
        fan-out): every job's flows of the phase max-min fair on the links less the other
        jobs' ring, pipeline and read load. Returns what the phase adds to the links' load:
        a job's phase flows and its own rings take turns, so a link carries the larger of
        the two beside the others'. Links are the solve's `used` ones (their `capacity`,
        `load` and `own` loads by position in `used`)."""
        n_used = len(used)
        flow_lens = np.concatenate([x[2] for x in experts])
        indptr = np.zeros(len(flow_lens) + 1, dtype=np.int64)
        np.cumsum(flow_lens, out=indptr[1:])
        indices = _local(np.concatenate([x[1] for x in experts]), used, len(self.router.links))
        routes = Routes(indptr, indices)
        floor = capacity * 1e-9  # (a link the others fill leaves the all-to-alls ~nothing)
        a2a_load = np.zeros(n_used)
        at = 0
        for job_id, _, job_lens, fanout in experts:
            background = load - own.get(job_id, 0.0)
            rates = max_min_rates_trusted(routes, np.maximum(capacity - background, floor))
            mine = rates[at:at + len(fanout)]
            out[job_id] = float((mine * fanout).min())
            first = int(indptr[at])
            links = indices[first:first + int(job_lens.sum())]
            mine_load = np.bincount(links, weights=np.repeat(mine, job_lens),
                                    minlength=n_used)
            a2a_load += np.maximum(mine_load - own.get(job_id, 0.0), 0.0)
            at += len(fanout)
        return a2a_load

    def _job_arrays(self, job_id: int) -> tuple[
            np.ndarray, np.ndarray, int, int,
            dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] | None:
        """The job's ring then pipeline routes as one array of link indices and each flow's
        length, with the two counts; each phase's routes likewise, with their fan-outs
        (cached with the routes), or None if it is cut apart."""
        if job_id not in self._arrays:
            routes = self._job_routes(job_id)
            if routes is None:
                self._arrays[job_id] = None
            else:
                csr = routes_to_csr(routes[0] + routes[1])
                phases = {}
                for kind, (these, fanout) in routes[2].items():
                    p = routes_to_csr(these)
                    phases[kind] = (p.indices, np.diff(p.indptr), np.array(fanout, dtype=float))
                self._arrays[job_id] = (csr.indices, np.diff(csr.indptr), len(routes[0]),
                                        len(routes[1]), phases)
        return self._arrays[job_id]

    def _read_flows(self, routes: list[list[int]], n_links: int
                    ) -> tuple[list[int], list[float], dict[int, float]]:
        """Append the storage read flows to `routes`, each through a virtual link of its demand
        (capacity index n_links + k); returns their owners, caps, and the read rates of jobs
        cut off from their storage (STALL_RATE)."""
        owners: list[int] = []
        caps: list[float] = []
        cut: dict[int, float] = {}
        for job_id in sorted(self._reads):
            these = self._job_read_routes(job_id)
            if these is None:
                cut[job_id] = STALL_RATE
                continue
            for route, demand in zip(these, self._reads[job_id][1].values(), strict=True):
                routes.append([*route, n_links + len(caps)])
                owners.append(job_id)
                caps.append(demand)
        return owners, caps, cut
