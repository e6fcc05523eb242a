"""Battery backup: what the phone makes of its UPS's readings, free of I/O.

A power source (hw/power.py) reports readings; this policy turns them into the few facts the
phone acts on: on mains or on battery, the battery's level (normal, low, critical) and the time
left. Thresholds have hysteresis so a gauge wobbling around a threshold neither warns twice nor
shuts the phone down on one low sample:

- low: entered at `low_percent` on battery; the warning is given once and re-armed only after
  the battery has charged back above `low_percent + hysteresis_percent`.
- critical: entered at `critical_percent` on battery, confirmed by two readings in a row (one
  sag under a call's load must not power the phone off). It is latched until mains comes back: a
  battery does not recharge itself, so a reading that rises again is the gauge, not the cell.
- mains back: normal again, whatever the battery says.

With no mains signal at all (a gauge without a power-loss pin), the phone shows the charge but
never acts on it: a nearly empty battery being charged would otherwise shut it down.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections import deque
from dataclasses import dataclass

SECONDS_PER_HOUR = 3600.0
MIN_ESTIMATE_SPAN = 60.0  # seconds of discharge needed before a time-left estimate means much
ESTIMATE_WINDOW = 30 * 60.0  # the discharge rate is taken over the last half hour
MAX_SAMPLES = 256
CRITICAL_CONFIRMATIONS = 2


class Supply(enum.Enum):
    """Where the phone's power comes from right now."""

    UNKNOWN = "unknown"  # no source, no reading yet, or a gauge that cannot tell
    MAINS = "mains"
    BATTERY = "battery"


class BatteryLevel(enum.Enum):
    NORMAL = "normal"
    LOW = "low"
    CRITICAL = "critical"


class PowerChange(enum.Enum):
    """What a reading changed, for the phone to act on (each at most once per reading)."""

    MAINS_LOST = "mains lost"
    MAINS_BACK = "mains back"
    LOW = "battery low"
    CRITICAL = "battery critical"
    GAUGE_FAILED = "gauge not answering"
    GAUGE_BACK = "gauge answering again"


@dataclass(frozen=True, slots=True)
class PowerReading:
    """One look at the power source; a field the source cannot measure is None."""

    mains: bool | None = None  # external power present
    percent: float | None = None  # state of charge, 0-100
    voltage: float | None = None  # battery volts
    current: float | None = None  # amperes into the battery; negative while discharging
    seconds_left: float | None = None  # the gauge's own time-to-empty, if it keeps one
    charging: bool | None = None


@dataclass(frozen=True, slots=True)
class PowerThresholds:
    low_percent: float = 20.0
    critical_percent: float = 5.0
    hysteresis_percent: float = 3.0
    grace_seconds: float = 120.0  # how long a call may go on once the battery is critical

    def __post_init__(self) -> None:
        if not 0 <= self.critical_percent < self.low_percent <= 100:
            raise ValueError(
                f"need 0 <= critical ({self.critical_percent}) < low ({self.low_percent}) <= 100"
            )
        if self.hysteresis_percent <= 0 or self.grace_seconds < 0:
            raise ValueError("hysteresis must be positive and the grace period not negative")


@dataclass(frozen=True, slots=True)
class PowerView:
    """The battery as the screen, `status` and `battery` show it."""

    source: str = "none"  # the source's name; "none": the phone has no battery backup
    supply: Supply = Supply.UNKNOWN
    level: BatteryLevel = BatteryLevel.NORMAL
    percent: float | None = None
    voltage: float | None = None
    charging: bool | None = None
    seconds_left: float | None = None  # estimated time on battery, while on battery
    error: str = ""  # why the gauge is not answering, if it is not
    shutdown_at: float | None = None  # monotonic: when the phone powers off unless mains returns
    powering_off: bool = False

    @property
    def on_battery(self) -> bool:
        return self.supply is Supply.BATTERY

    def describe(self) -> str:
        """One line for `status` and the journal: "on battery 54%, about 1 h 20 min left"."""
        if self.source == "none":
            return "no battery backup"
        parts = []
        if self.supply is Supply.BATTERY:
            parts.append("on battery")
        elif self.supply is Supply.MAINS:
            parts.append("on mains")
        if self.percent is not None:
            charge = f"{self.percent:.0f}%"
            parts.append(charge if parts else f"battery {charge}")
        text = " ".join(parts) or "battery state unknown"
        if self.level is not BatteryLevel.NORMAL:
            text += f" ({self.level.value})"
        if self.on_battery and self.seconds_left is not None:
            text += f", about {format_time_left(self.seconds_left)} left"
        if self.powering_off:
            text += ", powering off"
        if self.error:
            text += f"; {self.error}"
        return text


def format_time_left(seconds: float) -> str:
    """ "1 h 20 min", "12 min", "under 1 min"."""
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under 1 min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


