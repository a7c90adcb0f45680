"""`Results`: what a run produced, as DataFrames and a summary; saved and loaded as files."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from dcsim.errors import Problem, ScenarioError
from dcsim.textfile import read_text

__all__ = ["Results", "load_results", "compare", "flatten_summary", "write_csv", "FILES",
           "FORMATS"]

FILES = {"jobs": "jobs.csv", "gpu_timeline": "gpu_timeline.csv", "segments": "segments.csv",
         "events": "events.csv", "training": "training.csv", "executions": "executions.csv",
         "links": "links.csv", "groups": "groups.csv", "failures": "failures.csv",
         "power": "power.csv", "requests": "requests.csv", "services": "services.csv",
         "service_timeline": "service_timeline.csv"}
# absent from folders saved before them: groups rebuilt from jobs.csv, failures and power empty
OPTIONAL_FILES = {"groups", "failures", "power", "requests", "services", "service_timeline"}
SERVING_FILES = {"requests", "services", "service_timeline"}
# columns that are text even when every value looks like a number or is empty
TEXT_COLUMNS = {"jobs": {c: str for c in ("name", "model", "user", "virtual_cluster",
                                          "gpu_type", "precision", "status", "reason",
                                          "step_source")},
                "events": {"event": str, "detail": str}, "training": {"phase": str},
                "links": {"link": str}, "groups": {"group_by": str, "group": str},
                "requests": {"service": str, "status": str, "reason": str},
                "services": {"service": str, "model": str, "gpu_type": str},
                "service_timeline": {"service": str},
                "failures": {"component": str, "cause": str, "target": str, "jobs": str,
                             "source": str}}
FORMATS = ("csv", "parquet")  # how `Results.save` writes the tables (outputs.format)
TableFormat = Literal["csv", "parquet"]
FLOAT_FORMAT = "%.9g"  # CSV floats: 9 significant digits


# ---- CSV writing -------------------------------------------------------------------------------
# `write_csv(frame, path)` writes the same bytes as `frame.to_csv(path, index=False,
# float_format=FLOAT_FORMAT)`, several times faster on large tables. pandas turns each cell into
# text (floats with `FLOAT_FORMAT % value` one Python call at a time, a missing value as an empty
# field, ints and bools with str()) and hands the rows to the standard csv module (minimal
# quoting, os.linesep line ends). Here each column is formatted at once, each distinct float value
# only once (through its bit pattern, so that -0.0 stays "-0"), whole floats below 1e9 with
# int's str() (what %.9g gives them), and rows without a field that csv would quote are joined
# directly. A column of another kind (dates, nullable extension types, objects or categories that
# are not all text) sends the whole frame to pandas.

_CHUNK_CELLS = 1 << 19  # fields formatted at a time (bounds the memory held as strings)
_QUOTED_CHARS = (",", '"', "\r", "\n")  # a field holding one is quoted by csv (QUOTE_MINIMAL)
_BOOL_TEXT = np.array(["False", "True"], dtype=object)
_FLOAT64 = np.dtype(np.float64)


class _Unsupported(Exception):
    """A column whose text the fast writer cannot promise to equal pandas'."""


def _distinct(key: np.ndarray, fmt: Any, view: np.dtype | None = None) -> list[str]:
    """fmt(values) as a list, where `key` holds the values (viewed as `view`, if given);
    each distinct key is formatted once when keys repeat."""
    n = len(key)
    if n >= 64:
        codes, unique = pd.factorize(key, sort=False)
        if len(unique) <= n // 2:
            unique = np.asarray(unique)
            text = fmt(unique if view is None else unique.view(view))
            return np.asarray(text, dtype=object)[codes].tolist()
    return fmt(key if view is None else key.view(view))


def _float_text(values: np.ndarray) -> list[str]:
    """`FLOAT_FORMAT % v` for each float64 v, "" for NaN."""
    if len(values) < 32:  # few values: quicker one by one
        fmt = FLOAT_FORMAT
        return ["" if v != v else fmt % v for v in values.tolist()]
    out = np.empty(len(values), dtype=object)
    nan = np.isnan(values)
    out[nan] = ""
    # an integer-valued float of at most 9 digits: %.9g writes its digits, as str(int) does
    # (-0.0 excepted: "-0"); NaNs (signalling ones too) are not whole, quietly
    with np.errstate(invalid="ignore"):
        whole = (np.abs(values) < 1e9) & (values == np.trunc(values)) & ~(
            (values == 0) & np.signbit(values))
    rest = ~(nan | whole)
    if whole.any():
        out[whole] = list(map(str, values[whole].astype(np.int64).tolist()))
    if rest.any():
        fmt = FLOAT_FORMAT
        out[rest] = [fmt % v for v in values[rest].tolist()]
    return out.tolist()


def _int_text(values: np.ndarray) -> list[str]:
    return list(map(str, values.tolist()))


