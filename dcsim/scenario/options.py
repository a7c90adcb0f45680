"""How a scenario runs and what it writes: the `engine:` section (fidelity, step model and its
throughput tables, network sharing, limits) and `outputs:`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from dcsim.scenario.base import FlowFabricKind, NonNegFloat, PosInt, StepModelKind, Strict
from dcsim.scenario.jobs import JobSpec

__all__ = ["Engine", "Outputs", "ThroughputSource"]


class ThroughputSource(Strict):
    """A table of measured throughputs for `step_model: measured` (dcsim/perf/tables/):
    `dcsim` (CSV or YAML, job_type x gpu x num_gpus (x batch) -> throughput), `gavel`
    (Gavel's simulation_throughputs.json) or `pollux` (a folder of Pollux's per-application
    profiles). `gpus` maps the table's GPU names to catalog GPU types (gavel and pollux have
    defaults: docs/scenario-reference.md#throughput-tables)."""

    path: str
    format: Literal["dcsim", "gavel", "pollux"] = "dcsim"
    gpus: dict[str, str] = Field(default_factory=dict)

    @field_validator("gpus")
    @classmethod
    def _known_gpus(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v.values():
            JobSpec._known_gpu(name)
        return v


class Engine(Strict):
    fidelity: Literal["steady", "iteration"] = "steady"
    step_model: StepModelKind = "calibrated"
    # measured-throughput tables (later tables win on the same entry); step_model: measured
    # (for the scenario or a job) needs at least one
    throughputs: list[ThroughputSource] = Field(default_factory=list)
    # jobs share links max-min fairly while they run (shared), while they communicate (timed),
    # or not at all (isolated)
    network: FlowFabricKind = "shared"
    profiles: list[str] = Field(default_factory=list)  # device profile files (dcsim calibrate)
    # checkpoint + restore time a preempted job pays when it restarts (holding its GPUs, no
    # progress) when checkpointing is off; with checkpoints, their read time instead
    # (dcsim/engine/shares.py restore_delay_s)
    preemption_overhead_s: NonNegFloat = 0.0
    # stop the run after this many events, like a horizon (jobs still open end `unfinished`,
    # their reason naming the limit): a bound on failure storms and very long runs
    max_events: PosInt | None = None


class Outputs(Strict):
    dir: str | None = None
    plots: bool = True
    # links.csv rows: links between servers and switches (fabric), also those inside servers
    # (all: GPU, PCIe, NIC links), or none
    link_levels: Literal["fabric", "all", "none"] = "fabric"
    # requests.csv, one row per inference request (docs/serving.md); false: none (a long run
    # of a busy service has tens of millions); services.csv has the same numbers either way
    requests: bool = True
    # the tables as NAME.csv or as NAME.parquet (Results.save; load_results reads either);
    # summary.json and run.json are written either way
    format: Literal["csv", "parquet"] = "csv"