class PowerPolicy:
    """Readings in, changes out; `view()` says where things stand."""

    def __init__(self, thresholds: PowerThresholds, source: str = "none") -> None:
        self.thresholds = thresholds
        self.source = source
        self.supply = Supply.UNKNOWN
        self.level = BatteryLevel.NORMAL
        self.error = ""
        self._last: PowerReading = PowerReading()
        self._low_armed = True  # the low warning may sound (once, until re-armed by charging)
        self._critical_count = 0
        self._samples: deque[tuple[float, float]] = deque(maxlen=MAX_SAMPLES)

    @property
    def critical(self) -> bool:
        """The battery is critical and nothing feeds it: the phone must power off."""
        return self.level is BatteryLevel.CRITICAL and self.supply is Supply.BATTERY

    def update(self, reading: PowerReading | None, error: str, now: float) -> list[PowerChange]:
        """Take one reading (None when the gauge gave none) and the gauge's error, if any."""
        changes: list[PowerChange] = []
        if error and not self.error:
            changes.append(PowerChange.GAUGE_FAILED)
        elif self.error and not error:
            changes.append(PowerChange.GAUGE_BACK)
        self.error = error
        if reading is None:
            return changes
        reading = dataclasses.replace(reading, percent=_clamped(reading.percent))
        self._last = _merge(self._last, reading)
        changes.extend(self._supply_changes(reading.mains))
        if reading.percent is not None:
            changes.extend(self._level_changes(reading.percent, now))
        return changes

    def view(self, *, shutdown_at: float | None = None, powering_off: bool = False) -> PowerView:
        last = self._last
        return PowerView(
            source=self.source,
            supply=self.supply,
            level=self.level,
            percent=last.percent,
            voltage=last.voltage,
            charging=last.charging,
            seconds_left=self.seconds_left() if self.supply is Supply.BATTERY else None,
            error=self.error,
            shutdown_at=shutdown_at,
            powering_off=powering_off,
        )

    def seconds_left(self) -> float | None:
        """The gauge's estimate if it keeps one, else the charge over its recent rate of fall."""
        if self._last.seconds_left is not None:
            return self._last.seconds_left
        if len(self._samples) < 2 or self._last.percent is None:
            return None
        (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if t1 - t0 < MIN_ESTIMATE_SPAN or p1 >= p0:
            return None
        per_second = (p0 - p1) / (t1 - t0)
        return max(0.0, self._last.percent / per_second)

    # -- the two halves of a reading -----------------------------------------------------------

    def _supply_changes(self, mains: bool | None) -> list[PowerChange]:
        if mains is None:
            return []
        supply = Supply.MAINS if mains else Supply.BATTERY
        if supply is self.supply:
            return []
        was_known = self.supply is not Supply.UNKNOWN
        self.supply = supply
        self._samples.clear()
        self._critical_count = 0
        if supply is Supply.MAINS:
            self.level = BatteryLevel.NORMAL
            return [PowerChange.MAINS_BACK] if was_known else []
        return [PowerChange.MAINS_LOST]

    def _level_changes(self, percent: float, now: float) -> list[PowerChange]:
        t = self.thresholds
        if not self._low_armed and percent >= t.low_percent + t.hysteresis_percent:
            self._low_armed = True
        if self.supply is not Supply.BATTERY:
            return []
        self._samples.append((now, percent))
        while self._samples and now - self._samples[0][0] > ESTIMATE_WINDOW:
            self._samples.popleft()
        if self.level is BatteryLevel.CRITICAL:
            return []  # latched until mains comes back
        changes = []
        if percent <= t.critical_percent:
            self._critical_count += 1
            if self._critical_count >= CRITICAL_CONFIRMATIONS:
                self.level = BatteryLevel.CRITICAL
                return [PowerChange.CRITICAL]
        else:
            self._critical_count = 0
        if percent <= t.low_percent and self.level is BatteryLevel.NORMAL:
            self.level = BatteryLevel.LOW
            if self._low_armed:
                self._low_armed = False
                changes.append(PowerChange.LOW)
        return changes


def _merge(last: PowerReading, new: PowerReading) -> PowerReading:
    """A reading that lacks a field (a pin edge brings only `mains`) keeps the last value."""
    return PowerReading(
        mains=new.mains if new.mains is not None else last.mains,
        percent=new.percent if new.percent is not None else last.percent,
        voltage=new.voltage if new.voltage is not None else last.voltage,
        current=new.current if new.current is not None else last.current,
        seconds_left=new.seconds_left,
        charging=new.charging if new.charging is not None else last.charging,
    )


def _clamped(percent: float | None) -> float | None:
    """A charge within 0-100; a NaN or infinite one (a confused gauge) counts as unknown."""
    if percent is None or not math.isfinite(percent):
        return None
    return min(100.0, max(0.0, percent))
