"""The registry and base types of `dcsim.perf.tables`: its package imports them and
every member, so that each member registers; members import this module, not the package."""


from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dcsim import catalog
from dcsim.errors import Problem, ScenarioError
from dcsim.perf.measured import Entry, Placement
from dcsim.registry import Registry
from dcsim.textfile import read_text
from dcsim.yamlsrc import parse_yaml

__all__ = ["TABLE_FORMATS", "TableFormat", "TableRead", "read_table", "GAVEL_GPUS",
           "VALUE_COLUMNS"]

# value column -> what it is (all converted to seconds per global iteration)
VALUE_COLUMNS = ("samples_per_s", "iterations_per_s", "iteration_s")
KEY_COLUMNS = ("job_type", "gpu", "num_gpus")
OPTIONAL_COLUMNS = ("batch_per_gpu", "global_batch", "placement")
# columns that hold a rate or a time whose unit the name does not say
UNITLESS = ("throughput", "speed", "rate", "time", "step_time", "steps", "value")
MAX_GPUS = 1_000_000
MAX_BATCH = 1e9
MAX_SECONDS = 1e7  # an iteration longer than ~4 months is not a measurement

# Gavel's worker types -> catalog GPUs (override with the source's `gpus`)
GAVEL_GPUS = {"k80": "k80-12gb", "p100": "p100-pcie-16gb", "v100": "v100-sxm2-16gb"}


@dataclass
class TableRead:
    source: str
    entries: list[Entry] = field(default_factory=list)
    read: int = 0  # values read (rows, or measurements of a structured file)
    skipped: Counter = field(default_factory=Counter)  # reason -> count (not errors)

    @property
    def accepted(self) -> int:
        return len(self.entries)

    def counts(self) -> dict[str, Any]:
        return {"path": self.source, "read": self.read, "accepted": self.accepted,
                "skipped": dict(sorted(self.skipped.items()))}


class TableFormat:
    name: ClassVar[str]
    description: ClassVar[str] = ""
    default_gpus: ClassVar[dict[str, str]] = {}

    def read(self, path: Path, gpus: dict[str, str]) -> TableRead:
        raise NotImplementedError


TABLE_FORMATS: Registry[TableFormat] = Registry("throughput table format")


def read_table(path: str | Path, fmt: str = "dcsim", gpus: dict[str, str] | None = None
               ) -> TableRead:
    """Read one table; raises ScenarioError with every located problem."""
    reader = TABLE_FORMATS.get(fmt)()
    mapping = {**reader.default_gpus, **(gpus or {})}
    return reader.read(Path(path), mapping)


def _number(text: Any, what: str, integer: bool = False, upper: float = math.inf) -> float:
    """A finite number > 0 (an integer if asked) and <= upper; ValueError with the reason."""
    if isinstance(text, bool):
        raise ValueError(f"{what}: expected a number, got {text!r}")
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{what}: must be finite, got {text!r}")
    if v <= 0:
        raise ValueError(f"{what}: must be > 0, got {text!r}")
    if integer and not v.is_integer():
        raise ValueError(f"{what}: expected a whole number, got {text!r}")
    if v > upper:
        raise ValueError(f"{what}: must be <= {upper:g}, got {text!r}")
    return v


def _gpu(name: Any, gpus: dict[str, str]) -> str:
    name = str(name).strip()
    resolved = gpus.get(name, name)
    if resolved not in catalog.gpus():
        mapped = f" (the table's names map as {gpus})" if gpus else ""
        raise ValueError(f"gpu: unknown GPU type {name!r}{mapped}; valid: "
                         f"{', '.join(catalog.gpus())}; map other names with the table's "
                         "`gpus` option")
    return resolved


def _placement(text: Any, num_gpus: int) -> Placement:
    if text is None or str(text).strip() == "":
        return None
    parts = str(text).replace(" ", "").split("+")
    try:
        shape = tuple(sorted((int(p) for p in parts), reverse=True))
    except ValueError:
        raise ValueError(f"placement: expected GPUs per server like 8 or 4+4, got "
                         f"{text!r}") from None
    if any(p <= 0 for p in shape) or sum(shape) != num_gpus:
        raise ValueError(f"placement: {text!r} must be positive counts that add up to "
                         f"num_gpus ({num_gpus})")
    return shape


