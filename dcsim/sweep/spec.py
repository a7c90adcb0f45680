"""Sweep files: the YAML shape of a parameter sweep, validated strictly. Every problem becomes a
`file:line: key.path: message` in one `ScenarioError`, as for scenarios."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario.load import validate_doc
from dcsim.textfile import read_text
from dcsim.yamlsrc import Located, parse_yaml

__all__ = ["Range", "Interval", "SeedCount", "SweepSpec", "Sweep", "read_sweep",
           "sweep_from_dict", "sweep_key"]

MAX_RANGE_LEVELS = 10_000
MAX_POINTS = 100_000  # points of one sweep (levels x seeds): each is a whole simulation
MAX_SEEDS = 10_000
Number = int | float


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Range(Strict):
    """Evenly spaced levels from `start` to `stop` inclusive; integers if all three are."""

    start: Number
    stop: Number
    step: Number

    @model_validator(mode="after")
    def _sane(self) -> Range:
        if not self.step > 0:
            raise ValueError(f"step must be > 0, got {self.step}")
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop}) must be >= start ({self.start})")
        if (self.stop - self.start) / self.step >= MAX_RANGE_LEVELS:
            raise ValueError(f"more than {MAX_RANGE_LEVELS:,} levels")
        return self

    def levels(self) -> list[Number]:
        count = math.floor((self.stop - self.start) / self.step + 1e-9) + 1
        if all(isinstance(v, int) for v in (self.start, self.stop, self.step)):
            return [self.start + i * self.step for i in range(count)]
        return [float(f"{self.start + i * self.step:.12g}") for i in range(count)]


class Interval(Strict):
    """A continuous factor, drawn uniformly (or log-uniformly) in [low, high], rounded to
    integers if `integer`: random and lhs designs only."""

    low: float
    high: float
    log: bool = False
    integer: bool = False  # round the values drawn (for integer keys such as counts)

    @model_validator(mode="after")
    def _sane(self) -> Interval:
        if not self.high > self.low:
            raise ValueError(f"high ({self.high}) must be > low ({self.low})")
        if self.log and not self.low > 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.integer and math.floor(self.high) < math.ceil(self.low):
            raise ValueError(f"no integer in [{self.low}, {self.high}]")
        return self


class SeedCount(Strict):
    """`count` replicate seeds: start, start + 1, ..."""

    count: Annotated[int, Field(gt=0, le=MAX_SEEDS)]
    start: Annotated[int, Field(ge=0)] = 1


def _factor_kind(value: Any) -> str | None:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        if {"start", "stop", "step"} & value.keys():
            return "range"
        if {"low", "high", "log", "integer"} & value.keys():
            return "interval"
    return None


Factor = Annotated[
    Annotated[list[Any], Field(min_length=1), Tag("list")]
    | Annotated[Range, Tag("range")]
    | Annotated[Interval, Tag("interval")],
    Discriminator(_factor_kind, custom_error_type="factor_kind",
                  custom_error_message="expected a list of values, a range {start, stop, step} "
                  "or an interval {low, high, log}"),
]
Seeds = Annotated[
    Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=MAX_SEEDS),
              Tag("list")]
    | Annotated[SeedCount, Tag("count")],
    Discriminator(lambda v: "list" if isinstance(v, list) else "count" if isinstance(v, dict)
                  else None, custom_error_type="seeds_kind",
                  custom_error_message="expected a list of seeds or {count, start}"),
]


class SweepSpec(Strict):
    """The sweep file (docs/sweeps.md)."""

    name: str
    description: str = ""
    base: str  # the scenario file, relative to the sweep file
    set: dict[str, Any] = {}  # fixed `--set` overrides applied to every point
    design: Literal["grid", "random", "lhs"] = "grid"
    samples: Annotated[int, Field(gt=0, le=MAX_POINTS)] | None = None  # points (random / lhs)
    design_seed: Annotated[int, Field(ge=0)] = 0
    factors: Annotated[dict[str, Factor], Field(min_length=1)]
    seeds: Seeds | None = None  # None: the base scenario's own seed
    save_runs: bool = False  # keep each point's full results under runs/<point_id>/

    @model_validator(mode="after")
    def _not_too_many_points(self) -> SweepSpec:
        seeds = len(self.seed_list() or [0])
        if self.design == "grid":
            designs = math.prod(len(f) if isinstance(f, list) else
                                len(f.levels()) if isinstance(f, Range) else 1
                                for f in self.factors.values())
        else:
            designs = self.samples or 1
        if designs * seeds > MAX_POINTS:
            raise ValueError(f"the sweep has {designs:,} design points x {seeds:,} seeds = "
                             f"{designs * seeds:,} points, more than {MAX_POINTS:,}")
        return self

    def seed_list(self) -> list[int] | None:
        if isinstance(self.seeds, SeedCount):
            return list(range(self.seeds.start, self.seeds.start + self.seeds.count))
        return self.seeds


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its spec, where it was read from, and its base scenario's path."""

    spec: SweepSpec
    source: str
    base_path: Path
    lines: dict

    def line_of(self, *path: str | int) -> int | None:
        return Located(None, self.lines, self.source).line_of(path)


