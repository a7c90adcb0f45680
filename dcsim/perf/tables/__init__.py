"""Reading tables of measured throughputs (engine.throughputs) into `Entry`s.

Formats, one class each in `TABLE_FORMATS`:

- `dcsim`: CSV (or YAML, by the file's suffix .yaml / .yml) with columns job_type, gpu (a
  catalog GPU type, or a name mapped by the source's `gpus`), num_gpus; optionally
  batch_per_gpu or global_batch (samples per optimizer step; neither: any batch) and placement
  (GPUs per server, e.g. `8` or `4+4`; none: any placement); and exactly one value column with
  its unit in its name: `samples_per_s` (whole job; needs a batch), `iterations_per_s` or
  `iteration_s` (one optimizer step of all the job's GPUs).
- `gavel`: Gavel's scheduler/simulation_throughputs.json as published: worker type ->
  "(job type, scale factor)" -> {"null": isolated throughput, ...co-located pairs}. Gavel
  counts a job's steps summed over its workers (each worker runs the job type's batch size),
  so a global iteration of N workers takes N / throughput seconds. Keys with the
  `_unconsolidated` suffix were measured with the workers spread over servers. A throughput of
  0 (Gavel's mark for a configuration that did not run, e.g. out of memory) is skipped and
  counted. Default GPU names: `GAVEL_GPUS`.
- `pollux`: a folder of Pollux's per-application profiles (petuum/adaptdl simulator/traces:
  <application>/placements.csv and scalability.csv, measured on the Pollux testbed's T4 GPUs).
  See `dcsim/perf/tables/pollux.py`.

Every problem is located (file, line or key, column) and all of them are reported at once;
exact duplicate keys are errors, not "last one wins". `TableRead` counts what was read,
accepted and skipped (with reasons).
"""

from __future__ import annotations

from dcsim.perf.tables.base import (  # noqa: F401  (re-exported)
    GAVEL_GPUS,
    TABLE_FORMATS,
    VALUE_COLUMNS,
    TableFormat,
    TableRead,
    _gpu,
    _number,
    read_table,
)

__all__ = ["TABLE_FORMATS", "TableFormat", "TableRead", "read_table", "GAVEL_GPUS",
           "VALUE_COLUMNS"]

from dcsim.perf.tables import pollux  # noqa: F401
