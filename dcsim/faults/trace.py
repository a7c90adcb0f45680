"""Failure traces: CSV files of failures to replay (`faults.trace.path`).

Columns: `time_s` (seconds from the start, >= 0), `component` (a component class: gpu,
gpu_memory, host, nic, switch, link, software), `target` (which instance: a server id or name
for host and nic; `SERVER/GPU` or a server for gpu, gpu_memory and software; a switch node for
switch; `NODE|NODE` for link), and optionally `repair_s` (the repair time; empty: drawn from the
component's repair distribution) and `cause` (a label; default the component). A bad row is a
`Problem` at file:line:column."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario.faults import COMPONENTS
from dcsim.textfile import read_csv

__all__ = ["TraceFailure", "read_failure_trace"]

REQUIRED = ("time_s", "component", "target")


@dataclass(frozen=True, slots=True)
class TraceFailure:
    time_s: float
    component: str
    target: str
    repair_s: float | None
    cause: str
    line: int


def read_failure_trace(path: Path) -> list[TraceFailure]:
    """The rows of a failure trace, sorted by time; every bad row reported together."""
    source = str(path)
    table = read_csv(path, "failure trace")
    header = table.header or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ScenarioError([Problem(source, 1, "", f"missing column(s) {', '.join(missing)}; "
                                     f"a failure trace has {', '.join(REQUIRED)} [, repair_s, "
                                     "cause]")])
    out: list[TraceFailure] = []
    problems: list[Problem] = []
    rows = table.records(lambda line, msg: problems.append(Problem(source, line, "", msg)))
    for line, row in rows:

        def bad(column: str, message: str, line: int = line) -> None:
            problems.append(Problem(source, line, "", message, column))

        try:
            t = float(row["time_s"] or "nan")
        except ValueError:
            t = math.nan
        if not (math.isfinite(t) and t >= 0):
            bad("time_s", f"expected a time in seconds >= 0, got {row['time_s']!r}")
        comp = (row["component"] or "").strip()
        if comp not in COMPONENTS:
            bad("component", f"unknown component {comp!r}; valid: {', '.join(COMPONENTS)}")
        target = (row["target"] or "").strip()
        if not target:
            bad("target", "empty target")
        repair: float | None = None
        raw = (row.get("repair_s") or "").strip()
        if raw:
            try:
                repair = float(raw)
            except ValueError:
                repair = math.nan
            if not (math.isfinite(repair) and repair >= 0):
                bad("repair_s", f"expected a repair time in seconds >= 0, got {raw!r}")
        cause = (row.get("cause") or "").strip() or comp
        out.append(TraceFailure(t, comp, target, repair, cause, line))
    if problems:
        raise ScenarioError(problems)
    return sorted(out, key=lambda f: (f.time_s, f.line))
