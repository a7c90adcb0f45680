"""The native dcsim trace format: CSV, one job per row.

Columns (header required; order free): name, arrival_s, model (a preset name from
`dcsim catalog models`), global_batch, iterations are required; tp, pp, dp, cp, ep,
micro_batch, virtual_stages, recompute, zero, precision, gpu_type, priority, user,
virtual_cluster, job_type (the key in throughput tables) and step_model are optional (empty =
default).
A bad row is reported as `file:line:column: message`; with `skip_bad_rows` it is skipped and
counted instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario import JobSpec
from dcsim.textfile import read_csv

__all__ = ["read_dcsim_csv", "rows_to_jobs", "check_columns", "TRACE_COLUMNS"]

REQUIRED = ("name", "arrival_s", "model", "global_batch", "iterations")
PARALLEL = ("tp", "pp", "dp", "cp", "ep", "micro_batch", "virtual_stages", "recompute", "zero")
OPTIONAL = (*PARALLEL, "precision", "gpu_type", "priority", "user", "virtual_cluster",
            "job_type", "step_model")
TRACE_COLUMNS = REQUIRED + OPTIONAL


def _row_to_job(row: dict[str, str]) -> dict[str, Any]:
    job: dict[str, Any] = {k: row[k] for k in REQUIRED}
    # (a whole number as such: `zero` is one of 0-3, which a string cell would not match)
    parallelism = {k: int(row[k]) if row[k].strip().isdigit() else row[k]
                   for k in PARALLEL if row.get(k, "") != ""}
    if parallelism:
        job["parallelism"] = parallelism
    for k in ("precision", "gpu_type", "priority", "user", "virtual_cluster", "job_type",
              "step_model"):
        if row.get(k, "") != "":
            job[k] = row[k]
    return job


def _column_of(loc: tuple) -> str | None:
    """The trace column an error is about, or None for a rule across several columns."""
    if loc and loc[0] == "parallelism" and len(loc) > 1:
        return str(loc[1])
    return str(loc[0]) if loc and str(loc[0]) in TRACE_COLUMNS else None


def check_columns(source: str, header: list[str]) -> None:
    """A header problem (missing or unknown columns) is a whole-file error at line 1."""
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in TRACE_COLUMNS]
    if missing or unknown:
        msg = f"missing columns {missing}" if missing else f"unknown columns {unknown}"
        msg += f"; columns: {', '.join(TRACE_COLUMNS)}"
        raise ScenarioError([Problem(source, 1, "", msg)])


def rows_to_jobs(source: str, rows: Iterable[tuple[int, dict[str, str]]]
                 ) -> tuple[list[JobSpec], list[Problem]]:
    """Validate (line, row) pairs of string cells as jobs; the problems of the bad ones."""
    from dcsim.perf.select import STEP_MODELS

    jobs, problems = [], []
    for line, row in rows:
        try:
            job = JobSpec.model_validate(_row_to_job(row))
            if job.step_model is not None and job.step_model not in STEP_MODELS:
                problems.append(Problem(source, line, "", f"unknown step model "
                                        f"{job.step_model!r}; valid: "
                                        f"{', '.join(STEP_MODELS.names())}", column="step_model"))
                continue
            jobs.append(job)
        except ValidationError as exc:
            for err in exc.errors():
                msg = err["msg"].removeprefix("Value error, ")
                column = _column_of(tuple(err["loc"]))
                problems.append(Problem(source, line, "", msg, column=column))
    return jobs, problems


def read_dcsim_csv(path: Path, skip_bad_rows: bool = False) -> tuple[list[JobSpec], list[Problem]]:
    """Jobs of a dcsim CSV trace, and the problems of the rows that were skipped."""
    source = str(path)
    table = read_csv(path, "trace")
    check_columns(source, table.header or [])
    short: list[Problem] = []
    rows = table.records(lambda i, msg: short.append(Problem(source, i, "", msg)))
    jobs, problems = rows_to_jobs(source, rows)
    problems = short + problems
    if problems and not skip_bad_rows:
        raise ScenarioError(problems)
    return jobs, problems
