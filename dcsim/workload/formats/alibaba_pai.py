"""`alibaba-pai`: the Alibaba PAI GPU cluster trace of 2020 (alibaba/clusterdata,
cluster-trace-gpu-v2020; Weng et al., NSDI'22), its `pai_task_table.csv`.

Columns (the release's files have no header row; the schema is in pai_task_table.header:
job_name, task_name, inst_num, status, start_time, end_time, plan_cpu, plan_mem, plan_gpu,
gpu_type; a file that starts with that header row is read too). A job is the rows of one
job_name (its tasks: e.g. ps and worker); it is reported at the line of its first row.

- num_gpus: the sum over its tasks of inst_num x ceil(plan_gpu / 100): plan_gpu is in percent
  of one GPU (50 = half a GPU); dcsim does not share a GPU between jobs, so a fractional request
  takes a whole GPU per instance. A job whose tasks ask for no GPU (plan_gpu 0 or empty) is
  skipped and counted as a CPU job.
- arrival_s: the earliest task start_time (s, shifted by a constant in the release), minus the
  file's earliest; this is the launch time, so the wait before the first launch (the job
  table's submission time) is not included. A start_time of 0 means unset (the release's own
  analysis code reads it, and that task's end_time, as missing): such a task does not count
  towards the job's times; a job with no task times left is skipped and counted.
- duration_s: the latest task end_time minus the earliest start_time. A job with no end time
  (Running or Waiting when the trace was cut) is skipped and counted.
- status: Terminated if every task is; otherwise the first other task status (Failed, ...).
  All are kept unless the scenario sets `trace.statuses` (e.g. [Terminated]).
The default reference GPU is the V100 (the trace's gpu_type is per task: V100, V100M32, P100,
T4 or MISC, the older generations; one reference for the whole trace is a simplification).
"""

from __future__ import annotations

import math
from pathlib import Path

from dcsim.textfile import read_csv
from dcsim.workload.formats._util import number
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat, TraceRecord

COLUMNS = ("job_name", "task_name", "inst_num", "status", "start_time", "end_time",
           "plan_cpu", "plan_mem", "plan_gpu", "gpu_type")


def _opt_number(text: str) -> float | None:
    return None if text.strip() in ("", "nan", "NaN", "None") else number(text)


@FORMATS.register("alibaba-pai")
class AlibabaPai(TraceFormat):
    description = "Alibaba PAI 2020 pai_task_table.csv (tasks grouped into jobs)"
    default_reference_gpu = "v100-sxm2-32gb"

    def parse(self, path: Path) -> Parsed:
        out = Parsed(str(path))
        jobs: dict[str, dict] = {}
        broken: set[str] = set()
        col = {c: k for k, c in enumerate(COLUMNS)}
        for i, row in read_csv(path, "trace", header=False).rows:
            if i == 1 and tuple(row) == COLUMNS:
                continue  # a header row
            if len(row) != len(COLUMNS):
                out.bad_row(i, None, f"expected {len(COLUMNS)} fields ({', '.join(COLUMNS)}),"
                                     f" got {len(row)}")
                continue
            name = row[col["job_name"]]
            if name in broken:
                continue
            try:
                column = "inst_num"
                inst = _opt_number(row[col["inst_num"]]) or 0.0
                column = "plan_gpu"
                gpu = _opt_number(row[col["plan_gpu"]]) or 0.0
                column = "start_time"
                start = _opt_number(row[col["start_time"]])
                column = "end_time"
                end = _opt_number(row[col["end_time"]])
                unset = start == 0.0  # the release marks an unset time with 0 (its
                # analysis code reads that task's start and end as missing)
            except ValueError as exc:
                out.bad_row(i, column, str(exc))
                broken.add(name)
                jobs.pop(name, None)
                continue
            job = jobs.setdefault(name, {"line": i, "gpus": 0, "start": [], "end": [],
                                         "status": []})
            job["gpus"] += round(inst) * math.ceil(gpu / 100.0 - 1e-9)
            if not unset:
                if start is not None:
                    job["start"].append(start)
                job["end"].append(end)
            job["status"].append(row[col["status"]])
        kept = []
        for name, job in jobs.items():
            statuses = job["status"]
            status = next((s for s in statuses if s != "Terminated"), "Terminated")
            if job["gpus"] == 0:
                out.exclude(job["line"], f"job {name}: no GPU requested (a CPU job)")
            elif not job["start"] or None in job["end"]:
                out.exclude(job["line"], f"job {name}: no start or end time (status {status})")
            else:
                kept.append((job["line"], name, min(job["start"]), max(job["end"]),
                             job["gpus"], status))
        t0 = min((k[2] for k in kept), default=0.0)
        for line, name, start, end, gpus, status in sorted(kept):
            if end <= start:
                out.exclude(line, f"job {name}: end_time {end:g} not after start_time {start:g}")
                continue
            out.records.append(TraceRecord(line=line, name=f"pai-{name}", arrival_s=start - t0,
                                           num_gpus=gpus, duration_s=end - start, status=status))
        return out
