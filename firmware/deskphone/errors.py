"""One exception tree for the whole phone.

Adapters convert errno values and library exceptions at their seam into these types, with a
message a person can act on (it is what the display and the journal show).
"""

from __future__ import annotations

from dataclasses import dataclass


class DeskphoneError(Exception):
    """Base of every error the phone raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, located as precisely as we can."""

    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"


class ConfigError(DeskphoneError, ValueError):
    """The config cannot be used; `problems` says every reason found, not just the first."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"invalid config {source}:\n{lines}")


class SipError(DeskphoneError, RuntimeError):
    """The SIP stack refused an operation (bad URI, no such call, transport failure)."""


class HardwareError(DeskphoneError, OSError):
    """A hardware part (pins, display, audio device, gauge) is missing or not answering."""
