"""The call log: why calls ended and the entries the phone keeps (and the state adapter saves)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EndReason(enum.Enum):
    """Why a call ended; the value is what the display says."""

    HUNG_UP = "call ended"
    REMOTE_HUNG_UP = "far end hung up"
    BUSY = "busy"
    DECLINED = "declined"
    NOT_FOUND = "not found"
    UNREACHABLE = "unreachable"
    NO_ANSWER = "no answer"
    NETWORK_ERROR = "network error"
    NOT_ALLOWED = "not allowed"
    NOT_IN_DIAL_PLAN = "not in dial plan"
    NO_ACCOUNT = "no account configured"
    MISSED = "missed call"
    REJECTED = "rejected"
    FAILED = "call failed"
    NO_AUDIO = "no handset"
    BATTERY = "battery critical"
    TRANSFERRED = "transferred"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    direction: str  # "in", "out" or "missed"
    number: str
    name: str
    started: float  # wall clock
    duration: float  # seconds connected
    reason: EndReason
    code: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "direction": self.direction,
            "number": self.number,
            "name": self.name,
            "started": self.started,
            "duration": self.duration,
            "reason": self.reason.name,
            "code": self.code,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> HistoryEntry:
        """Read a saved entry; `ValueError` if it is not one."""
        try:
            entry = cls(
                direction=str(data["direction"]),
                number=str(data["number"]),
                name=str(data.get("name", "")),
                started=float(data["started"]),  # type: ignore[arg-type]
                duration=float(data["duration"]),  # type: ignore[arg-type]
                reason=EndReason[str(data["reason"])],
                code=int(data.get("code", 0)),  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a call-log entry: {err}") from err
        if entry.direction not in ("in", "out", "missed"):
            raise ValueError(f"not a call-log entry: direction {entry.direction!r}")
        return entry
