"""Reading an input text file so that every failure is a located user error.

`read_text(path)` returns the file's text or raises ScenarioError naming the file and what is
wrong: missing, a directory or other non-file, unreadable, too big, or not UTF-8 (with the line
and byte offset of the first bad byte). A leading UTF-8 byte-order mark is dropped.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dcsim.errors import Problem, ScenarioError

__all__ = ["read_text", "MAX_TEXT_BYTES"]

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
