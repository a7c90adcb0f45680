"""`Results`: what a run produced, as DataFrames and a summary; saved and loaded as files."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Results", "load_results", "compare", "flatten_summary", "FILES"]

FILES = {"jobs": "jobs.csv", "gpu_timeline": "gpu_timeline.csv", "segments": "segments.csv",
         "events": "events.csv", "training": "training.csv", "executions": "executions.csv",
         "links": "links.csv", "groups": "groups.csv", "failures": "failures.csv",
         "power": "power.csv", "requests": "requests.csv", "services": "services.csv",
         "service_timeline": "service_timeline.csv"}
# absent from folders saved before them: groups rebuilt from jobs.csv, failures and power empty
OPTIONAL_FILES = {"groups", "failures", "power", "requests", "services", "service_timeline"}
SERVING_FILES = {"requests", "services", "service_timeline"}
# columns that are text even when every value looks like a number or is empty
TEXT_COLUMNS = {"jobs": {c: str for c in ("name", "model", "user", "virtual_cluster",
                                          "gpu_type", "precision", "status", "reason",
                                          "step_source")},
                "events": {"event": str, "detail": str}, "training": {"phase": str},
                "links": {"link": str}, "groups": {"group_by": str, "group": str},
                "requests": {"service": str, "status": str, "reason": str},
                "services": {"service": str, "model": str, "gpu_type": str},
                "service_timeline": {"service": str},
                "failures": {"component": str, "cause": str, "target": str, "jobs": str,
                             "source": str}}


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


@dataclass
class Results:
    """The outcome of one simulation.

    jobs: one row per job (docs/metrics.md lists the columns); gpu_timeline: allocated GPUs,
    running and queued jobs from each time on; segments: which job held how many GPUs of which
    server when; events: the job lifecycle; training: loss and accuracy per iteration of the
    jobs that really trained (`execute`); executions: their measured vs simulated times;
    groups: per user and per virtual cluster, jobs, mean JCT, slowdown and queueing, GPU-hours.
    `summary()` gives the headline numbers; `run` holds the resolved scenario, seed, dcsim
    version and wall time.
    """

    jobs: pd.DataFrame
    gpu_timeline: pd.DataFrame
    segments: pd.DataFrame
    events: pd.DataFrame
    training: pd.DataFrame
    executions: pd.DataFrame
    links: pd.DataFrame
    groups: pd.DataFrame = field(default_factory=pd.DataFrame)
    failures: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per failure
    # cluster power (W) by component from each time on (docs/energy.md)
    power: pd.DataFrame = field(default_factory=pd.DataFrame)
    # inference services (docs/serving.md): one row per request, per service, and each
    # service's sampled timeline; empty without services
    requests: pd.DataFrame = field(default_factory=pd.DataFrame)
    services: pd.DataFrame = field(default_factory=pd.DataFrame)
    service_timeline: pd.DataFrame = field(default_factory=pd.DataFrame)
    run: dict[str, Any] = field(default_factory=dict)
    _summary: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return dict(self._summary)

    def save(self, out_dir: str | Path) -> Path:
        """Write the tables (CSV), summary.json and run.json into `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for attr, name in FILES.items():
            frame = getattr(self, attr)
            if attr in SERVING_FILES and frame.columns.empty:
                continue  # a run without services writes no serving tables
            frame.to_csv(out / name, index=False, float_format="%.9g")
        for name, data in (("summary.json", self._summary), ("run.json", self.run)):
            text = json.dumps(_json_safe(data), indent=2, sort_keys=False, allow_nan=False)
            (out / name).write_text(text + "\n", encoding="utf-8")
        return out


def load_results(out_dir: str | Path) -> Results:
    """Read back what `Results.save` (or `dcsim run`) wrote."""
    d = Path(out_dir)
    needed = [n for a, n in FILES.items() if a not in OPTIONAL_FILES]
    missing = [n for n in [*needed, "summary.json", "run.json"] if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{d}: not a dcsim results folder (missing {', '.join(missing)})")
    frames = {attr: pd.read_csv(d / name, keep_default_na=False, na_values=[""],
                                dtype=TEXT_COLUMNS.get(attr))
              for attr, name in FILES.items() if (d / name).is_file()}
    for attr, columns in TEXT_COLUMNS.items():
        for col in columns:
            if attr in frames and col in frames[attr]:
                frames[attr][col] = frames[attr][col].fillna("")
    if "groups" not in frames:
        from dcsim.metrics import group_breakdown

        frames["groups"] = group_breakdown(frames["jobs"])
    if "failures" not in frames:
        from dcsim.metrics import FAILURE_COLUMNS

        frames["failures"] = pd.DataFrame(columns=FAILURE_COLUMNS)
    for optional in ("power", "requests", "services", "service_timeline"):
        if optional not in frames:
            frames[optional] = pd.DataFrame()
    summary = json.loads((d / "summary.json").read_text(encoding="utf-8"))
    summary = {k: (float("nan") if v is None else v) for k, v in summary.items()}
    run = json.loads((d / "run.json").read_text(encoding="utf-8"))
    return Results(**frames, run=run, _summary=summary)


def flatten_summary(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A summary as flat columns: nested dicts as `key.subkey` entries (an empty dict leaves
    no entry), lists as JSON text (`compare`, sweep tables)."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            flat.update(flatten_summary(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple):
            flat[f"{prefix}{key}"] = json.dumps(value)
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def compare(runs: Mapping[str, Results]) -> pd.DataFrame:
    """The runs' summaries side by side: one row per run (indexed by its label), one column per
    summary key, nested dicts flattened to `key.subkey` (`top_links.leaf0->spine0`,
    `interruptions_by_cause.NIC`); a key one run lacks is NaN there."""
    if not runs:
        raise ValueError("compare: no runs given")
    rows = [flatten_summary(results.summary()) for results in runs.values()]
    return pd.DataFrame(rows, index=pd.Index([str(k) for k in runs], name="run"))