def _column_fields(column: pd.Series) -> tuple[Callable[[int, int], list[str]], bool]:
    """A function giving the CSV fields pandas writes for rows start:stop of this column
    (index=False, float_format=FLOAT_FORMAT), and whether the column is numeric (never quoted).
    """
    dtype = column.dtype
    if isinstance(dtype, np.dtype):
        values = column.to_numpy()
        if dtype.kind == "f" and dtype.itemsize <= 8:
            # float16/32 widen exactly to float64, as `%` widens them for pandas; keyed by bit
            # pattern: -0.0 and 0.0 differ ("-0", "0")
            bits = values.astype(np.float64, copy=False).view(np.int64)
            return (lambda a, b: _distinct(bits[a:b], _float_text, _FLOAT64)), True
        if dtype.kind in "iu":
            return (lambda a, b: _distinct(values[a:b], _int_text)), True
        if dtype.kind == "b":
            return (lambda a, b: _BOOL_TEXT[values[a:b].view(np.uint8)].tolist()), True
        if dtype.kind == "O":
            return (lambda a, b: _text_fields(values[a:b])), False
    elif isinstance(dtype, pd.StringDtype):
        array = column.array
        return (lambda a, b: _text_fields(array[a:b].to_numpy(dtype=object))), False
    elif isinstance(dtype, pd.CategoricalDtype):  # text categories (requests.csv): each once
        text = np.asarray([*_text_fields(np.asarray(dtype.categories, dtype=object)), ""],
                          dtype=object)  # code -1 (NaN): ""
        codes = column.cat.codes.to_numpy()
        return (lambda a, b: text[codes[a:b]].tolist()), False
    raise _Unsupported(str(dtype))


def _text_fields(values: np.ndarray) -> list[str]:
    """Text cells as they are, missing ones (None, NaN, NA) as "" (pandas' isna, as pandas)."""
    fields = values.tolist()
    for i in np.flatnonzero(pd.isna(values)).tolist():
        fields[i] = ""
    if not set(map(type, fields)) <= {str}:
        raise _Unsupported("object column with values other than text")
    return fields


def _plain(fields: list[str]) -> bool:
    """No field of this column would be quoted by csv (QUOTE_MINIMAL)."""
    text = "\x00".join(fields)
    return not any(c in text for c in _QUOTED_CHARS)


