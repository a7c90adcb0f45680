"""`tiresias`: the Tiresias simulator's job list (SymbioticLab/Tiresias, simulator/60_job.csv).

Columns: job_id, num_gpu, submit_time (s), iterations, model_name (e.g. vgg19, resnet50,
inception4), duration (s), interval (s to the next submission; unused). Tiresias's simulator
runs each job for `duration` seconds of service (no preemption cost) and does not use
`iterations` (its README: the schedulers do not rely on it); `model_name` only sets the job's
memory and network figures there. So a job's length is `duration` on `reference_gpu` (default
P100: the Tiresias testbed had 60 P100 GPUs), unless the scenario sets
`trace.length: iterations`.
"""

from __future__ import annotations

from pathlib import Path

from dcsim.textfile import read_csv
from dcsim.workload.formats._util import number, pos_int
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat, TraceRecord, read_header

COLUMNS = ("job_id", "num_gpu", "submit_time", "iterations", "model_name", "duration")
OPTIONAL = ("interval",)


@FORMATS.register("tiresias")
class Tiresias(TraceFormat):
    description = "Tiresias simulator CSV: job_id,num_gpu,submit_time,iterations,model_name,..."
    default_reference_gpu = "p100-sxm2-16gb"
    source_length = "duration"

    def parse(self, path: Path) -> Parsed:
        out = Parsed(str(path))
        table = read_csv(path, "trace")
        read_header(out.source, table.header, COLUMNS, OPTIONAL)
        for i, row in table.records(lambda i, msg: out.bad_row(i, None, msg)):
            try:
                column = "num_gpu"
                g = pos_int(row["num_gpu"], allow_zero=True)
                column = "submit_time"
                t = number(row["submit_time"])
                column = "iterations"
                it = pos_int(row["iterations"])
                column = "duration"
                d = number(row["duration"], strict=True)
                column = "model_name"
                if not row["model_name"]:
                    raise ValueError("empty model name")
            except ValueError as exc:
                out.bad_row(i, column, str(exc))
                continue
            if g == 0:
                out.exclude(i, "num_gpu 0 (not a GPU training job)")
                continue
            out.records.append(TraceRecord(
                line=i, name=f"tiresias-{row['job_id']}", arrival_s=t, num_gpus=g,
                duration_s=d, iterations=it, job_type=row["model_name"]))
        return out
