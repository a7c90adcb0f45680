"""Trace formats: one module per format, each registered by name in `FORMATS`.

A format parses a file into a `Parsed`: either `TraceRecord`s (what a public cluster trace
holds: when, how many GPUs, how long or how many steps, sometimes the model), which
`dcsim.workload.mapping` turns into jobs, or, for the native formats, `JobSpec`s directly.
Rows are sorted into three bins, every one counted:

- records (or jobs): accepted;
- `bad`: malformed rows, a `Problem` each (`file:line:column: message`); they reject the
  scenario unless it sets `skip_bad_rows: true`, then they are skipped and counted;
- `excluded`: well-formed rows that are not training jobs dcsim can replay (CPU-only, a
  scale factor of 0, failed jobs where the format says so); always skipped, each with its
  reason, and counted.

Adding a format is one module here with a `@FORMATS.register("name")` class; a duplicate
name fails at import, as in the other registries.
"""

from __future__ import annotations

from dcsim.workload.formats.base import (  # noqa: F401  (re-exported)
    FORMATS,
    Parsed,
    TraceFormat,
    TraceRecord,
    read_header,
)

__all__ = ["FORMATS", "TraceFormat", "TraceRecord", "Parsed", "read_header"]

# Register the formats (import order does not matter; names are unique).
from dcsim.workload.formats import (  # noqa: F401
    alibaba_pai,
    dcsim_native,
    gavel,
    helios,
    philly,
    pollux,
    tiresias,
)
