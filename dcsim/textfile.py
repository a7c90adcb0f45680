"""Reading an input text file so that every failure is a located user error.

`read_text(path)` returns the file's text or raises ScenarioError naming the file and what is
wrong: missing, a directory or other non-file, unreadable, too big, or not UTF-8 (with the line
and byte offset of the first bad byte). A leading UTF-8 byte-order mark is dropped.

`read_csv(path)` reads a CSV file the same way and returns its header and rows, each row with
the file line it starts on. A repeated column name is an error; `CsvFile.records` turns rows
into dicts and reports a row with more or fewer cells than the header instead of guessing.
"""

from __future__ import annotations

import csv
import io
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dcsim.errors import Problem, ScenarioError

__all__ = ["read_text", "read_csv", "CsvFile", "MAX_TEXT_BYTES"]

MAX_TEXT_BYTES = 2 << 30  # 2 GiB: larger inputs are refused, not read into memory


def _fail(source: str, message: str, line: int | None = None) -> ScenarioError:
    return ScenarioError([Problem(source, line, "", message)])


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of `path` (a regular file), BOM removed; ScenarioError otherwise."""
    source = str(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _fail(source, f"cannot read {what}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise _fail(source, f"cannot read {what}: {kind}")
    if info.st_size > MAX_TEXT_BYTES:
        raise _fail(source, f"{what} too big: {info.st_size} bytes (limit {MAX_TEXT_BYTES})")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise _fail(source, f"cannot read {what}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _fail(source, f"not UTF-8 text: byte 0x{data[exc.start]:02x} at byte offset "
                            f"{exc.start}", line) from None
    if "\x00" in text:
        offset = len(text[:text.index("\x00")].encode("utf-8"))
        line = data.count(b"\n", 0, offset) + 1
        raise _fail(source, f"not a text file: NUL byte at byte offset {offset}", line)
    return text.removeprefix("\ufeff")


@dataclass
class CsvFile:
    """A CSV file's header (None for a header-less file) and its non-blank rows as
    (first line, cells)."""

    source: str
    header: list[str] | None
    rows: list[tuple[int, list[str]]]

    def records(self, bad_row: Callable[[int, str], None]) -> Iterator[tuple[int, dict[str, str]]]:
        """(line, {column: cell}) per row whose cell count matches the header; any other row
        goes to `bad_row(line, message)` and is not yielded."""
        header = self.header or []
        for line, cells in self.rows:
            if len(cells) != len(header):
                bad_row(line, f"expected {len(header)} fields, got {len(cells)}")
                continue
            yield line, dict(zip(header, cells, strict=True))


def read_csv(path: str | Path, what: str = "CSV file", header: bool = True) -> CsvFile:
    """Read a CSV file (UTF-8, BOM allowed). With `header`, its first row names the columns
    (each at most once); blank lines are dropped. Malformed CSV is a located error."""
    source = str(path)
    reader = csv.reader(io.StringIO(read_text(path, what), newline=""))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for cells in reader:
            if cells:
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _fail(source, f"malformed CSV: {exc}", start) from None
    names: list[str] | None = None
    if header:
        names = rows.pop(0)[1] if rows else []
        seen: set[str] = set()
        for name in names:
            if name in seen:
                raise _fail(source, f"column {name!r} appears more than once in the header", 1)
            seen.add(name)
    return CsvFile(source, names, rows)
