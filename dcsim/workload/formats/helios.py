"""`helios`: SenseTime's Helios traces (S-Lab-System-Group/HeliosData, data/<cluster>/
cluster_log.csv; Hu et al., SC'21), one Slurm job per row.

Columns used: job_id, user, vc (virtual cluster), gpu_num, state, submit_time, duration (s,
end_time - start_time); cpu_num, node_num, start_time, end_time, queue and jobname (if
present) are read past. Times are wall-clock 'YYYY-MM-DD HH:MM:SS'; arrivals are seconds
after the earliest submission of the rows kept. Skipped and counted, with the reason: rows
with gpu_num 0 (CPU jobs: the README counts 1,580,464 GPU jobs of 3,362,981) and rows with a
duration of 0 (never ran). Jobs of every end state (COMPLETED, CANCELLED, FAILED, TIMEOUT,
NODE_FAIL) are kept, each for the time it held its GPUs; the scenario option
`trace.statuses` keeps only the listed ones (e.g. [COMPLETED]). There are no model names:
jobs get a model from the scenario's `trace.models` mix. The file names no GPU type; the
default reference GPU, the V100, is an assumption (set `trace.reference_gpu`).
"""

from __future__ import annotations

from pathlib import Path

from dcsim.textfile import read_csv
from dcsim.workload.formats._util import number, pos_int, timestamp
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat, TraceRecord, read_header

COLUMNS = ("job_id", "user", "vc", "gpu_num", "state", "submit_time", "duration")


@FORMATS.register("helios")
class Helios(TraceFormat):
    description = "SenseTime Helios cluster_log.csv: job_id,user,vc,gpu_num,...,duration"
    default_reference_gpu = "v100-sxm2-32gb"

    def parse(self, path: Path) -> Parsed:
        out = Parsed(str(path))
        rows = []
        table = read_csv(path, "trace")
        read_header(out.source, table.header, COLUMNS, allow_extra=True)
        for i, row in table.records(lambda i, msg: out.bad_row(i, None, msg)):
            try:
                column = "gpu_num"
                g = pos_int(row["gpu_num"] or "", allow_zero=True)
                column = "submit_time"
                t = timestamp(row["submit_time"] or "")
                column = "duration"
                d = number(row["duration"] or "")
            except ValueError as exc:
                out.bad_row(i, column, str(exc))
                continue
            if g == 0:
                out.exclude(i, "gpu_num 0 (a CPU job)")
                continue
            if d == 0:
                out.exclude(i, f"duration 0 (state {row['state']}: never ran)")
                continue
            rows.append(TraceRecord(line=i, name=f"helios-{row['job_id']}", arrival_s=t,
                                    num_gpus=g, duration_s=d, user=row["user"] or None,
                                    virtual_cluster=row["vc"] or None,
                                    status=row["state"] or None))
        t0 = min((r.arrival_s for r in rows), default=0.0)
        out.records = [_shift(r, t0) for r in rows]
        return out


def _shift(r: TraceRecord, t0: float) -> TraceRecord:
    from dataclasses import replace

    return replace(r, arrival_s=r.arrival_s - t0)
