"""What the commands share: exit codes, the default scenario, number formats, the progress bar."""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

DEFAULT_SCENARIO = "quickstart.yaml"
EXIT_OK, EXIT_INTERNAL, EXIT_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


def _default_scenario() -> Path:
    return Path(str(resources.files("dcsim.scenarios").joinpath(DEFAULT_SCENARIO)))


def _scenario_path(arg: str | None) -> Path:
    return Path(arg) if arg else _default_scenario()


def _fmt_s(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "-"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _fmt_pct(x: float) -> str:
    return "-" if x != x else f"{x:.1%}"


class _Progress:
    def __init__(self, enabled: bool, unit: str = "jobs") -> None:
        self.enabled = enabled
        self.unit = unit
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {self.unit}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
