"""The points of a sweep: its design (grid, random or Latin hypercube) crossed with the replicate
seeds, each with a stable id; and the up-front check that every point's scenario is valid."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dcsim.errors import Problem, ScenarioError
from dcsim.sweep.spec import Interval, Range, Sweep, sweep_key

__all__ = ["Point", "Plan", "design_points", "plan_sweep", "point_id", "yaml_value"]


@dataclass(frozen=True)
class Point:
    """One simulation of the sweep: factor values (by dotted key) and the scenario seed."""

    index: int
    point_id: str
    factors: dict[str, Any]
    seed: int

    def overrides(self) -> list[str]:
        """The factor values as `dcsim run --set` items."""
        return [f"{key}={yaml_value(value)}" for key, value in self.factors.items()]


@dataclass(frozen=True)
class Plan:
    """A sweep's points in order, the `--set` items fixed for all of them, and a fingerprint
    of what the points run on (the base scenario's text and those items)."""

    sweep: Sweep
    points: list[Point]
    fixed: list[str]
    context: str
    duplicates: int  # design points drawn more than once (random / lhs), merged


def yaml_value(value: Any) -> str:
    """`value` as one line of YAML that reads back as the same value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def point_id(factors: dict[str, Any], seed: int) -> str:
    """A stable id: a hash of the canonical JSON of the factor values and the seed."""
    text = json.dumps({"factors": factors, "seed": seed}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _clean(x: float) -> float:
    return float(f"{float(x):.12g}")


def _from_unit(factor: Any, u: np.ndarray) -> list[Any]:
    """Map draws in [0, 1) onto a factor: levels of a list or range, values of an interval."""
    if isinstance(factor, Interval):
        if factor.log:
            lo, hi = np.log(factor.low), np.log(factor.high)
            values = np.exp(lo + u * (hi - lo))
        else:
            values = factor.low + u * (factor.high - factor.low)
        if factor.integer:
            low, high = math.ceil(factor.low), math.floor(factor.high)
            return [int(np.clip(np.rint(v), low, high)) for v in values]
        return [_clean(v) for v in values]
    levels = factor.levels() if isinstance(factor, Range) else factor
    return [levels[min(int(x * len(levels)), len(levels) - 1)] for x in u]


def design_points(sweep: Sweep) -> list[dict[str, Any]]:
    """The factor combinations of the design, in order (before seeds; may repeat)."""
    spec = sweep.spec
    keys = list(spec.factors)
    if spec.design == "grid":
        levels = [f.levels() if isinstance(f, Range) else f for f in spec.factors.values()]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*levels)]
    n = spec.samples or 0
    if spec.design == "random":  # one stream per factor, named by its key: adding a factor
        columns = []              # does not change the others' draws
        for key, factor in spec.factors.items():
            rng = np.random.default_rng([spec.design_seed, zlib.crc32(key.encode())])
            columns.append(_from_unit(factor, rng.random(n)))
    else:
        unit = _latin_hypercube(len(keys), n, spec.design_seed)
        columns = [_from_unit(f, unit[:, j]) for j, f in enumerate(spec.factors.values())]
    return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]


def _latin_hypercube(d: int, n: int, seed: int) -> np.ndarray:
    from scipy.stats import qmc

    rng = np.random.default_rng(seed)
    try:
        sampler = qmc.LatinHypercube(d=d, rng=rng)
    except TypeError:  # scipy < 1.15 names it `seed`
        sampler = qmc.LatinHypercube(d=d, seed=rng)
    return sampler.random(n)


def _seeds(sweep: Sweep, fixed: list[str]) -> list[int]:
    from dcsim.world import load_scenario

    seeds = sweep.spec.seed_list()
    if seeds is not None:
        return seeds
    try:
        return [load_scenario(sweep.base_path, fixed).seed]
    except ScenarioError as exc:
        raise ScenarioError([_locate(p, sweep, {}) for p in exc.problems]) from None


def _points(sweep: Sweep, seeds: list[int]) -> tuple[list[Point], int]:
    points: list[Point] = []
    seen: set[str] = set()
    duplicates = 0
    for factors in design_points(sweep):
        for seed in seeds:
            pid = point_id(factors, seed)
            if pid in seen:
                duplicates += 1
                continue
            seen.add(pid)
            points.append(Point(len(points), pid, factors, seed))
    return points, duplicates // len(seeds)


def _locate(problem: Problem, sweep: Sweep, factors: dict[str, Any]) -> Problem:
    """A scenario problem caused by a `--set` item, pointed at the factor or `set` key."""
    if not problem.source.startswith("--set "):
        if not factors:
            return problem
        where = ", ".join(f"{k}={yaml_value(v)}" for k, v in factors.items())
        return Problem(problem.source, problem.line, problem.key,
                       f"{problem.message} (sweep {sweep.source}, point {where})", problem.column)
    key, _, raw = problem.source.removeprefix("--set ").partition("=")
    path = ("factors", key) if key in factors else ("set", key)
    return Problem(sweep.source, sweep.line_of(*path), sweep_key(path),
                   f"value {raw}: {problem.key}: {problem.message}"
                   if problem.key else f"value {raw}: {problem.message}")


def _check(plan: Plan) -> None:
    """Validate each distinct factor combination's scenario (the seed only sets an int)."""
    from dcsim.world import load_scenario

    problems: list[Problem] = []
    checked: set[str] = set()
    for point in plan.points:
        items = point.overrides()
        if "\n".join(items) in checked:
            continue
        checked.add("\n".join(items))
        try:
            load_scenario(plan.sweep.base_path, plan.fixed + items, point.seed)
        except ScenarioError as exc:
            problems += [_locate(p, plan.sweep, point.factors) for p in exc.problems]
    if problems:
        raise ScenarioError(_first_of_each(problems))


def _first_of_each(problems: list[Problem], keep: int = 3) -> list[Problem]:
    """At most `keep` problems per key (the same bad value recurs at many points)."""
    by_key: dict[tuple, list[Problem]] = {}
    for p in dict.fromkeys(problems):
        by_key.setdefault((p.source, p.key), []).append(p)
    out = []
    for same in by_key.values():
        out += same[:keep]
        if len(same) > keep:
            last = same[keep - 1]
            out.append(Problem(last.source, last.line, last.key,
                               f"... and {len(same) - keep} more point(s) with a problem here"))
    return out


def _context(sweep: Sweep, fixed: list[str]) -> str:
    """A fingerprint of what every point shares: the base scenario's text, `set`, the contents
    of the files the base scenario reads (trace, failure trace, profiles, topology graph,
    throughput tables, every file of a table folder) and the dcsim version. A journal record
    made under another fingerprint is run again."""
    from dcsim._version import __version__

    text = Path(sweep.base_path).read_text(encoding="utf-8")
    files = {str(f): hashlib.sha256(f.read_bytes()).hexdigest()
             for p in _referenced_files(sweep, fixed)
             for f in ([p] if p.is_file() else sorted(p.rglob("*")) if p.is_dir() else [])
             if f.is_file()}
    blob = json.dumps({"base": text, "set": fixed, "files": files, "dcsim": __version__},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _referenced_files(sweep: Sweep, fixed: list[str]) -> list[Path]:
    """The data files the base scenario (with `set`) reads; none if it does not load (the
    point checks report why)."""
    from dcsim.world import load_scenario

    try:
        sc = load_scenario(sweep.base_path, list(fixed))
    except (ScenarioError, OSError):
        return []
    paths = [p for p in (sc.workload.trace.path if sc.workload.trace else None,
                         sc.faults.trace.path if sc.faults and sc.faults.trace else None,
                         sc.topology.params.get("path") if sc.topology.kind == "graph"
                         else None, *sc.engine.profiles,
                         *(t.path for t in sc.engine.throughputs)) if p]
    return [sc.resolve_path(str(p)) for p in paths]


def plan_sweep(sweep: Sweep, check: bool = True) -> Plan:
    """Expand the sweep into its points and (unless `check=False`) validate every point's
    scenario before anything runs: a bad value is reported naming its factor and value."""
    fixed = [f"{key}={yaml_value(value)}" for key, value in sweep.spec.set.items()]
    points, duplicates = _points(sweep, _seeds(sweep, fixed))
    plan = Plan(sweep, points, fixed, _context(sweep, fixed), duplicates)
    if check:
        _check(plan)
    return plan
