"""Output folders that are never left half-written.

`dcsim run` checks its output folder before it simulates (`check_output_dir`: an existing file,
a path under a file, an unwritable place, or a folder that holds other things than dcsim
results are input errors, exit 2), then writes everything into a fresh folder beside it and
renames that into place (`staged_output`). So Ctrl-C or a kill leaves either the old results
or the new ones, never a mix that `load_results` would accept; files of an earlier run that
this run does not write (old plots) go with the old folder; and a second run into the same
folder at the same time is refused (an advisory lock on `.NAME.lock` beside it, released by
the system if the holder dies).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dcsim.errors import Problem, ScenarioError

__all__ = ["safe_folder_name", "check_output_dir", "staged_output", "RESULT_MARKERS"]

# a folder holding one of these is a dcsim results folder (a run's or a sweep's)
RESULT_MARKERS = ("run.json", "summary.json", "points.jsonl")
MAX_NAME = 80  # characters of a folder name made from a scenario or sweep name


def safe_folder_name(name: str) -> str:
    """`name` as a folder name: letters, digits, `_ . -` kept, anything else `_`, no leading
    dot, at most MAX_NAME characters; a name changed to fit ends in a short hash of the
    original, so different names stay different folders."""
    clean = re.sub(r"[^A-Za-z0-9_.\-]", "_", name).lstrip(".") or "_"
    if clean == name and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{clean[:MAX_NAME - 9]}-{digest}"


def _fail(path: Path, message: str) -> ScenarioError:
    return ScenarioError([Problem(str(path), None, "", message)])


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse, before any work, an output path dcsim could not write or should not replace."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        if not path.is_dir():
            raise _fail(path, f"{what} exists and is not a folder")
        entries = [p.name for p in path.iterdir()]
        if entries and not any(m in entries for m in RESULT_MARKERS):
            raise _fail(path, f"{what} exists and holds other files than dcsim results "
                              f"({len(entries)} entries, e.g. {sorted(entries)[0]!r}); dcsim "
                              f"replaces a results folder whole, so choose an empty or new one")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise _fail(path, f"cannot create the {what}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(path, f"cannot create the {what}: {parent} is not writable")
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    import fcntl

    lock = path.parent / f".{path.name}.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise _fail(path, "another dcsim run is writing into this folder now "
                                  "(wait for it, or choose another folder)") from None
            raise
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


@contextlib.contextmanager
def staged_output(path: str | Path) -> Iterator[Path]:
    """A fresh folder to write into; on a clean exit it replaces `path` in one rename (the old
    folder, if any, is moved aside first and then deleted), on an error it is deleted."""
    path = check_output_dir(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(path, f"cannot create the output folder: {exc.strerror}") from None
    with _locked(path):
        check_output_dir(path)  # again, under the lock
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
        umask = os.umask(0)
        os.umask(umask)
        stage.chmod(0o777 & ~umask)  # as a plain mkdir would make it (mkdtemp: owner only)
        try:
            yield stage
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old / "results")
        os.replace(stage, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
