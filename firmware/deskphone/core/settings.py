"""What a user changes on the phone itself (volumes, ring, contrast, do not disturb).

Unlike the config, which is the administrator's file and read-only to the phone, these settings
belong to the person at the desk: the phone keeps them in its state directory and they survive a
restart. The core changes them through commands and hands every new value out as an effect.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from deskphone.core.tones import RING_VOICES

VOLUME_MAX = 10
VOLUME_DEFAULT = 6
RING_PATTERNS = tuple(RING_VOICES)


class AudioOutput(enum.Enum):
    """The three places sound comes out of, each with its own volume."""

    HANDSET = "handset"
    SPEAKER = "speaker"
    RINGER = "ringer"


@dataclass(frozen=True, slots=True)
class Settings:
    handset_volume: int = VOLUME_DEFAULT
    speaker_volume: int = VOLUME_DEFAULT
    ringer_volume: int = VOLUME_DEFAULT
    ring_pattern: str = RING_PATTERNS[0]
    contrast: int = 255
    dnd: bool = False

    def volume(self, output: AudioOutput) -> int:
        return int(getattr(self, f"{output.value}_volume"))

    def with_volume(self, output: AudioOutput, level: int) -> Settings:
        change: dict[str, Any] = {f"{output.value}_volume": max(0, min(VOLUME_MAX, level))}
        return dataclasses.replace(self, **change)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> tuple[Settings, list[str]]:
        """Settings from saved data, keeping every valid value and naming each one dropped
        (a newer or damaged file must not cost the user the rest of their settings)."""
        settings = cls()
        dropped: list[str] = []
        checks = {
            "handset_volume": lambda v: _is_int(v) and 0 <= v <= VOLUME_MAX,
            "speaker_volume": lambda v: _is_int(v) and 0 <= v <= VOLUME_MAX,
            "ringer_volume": lambda v: _is_int(v) and 0 <= v <= VOLUME_MAX,
            "ring_pattern": lambda v: v in RING_PATTERNS,
            "contrast": lambda v: _is_int(v) and 0 <= v <= 255,
            "dnd": lambda v: isinstance(v, bool),
        }
        for key, value in data.items():
            check = checks.get(key)
            if check is not None and check(value):
                change: dict[str, Any] = {key: value}
                settings = dataclasses.replace(settings, **change)
            else:
                dropped.append(key)
        return settings, dropped


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
