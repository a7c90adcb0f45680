"""`philly`: the Microsoft Philly trace as the Pollux/AdaptDL artifact ships it
(petuum/adaptdl, simulator/traces/philly.csv; derived from msr-fiddle/philly-traces).

Columns: timestamp (submission, a local wall-clock time 'YYYY-MM-DD HH:MM:SS'), duration (s),
num_gpus, gpu_time (GPU-s; read but unused: duration x num_gpus), cluster (the virtual-cluster
hash). No model names: every job gets a model from the scenario's `trace.models` mix. Arrivals
are seconds after the earliest submission of the rows kept. Rows with num_gpus 0 are skipped as
not training jobs (the shipped file has none).
"""

from __future__ import annotations

from pathlib import Path

from dcsim.textfile import read_csv
from dcsim.workload.formats._util import number, pos_int, timestamp
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat, TraceRecord, read_header

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
        table = read_csv(path, "trace")
        read_header(out.source, table.header, COLUMNS)
        for i, row in table.records(lambda i, msg: out.bad_row(i, None, msg)):
            try:
                column = "timestamp"
                t = timestamp(row["timestamp"])
                column = "duration"
                d = number(row["duration"], strict=True)
                column = "num_gpus"
                g = pos_int(row["num_gpus"], allow_zero=True)
            except ValueError as exc:
                out.bad_row(i, column, str(exc))
                continue
            if g == 0:
                out.exclude(i, "num_gpus 0 (not a GPU training job)")
                continue
            rows.append((i, t, d, g, row["cluster"] or None))
        t0 = min((r[1] for r in rows), default=0.0)
        out.records = [TraceRecord(line=i, name=f"philly-{i - 1}", arrival_s=t - t0,
                                   num_gpus=g, duration_s=d, virtual_cluster=vc)
                       for i, t, d, g, vc in rows]
        return out
