"""A sweep's output folder: the journal of finished points (`points.jsonl`, one JSON line per
point, appended as points finish) and the tidy table built from it (`results.csv`,
`results.parquet`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from dcsim.sweep.design import Plan, Point

__all__ = ["JOURNAL", "TABLE_CSV", "TABLE_PARQUET", "RUNS", "TIMING_COLUMNS", "Journal",
           "build_table", "write_table", "load_sweep"]

JOURNAL, TABLE_CSV, TABLE_PARQUET, RUNS = "points.jsonl", "results.csv", "results.parquet", "runs"
# columns that measure the machine, not the model: they differ between identical runs
TIMING_COLUMNS = ("runtime_s", "wall_s", "events_per_s")


class Journal:
    """`points.jsonl`: one record per finished point; the latest record of a point counts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, dict[str, Any]]:
        """The records so far, by point id. A line cut short by a kill is dropped (and cut
        from the file, so that the next record starts on a line of its own)."""
        if not self.path.is_file():
            return {}
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text, encoding="utf-8")
        records: dict[str, dict[str, Any]] = {}
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "point_id" in record:
                records[record["point_id"]] = record
        return records

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()


def _cell(value: Any) -> Any:
    """A factor value as a table cell: scalars as they are, lists and maps as JSON text."""
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


# summary keys that are mappings of counts (docs/metrics.md): missing entries are zeros
COUNT_GROUPS = ("rejection_reasons", "skip_reasons", "interruptions_by_cause",
                "failures_by_component", "step_sources")


def build_table(plan: Plan, records: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per recorded point of the plan, in point order."""
    rows = []
    for point in plan.points:
        record = records.get(point.point_id)
        if record is not None:
            rows.append(_row(point, record))
    factor_cols = list(plan.sweep.spec.factors)
    metric_cols = list(dict.fromkeys(k for r in rows for k in r["metrics"]))
    frame = pd.DataFrame(
        [{"point_id": r["point_id"], **{k: _cell(r["factors"][k]) for k in factor_cols},
          "seed": r["seed"], **r["metrics"], "runtime_s": r["runtime_s"], "error": r["error"]}
         for r in rows],
        columns=["point_id", *factor_cols, "seed", *metric_cols, "runtime_s", "error"])
    frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    # counts by reason, cause or component (`rejection_reasons.X`, ...): a point where none
    # happened has no such key, which is a count of 0, not a missing value
    ran = frame["error"].isna()
    for col in metric_cols:
        if col.split(".", 1)[0] in COUNT_GROUPS and "." in col:
            frame.loc[ran, col] = frame.loc[ran, col].fillna(0)
    return frame


def _row(point: Point, record: dict[str, Any]) -> dict[str, Any]:
    return {"point_id": point.point_id, "factors": point.factors, "seed": point.seed,
            "metrics": record.get("metrics") or {}, "runtime_s": record["runtime_s"],
            "error": record.get("error")}


def write_table(frame: pd.DataFrame, out_dir: Path) -> Path:
    """Rewrite `results.csv` and `results.parquet`; returns the CSV's path."""
    csv = out_dir / TABLE_CSV
    frame.to_csv(csv, index=False, float_format="%.9g")
    _parquet_safe(frame).to_parquet(out_dir / TABLE_PARQUET, index=False)
    return csv


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns that mix types (a factor of numbers and words) as text, for Arrow."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col] if v is not None and v == v}
            if len(kinds) > 1:
                out[col] = [None if v is None else str(v) for v in out[col]]
    return out


def load_sweep(out_dir: str | Path) -> pd.DataFrame:
    """Read back the table of a sweep's output folder (`dcsim sweep --out DIR`)."""
    d = Path(out_dir)
    if (d / TABLE_PARQUET).is_file():
        return pd.read_parquet(d / TABLE_PARQUET)
    if (d / TABLE_CSV).is_file():
        return pd.read_csv(d / TABLE_CSV)
    raise FileNotFoundError(f"{d}: no sweep table ({TABLE_PARQUET} or {TABLE_CSV}); "
                            "run the sweep to the end (`dcsim sweep FILE --out DIR`)")
