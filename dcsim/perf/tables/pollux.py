"""`pollux` throughput tables: Pollux's per-application profiles (petuum/adaptdl, branch
osdi21-artifact, simulator/traces/<application>/; Qiao et al., OSDI'21), measured on the Pollux
testbed: 16 AWS g4dn.12xlarge nodes of 4 NVIDIA T4 GPUs each (GPU name `t4`, mapped to the
catalog's t4-16gb unless the source's `gpus` says otherwise).

The table's `path` is the profiles folder: each subfolder is an application (its name is the
job type: bert, cifar10, deepspeech2, imagenet, ncf, yolov3) holding

- `placements.csv` (placement, local_bsz, step_time, sync_time): a placement id's digits are the
  replicas on each node (Pollux's simulator normalises a placement to its smallest rotation,
  e.g. 132 for nodes with 1, 3 and 2 replicas), local_bsz the batch of each replica, step_time
  the seconds of one optimizer step (sync_time, the all-reduce, is part of it);
- `scalability.csv` (num_nodes, num_replicas, local_bsz, step_time, sync_time): larger jobs
  (6-16 nodes), which Pollux interpolates over (nodes, replicas, local_bsz).

Each row becomes an entry of job type = application, num_gpus = the replicas, batch_per_gpu =
local_bsz and iteration_s = step_time. dcsim places a job by GPUs per server without an order,
so a placement's entry is the multiset of its digits; rotations of one multiset (123 and 132)
are averaged. A scalability row is taken at the most even split of its replicas over its
nodes. Pollux interpolates linearly over local_bsz, as dcsim's lookup does; it also accumulates
gradients when a replica's batch exceeds the largest profiled local_bsz, which dcsim does not.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

from dcsim.errors import Problem, ScenarioError
from dcsim.perf.measured import Entry
from dcsim.perf.tables.base import TABLE_FORMATS, TableFormat, TableRead, _gpu, _number
from dcsim.textfile import read_text

__all__ = ["PolluxProfiles", "POLLUX_GPUS", "even_shape"]

POLLUX_GPUS = {"t4": "t4-16gb"}
PLACEMENT_COLUMNS = ("placement", "local_bsz", "step_time", "sync_time")
SCALABILITY_COLUMNS = ("num_nodes", "num_replicas", "local_bsz", "step_time", "sync_time")


def even_shape(replicas: int, nodes: int) -> tuple[int, ...]:
    """`replicas` split over `nodes` as evenly as possible, largest first."""
    base, extra = divmod(replicas, nodes)
    return tuple([base + 1] * extra + [base] * (nodes - extra))


def _rows(path: Path, columns: tuple[str, ...], problems: list[Problem]
          ) -> list[tuple[int, dict[str, str]]]:
    """The rows of a profile CSV as (line, row); header problems are appended."""
    try:
        text = read_text(path, "Pollux profile")
    except ScenarioError as exc:
        problems.extend(exc.problems)
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    if tuple(header) != columns:
        problems.append(Problem(str(path), 1, "", f"expected the columns {', '.join(columns)}, "
                                f"got {', '.join(header) or 'none'}"))
        return []
    out = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(columns):
            problems.append(Problem(str(path), reader.line_num, "",
                                    f"expected {len(columns)} fields, got {len(row)}"))
            continue
        out.append((reader.line_num, dict(zip(columns, row, strict=True))))
    return out


def _placement(text: str) -> tuple[int, ...]:
    digits = text.strip()
    if not digits.isdigit() or "0" in digits or len(digits) > 16:
        raise ValueError(f"placement: expected replicas per node as digits 1-9 (e.g. 1224), "
                         f"got {text!r}")
    return tuple(sorted((int(d) for d in digits), reverse=True))


@TABLE_FORMATS.register("pollux")
class PolluxProfiles(TableFormat):
    description = "Pollux profiles folder: <application>/placements.csv, scalability.csv"
    default_gpus = POLLUX_GPUS

    def read(self, path: Path, gpus: dict[str, str]) -> TableRead:
        source = str(path)
        if not path.is_dir():
            raise ScenarioError([Problem(source, None, "", "a pollux table is a folder of "
                                         "application folders (placements.csv, "
                                         "scalability.csv)")])
        try:
            gpu = _gpu("t4", gpus)
        except ValueError as exc:
            raise ScenarioError([Problem(source, None, "gpus", str(exc))]) from None
        apps = sorted(p for p in path.iterdir() if p.is_dir())
        if not apps:
            raise ScenarioError([Problem(source, None, "", "no application folders")])
        out = TableRead(source)
        problems: list[Problem] = []
        for app in apps:
            self._application(app, gpu, out, problems)
        if problems:
            raise ScenarioError(problems)
        return out

    def _application(self, app: Path, gpu: str, out: TableRead,
                     problems: list[Problem]) -> None:
        # (shape, local_bsz) -> [(step_time, where)]; placements first, then scalability rows
        # for shapes the placements do not cover
        measured: dict[tuple, list[tuple[float, str]]] = defaultdict(list)
        for name, columns in (("placements.csv", PLACEMENT_COLUMNS),
                              ("scalability.csv", SCALABILITY_COLUMNS)):
            file = app / name
            seen: set[tuple] = set(measured)
            for line, row in _rows(file, columns, problems):
                out.read += 1
                where = f"{file}:{line}"
                try:
                    if name == "placements.csv":
                        shape = _placement(row["placement"])
                    else:
                        nodes = int(_number(row["num_nodes"], "num_nodes", integer=True,
                                            upper=10_000))
                        replicas = int(_number(row["num_replicas"], "num_replicas",
                                               integer=True, upper=1_000_000))
                        if replicas < nodes:
                            raise ValueError(f"num_replicas: {replicas} replicas cannot fill "
                                             f"{nodes} nodes")
                        shape = even_shape(replicas, nodes)
                    bsz = _number(row["local_bsz"], "local_bsz", integer=True, upper=1e9)
                    step = _number(row["step_time"], "step_time", upper=1e7)
                    sync = float(row["sync_time"])
                    if not 0 <= sync <= step:
                        raise ValueError(f"sync_time: must be in [0, step_time], got "
                                         f"{row['sync_time']!r}")
                except ValueError as exc:
                    column, _, msg = str(exc).partition(": ")
                    problems.append(Problem(str(file), line, "", msg, column=column))
                    continue
                key = (shape, bsz)
                if key in seen:
                    out.skipped[f"{name}: placement also in placements.csv"] += 1
                    continue
                measured[key].append((step, where))
        for (shape, bsz), values in measured.items():
            step = sum(v for v, _ in values) / len(values)
            where = "; ".join(w for _, w in values)
            out.entries.append(Entry(app.name, gpu, sum(shape), bsz, step, shape, where))
