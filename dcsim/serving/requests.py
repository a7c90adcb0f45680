"""A service's requests as arrays: arrival time, prompt tokens, output tokens, sorted by arrival.

Synthetic streams draw from the scenario's random stream `services.NAME` (one per service):
Poisson (exponential gaps), Gamma gaps with a given coefficient of variation (bursty), and a
diurnal Poisson stream whose rate follows a sine (thinning of a Poisson stream at the peak
rate, Lewis and Shedler 1979). Token counts are log-normal with the given mean, rounded and
clipped to [1, max]. Traces are read whole, checked row by row (errors give file, line and
column), gaps scaled by `time_scale` and replayed `loops` times.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from dcsim.errors import Problem, ScenarioError
from dcsim.scenario.serving import (
    MAX_REQUESTS,
    MAX_TOKENS_PER_REQUEST,
    ClosedStream,
    DiurnalStream,
    GammaStream,
    PoissonStream,
    TokenDist,
    TraceStream,
)

__all__ = ["Requests", "make_requests", "read_azure_llm", "expected_requests"]

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


@dataclass(frozen=True, slots=True)
class Requests:
    arrival_s: np.ndarray  # float64, sorted
    prompt: np.ndarray  # int64 >= 1
    output: np.ndarray  # int64 >= 1
    rows_read: int  # trace rows read (synthetic: requests drawn)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def expected_requests(stream: PoissonStream | GammaStream | DiurnalStream) -> float:
    return stream.rate_per_s * stream.duration_s


def _tokens(d: TokenDist, n: int, rng: np.random.Generator) -> np.ndarray:
    if d.sigma == 0:
        x = np.full(n, d.mean)
    else:  # log-normal with mean d.mean: mu = ln(mean) - sigma^2 / 2
        x = rng.lognormal(math.log(d.mean) - d.sigma ** 2 / 2, d.sigma, n)
    top = d.max or MAX_TOKENS_PER_REQUEST
    return np.clip(np.rint(x), 1, top).astype(np.int64)


def make_requests(stream: PoissonStream | GammaStream | DiurnalStream | ClosedStream |
                  TraceStream,
                  rng: np.random.Generator, base_dir: str | Path, where: str) -> Requests:
    """The stream's requests. `where` locates the stream in the scenario for errors."""
    if isinstance(stream, TraceStream):
        path = Path(stream.path)
        path = path if path.is_absolute() else Path(base_dir) / path
        return read_azure_llm(path, stream.time_scale, stream.loops, stream.start_s,
                              stream.limit)
    if isinstance(stream, ClosedStream):  # the first wave now, the rest as answers come
        n = stream.requests
        t = np.full(n, np.inf)
        t[:min(stream.concurrency, n)] = stream.start_s
        if stream.prompt_tokens is None or stream.output_tokens is None:
            return Requests(t, np.ones(n, np.int64), np.ones(n, np.int64), n)
        return Requests(t, _tokens(stream.prompt_tokens, n, rng),
                        _tokens(stream.output_tokens, n, rng), n)
    expected = expected_requests(stream)
    if expected > MAX_REQUESTS:
        raise ScenarioError([Problem(where, None, "rate_per_s", f"rate_per_s x duration_s = "
                                     f"{expected:,.0f} requests; at most {MAX_REQUESTS:,}")])
    if isinstance(stream, PoissonStream | DiurnalStream):
        top = stream.rate_per_s * (stream.peak_to_mean if isinstance(stream, DiurnalStream)
                                   else 1.0)
        n = int(top * stream.duration_s + 6 * math.sqrt(top * stream.duration_s) + 10)
        t = np.cumsum(rng.exponential(1.0 / top, n))
        while t[-1] < stream.duration_s:  # (a 6-sigma shortfall: draw more)
            t = np.concatenate([t, t[-1] + np.cumsum(rng.exponential(1.0 / top, n))])
        t = t[t < stream.duration_s]
        if isinstance(stream, DiurnalStream):  # thinning: keep with rate(t) / peak rate
            a = stream.peak_to_mean - 1.0
            rate = 1.0 + a * np.cos(2 * math.pi * (t + stream.start_s - stream.peak_s)
                                    / stream.period_s)
            t = t[rng.random(t.shape[0]) < rate / stream.peak_to_mean]
    else:  # Gamma gaps: shape k = 1 / cv^2, mean 1 / rate
        k = 1.0 / stream.cv ** 2
        n = int(expected + 6 * stream.cv * math.sqrt(expected) + 10)
        t = np.cumsum(rng.gamma(k, 1.0 / (k * stream.rate_per_s), n))
        while t[-1] < stream.duration_s:
            t = np.concatenate([t, t[-1] + np.cumsum(rng.gamma(k, 1.0 / (k * stream.rate_per_s),
                                                                  n))])
        t = t[t < stream.duration_s]
    n = t.shape[0]
    if stream.prompt_tokens is None or stream.output_tokens is None:  # DNN: one sample each
        return Requests(t + stream.start_s, np.ones(n, np.int64), np.ones(n, np.int64), n)
    prompt = _tokens(stream.prompt_tokens, n, rng)
    output = _tokens(stream.output_tokens, n, rng)
    return Requests(t + stream.start_s, prompt, output, n)


