"""Input errors that say what and where: `file:line: key.path: message`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Problem", "ScenarioError"]


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


class ScenarioError(ValueError):
    """Invalid input. `problems` lists every problem found, each with its location."""

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
