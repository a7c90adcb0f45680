"""`pollux`: the Pollux (OSDI'21) workloads (petuum/adaptdl, branch osdi21-artifact,
simulator/workloads/workload-N.csv), each 160 jobs sampled from Philly.

Columns: name, time (arrival, s), application (cifar10, imagenet, bert, deepspeech2, yolov3,
ncf), num_replicas (GPUs), batch_size (global batch). The files give no length. A job's length
here is the number of steps the Pollux authors measured for their application to train to the
end of its run at that global batch size: the `iteration` column of the last row of
simulator/traces/<application>/validation-<batch_size>.csv in the same artifact (all runs reach
the same total `progress`, i.e. the same statistical work; larger batches need fewer steps).
So Pollux's adaptive batch sizing is not modelled: each job keeps its submitted batch size.
A batch size without a measured file is a bad row.
"""

from __future__ import annotations

from pathlib import Path

from dcsim.textfile import read_csv
from dcsim.workload.formats._util import number, pos_int
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat, TraceRecord, read_header

COLUMNS = ("name", "time", "application", "num_replicas", "batch_size")

# application -> {global batch size: steps to the end of the run}: the last row's `iteration`
# of petuum/adaptdl@c793c70 simulator/traces/<application>/validation-<batch>.csv
MEASURED_ITERATIONS: dict[str, dict[int, int]] = {
    "bert": {12: 14774, 24: 7427, 48: 3732, 96: 1885, 192: 940, 384: 480},
    "cifar10": {128: 39062, 256: 20377, 512: 10615, 1024: 5722, 2048: 3178, 4096: 2011},
    "deepspeech2": {20: 28536, 40: 14711, 80: 7683, 160: 4041, 320: 2264, 640: 1423},
    "imagenet": {200: 576525, 400: 292995, 800: 150231, 1600: 78453, 3200: 42123,
                 6400: 23972, 12800: 14461},
    "ncf": {256: 194174, 512: 97094, 1024: 48625, 2048: 24308, 4096: 12172, 8192: 6122,
            16384: 3069, 32768: 1548},
    "yolov3": {8: 103444, 16: 52905, 32: 27430, 64: 14577, 128: 8075, 256: 4809, 512: 3143},
}


@FORMATS.register("pollux")
class Pollux(TraceFormat):
    description = "Pollux workload CSV: name,time,application,num_replicas,batch_size"

    def parse(self, path: Path) -> Parsed:
        out = Parsed(str(path))
        table = read_csv(path, "trace")
        read_header(out.source, table.header, COLUMNS)
        for i, row in table.records(lambda i, msg: out.bad_row(i, None, msg)):
            try:
                column = "time"
                t = number(row["time"] or "")
                column = "num_replicas"
                g = pos_int(row["num_replicas"] or "", allow_zero=True)
                column = "batch_size"
                b = pos_int(row["batch_size"] or "")
                column = "application"
                app = row["application"]
                if app not in MEASURED_ITERATIONS:
                    raise ValueError(f"unknown application {app!r}; valid: "
                                     f"{', '.join(sorted(MEASURED_ITERATIONS))}")
                steps = MEASURED_ITERATIONS[app].get(b)
                if steps is None:
                    column = "batch_size"
                    known = ", ".join(str(k) for k in MEASURED_ITERATIONS[app])
                    raise ValueError(f"no measured length for {app} at batch size {b} "
                                     f"(measured: {known})")
            except ValueError as exc:
                out.bad_row(i, column, str(exc))
                continue
            if g == 0:
                out.exclude(i, "num_replicas 0 (not a GPU training job)")
                continue
            out.records.append(TraceRecord(
                line=i, name=row["name"] or f"pollux-{i - 1}", arrival_s=t, num_gpus=g,
                iterations=steps, job_type=app, batch_size=b))
        return out
