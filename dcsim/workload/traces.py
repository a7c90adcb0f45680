"""Reading a scenario's trace: parse with its format, filter, map to jobs, count.

`load_trace(scenario)` is called once when the scenario is validated (dcsim/world/check.py)
and its result kept on the scenario (`Scenario._trace_cache`, keyed by the trace options, the
resolved path and the seed); `build_workload` reuses it, so a big trace is read once.

Parsing a file is also remembered for the process, by format and file identity (path, size,
modification time), for the last few files (`PARSED_FILES`): scenarios that share a trace
(the Philly scheduler studies, a sweep's points run in one process) parse it once. A file that
changes is parsed again; the cache hands out copies of its lists, never the lists it keeps.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario import JobSpec, Scenario
from dcsim.workload.formats import FORMATS, Parsed

__all__ = ["TraceLoad", "load_trace", "cached_trace"]


@dataclass(frozen=True)
class TraceLoad:
    jobs: list[JobSpec]  # in file order
    rows_read: int  # = len(jobs) + the distinct rows in `skipped`
    skipped: list[Problem] = field(default_factory=list)  # bad rows (if skipped) and excluded
    drawn: int = 0  # jobs whose model was drawn from the mix
    unknown_types: Counter = field(default_factory=Counter)

    def skip_reasons(self) -> Counter:
        """How many rows were skipped for each reason (the message without the row)."""
        return Counter(p.message if p.column is None else f"{p.column}: {p.message}"
                       for p in {(p.source, p.line): p for p in self.skipped}.values())


def _key(scenario: Scenario) -> tuple:
    trace = scenario.workload.trace
    assert trace is not None
    return (trace, str(scenario.resolve_path(trace.path)), scenario.seed)


PARSED_FILES = 4  # parsed trace files remembered (the Philly trace: ~30 MB each)
_parsed: OrderedDict[tuple, Parsed] = OrderedDict()


def parse_file(format_name: str, path: Path) -> Parsed:
    """The file parsed by its format, remembered by (format, path, size, mtime); the lists of
    the result are fresh copies (the records and jobs in them are frozen)."""
    try:
        info = os.stat(path)
        key: tuple | None = (format_name, str(Path(path).resolve()), info.st_size,
                             info.st_mtime_ns)
    except OSError:
        key = None  # the format's own reader reports it
    parsed = _parsed.get(key) if key is not None else None
    if parsed is None:
        parsed = FORMATS.get(format_name)().parse(path)
        if key is not None:
            _parsed[key] = parsed
            while len(_parsed) > PARSED_FILES:
                _parsed.popitem(last=False)
    elif key is not None:
        _parsed.move_to_end(key)
    return Parsed(parsed.source, list(parsed.records),
                  list(parsed.jobs) if parsed.jobs is not None else None,
                  list(parsed.bad), list(parsed.excluded))


def load_trace(scenario: Scenario) -> TraceLoad:
    """Read, filter and map the scenario's trace. Raises ScenarioError for a bad file, or for
    bad rows unless `skip_bad_rows`."""
    from dcsim.workload.mapping import map_records

    trace = scenario.workload.trace
    assert trace is not None
    path = scenario.resolve_path(trace.path)
    fmt = FORMATS.get(trace.format)()
    parsed = parse_file(trace.format, path)
    if parsed.bad and not trace.skip_bad_rows:
        raise ScenarioError(parsed.bad)
    skipped = list(parsed.bad) + list(parsed.excluded)
    if parsed.jobs is not None:
        load = TraceLoad(parsed.jobs, 0, skipped)
    else:
        records = parsed.records
        if trace.statuses is not None:
            keep = set(trace.statuses)
            for r in records:
                if r.status not in keep:
                    skipped.append(Problem(parsed.source, r.line, "", f"skipped: status "
                                           f"{r.status} not in workload.trace.statuses"))
            records = [r for r in records if r.status in keep]
        reference = trace.reference_gpu or fmt.default_reference_gpu
        mapped = map_records(records, trace, reference, scenario.seed, parsed.source,
                             fmt.era_precision, fmt.source_length)
        load = TraceLoad(mapped.jobs, 0, skipped, mapped.drawn, mapped.unknown_types)
    rows = len(load.jobs) + len({(p.source, p.line) for p in skipped})
    return TraceLoad(load.jobs, rows, skipped, load.drawn, load.unknown_types)


def cached_trace(scenario: Scenario) -> TraceLoad:
    """The trace as validated, if the scenario still holds it under the same key; else read."""
    cache = scenario._trace_cache
    if cache is not None and cache[0] == _key(scenario):
        return cache[1]
    load = load_trace(scenario)
    scenario._trace_cache = (_key(scenario), load)
    return load


def remember(scenario: Scenario, load: TraceLoad) -> None:
    scenario._trace_cache = (_key(scenario), load)