def _parse_time(text: str) -> float:
    """Seconds since the epoch of 'YYYY-MM-DD HH:MM:SS[.fffffff]' (UTC, up to 100 ns)."""
    head, _, frac = text.strip().partition(".")
    base = datetime.strptime(head, "%Y-%m-%d %H:%M:%S")
    if frac and not frac.isdigit():
        raise ValueError(text)
    return (base - datetime(1970, 1, 1)).total_seconds() + (float("0." + frac) if frac else 0.0)


def read_azure_llm(path: Path, time_scale: float = 1.0, loops: int = 1, start_s: float = 0.0,
                   limit: int | None = None) -> Requests:
    """The Azure LLM inference trace (2023) format: a header TIMESTAMP, ContextTokens,
    GeneratedTokens and one request per row, in arrival order. Arrivals start at `start_s`
    (the first row's time); a replay starts one mean gap after the previous one's last
    arrival. Every bad row is reported (ScenarioError): an unreadable time, a time before the
    previous row's, a token count that is not a whole number >= 1."""
    from dcsim.textfile import read_text

    source = str(path)
    text = read_text(path, "request trace")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise ScenarioError([Problem(source, 1, "", "empty request trace: no header row")])
    header = [h.strip() for h in header]
    missing = [c for c in AZURE_COLUMNS if c not in header]
    if missing:
        raise ScenarioError([Problem(source, 1, "", f"missing columns {', '.join(missing)}; "
                                     f"the azure-llm format has {', '.join(AZURE_COLUMNS)}")])
    col = [header.index(c) for c in AZURE_COLUMNS]
    times: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    problems: list[Problem] = []
    last = -math.inf
    rows = 0
    for line, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if limit is not None and rows >= limit:
            break
        rows += 1
        if len(row) < len(header):
            problems.append(Problem(source, line, "", f"{len(row)} fields, the header has "
                                    f"{len(header)}"))
            continue
        try:
            t = _parse_time(row[col[0]])
        except ValueError:
            problems.append(Problem(source, line, "", f"not a time (YYYY-MM-DD HH:MM:SS.f): "
                                    f"{row[col[0]]!r}", column="TIMESTAMP"))
            continue
        if t < last:
            problems.append(Problem(source, line, "", f"{row[col[0]].strip()} is before the "
                                    f"previous row's time: rows must be in arrival order",
                                    column="TIMESTAMP"))
        last = max(last, t)
        counts = []
        for name, c in zip(AZURE_COLUMNS[1:], col[1:], strict=True):
            value = row[c].strip()
            if not value.isdigit() or not 1 <= int(value) <= MAX_TOKENS_PER_REQUEST:
                problems.append(Problem(source, line, "", f"must be a whole number of tokens in "
                                        f"[1, {MAX_TOKENS_PER_REQUEST:,}], got {value!r}",
                                        column=name))
                counts.append(0)
            else:
                counts.append(int(value))
        times.append(t)
        prompts.append(counts[0])
        outputs.append(counts[1])
    if problems:
        raise ScenarioError(problems)
    if not times:
        raise ScenarioError([Problem(source, None, "", "no requests in the trace")])
    if len(times) * loops > MAX_REQUESTS:
        raise ScenarioError([Problem(source, None, "", f"{len(times):,} rows x {loops} loops "
                                     f"is more than {MAX_REQUESTS:,} requests")])
    t0 = np.asarray(times) - times[0]
    t0 *= time_scale
    gap = t0[-1] / max(len(t0) - 1, 1) if len(t0) > 1 else 1.0
    period = t0[-1] + gap
    arrival = np.concatenate([t0 + k * period for k in range(loops)]) + start_s
    return Requests(arrival, np.tile(np.asarray(prompts, np.int64), loops),
                    np.tile(np.asarray(outputs, np.int64), loops), rows)
