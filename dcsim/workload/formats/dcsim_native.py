"""The native formats: `dcsim-csv` (dcsim/workload/trace.py) and `dcsim-parquet` (the same
columns in a Parquet file). Their rows are whole jobs, so they parse to JobSpecs directly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from dcsim.errors import Problem, ScenarioError
from dcsim.textfile import read_csv
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat
from dcsim.workload.trace import check_columns, rows_to_jobs


@FORMATS.register("dcsim-csv")
class DcsimCsv(TraceFormat):
    description = "dcsim's own CSV: one job per row (name, arrival_s, model, ...)"

    def parse(self, path: Path) -> Parsed:
        source = str(path)
        out = Parsed(source, jobs=[])
        table = read_csv(path, "trace")
        check_columns(source, table.header or [])
        jobs, bad = rows_to_jobs(source, table.records(lambda i, msg: out.bad_row(i, None, msg)))
        out.jobs, out.bad = jobs, out.bad + bad
        return out


def _cell(v: Any) -> str:
    """A Parquet cell as the CSV reader would see it: missing -> '', 10.0 -> '10'."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


@FORMATS.register("dcsim-parquet")
class DcsimParquet(TraceFormat):
    description = "the dcsim-csv columns in a Parquet file; LINE in messages is the row number"

    def parse(self, path: Path) -> Parsed:
        import pandas as pd

        source = str(path)
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            problem = Problem(source, None, "", f"cannot read Parquet: {exc}")
            raise ScenarioError([problem]) from None
        check_columns(source, [str(c) for c in frame.columns])
        columns = [str(c) for c in frame.columns]
        rows = ((i, {c: _cell(v) for c, v in zip(columns, values, strict=True)})
                for i, values in enumerate(frame.itertuples(index=False, name=None), start=1))
        jobs, bad = rows_to_jobs(source, rows)
        return Parsed(source, jobs=jobs, bad=bad)