def sweep_key(path: tuple) -> str:
    """('factors', 'cluster.servers.0.count', 'step') -> 'factors[cluster.servers.0.count].step'."""
    out = ""
    for part in path:
        if isinstance(part, int) or "." in str(part):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Drop the union tags pydantic inserts ('range', 'list[int]') that are not in the data."""
    tags = ("list", "range", "interval", "count", "function-", "int", "constrained")
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, dict | list) and _has(node, part):
            node = node[part]
            out.append(part)
        elif not (isinstance(part, str) and part.startswith(tags)):
            out.append(part)
            node = None
    return tuple(out)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return part in node


def _cross_checks(spec: SweepSpec) -> list[tuple[tuple, str]]:
    """Rules across keys, as (path, message) pairs."""
    out: list[tuple[tuple, str]] = []
    if spec.design == "grid" and spec.samples is not None:
        out.append((("samples",), "only for the random and lhs designs"))
    if spec.design != "grid" and spec.samples is None:
        out.append((("samples",), f"required for design {spec.design}"))
    for key, factor in spec.factors.items():
        where = ("factors", key)
        if not key or "=" in key or "" in key.split("."):
            out.append((where, "a factor is a dotted scenario key, like scheduler.kind"))
        elif key == "seed":
            out.append((where, "replicate seeds are given by `seeds`, not as a factor"))
        elif key in spec.set:
            out.append((where, "is also fixed under `set`: give it in one place"))
        if isinstance(factor, Interval) and spec.design == "grid":
            out.append((where, "an interval {low, high} needs design random or lhs; give a "
                               "list or a range {start, stop, step} for a grid"))
        if isinstance(factor, list):
            texts = [json.dumps(v, sort_keys=True) for v in factor]
            if len(set(texts)) < len(texts):
                out.append((where, "repeats a value"))
    seeds = spec.seed_list()
    if seeds is not None and len(set(seeds)) < len(seeds):
        out.append((("seeds",), "repeats a seed"))
    return out


def _validate(doc: Located, base_dir: Path) -> Sweep:
    spec = validate_doc(doc, SweepSpec, "sweep file", clean=_clean_loc, key=sweep_key)
    problems = [Problem(doc.source, doc.line_of(path), sweep_key(path), msg)
                for path, msg in _cross_checks(spec)]
    base = (base_dir / spec.base).resolve()
    if not base.is_file():
        problems.append(Problem(doc.source, doc.line_of(("base",)), "base",
                                f"scenario file not found: {base}"))
    if problems:
        raise ScenarioError(problems)
    return Sweep(spec, doc.source, base, doc.lines)


def read_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file (its points are checked by `plan_sweep`)."""
    path = Path(path)
    return _validate(parse_yaml(read_text(path, "sweep file"), str(path)), path.parent)


def sweep_from_dict(data: dict, source: str = "<dict>", base_dir: str | Path = ".") -> Sweep:
    """Validate a sweep given as a Python dict; `base` is relative to `base_dir`."""
    return _validate(Located(data, {}, source), Path(base_dir))
