"""Building what a scenario describes, before anything runs: `build_world(scenario)`.

A `World` holds the built parts: the cluster (servers, GPUs and their allocation state), the
network (topology graph, each server's insides, the storage tiers attached), the storage model,
the flow fabric (`engine.network`, dcsim/fabric/flows.py), the placement policy bound to them,
the step-time model and the trace as read. Parts past the cluster and network are built on
first use, so the checks of `check_world` pay only for what they look at.

It also answers what a job gets placed alone on the empty cluster, without running anything
(`admit`, `placed_links`, `estimate_alone`, `reference_iterations`): `dcsim estimate`, the
validation tables and the engine's admission and run-time-alone figures all come from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import simpy

from dcsim import catalog
from dcsim.catalog import GpuSpec
from dcsim.energy.account import Grid, build_grid
from dcsim.energy.cost import Capex, CostModel
from dcsim.energy.model import PowerModel
from dcsim.fabric import Network
from dcsim.fabric.flows import FLOW_FABRICS
from dcsim.fabric.network import RingPath
from dcsim.fabric.sharing import SharedFabric
from dcsim.fabric.timed import TimedFabric
from dcsim.faults.instances import Instances, resolve_components
from dcsim.faults.rates import FaultRates
from dcsim.hardware import Cluster, build_cluster, build_network
from dcsim.jobs import JobState
from dcsim.perf.measured import Entry, MeasuredStepModel
from dcsim.perf.memory import memory_breakdown
from dcsim.perf.profile import DeviceProfile, load_profile_file
from dcsim.perf.select import build_step_model
from dcsim.perf.step import StepEstimate, StepTimeModel
from dcsim.perf.tables import read_table
from dcsim.policies import PLACEMENTS, Placement, PlacementPolicy
from dcsim.rng import RandomStreams
from dcsim.scenario import JobSpec, Scenario
from dcsim.storage import StorageModel, attach_storage
from dcsim.workload import WorkloadResult, build_workload
from dcsim.workload.traces import TraceLoad, load_trace
from dcsim.world.pace import StorageTerms, pace

__all__ = ["World", "build_world", "Admission", "GRID_DIR"]

# the hourly 2023 grid series shipped with dcsim (README.md there: sources, licence)
GRID_DIR = Path(__file__).resolve().parents[1] / "catalog" / "grid"

Admission = tuple[tuple[str, ...], str, float]  # (GPU types, why none, memory per GPU bytes)


class World:
    """A scenario's built parts (see the module docstring). `streams` and `env` are the run's
    (a world of its own gets fresh ones); `step_model` replaces the scenario's."""

    def __init__(self, scenario: Scenario, cluster: Cluster, network: Network, *,
                 streams: RandomStreams | None = None, env: simpy.Environment | None = None,
                 step_model: StepTimeModel | None = None) -> None:
        self.scenario, self.cluster, self.network = scenario, cluster, network
        self.streams = streams if streams is not None else RandomStreams(scenario.seed)
        self.env = env if env is not None else simpy.Environment()
        self._given_model = step_model
        self.table_counts: list[dict] = []  # read/accepted/skipped per throughput table
        # the mean time between failures of a job (for Young/Daly checkpoint intervals): the
        # configured rates (inf without `faults`); a run's engine hands in its fault model's
        self.job_mtbf_s: Callable[[JobState], float] = self._configured_mtbf_s
        self._reference_step_s: dict[tuple, float] = {}  # duration -> iterations conversions
        self._alone_step_s: dict[tuple, float] = {}  # step time alone, by spec and GPU types
        self._sources_of: dict[tuple, str] = {}  # measured jobs' step sources, same keys
        self._empty: Cluster | None = None  # the same servers, never allocated

    # ------------------------------------------------------------------ parts, built on use
    @cached_property
    def storage(self) -> StorageModel:
        """The storage model; its shared tiers join the network (nodes storage.TIER)."""
        model = StorageModel(self.scenario, self.cluster.servers)
        self.network.add_to_detailed(lambda graph: attach_storage(graph, model.system))
        # data reads are flows on the fabric beside the training traffic, if it carries them
        model.reads_on_fabric = FLOW_FABRICS.get(self.scenario.engine.network).carries_reads
        return model

    @cached_property
    def fabric(self) -> SharedFabric | TimedFabric | None:
        """The flow fabric of `engine.network` (None: isolated)."""
        self.storage  # noqa: B018  (built first: its tiers are links of the fabric)
        kind = FLOW_FABRICS.get(self.scenario.engine.network)
        fabric = kind.build(self.network, self.env)
        if kind.carries_reads != isinstance(fabric, SharedFabric):  # the engine re-shares reads
            raise TypeError(f"flow fabric {kind.name!r}: carries_reads is {kind.carries_reads} "
                            f"but it builds a {type(fabric).__name__}; data reads travel as "
                            f"flows only on a SharedFabric (dcsim/fabric/flows.py)")
        return fabric

    @cached_property
    def placement(self) -> PlacementPolicy:
        cls = PLACEMENTS.get(self.scenario.placement.kind)
        policy = cls(cls.Params(**self.scenario.placement.params))
        policy.bind(self.network, self.fabric, self.streams)
        return policy

    @cached_property
    def step_model(self) -> StepTimeModel:
        """The scenario's step-time models (each job routed to its own), or the one given."""
        if self._given_model is not None:
            return self._given_model
        return build_step_model(self.scenario.engine.step_model, self._profiles(),
                                self._table_entries())

    @cached_property
    def power(self) -> PowerModel:
        """The power model: the catalog's figures with the scenario's `power.gpus`."""
        return PowerModel(self.scenario.power)

    @cached_property
    def grid(self) -> Grid:
        """PUE, carbon intensity and price over run time (`power:`; shipped zones' series)."""
        return build_grid(self.scenario.power, self._grid_path)

    def _grid_path(self, path: str):
        if path.startswith("zone:"):
            _, zone, kind = path.split(":")
            return GRID_DIR / f"{zone}_2023_{kind}_hourly.csv"
        return self.scenario.resolve_path(path)

    def server_types(self) -> list[str]:
        """Each server's catalog type ("" for a server group described inline)."""
        return list(self._server_types)

    @cached_property
    def _server_types(self) -> tuple[str, ...]:
        return tuple(g.type or "" for g in self.scenario.cluster.servers for _ in range(g.count))

    def server_idle_w(self, server_id: int) -> float:
        """A server in service with nothing running: its GPUs' and its host's idle power."""
        server, power = self.cluster.servers[server_id], self.power
        return (server.num_gpus * power.gpu(server.gpu.name).idle_w
                + power.host(self._server_types[server_id]).idle_w)

    def idle_it_w(self) -> float:
        """The cluster's IT power with every server in service and nothing running."""
        return self._idle_it_w

    @cached_property
    def _idle_it_w(self) -> float:
        return (sum(self.server_idle_w(s.server_id) for s in self.cluster.servers)
                + self.network_power_w() + self.scenario.power.storage_w)

    def job_power_w(self, spec: JobSpec, placement: Placement,
                    cap_w: float = math.inf) -> float:
        """What a job adds to the cluster's IT power on `placement`, above idle, at its step
        alone there (under a power cap `cap_w` per GPU, if finite): its GPUs above their idle
        power and its hosts' busy increments."""
        power = self.power
        gpu = self.cluster.servers[placement.server_ids[0]].gpu.name
        est = self.estimate_on(spec, placement, cap_w)
        watts = placement.num_gpus * (power.running_w(est, gpu) - power.gpu(gpu).idle_w)
        for sid, gpus in placement.allocations:
            host = power.host(self._server_types[sid])
            per_gpu = (host.busy_w - host.idle_w) / max(1, self.cluster.servers[sid].num_gpus)
            watts += len(gpus) * per_gpu
        return watts

    @cached_property
    def cost(self) -> CostModel | None:
        """The cost model (prices, lifetimes, maintenance), with a `cost:` section; else None."""
        spec = self.scenario.cost
        return CostModel(spec) if spec is not None else None

    def capex(self) -> Capex:
        """The cluster's capital by part (needs a `cost:` section)."""
        assert self.cost is not None
        return self.cost.capex(self.cluster.servers, self._server_types, self.switch_ports(),
                               self.shared_storage_tb(), self.it_capacity_w())

    def switch_ports(self) -> list[tuple[float, int]]:
        """The switch ports in use, as (line rate per port in bit/s, ports): each link end at
        a switch is as many ports as the link has (its bandwidth over the server's NIC for a
        server's link, over the cluster's fastest NIC between switches: a rail carries one NIC
        per server)."""
        graph, servers = self.network.graph, self.cluster.servers
        kinds = graph.nodes
        fastest = max((8.0 * bw for s in servers for bw in s.nics), default=100e9)
        out = []
        for a, b, d in graph.edges(data=True):
            ends = (kinds[a].get("kind") == "switch") + (kinds[b].get("kind") == "switch")
            if not ends:
                continue
            bit_s = 8.0 * float(d.get("bandwidth_byte_s", 0.0))
            server = a if kinds[a].get("kind") == "server" else b if ends == 1 else None
            nics = servers[int(str(server).removeprefix("server"))].nics if server else ()
            ports = max(1, round(bit_s / (8.0 * nics[0] if nics else fastest)))
            out.append((bit_s / ports, ends * ports))
        return out

    def network_power_w(self) -> float:
        """The switches' power: each port in use (`switch_ports`) at its speed's
        `switch_port_w`."""
        return self._network_power_w

    @cached_property
    def _network_power_w(self) -> float:
        return sum(n * self.power.port_w(bit_s) for bit_s, n in self.switch_ports())

    def it_capacity_w(self) -> float:
        """The IT power the facility is built for: every server at full power (its GPUs at
        board power, its host busy), the switches and storage."""
        power, types = self.power, self._server_types
        servers = sum(s.num_gpus * power.gpu(s.gpu.name).tdp_w
                      + power.host(types[s.server_id]).busy_w for s in self.cluster.servers)
        return servers + self.network_power_w() + self.scenario.power.storage_w

    def shared_storage_tb(self) -> dict[str, float]:
        """The usable capacity (TB) of the enabled shared tiers (pfs, object), with a
        `storage:` section (none without: storage is not modelled)."""
        if self.scenario.storage is None:
            return {}
        shared = self.storage.system.shared
        return {name: tier.capacity_bytes / 1e12 for name, tier in shared.items()
                if tier.enabled}

    @cached_property
    def fault_rates(self) -> FaultRates | None:
        """The configured failure rates of this cluster (None: no `faults`)."""
        spec = self.scenario.faults
        if spec is None:
            return None
        inst = Instances(self.cluster, self.network.graph)
        return FaultRates(inst, resolve_components(spec, inst))

    def _configured_mtbf_s(self, job: JobState) -> float:
        rates = self.fault_rates
        return rates.job_mtbf_s(job) if rates is not None else math.inf

    @cached_property
    def workload(self) -> WorkloadResult:
        """The jobs (inline, from the trace or generated from the run's streams), by arrival."""
        return build_workload(self.scenario, self.streams, self.trace)

    @cached_property
    def trace(self) -> TraceLoad | None:
        """The scenario's trace as read and mapped (None: no trace)."""
        return load_trace(self.scenario) if self.scenario.workload.trace is not None else None

    def _table_entries(self) -> list[Entry] | None:
        """The entries of the scenario's throughput tables (None: no tables), in order."""
        if not self.scenario.engine.throughputs:
            return None
        entries: list[Entry] = []
        for src in self.scenario.engine.throughputs:
            read = read_table(self.scenario.resolve_path(src.path), src.format, src.gpus)
            self.table_counts.append(read.counts())
            entries += read.entries
        return entries

    def _profiles(self) -> dict[str, DeviceProfile]:
        """Device profiles from the scenario's `engine.profiles` files (later files win)."""
        out: dict[str, DeviceProfile] = {}
        for path in self.scenario.engine.profiles:
            out.update(load_profile_file(self.scenario.resolve_path(path)))
        return out

    # ------------------------------------------------------------------ a job alone
    def admit(self, spec: JobSpec) -> Admission:
        """GPU types the job can ever run on, or none and why ("code: details"); and the
        job's memory per GPU (bytes)."""
        by_type = self.cluster.gpus_by_type
        wanted = [spec.gpu_type] if spec.gpu_type else list(by_type)
        need = memory_breakdown(spec)
        if (bad := self.storage.problem(spec)) is not None:
            return (), f"storage: {'.'.join(bad[0])}: {bad[1]}", need.total
        reasons = []
        ok = []
        for name in wanted:
            gpu = self.cluster.gpu_specs.get(name)
            if gpu is None:
                reasons.append(f"no-such-gpu: needs {name}; the cluster has {', '.join(by_type)}")
            elif not gpu.supports(spec.precision):
                reasons.append(f"unsupported-precision: {name} has no {spec.precision} support")
            elif by_type[name] < spec.num_gpus:
                reasons.append(f"insufficient-gpus: needs {spec.num_gpus} GPUs of type {name}; "
                               f"the cluster has {by_type[name]}")
            elif need.total > gpu.memory_bytes and not self.measured_on(spec, name):
                reasons.append(f"out-of-memory: needs {need.describe()}; {name} has "
                               f"{gpu.memory_bytes / 1e9:.1f} GB")
            else:
                ok.append(name)
        return tuple(ok), "; ".join(reasons), need.total

    def measured_model(self, spec: JobSpec) -> MeasuredStepModel | None:
        """The measured-throughput model, if the job uses it."""
        model_of = getattr(self.step_model, "model_of", None)
        model = model_of(spec) if model_of is not None else self.step_model
        return model if isinstance(model, MeasuredStepModel) else None

    def measured_on(self, spec: JobSpec, gpu_name: str) -> bool:
        """Whether the job's step times on `gpu_name` come from a throughput table (a
        measurement there shows that it fits: the memory model does not reject it)."""
        measured = self.measured_model(spec)
        return measured is not None and measured.lookup(spec, gpu_name) is not None

    def empty_placement(self, spec: JobSpec, types: tuple[str, ...]) -> Placement:
        """Where the placement policy puts an admitted job on the empty cluster."""
        view = JobState(-1, spec, gpu_types=types).view(0.0)
        if self._empty is None:
            self._empty = Cluster(list(self.cluster.servers))
        placement = self.placement.place(view, self._empty.views())
        assert placement is not None  # admitted jobs fit an empty cluster
        return placement

    def links_of(self, placement: Placement) -> tuple[GpuSpec, RingPath]:
        """The GPU and the links (ring path) of a placement, the network otherwise idle."""
        gpu = self.cluster.servers[placement.server_ids[0]].gpu
        return gpu, self.network.ring(placement.gpus_per_server())

    def placed_links(self, spec: JobSpec) -> tuple[GpuSpec, RingPath]:
        """The GPU and the links a job gets on an otherwise empty cluster (validation, fits)."""
        types, reason, _ = self.admit(spec)
        if not types:
            raise ValueError(f"job {spec.name} cannot run: {reason}")
        return self.links_of(self.empty_placement(spec, types))

    def estimate_alone(self, spec: JobSpec) -> tuple[StepEstimate | None, str]:
        """The job's step estimate on an otherwise empty cluster, or None and the reason."""
        types, reason, _ = self.admit(spec)
        if not types:
            return None, reason
        return self.estimate_on(spec, self.empty_placement(spec, types)), ""

    def estimate_on(self, spec: JobSpec, placement: Placement,
                    cap_w: float = math.inf) -> StepEstimate:
        """The job's step alone on `placement`: no fabric share, no stragglers, the storage
        tiers to itself; under its GPU type's power cap and `cap_w` (W per GPU), if any."""
        gpu, ring = self.links_of(placement)
        return pace(self.step_model, spec, gpu, ring, storage=self.storage_alone(spec, placement),
                    cap=self.cap_of(gpu.name, cap_w))

    def cap_of(self, gpu_name: str, cap_w: float = math.inf
               ) -> Callable[[StepEstimate], StepEstimate] | None:
        """The power cap a step on this GPU type runs under: the lower of the type's
        (`power.gpus.TYPE.cap_w`) and `cap_w` (a job's, set by the power-capped scheduler);
        None without either."""
        power = self.power
        cap = min(power.type_cap_w(gpu_name), cap_w)
        if not math.isfinite(cap):
            return None
        return lambda est: power.capped(est, gpu_name, cap)

    def storage_alone(self, spec: JobSpec, placement: Placement) -> StorageTerms | None:
        """The storage terms of the job alone on `placement` (None: it does no storage I/O)."""
        if not self.storage.active(spec):
            return None
        allocs = [(sid, len(gpus)) for sid, gpus in placement.allocations]
        mtbf_s = self.job_mtbf_s(JobState(-1, spec))

        def terms(step_s: float) -> tuple[float, float]:
            data = self.storage.plan_data(spec, allocs, step_s, None)
            stall = data.stall_s if data is not None else 0.0
            ckpt = self.storage.plan_checkpoint(spec, allocs, step_s + stall, mtbf_s, None)
            return stall, ckpt.per_iteration_s if ckpt is not None else 0.0
        return terms

    def reference_iterations(self, spec: JobSpec, types: tuple[str, ...], key: tuple) -> int:
        """A duration-based job's iterations: as many as take `duration_s` alone on its
        reference GPU (else its first admissible type), placed on an empty cluster; the step
        cached by `key`."""
        gpu_name = spec.reference_gpu or types[0]
        step_s = self._reference_step_s.get(key)
        if step_s is None:
            placement = self.empty_placement(spec, types)
            ring = self.network.ring(placement.gpus_per_server())
            step_s = self.step_model.estimate(spec, catalog.gpus()[gpu_name], ring).iteration_s
            self._reference_step_s[key] = step_s
        assert spec.duration_s is not None
        return max(1, round(spec.duration_s / step_s))


    def alone_step(self, spec: JobSpec, types: tuple[str, ...], key: tuple) -> float:
        """The job's step time placed alone on the empty cluster with the isolated network
        (its run time alone is iterations x this), cached by `key` (the spec less the fields
        that do not change a step, and the GPU types)."""
        step_s = self._alone_step_s.get(key)
        if step_s is None:
            placement = self.empty_placement(spec, types)
            step_s = self._alone_step_s[key] = self.estimate_on(spec, placement).iteration_s
        return step_s

    def step_sources(self, spec: JobSpec, types: tuple[str, ...], key: tuple) -> str | None:
        """Where a measured-model job's step times come from on each admitted GPU type:
        `measured` / `interpolated` (and the table entries), or `model` and why not; None for
        a job of another model. Cached by `key`, as `alone_step`."""
        measured = self.measured_model(spec)
        if measured is None:
            return None
        text = self._sources_of.get(key)
        if text is None:
            parts = []
            for name in types:
                found = measured.lookup(spec, name)
                parts.append(f"{name}: {found.source} ({found.detail})" if found is not None
                             else f"{name}: model (calibrated; {measured.why_not(spec, name)})")
            text = self._sources_of[key] = "; ".join(parts)
        return text


def build_world(scenario: Scenario, *, streams: RandomStreams | None = None,
                env: simpy.Environment | None = None,
                step_model: StepTimeModel | None = None) -> World:
    """The scenario's world: its cluster and network now, the other parts on first use.
    Raises ClusterError (a server group that cannot be built, with its index and key) or
    ValueError (a topology that cannot be built)."""
    cluster = build_cluster(scenario)
    return World(scenario, cluster, build_network(scenario, cluster), streams=streams, env=env,
                 step_model=step_model)