def _entry(row: dict[str, Any], gpus: dict[str, str], where: str) -> Entry:
    """One dcsim-format row (cells as strings or YAML values) as an Entry; ValueError names
    the column."""
    job_type = str(row.get("job_type") or "").strip()
    if not job_type:
        raise ValueError("job_type: must not be empty")
    if len(job_type) > 200:
        raise ValueError("job_type: longer than 200 characters")
    gpu = _gpu(row.get("gpu"), gpus)
    n = int(_number(row.get("num_gpus"), "num_gpus", integer=True, upper=MAX_GPUS))
    per_gpu: float | None = None
    given = [c for c in ("batch_per_gpu", "global_batch") if _present(row.get(c))]
    if len(given) > 1:
        raise ValueError("batch_per_gpu: give batch_per_gpu or global_batch, not both")
    if given == ["batch_per_gpu"]:
        per_gpu = _number(row["batch_per_gpu"], "batch_per_gpu", upper=MAX_BATCH)
    elif given == ["global_batch"]:
        per_gpu = _number(row["global_batch"], "global_batch", integer=True,
                          upper=MAX_BATCH) / n
    values = [c for c in VALUE_COLUMNS if _present(row.get(c))]
    if len(values) != 1:
        raise ValueError(f"{values[1] if values else VALUE_COLUMNS[0]}: give exactly one of "
                         f"{', '.join(VALUE_COLUMNS)}")
    column = values[0]
    v = _number(row[column], column, upper=MAX_SECONDS if column == "iteration_s" else 1e12)
    if column == "samples_per_s":
        if per_gpu is None:
            raise ValueError("samples_per_s: needs batch_per_gpu or global_batch to turn "
                             "samples into iterations")
        iteration_s = per_gpu * n / v
    else:
        iteration_s = v if column == "iteration_s" else 1.0 / v
    if not 0 < iteration_s <= MAX_SECONDS:
        raise ValueError(f"{column}: gives {iteration_s:g} s per iteration, outside "
                         f"(0, {MAX_SECONDS:g}]")
    return Entry(job_type, gpu, n, per_gpu, iteration_s,
                 _placement(row.get("placement"), n), where)


def _present(v: Any) -> bool:
    return v is not None and str(v).strip() != ""


def _header_problems(source: str, header: list[str]) -> list[Problem]:
    problems = []
    seen = Counter(header)
    dup = [c for c, k in seen.items() if k > 1]
    if dup:
        problems.append(Problem(source, 1, "", f"duplicate columns {dup}"))
    missing = [c for c in KEY_COLUMNS if c not in header]
    if missing:
        problems.append(Problem(source, 1, "", f"missing columns {missing}; columns: "
                                f"{', '.join(KEY_COLUMNS + OPTIONAL_COLUMNS + VALUE_COLUMNS)}"))
    known = KEY_COLUMNS + OPTIONAL_COLUMNS + VALUE_COLUMNS
    for c in header:
        if c in known:
            continue
        if c.strip().lower() in UNITLESS:
            msg = (f"its unit cannot be told apart; name the value column one of "
                   f"{', '.join(VALUE_COLUMNS)}")
        else:
            msg = f"unknown column; columns: {', '.join(known)}"
        problems.append(Problem(source, 1, "", msg, column=c))
    if not any(c in header for c in VALUE_COLUMNS) and not problems:
        problems.append(Problem(source, 1, "", f"no value column: give one of "
                                f"{', '.join(VALUE_COLUMNS)}"))
    return problems


def _column(message: str) -> str | None:
    head = message.split(":", 1)[0]
    return head if head in KEY_COLUMNS + OPTIONAL_COLUMNS + VALUE_COLUMNS else None


def _strip_column(message: str) -> str:
    return message.split(": ", 1)[1] if _column(message) else message


def _add(out: TableRead, seen: dict[tuple, str], e: Entry, problems: list[Problem],
         source: str, line: int | None, key: str = "") -> None:
    if e.key in seen:
        problems.append(Problem(source, line, key, f"duplicate entry: {e.job_type.lower()} on "
                                f"{e.num_gpus} x {e.gpu} (batch {e.batch_per_gpu}, placement "
                                f"{e.placement}) is also at {seen[e.key]}"))
        return
    seen[e.key] = e.where
    out.entries.append(e)


