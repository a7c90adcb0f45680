"""The small and mid-size jobs' section of docs/validation.md and its parity plot: the
calibrated model against Gavel's and Pollux's measured step times, in-sample (with the fitted
profiles) and held out (each job type predicted by profiles fitted without it, as
`python -m dcsim.tools.jobfit --write` stored them in data/reference/job_tables_heldout.csv).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcsim.tools.jobcases import JobCase, all_cases, predict

__all__ = ["HELDOUT_FILE", "JobRow", "job_rows", "job_markdown", "parity_plot", "TARGETS",
           "ratio_errors", "read_heldout", "write_heldout"]

HELDOUT_FILE = "job_tables_heldout.csv"
# the targets: |error| over all table entries; cross-GPU speed ratios
TARGETS = {"median": 0.15, "p90": 0.35, "ratio_median": 0.15}


class JobRow:
    __slots__ = ("case", "predicted", "held_out")

    def __init__(self, case: JobCase, predicted: float, held_out: float) -> None:
        self.case, self.predicted, self.held_out = case, predicted, held_out

    @property
    def error(self) -> float:
        return self.predicted / self.case.measured_s - 1

    @property
    def held_out_error(self) -> float:
        return self.held_out / self.case.measured_s - 1


def _key(c: JobCase) -> tuple[str, str, str]:
    return (c.source, c.label, c.gpu.name)


def write_heldout(path: Path, cases: Sequence[JobCase], held_out: np.ndarray) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "case", "gpu", "measured_s", "held_out_s"])
        for c, p in zip(cases, held_out, strict=True):
            w.writerow([c.source, c.label, c.gpu.name, f"{c.measured_s:.6g}", f"{p:.6g}"])


def read_heldout(path: Path) -> dict[tuple[str, str, str], float]:
    with path.open(newline="", encoding="utf-8") as f:
        return {(r["source"], r["case"], r["gpu"]): float(r["held_out_s"])
                for r in csv.DictReader(f)}


def job_rows(directory: Path | None = None) -> list[JobRow]:
    """Every case with its in-sample prediction (the shipped profiles) and its stored
    held-out prediction (NaN if the stored file lacks it)."""
    from dcsim.tools.validation import reference_dir

    cases = all_cases()
    pred = predict(cases, {})
    path = (directory or reference_dir()) / HELDOUT_FILE
    held = read_heldout(path) if path.is_file() else {}
    return [JobRow(c, float(p), held.get(_key(c), float("nan")))
            for c, p in zip(cases, pred, strict=True)]


def ratio_errors(rows: Sequence[JobRow], fast: str, slow: str, held_out: bool = False
                 ) -> np.ndarray:
    """Per job measured on both GPU types: predicted / measured speed ratio (slow-GPU time
    over fast-GPU time) - 1."""
    at: dict[tuple, dict[str, tuple[float, float]]] = defaultdict(dict)
    for r in rows:
        p = r.held_out if held_out else r.predicted
        at[(r.case.source, r.case.label)][r.case.gpu.name] = (r.case.measured_s, p)
    return np.array([(t[slow][1] / t[fast][1]) / (t[slow][0] / t[fast][0]) - 1
                     for t in at.values() if fast in t and slow in t])


def _stats(errors: Sequence[float]) -> tuple[float, float]:
    a = np.abs(np.asarray(errors, dtype=float))
    a = a[np.isfinite(a)]
    return (float(np.median(a)), float(np.quantile(a, 0.9))) if a.size else (np.nan, np.nan)


def job_markdown(rows: Sequence[JobRow], plot: str | None = None) -> list[str]:
    groups: dict[tuple, list[JobRow]] = defaultdict(list)
    for r in rows:
        groups[(r.case.source, r.case.family, r.case.gpu.name)].append(r)
    lines = ["", "## Small and mid-size jobs (Gavel's and Pollux's measured step times)", "",
             "Seconds per iteration of the jobs that fill real clusters, measured by Gavel",
             "(26 job types, PyTorch fp32, on K80 / P100 / V100, 1-8 GPUs, its consolidated",
             "throughputs) and Pollux (6 applications on T4 nodes of 4, 1-16 GPUs, even",
             "placements), against the calibrated model with the profiles",
             "`python -m dcsim.tools.jobfit --write` fitted to these same tables",
             "(dcsim/tools/jobcases.py builds each case: the model, batch and precision",
             "the source trained, on the links of the source's instances). *In sample*: the",
             "fitted profiles; *held out*: each job type predicted by profiles fitted without",
             "it (leave one job type out: the honest number for a job type the fit has not",
             "seen). Targets: median |error| <= 15%, 90th percentile <= 35% over all",
             "entries; cross-GPU speed ratios within 15% median.", "",
             "| source | job type | GPU | entries | median \\|error\\| in sample | "
             "held out | bias in sample |", "|---|---|---|---:|---:|---:|---:|"]
    for (source, family, gpu), rs in sorted(groups.items()):
        med, _ = _stats([r.error for r in rs])
        held, _ = _stats([r.held_out_error for r in rs])
        bias = float(np.median([r.error for r in rs]))
        lines.append(f"| {source} | {family} | {gpu} | {len(rs)} | {med:.1%} | {held:.1%} | "
                     f"{bias:+.1%} |")
    lines += ["", "| entries | median \\|error\\| in sample | p90 in sample | "
              "median held out | p90 held out |", "|---|---:|---:|---:|---:|"]
    for name, sel in (("Gavel", [r for r in rows if r.case.source == "gavel"]),
                      ("Pollux", [r for r in rows if r.case.source == "pollux"]),
                      ("all", list(rows))):
        m, p = _stats([r.error for r in sel])
        hm, hp = _stats([r.held_out_error for r in sel])
        lines.append(f"| {name} ({len(sel)}) | {m:.1%} | {p:.1%} | {hm:.1%} | {hp:.1%} |")
    lines += ["", "| speed ratio | jobs | median \\|error\\| in sample | held out |",
              "|---|---:|---:|---:|"]
    for fast, slow in (("v100-sxm2-16gb", "p100-pcie-16gb"), ("p100-pcie-16gb", "k80-12gb")):
        r_in = ratio_errors(rows, fast, slow)
        r_out = ratio_errors(rows, fast, slow, held_out=True)
        lines.append(f"| {slow} / {fast} | {r_in.size} | {_stats(r_in)[0]:.1%} | "
                     f"{_stats(r_out)[0]:.1%} |")
    if plot:
        lines += ["", f"![predicted vs measured step times]({plot})"]
    return lines


def parity_plot(rows: Sequence[JobRow], path: Path) -> None:
    """Predicted vs measured seconds per iteration, in sample and held out, by source."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True)
    for ax, attr, title in ((axes[0], "predicted", "in sample"),
                            (axes[1], "held_out", "held out (leave one job type out)")):
        for source, marker in (("gavel", "o"), ("pollux", ".")):
            sel = [r for r in rows if r.case.source == source]
            ax.scatter([r.case.measured_s for r in sel], [getattr(r, attr) for r in sel],
                       s=12 if marker == "o" else 4, marker=marker, alpha=0.6, label=source)
        lo, hi = 3e-3, 5.0
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo / 1.35, hi / 1.35], [lo * 1.35, hi * 1.35],
                        color="0.85", zorder=0, label="within 35%")
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), title=title,
               xlabel="measured s / iteration")
    axes[0].set_ylabel("predicted s / iteration")
    axes[0].legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
