"""`philly`: the Microsoft Philly trace as the Pollux/AdaptDL artifact ships it
(petuum/adaptdl, simulator/traces/philly.csv; derived from msr-fiddle/philly-traces).

Columns: timestamp (submission, a local wall-clock time 'YYYY-MM-DD HH:MM:SS'), duration (s),
num_gpus, gpu_time (GPU-s; read but unused: duration x num_gpus), cluster (the virtual-cluster
hash). No model names: every job gets a model from the scenario's `trace.models` mix. Arrivals
are seconds after the earliest submission of the rows kept. Rows with num_gpus 0 are skipped as
not training jobs (the shipped file has none).
"""

from __future__ import annotations

import csv
from pathlib import Path

from dcsim.workload.formats import FORMATS, Parsed, TraceFormat, TraceRecord, read_header
from dcsim.workload.formats._util import number, pos_int, timestamp

COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")


@FORMATS.register("philly")
class Philly(TraceFormat):
    description = "Microsoft Philly (adaptdl philly.csv): timestamp,duration,num_gpus,..."
    # Philly ran Pascal-era GPUs; the trace does not say which job ran on which, so the
    # run times are taken as P100 times (set trace.reference_gpu to change it)
    default_reference_gpu = "p100-sxm2-16gb"

    def parse(self, path: Path) -> Parsed:
        out = Parsed(str(path))
        rows = []
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            read_header(out.source, header, COLUMNS)
            col = {c: header.index(c) for c in COLUMNS}
            it, du, ng, cl = col["timestamp"], col["duration"], col["num_gpus"], col["cluster"]
            for i, row in enumerate(reader, start=2):
                if not row:
                    continue  # a blank line (the shipped file ends with one)
                if len(row) != len(header):
                    out.bad_row(i, None, f"expected {len(header)} fields, got {len(row)}")
                    continue
                try:
                    column = "timestamp"
                    t = timestamp(row[it])
                    column = "duration"
                    d = number(row[du], strict=True)
                    column = "num_gpus"
                    g = pos_int(row[ng], allow_zero=True)
                except ValueError as exc:
                    out.bad_row(i, column, str(exc))
                    continue
                if g == 0:
                    out.exclude(i, "num_gpus 0 (not a GPU training job)")
                    continue
                rows.append((i, t, d, g, row[cl] or None))
        t0 = min((r[1] for r in rows), default=0.0)
        out.records = [TraceRecord(line=i, name=f"philly-{i - 1}", arrival_s=t - t0,
                                   num_gpus=g, duration_s=d, virtual_cluster=vc)
                       for i, t, d, g, vc in rows]
        return out
