"""Input errors that say what and where: `file:line: key.path: message`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DcsimError", "Problem", "ScenarioError", "SimulationError", "UsageError"]


class DcsimError(Exception):
    """Base of the errors dcsim raises on purpose: `except dcsim.DcsimError` catches every
    input, usage and run error, and nothing else."""


MAX_SHOWN = 20  # problems an error message lists; the rest are counted


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem in an input file. `line` is 1-based, or None where no line applies."""

    source: str
    line: int | None
    key: str
    message: str
    column: str | None = None  # for tables (traces): the column name

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.column is not None:
            return f"{where}:{self.column}: {self.message}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ScenarioError(DcsimError, ValueError):
    """Invalid input. `problems` lists every problem found, each with its location."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.problems = problems
        shown = [str(p) for p in problems[:MAX_SHOWN]]
        if len(problems) > MAX_SHOWN:  # `problems` keeps them all
            shown.append(f"... and {len(problems) - MAX_SHOWN:,} more problems "
                         f"({len(problems):,} in all; the first {MAX_SHOWN} are shown)")
        super().__init__("\n".join(shown))


class SimulationError(DcsimError, RuntimeError):
    """A run that cannot go on: a quantity became NaN or infinite (naming the job and the
    quantity), or simulated time stopped advancing. Input checks are meant to make this
    unreachable; when it happens, the message says what to report."""


class UsageError(DcsimError, TypeError):
    """An API function called with the wrong kind of argument (a path where a Scenario is
    wanted); the message says which call to make instead."""
