"""The registry and base types of `dcsim.workload.formats`: its package imports them and
every member, so that each member registers; members import this module, not the package."""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from dcsim.errors import Problem, ScenarioError
from dcsim.registry import Registry

if TYPE_CHECKING:
    from dcsim.scenario import JobSpec

__all__ = ["FORMATS", "TraceFormat", "TraceRecord", "Parsed", "read_header"]


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One job of a cluster trace, in the trace's own terms (before mapping to a JobSpec)."""

    line: int  # the file line the job is read from (1-based; its first row if several)
    name: str
    arrival_s: float  # seconds after the trace's first submission (or as the trace gives)
    num_gpus: int
    duration_s: float | None = None  # run time on the trace's GPUs, if the trace gives it
    iterations: float | None = None  # global optimizer steps, if the trace gives them
    job_type: str | None = None  # the trace's model / application name, if any
    batch_size: int | None = None  # the global batch, if the trace gives it
    per_gpu_batch: int | None = None  # the batch of each GPU, if the trace gives that instead
    user: str | None = None
    virtual_cluster: str | None = None
    status: str | None = None


@dataclass
class Parsed:
    source: str
    records: list[TraceRecord] = field(default_factory=list)
    jobs: list[JobSpec] | None = None  # native formats: jobs, not records
    bad: list[Problem] = field(default_factory=list)
    excluded: list[Problem] = field(default_factory=list)

    def bad_row(self, line: int, column: str | None, message: str) -> None:
        self.bad.append(Problem(self.source, line, "", message, column=column))

    def exclude(self, line: int, reason: str) -> None:
        self.excluded.append(Problem(self.source, line, "", f"skipped: {reason}"))


class TraceFormat:
    """A trace file format. `parse` reads a file; it raises ScenarioError only for problems
    with the whole file (a wrong header), and files row problems in `Parsed.bad`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    # the GPU type the trace's run times were measured on; None: the trace gives steps
    default_reference_gpu: ClassVar[str | None] = None
    # the training precision of the trace's era, for jobs whose model entry sets none: the
    # public traces (2017-2020) come from clusters that trained in fp32 unless a job said
    # otherwise (mixed precision spread after them); a format whose rows say so can override
    era_precision: ClassVar[str] = "fp32"
    # which length `trace.length: auto` takes where a row gives both steps and a run time: the
    # one the source's own simulator uses ("iterations" or "duration")
    source_length: ClassVar[str] = "iterations"

    def parse(self, path: Path) -> Parsed:
        raise NotImplementedError


FORMATS: Registry[TraceFormat] = Registry("trace format")


def read_header(source: str, header: list[str] | None, required: tuple[str, ...],
                optional: tuple[str, ...] = (), allow_extra: bool = False) -> None:
    """Check a CSV header: missing required columns (and, unless allowed, unknown ones) are a
    whole-file error at line 1."""
    header = header or []
    missing = [c for c in required if c not in header]
    unknown = [] if allow_extra else [c for c in header if c not in required + optional]
    if missing or unknown:
        msg = f"missing columns {missing}" if missing else f"unknown columns {unknown}"
        msg += f"; columns: {', '.join(required + optional)}"
        raise ScenarioError([Problem(source, 1, "", msg)])