def _write_csv_fast(frame: pd.DataFrame, path: Path) -> None:
    columns = list(frame.columns)
    if (not columns or isinstance(frame.columns, pd.MultiIndex)
            or not all(isinstance(c, str) for c in columns)):
        raise _Unsupported("column labels")
    sources = [_column_fields(column) for _, column in frame.items()]  # before writing
    end = os.linesep
    rows = max(1, _CHUNK_CELLS // len(columns))
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator=end)  # pandas' dialect: the csv defaults
        writer.writerow(columns)
        for start in range(0, len(frame), rows):
            stop = min(start + rows, len(frame))
            fields = [fmt(start, stop) for fmt, _ in sources]
            # one column: csv quotes an empty row (""), so let csv write it
            if len(columns) > 1 and all(numeric or _plain(f) for (_, numeric), f
                                        in zip(sources, fields, strict=True)):
                fh.write(end.join(map(",".join, zip(*fields, strict=True))))
                fh.write(end)
            else:
                writer.writerows(zip(*fields, strict=True))


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write `frame` as `frame.to_csv(path, index=False, float_format="%.9g")` does, byte for
    byte, faster for the column types dcsim's tables have (ints, floats, bools, text); a frame
    with another column type is written by pandas."""
    path = Path(path)
    try:
        _write_csv_fast(frame, path)
    except _Unsupported:
        frame.to_csv(path, index=False, float_format=FLOAT_FORMAT)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class Results:
    """The outcome of one simulation.

    jobs: one row per job (docs/metrics.md lists the columns); gpu_timeline: allocated GPUs,
    running and queued jobs from each time on; segments: which job held how many GPUs of which
    server when; events: the job lifecycle; training: loss and accuracy per iteration of the
    jobs that really trained (`execute`); executions: their measured vs simulated times;
    groups: per user and per virtual cluster, jobs, mean JCT, slowdown and queueing, GPU-hours.
    `summary()` gives the headline numbers; `run` holds the resolved scenario, seed, dcsim
    version and wall time.
    """

    jobs: pd.DataFrame
    gpu_timeline: pd.DataFrame
    segments: pd.DataFrame
    events: pd.DataFrame
    training: pd.DataFrame
    executions: pd.DataFrame
    links: pd.DataFrame
    groups: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per failure
    # cluster power (W) by component from each time on (docs/energy.md)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    # inference services (docs/serving.md): one row per request, per service, and each
    # service's sampled timeline; empty without services
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    services: pd.DataFrame = field(default_factory=pd.DataFrame)
    service_timeline: pd.DataFrame = field(default_factory=pd.DataFrame)
    run: dict[str, Any] = field(default_factory=dict)
    _summary: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    def save(self, out_dir: str | Path, format: TableFormat = "csv") -> Path:
        """Write the tables, summary.json and run.json into `out_dir`: each table as NAME.csv
        (`format="csv"`) or NAME.parquet (`format="parquet"`, outputs.format). A table file of
        the other format left there by an earlier save is removed, so that `load_results`
        never reads a mix."""
        if format not in FORMATS:
            raise ValueError(f"Results.save: format must be one of {', '.join(FORMATS)}, "
                             f"not {format!r}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for attr, name in FILES.items():
            frame = getattr(self, attr)
            stem = Path(name).stem
            for other in FORMATS:
                if other != format:
                    (out / f"{stem}.{other}").unlink(missing_ok=True)
            if attr in SERVING_FILES and frame.columns.empty:
                continue  # a run without services writes no serving tables
            if format == "parquet":
                frame.to_parquet(out / f"{stem}.parquet", index=False)
            else:
                write_csv(frame, out / name)
        for name, data in (("summary.json", self._summary), ("run.json", self.run)):
            text = json.dumps(_json_safe(data), indent=2, sort_keys=False, allow_nan=False)
            (out / name).write_text(text + "\n", encoding="utf-8")
        return out


def _read_table(path: Path, attr: str) -> pd.DataFrame:
    """One saved table (.parquet or .csv); a file that is not one is a ScenarioError naming
    it (not UTF-8: with its line and byte, as `textfile.read_text` says)."""
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, keep_default_na=False, na_values=[""],
                           dtype=TEXT_COLUMNS.get(attr))
    except Exception as exc:  # pyarrow's, pandas' parser errors, bad bytes
        if path.suffix == ".csv":
            read_text(path, "results table")  # raises, located, if the bytes are the cause
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ScenarioError([Problem(str(path), None, "",
                                     f"not a readable {path.suffix[1:]} table: {first}")]
                            ) from None


def _read_json(path: Path) -> dict:
    """A saved JSON object; anything else is a ScenarioError naming the file (and the line)."""
    try:
        data = json.loads(read_text(path, "results file"))
    except json.JSONDecodeError as exc:
        raise ScenarioError([Problem(str(path), exc.lineno, "",
                                     f"not JSON: {exc.msg}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError([Problem(str(path), None, "",
                                     f"not a JSON object: {type(data).__name__}")])
    return data


def load_results(out_dir: str | Path) -> Results:
    """Read back what `Results.save` (or `dcsim run`) wrote: tables as NAME.parquet when the
    folder has jobs.parquet, else as NAME.csv."""
    d = Path(out_dir)
    fmt = "parquet" if (d / "jobs.parquet").is_file() else "csv"
    files = {attr: f"{Path(name).stem}.{fmt}" for attr, name in FILES.items()}
    needed = [n for a, n in files.items() if a not in OPTIONAL_FILES]
    missing = [n for n in [*needed, "summary.json", "run.json"] if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{d}: not a dcsim results folder (missing {', '.join(missing)}"
                                f"{'; tables may be .csv or .parquet' if fmt == 'csv' else ''})")
    frames = {attr: _read_table(d / name, attr) for attr, name in files.items()
              if (d / name).is_file()}
    for attr, columns in TEXT_COLUMNS.items():
        for col in columns:
            if attr in frames and col in frames[attr]:
                text = frames[attr][col]
                if (isinstance(text.dtype, pd.CategoricalDtype) and text.isna().any()
                        and "" not in text.cat.categories):  # Parquet keeps categories
                    text = text.cat.add_categories("")
                frames[attr][col] = text.fillna("")
    if "groups" not in frames:
        from dcsim.metrics import group_breakdown

        frames["groups"] = group_breakdown(frames["jobs"])
    if "failures" not in frames:
        from dcsim.metrics import FAILURE_COLUMNS

        frames["failures"] = pd.DataFrame(columns=FAILURE_COLUMNS)
    for optional in ("power", "requests", "services", "service_timeline"):
        if optional not in frames:
            frames[optional] = pd.DataFrame()
    summary = _read_json(d / "summary.json")
    summary = {k: (float("nan") if v is None else v) for k, v in summary.items()}
    run = _read_json(d / "run.json")
    return Results(**frames, run=run, _summary=summary)


def flatten_summary(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A summary as flat columns: nested dicts as `key.subkey` entries (an empty dict leaves
    no entry), lists as JSON text (`compare`, sweep tables)."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            flat.update(flatten_summary(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple):
            flat[f"{prefix}{key}"] = json.dumps(value)
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare(runs: Mapping[str, Results]) -> pd.DataFrame:
    """The runs' summaries side by side: one row per run (indexed by its label), one column per
    summary key, nested dicts flattened to `key.subkey` (`top_links.leaf0->spine0`,
    `interruptions_by_cause.NIC`); a key one run lacks is NaN there."""
    if not runs:
        raise ValueError("compare: no runs given")
    rows = [flatten_summary(results.summary()) for results in runs.values()]
    return pd.DataFrame(rows, index=pd.Index([str(k) for k in runs], name="run"))