@TABLE_FORMATS.register("dcsim")
class DcsimTable(TableFormat):
    description = "CSV or YAML: job_type, gpu, num_gpus[, batch][, placement], a throughput"

    def read(self, path: Path, gpus: dict[str, str]) -> TableRead:
        text = read_text(path, "throughput table")
        if path.suffix.lower() in (".yaml", ".yml"):
            return self._yaml(path, text, gpus)
        return self._csv(path, text, gpus)

    def _csv(self, path: Path, text: str, gpus: dict[str, str]) -> TableRead:
        source = str(path)
        out = TableRead(source)
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [h.strip() for h in next(reader, [])]
        problems = _header_problems(source, header)
        if problems:
            raise ScenarioError(problems)
        seen: dict[tuple, str] = {}
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            out.read += 1
            if len(row) != len(header):
                problems.append(Problem(source, line, "", f"expected {len(header)} fields, "
                                        f"got {len(row)}"))
                continue
            try:
                e = _entry(dict(zip(header, row, strict=True)), gpus, f"{source}:{line}")
            except ValueError as exc:
                problems.append(Problem(source, line, "", _strip_column(str(exc)),
                                        column=_column(str(exc))))
                continue
            _add(out, seen, e, problems, source, line)
        if problems:
            raise ScenarioError(problems)
        return out

    def _yaml(self, path: Path, text: str, gpus: dict[str, str]) -> TableRead:
        source = str(path)
        doc = parse_yaml(text, source)
        data = doc.data
        prefix: tuple = ()
        if isinstance(data, dict) and set(data) == {"entries"}:
            data, prefix = data["entries"], ("entries",)
        if not isinstance(data, list):
            raise ScenarioError([Problem(source, 1, "", "a YAML throughput table is a list "
                                         "of entries (or a mapping with `entries:`)")])
        out = TableRead(source)
        problems: list[Problem] = []
        seen: dict[tuple, str] = {}
        known = set(KEY_COLUMNS + OPTIONAL_COLUMNS + VALUE_COLUMNS)
        for i, item in enumerate(data):
            out.read += 1
            path_i = (*prefix, i)
            where = doc.where(path_i)
            if not isinstance(item, dict):
                problems.append(Problem(*where, f"entries[{i}]", "an entry is a mapping"))
                continue
            unknown = [k for k in item if k not in known]
            if unknown:
                k = unknown[0]
                msg = ("its unit cannot be told apart; use one of " + ", ".join(VALUE_COLUMNS)
                       if str(k).lower() in UNITLESS else "unknown key")
                problems.append(Problem(*doc.where((*path_i, k)), f"entries[{i}].{k}", msg))
                continue
            try:
                e = _entry(item, gpus, f"{source}:{where[1]}")
            except ValueError as exc:
                col = _column(str(exc))
                key_where = doc.where((*path_i, col)) if col else where
                problems.append(Problem(*key_where, f"entries[{i}]" + (f".{col}" if col else ""),
                                        _strip_column(str(exc))))
                continue
            _add(out, seen, e, problems, source, where[1], f"entries[{i}]")
        if problems:
            raise ScenarioError(problems)
        return out


# Gavel names a job type with its batch size: "ResNet-50 (batch size 64)" (its traces and its
# throughput table alike)
_GAVEL_TYPE = re.compile(r"^(?P<name>.+?)\s*\(batch size (?P<batch>\d+)\)$")


def split_job_type(text: str) -> tuple[str, int | None]:
    """A Gavel job type's name and batch size (None if it names none)."""
    m = _GAVEL_TYPE.match(text.strip())
    return (m["name"], int(m["batch"])) if m else (text.strip(), None)


@TABLE_FORMATS.register("gavel")
class GavelTable(TableFormat):
    description = "Gavel's simulation_throughputs.json (steps/s summed over workers)"
    default_gpus = GAVEL_GPUS

    def read(self, path: Path, gpus: dict[str, str]) -> TableRead:
        source = str(path)
        text = read_text(path, "throughput table")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError([Problem(source, exc.lineno, "", f"invalid JSON: {exc.msg}")]
                                ) from None
        if not isinstance(data, dict):
            raise ScenarioError([Problem(source, 1, "", "expected a JSON object of worker "
                                         "types")])
        out = TableRead(source)
        problems: list[Problem] = []
        seen: dict[tuple, str] = {}
        for worker, jobs in data.items():
            base, spread = (worker.removesuffix("_unconsolidated"),
                            worker.endswith("_unconsolidated"))
            try:
                gpu = _gpu(base, gpus)
            except ValueError as exc:
                problems.append(Problem(source, None, worker, _strip_column(str(exc))))
                continue
            if not isinstance(jobs, dict):
                problems.append(Problem(source, None, worker, "expected an object of jobs"))
                continue
            for key, measured in jobs.items():
                where = f"{worker}.{key}"
                out.read += 1
                try:
                    job_type, scale = ast.literal_eval(key)
                    scale = int(_number(scale, "scale factor", integer=True, upper=MAX_GPUS))
                    if not isinstance(job_type, str) or not job_type.strip():
                        raise ValueError("job type: must be a non-empty string")
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    problems.append(Problem(source, None, where, "expected a key like "
                                            "\"('ResNet-18 (batch size 64)', 1)\""))
                    continue
                value = measured.get("null") if isinstance(measured, dict) else None
                if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
                    out.skipped["throughput 0 (did not run in Gavel's measurements)"] += 1
                    continue
                try:
                    thr = _number(value, "throughput", upper=1e9)
                except ValueError as exc:
                    problems.append(Problem(source, None, f"{where}.null", str(exc)))
                    continue
                name, batch = split_job_type(job_type)
                e = Entry(name, gpu, scale, float(batch) if batch else None, scale / thr,
                          "many" if spread else "one", f"{source}: {where}")
                _add(out, seen, e, problems, source, None, where)
        if problems:
            raise ScenarioError(problems)
        return out


# Register the Pollux profiles reader (its own module: the format has its own rules).
