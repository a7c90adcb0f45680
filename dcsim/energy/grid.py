"""Hourly grid series (carbon intensity, electricity price, PUE) and their integrals over a run.

A series is read from a CSV file: a time column (ISO 8601; UTC unless a timestamp carries its
own offset) and a value column whose header names its unit (carbon: gCO2eq/kWh, written
`gCO2eq/kWh`, `gCO₂eq/kWh` or `g_per_kwh`; price: USD/MWh or `usd_per_mwh`). Rows must be
hourly, in order, without gaps or repeats; a bad row is an error at `file:line:column`.
Negative prices are kept (real markets have them).

`HourlyRate` maps run time (seconds from the run's start, placed at `start` in the series) to
a rate per hour and gives its integral `cumulative(t)` in closed form, so that the carbon or
the cost of any stretch of constant power is `power x (cumulative(end) - cumulative(start))`.
A run longer than the series wraps around to the series' first hour (`beyond_series: wrap`,
the default: a year's series repeats) or stops with an error (`error`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from dcsim.errors import Problem, ScenarioError
from dcsim.textfile import read_csv

__all__ = ["HourlyRate", "read_series", "UNITS"]

HOUR = 3600.0
# a value column's header must name its unit: one of these, case-insensitive, not preceded by
# a letter (kgCO2eq/kWh is not gCO2eq/kWh)
UNITS = {"carbon": ("gco2eq/kwh", "gco₂eq/kwh", "g_per_kwh", "gco2/kwh", "gco₂/kwh"),
         "price": ("usd/mwh", "usd_per_mwh")}
# the values a series may hold, as the scenario's flat values (g/kWh; USD/MWh, negative kept)
BOUNDS = {"carbon": (0.0, 1e4), "price": (-1e5, 1e5)}
_UNIT_RE = {kind: re.compile(r"(?<![a-z])(" + "|".join(re.escape(u) for u in units) + ")")
            for kind, units in UNITS.items()}


def names_unit(header: str, kind: str) -> bool:
    """Whether a column header names the unit of `kind` (carbon or price)."""
    return _UNIT_RE[kind].search(header.lower()) is not None


def _utc(text: str) -> datetime:
    t = datetime.fromisoformat(text.strip())
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


@dataclass(frozen=True)
class Series:
    source: str
    first: datetime  # the first row's hour (UTC)
    values: np.ndarray  # one per hour


def read_series(path: str | Path, kind: str, column: str | None = None,
                time_column: str | None = None, prefer: str | None = None) -> Series:
    """An hourly series of `kind` (carbon or price) from a CSV file; `prefer` picks among
    several columns with the unit (e.g. 'direct' or 'lca')."""
    table = read_csv(path, f"{kind} series")
    source = table.source
    header = table.header or []

    def fail(line: int | None, message: str, col: str | None = None) -> ScenarioError:
        return ScenarioError([Problem(source, line, "", message, column=col)])

    if not header:
        raise fail(1, "empty file: expected a header row")
    tcol = time_column or header[0]
    if tcol not in header:
        raise fail(1, f"no time column {tcol!r}; columns: {', '.join(header)}")
    units = UNITS[kind]
    if column is None:
        found = [c for c in header if names_unit(c, kind)]
        if prefer is not None and len(found) > 1:
            found = [c for c in found if prefer.lower() in c.lower()] or found
        if not found:
            raise fail(1, f"no column names a {kind} unit ({' or '.join(units)}); columns: "
                          f"{', '.join(header)}")
        column = found[0]
    elif column not in header:
        raise fail(1, f"no column {column!r}; columns: {', '.join(header)}")
    elif not names_unit(column, kind):
        raise fail(1, f"column {column!r} does not name a {kind} unit "
                      f"({' or '.join(units)}): its unit cannot be told", column)
    times, values = [], []
    bad: list[Problem] = []
    for line, row in table.records(lambda ln, msg: bad.append(Problem(source, ln, "", msg))):
        try:
            t = _utc(row[tcol])
        except ValueError:
            bad.append(Problem(source, line, "", f"not an ISO 8601 time: {row[tcol]!r}",
                               column=tcol))
            continue
        try:
            v = float(row[column])
        except ValueError:
            v = math.nan
        if not math.isfinite(v):
            bad.append(Problem(source, line, "", f"not a finite number: {row[column]!r}",
                               column=column))
            continue
        low, high = BOUNDS[kind]
        if not low <= v <= high:
            what = "carbon intensity" if kind == "carbon" else "price"
            bad.append(Problem(source, line, "", f"{what} {v:g} outside [{low:g}, {high:g}]",
                               column=column))
            continue
        if times:
            step = (t - times[-1][1]).total_seconds()
            if step != HOUR:
                what = ("a repeated hour" if step == 0 else "out of order" if step < 0
                        else f"a gap of {step / HOUR:g} hours")
                bad.append(Problem(source, line, "", f"{what} after line {times[-1][0]} "
                                   f"(rows must be hourly, in order)", column=tcol))
                continue
        times.append((line, t))
        values.append(v)
        if len(bad) >= 20:
            break
    if bad:
        raise ScenarioError(bad)
    if not values:
        raise fail(None, "no rows")
    return Series(source, times[0][1], np.asarray(values, dtype=float))


class HourlyRate:
    """A rate per hour of run time: `values[k]` applies from `offset_s + k h` (run time) on,
    repeating with the series' length when `wrap`. `cumulative(t)` is its integral from 0."""

    def __init__(self, values: Sequence[float] | np.ndarray, offset_s: float, wrap: bool,
                 source: str = "") -> None:
        self.values = np.asarray(values, dtype=float)
        self.n = len(self.values)
        self.offset_s = offset_s  # the series' hour index 0 starts at run time -offset_s
        self.wrap = wrap
        self.source = source
        self._cum = np.concatenate([[0.0], np.cumsum(self.values) * HOUR])  # at hour edges
        self._period = float(self._cum[-1])

    @classmethod
    def flat(cls, value: float) -> HourlyRate:
        return cls([value], 0.0, wrap=True)

    @classmethod
    def from_series(cls, series: Series, start: datetime, wrap: bool) -> HourlyRate:
        offset = (start - series.first).total_seconds()
        if offset < 0 or (not wrap and offset >= len(series.values) * HOUR):
            end = series.first + timedelta(hours=len(series.values))
            raise ScenarioError([Problem(series.source, None, "",
                                         f"power.start {start.isoformat()} is outside the "
                                         f"series ({series.first.isoformat()} to "
                                         f"{end.isoformat()})")])
        return cls(series.values, offset, wrap, series.source)

    def _hours(self, t: np.ndarray) -> np.ndarray:
        return (np.asarray(t, dtype=float) + self.offset_s) / HOUR

    @property
    def end_s(self) -> float:
        """The run time at which the series ends (inf when it wraps)."""
        return math.inf if self.wrap else self.n * HOUR - self.offset_s

    def check_covers(self, end_s: float) -> None:
        """Without wrap, a run past the series' end is an error naming both."""
        if not self.wrap and self._hours(np.array([end_s]))[0] > self.n + 1e-9:
            raise ScenarioError([Problem(self.source, None, "",
                                         f"the run ends {end_s:g} s after its start, past the "
                                         f"series' {self.n} hours (power.beyond_series: error;"
                                         f" `wrap` repeats the series)")])

    def cumulative(self, t: np.ndarray | float) -> np.ndarray:
        """The integral of the rate over run time [0, t] (rate x seconds)."""
        h = self._hours(np.atleast_1d(np.asarray(t, dtype=float)))
        h0 = self.offset_s / HOUR
        return self._at(h) - self._at(np.array([h0]))[0]

    def _at(self, h: np.ndarray) -> np.ndarray:
        """The integral from series hour 0 to hour h (fractional), wrapping."""
        n = self.n
        periods = np.floor(h / n)
        within = h - periods * n
        k = np.minimum(np.floor(within).astype(np.int64), n - 1)
        frac = within - k
        return periods * self._period + self._cum[k] + frac * HOUR * self.values[k]

    def mean_over(self, start_s: float, end_s: float) -> float:
        """The time-weighted mean rate over [start_s, end_s] of run time."""
        if end_s <= start_s:
            return float(self.values[0]) if self.n == 1 else math.nan
        span = self.cumulative(np.array([start_s, end_s]))
        return float((span[1] - span[0]) / (end_s - start_s))
