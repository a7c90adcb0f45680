"""The power model: what each component draws, by what it is doing.

Figures come from dcsim/catalog/power.yaml (sources and estimates stated there), with the
scenario's `power.gpus` overrides. A GPU draws `idle_w` when powered and unallocated, and
`idle_w + (tdp_w - idle_w) x activity` while a job holds it, the activity depending on the part
of the iteration it is in (docs/energy.md):

    compute_s (kernels)                     min(1, compute_floor + u / compute_saturation)
    optimizer_s                             memory_bound
    tp_comm_s, dp_comm_s (exposed)          communication
    bubble_s, data_stall_s, overhead_s,     waiting
    checkpoint_s, the rest of the step

(u: the hardware FLOP rate in the compute phase over the dtype peak.)

A job's GPUs draw the step's time-weighted average (`running_w`); while they wait to restore
after a restart, `waiting_w`. A server's other parts (CPUs, memory, NICs, NVSwitches, fans)
draw `host_idle_w`, plus `(host_busy_w - host_idle_w) / GPUs` for each busy GPU; a switch draws
`switch_port_w` for each of its links, by the link's speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from dcsim import catalog
from dcsim.perf.step import StepEstimate
from dcsim.scenario.power import PowerSpec

__all__ = ["GpuPower", "HostPower", "PowerModel", "power_catalog", "by_line_rate"]



def by_line_rate(table: list[tuple[float, float]], line_rate_bit_s: float) -> float:
    """A per-port figure from a table of (up to this line rate in bit/s, value), in order;
    past its last row, the last value."""
    for up_to, value in table:
        if line_rate_bit_s <= up_to:
            return value
    return table[-1][1]


def power_catalog() -> dict:
    """dcsim/catalog/power.yaml, parsed once (`catalog.power_figures`)."""
    return catalog.power_figures()


@dataclass(frozen=True, slots=True)
class GpuPower:
    name: str
    tdp_w: float
    idle_w: float

    def at(self, activity: float) -> float:
        """Watts at an activity in [0, 1] (0: idle, 1: the board's power limit)."""
        return self.idle_w + (self.tdp_w - self.idle_w) * min(1.0, max(0.0, activity))


@dataclass(frozen=True, slots=True)
class HostPower:
    idle_w: float
    busy_w: float


class PowerModel:
    def __init__(self, spec: PowerSpec | None = None) -> None:
        data = power_catalog()
        overrides = spec.gpus if spec is not None else {}
        self._gpus: dict[str, GpuPower] = {}
        for name, d in data["gpus"].items():
            o = overrides.get(name)
            tdp = o.tdp_w if o is not None and o.tdp_w is not None else float(d["tdp_w"])
            idle = o.idle_w if o is not None and o.idle_w is not None else float(d["idle_w"])
            if idle > tdp:
                raise ValueError(f"power.gpus.{name}: idle_w ({idle:g}) above tdp_w ({tdp:g})")
            cap = o.cap_w if o is not None else None
            if cap is not None and not idle < cap <= tdp:
                raise ValueError(f"power.gpus.{name}: cap_w ({cap:g}) must be above idle_w "
                                 f"({idle:g}) and at most tdp_w ({tdp:g})")
            self._gpus[name] = GpuPower(name, tdp, idle)
        act = data["activity"]
        self.compute_floor = float(act["compute_floor"])
        self.compute_saturation = float(act["compute_saturation"])
        self.memory_bound = float(act["memory_bound"])
        self.communication = float(act["communication"])
        self.waiting = float(act["waiting"])
        self._hosts = {name: HostPower(float(d["host_idle_w"]), float(d["host_busy_w"]))
                       for name, d in data["servers"].items()}
        for name, o in (spec.servers.items() if spec is not None else ()):
            base = self._hosts.get(name) or HostPower(
                float(data["default_host"]["host_idle_w"]),
                float(data["default_host"]["host_busy_w"]))
            idle = o.host_idle_w if o.host_idle_w is not None else base.idle_w
            busy = o.host_busy_w if o.host_busy_w is not None else base.busy_w
            if idle > busy:
                raise ValueError(f"power.servers.{name}: host_idle_w ({idle:g}) above "
                                 f"host_busy_w ({busy:g})")
            self._hosts[name] = HostPower(idle, busy)
        self._caps = {name: o.cap_w for name, o in overrides.items() if o.cap_w is not None}
        cap = data["power_cap"]
        self.cap_alpha = float(cap["alpha"])
        self.clock_bound = float(cap["clock_bound"])
        self.min_clock = float(cap["min_clock"])
        self._port_w = spec.switch_port_w if spec is not None else None
        default = data["default_host"]
        self._default_host = HostPower(float(default["host_idle_w"]),
                                       float(default["host_busy_w"]))
        self._ports = [(float(p["up_to_gbit_s"]) * 1e9, float(p["watts"]))
                       for p in data["switch_port_w"]]

    # ------------------------------------------------------------------ devices
    def gpu(self, name: str) -> GpuPower:
        try:
            return self._gpus[name]
        except KeyError:
            raise KeyError(f"no power figures for GPU type {name!r} (dcsim/catalog/power.yaml)"
                           ) from None

    def host(self, server_type: str) -> HostPower:
        """The non-GPU power of a catalog server type (default_host for one not listed)."""
        return self._hosts.get(server_type, self._default_host)

    def port_w(self, line_rate_bit_s: float) -> float:
        """A switch port's power at this line rate (bit/s)."""
        if self._port_w is not None:
            return self._port_w
        return by_line_rate(self._ports, line_rate_bit_s)

    # ------------------------------------------------------------------ power caps
    def type_cap_w(self, gpu_name: str) -> float:
        """The GPU type's power limit (`power.gpus.TYPE.cap_w`; inf: none)."""
        return self._caps.get(gpu_name, math.inf)

    def clock_at_cap(self, gpu_name: str, activity: float, cap_w: float) -> float:
        """The clock fraction a GPU settles at in a phase of this activity under `cap_w`:
        idle + (tdp - idle) x a x f^alpha = cap, f in [min_clock, 1]."""
        gpu = self.gpu(gpu_name)
        dynamic = (gpu.tdp_w - gpu.idle_w) * activity
        if dynamic <= 0 or gpu.idle_w + dynamic <= cap_w:
            return 1.0
        f = (max(cap_w - gpu.idle_w, 0.0) / dynamic) ** (1.0 / self.cap_alpha)
        return min(1.0, max(self.min_clock, f))

    def capped(self, est: StepEstimate, gpu_name: str, cap_w: float) -> StepEstimate:
        """The step under a power cap (W per GPU): the compute phase runs at the clock the cap
        allows and its time stretches by clock^-clock_bound; the cap is recorded on the
        estimate for `running_w`. No cap (inf), or one above the step's power: unchanged."""
        if not math.isfinite(cap_w) or est.compute_s <= 0:
            return est if not math.isfinite(cap_w) else replace(est, power_cap_w=cap_w)
        f = self.clock_at_cap(gpu_name, self.compute_activity(est), cap_w)
        stretch = f ** -self.clock_bound
        extra = est.compute_s * (stretch - 1.0)
        return replace(est, iteration_s=est.iteration_s + extra,
                       compute_s=est.compute_s + extra, power_cap_w=cap_w,
                       compute_stretch=est.compute_stretch * stretch)

    def fit_clock_bound(self, est: StepEstimate, gpu_name: str, cap_w: float,
                        time_ratio: float) -> float:
        """The `clock_bound` with which this (uncapped) step, capped at `cap_w`, takes
        `time_ratio` times as long: closed form, s = 1 + (ratio - 1) x step / compute,
        clock_bound = -ln s / ln f (f: the clock at the cap)."""
        f = self.clock_at_cap(gpu_name, self.compute_activity(est), cap_w)
        stretch = 1.0 + (time_ratio - 1.0) * est.iteration_s / est.compute_s
        if f >= 1.0:
            raise ValueError(f"a cap of {cap_w:g} W does not bind on this step")
        return -math.log(stretch) / math.log(f)

    # ------------------------------------------------------------------ a job's GPUs
    def phase_w(self, gpu_name: str, activity: float, cap_w: float = math.inf) -> float:
        """Watts in a phase of this activity under a cap (inf: none): idle + (tdp - idle) x
        a x f^alpha at the clock f the cap allows; the cap itself when it binds, more only
        where the clock is already at `min_clock`."""
        gpu = self.gpu(gpu_name)
        if not math.isfinite(cap_w):
            return gpu.at(activity)
        f = self.clock_at_cap(gpu_name, activity, cap_w)
        return gpu.at(activity * f ** self.cap_alpha)

    def waiting_w(self, gpu_name: str, cap_w: float = math.inf) -> float:
        """A held GPU doing nothing (restore, warm-up): clocks up, no kernel."""
        return self.phase_w(gpu_name, self.waiting, cap_w)

    def compute_activity(self, est: StepEstimate) -> float:
        """The GPU's activity in the compute phase of this step at full clock (a capped step's
        compute time is taken before its stretch)."""
        if est.compute_s <= 0 or est.peak_flop_s <= 0 or est.num_gpus <= 0:
            return self.compute_floor
        compute_s = est.compute_s / est.compute_stretch
        u = est.hardware_flop / (est.num_gpus * est.peak_flop_s * compute_s)
        return min(1.0, self.compute_floor + max(0.0, u) / self.compute_saturation)

    def running_w(self, est: StepEstimate, gpu_name: str) -> float:
        """Average watts per GPU over one iteration of this step (docstring table)."""
        cap = est.power_cap_w
        parts = ((est.compute_s, self.compute_activity(est)),
                 (est.optimizer_s, self.memory_bound),
                 (est.tp_comm_s + est.dp_comm_s, self.communication),
                 (est.bubble_s + est.data_stall_s + est.overhead_s + est.checkpoint_s,
                  self.waiting))
        busy = sum(max(0.0, t) for t, _ in parts)
        step = est.iteration_s
        if not (math.isfinite(step) and step > 0):
            return self.phase_w(gpu_name, self.waiting, cap)
        # under a cap each phase draws at most the cap (exactly the cap where it binds: the
        # clock is set so), unless its clock is already at min_clock (`phase_w`)
        energy = sum(max(0.0, t) * self.phase_w(gpu_name, a, cap) for t, a in parts)
        if busy > step:  # parts that overlap in time: each counts for its share
            return energy / busy
        return (energy + (step - busy) * self.phase_w(gpu_name, self.waiting, cap)) / step
