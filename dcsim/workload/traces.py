"""Reading a scenario's trace: parse with its format, filter, map to jobs, count.

`load_trace(scenario)` runs when the scenario is validated (dcsim/world/check.py) and again
when a world is built for it (`World.trace`, from which `World.workload` takes its jobs). Both
steps are remembered for the process, for the last few files (`PARSED_FILES`): parsing by
format and file identity (path, size, modification time), mapping by that and the trace
options and seed. So a big trace is read and mapped once, however many scenarios share it
(the Philly scheduler studies, a sweep's points run in one process). A file that changes is
read again; callers get copies of the lists, never the lists kept.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario import JobSpec, Scenario
from dcsim.workload.formats import FORMATS, Parsed

__all__ = ["TraceLoad", "load_trace", "parse_file"]


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


PARSED_FILES = 4  # trace files remembered (the Philly trace: ~30 MB each)
_parsed: OrderedDict[tuple, Parsed] = OrderedDict()
_mapped: OrderedDict[tuple, TraceLoad] = OrderedDict()


def _file_key(path: Path) -> tuple | None:
    """The file's identity (resolved path, size, mtime), or None if it cannot be read (the
    format's own reader reports that)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (str(Path(path).resolve()), info.st_size, info.st_mtime_ns)


def _remembered(memo: OrderedDict, key: tuple | None, make):
    """memo[key], else make() kept under it (the last PARSED_FILES keys)."""
    found = memo.get(key) if key is not None else None
    if found is None:
        found = make()
        if key is not None:
            memo[key] = found
            while len(memo) > PARSED_FILES:
                memo.popitem(last=False)
    elif key is not None:
        memo.move_to_end(key)
    return found


def parse_file(format_name: str, path: Path) -> Parsed:
    """The file parsed by its format, remembered by (format, path, size, mtime); the lists of
    the result are fresh copies (the records and jobs in them are frozen)."""
    file = _file_key(path)
    parsed = _remembered(_parsed, (format_name, str(path), *file) if file else None,
                         lambda: FORMATS.get(format_name)().parse(path))
    return Parsed(parsed.source, list(parsed.records),
                  list(parsed.jobs) if parsed.jobs is not None else None,
                  list(parsed.bad), list(parsed.excluded))


def load_trace(scenario: Scenario) -> TraceLoad:
    """Read, filter and map the scenario's trace (remembered: the module's docstring). Raises
    ScenarioError for a bad file, or for bad rows unless `skip_bad_rows`."""
    trace = scenario.workload.trace
    assert trace is not None
    path = scenario.resolve_path(trace.path)
    file = _file_key(path)
    key = (trace.model_dump_json(), scenario.seed, str(path), *file) if file else None
    load = _remembered(_mapped, key, lambda: _read_and_map(scenario, path))
    return TraceLoad(list(load.jobs), load.rows_read, list(load.skipped), load.drawn,
                     Counter(load.unknown_types))


def _read_and_map(scenario: Scenario, path: Path) -> TraceLoad:
    from dcsim.workload.mapping import map_records

    trace = scenario.workload.trace
    assert trace is not None
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
