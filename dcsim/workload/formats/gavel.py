"""`gavel`: Gavel's job traces (stanford-futuredata/gavel, scheduler/traces/), tab-separated,
no header. Two layouts, told apart by the number of fields on each line:

- 7 fields (traces/msr/..., generated from Philly): job_type, command, num_steps_arg,
  needs_data_dir, total_steps, arrival_time (s), scale_factor (GPUs);
- 10 fields (traces/physical_cluster/...): job_type, command, working_directory,
  num_steps_arg, needs_data_dir, total_steps, scale_factor, priority_weight, SLO,
  arrival_time.

job_type reads like "ResNet-18 (batch size 64)": the name before " (batch size N)" is the job
type and N the batch size of each worker (Gavel scales a job out by running scale_factor
workers with that batch each); A3C and CycleGAN have none.

total_steps counts steps summed over the job's workers, as Gavel's throughputs do
(simulation_throughputs.json: a scale_factor-N job's "throughput" is its workers' steps per
second added up), so Gavel's simulator runs a job alone on a GPU type for
total_steps / throughput(type, N) seconds (tests/test_trace_semantics.py checks dcsim's
measured-throughput runs against it). The msr traces' total_steps were made from Philly run
times at one rate per job type, whatever N (docs/traces.md), so that time is not the Philly
run time.
One dcsim iteration is a global step: every worker's step of N x batch samples, so
iterations = total_steps / scale_factor, fractional where N does not divide total_steps (Gavel
ends such a job when its workers' summed steps reach total_steps: a partial last global step).
A scale_factor of 0 is skipped and counted (no GPUs).
"""

from __future__ import annotations

from pathlib import Path

from dcsim.perf.tables.base import split_job_type
from dcsim.textfile import read_text
from dcsim.workload.formats._util import number, pos_int
from dcsim.workload.formats.base import FORMATS, Parsed, TraceFormat, TraceRecord

# field name -> position, per layout
LAYOUTS = {
    7: {"job_type": 0, "total_steps": 4, "arrival_time": 5, "scale_factor": 6},
    10: {"job_type": 0, "total_steps": 5, "scale_factor": 6, "priority_weight": 7,
         "arrival_time": 9},
}


@FORMATS.register("gavel")
class Gavel(TraceFormat):
    description = "Gavel .trace (tab-separated; 7-field msr or 10-field physical_cluster)"
    # Gavel's traces give steps, not run times: no reference GPU is needed
    default_reference_gpu = None

    def parse(self, path: Path) -> Parsed:
        out = Parsed(str(path))
        for i, raw in enumerate(read_text(path, "trace").split("\n"), start=1):
            line = raw.removesuffix("\r")
            if not line.strip():
                continue
            fields = line.split("\t")
            layout = LAYOUTS.get(len(fields))
            if layout is None:
                out.bad_row(i, None, f"expected 7 (msr) or 10 (physical_cluster) "
                                     f"tab-separated fields, got {len(fields)}")
                continue
            try:
                column = "job_type"
                name, batch = split_job_type(fields[layout["job_type"]])
                if not name:
                    raise ValueError("empty job type")
                column = "total_steps"
                steps = pos_int(fields[layout["total_steps"]])
                column = "arrival_time"
                t = number(fields[layout["arrival_time"]])
                column = "scale_factor"
                g = pos_int(fields[layout["scale_factor"]], allow_zero=True)
            except ValueError as exc:
                out.bad_row(i, column, str(exc))
                continue
            if g == 0:
                out.exclude(i, "scale_factor 0 (Gavel skips these jobs)")
                continue
            out.records.append(TraceRecord(
                line=i, name=f"gavel-{i - 1}", arrival_s=t, num_gpus=g,
                iterations=steps // g if steps % g == 0 else steps / g, job_type=name,
                per_gpu_batch=batch))
        return out
