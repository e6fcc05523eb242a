"""Battery-backup sources: where the phone learns that mains power went and how much battery is
left. The policy that acts on it is pure and lives in `core/power.py`.

Sources (config `[power] source`):
- ``sysfs``: Linux ``/sys/class/power_supply``, so any gauge or UPS with a kernel driver.
- ``x728`` / ``x1200``: Geekworm UPS boards. A MAX17040-family gauge at I2C 0x36 (VCELL register
  0x02, SOC register 0x04, both big-endian) and a power-loss signal on GPIO6 whose polarity
  differs: the X728 drives it high when mains is lost, the X1200 (X120x) drives it low.
- ``waveshare``: Waveshare UPS HAT, an INA219 at 0x42 (two cells in series) or 0x43 (one cell).
  It has no gauge: the charge is estimated from the cell voltage, and mains from the direction
  of the battery current (discharging means no mains).
- ``pisugar3``: PiSugar 3, a microcontroller at I2C 0x57: register 0x02 bit 7 says external power
  is present, bit 6 that it charges; 0x22/0x23 the battery millivolts (high byte first); 0x2A
  the charge in percent.
- ``sim``: a simulated UPS for the tests and the simulator.

The gauge is read on a timer, off the event loop (an I2C transfer can stall for the bus
timeout): once a minute on mains, more often on battery, backing off while the gauge does not
answer. The power-loss pin is interrupt-driven through gpiozero, so a lost mains is known at
once. A gauge that stops answering is reported (the display and the journal say so), never fatal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deskphone.core.events import Event, PowerChanged
from deskphone.core.power import PowerReading
from deskphone.errors import ConfigProblem, HardwareError

if TYPE_CHECKING:
    from deskphone.config import PowerConfig
    from deskphone.hw.profile import HardwareProfile

log = logging.getLogger(__name__)

SYSFS_ROOT = Path("/sys/class/power_supply")
PIN_SETTLE = 0.1  # seconds a power-loss edge must hold before it counts (plugs bounce)
MAX_BACKOFF = 600.0  # the longest wait between reads of a gauge that does not answer
# A cell's charge from its resting voltage (Li-ion, 18650-class), for gauges that have none.
LI_ION_CURVE = (
    (3.00, 0.0),
    (3.45, 5.0),
    (3.68, 20.0),
    (3.74, 40.0),
    (3.80, 55.0),
    (3.87, 70.0),
    (3.95, 80.0),
    (4.05, 90.0),
    (4.20, 100.0),
)
INA219_DISCHARGE_MV = -0.5  # shunt millivolts below which the battery feeds the Pi
INA219_CHARGE_MV = 0.5


class SMBusLike(Protocol):
    """The part of smbus2.SMBus the gauges use (tests hand in a fake bus of this shape)."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def close(self) -> None: ...


BusFactory = Callable[[int], SMBusLike]


def open_smbus(bus: int) -> SMBusLike:
    """The real I2C bus /dev/i2c-N (smbus2 is imported only when a UPS board is configured)."""
    from smbus2 import SMBus

    smbus: SMBusLike = SMBus(bus)
    return smbus


@dataclass(frozen=True, slots=True)
class Board:
    """What a supported UPS board is made of."""

    default_address: int
    loss_pin: int | None = None  # BCM GPIO of its power-loss signal
    loss_when_high: bool = True


BOARDS = {
    "x728": Board(0x36, loss_pin=6, loss_when_high=True),
    "x1200": Board(0x36, loss_pin=6, loss_when_high=False),
    "waveshare": Board(0x42),
    "pisugar3": Board(0x57),
}


def _swapped(word: int) -> int:
    """SMBus words arrive low byte first; these chips send the high byte first."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def _signed16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


def percent_from_voltage(cell_volts: float) -> float:
    """Charge estimated from one cell's voltage along `LI_ION_CURVE`."""
    if cell_volts <= LI_ION_CURVE[0][0]:
        return 0.0
    for (v0, p0), (v1, p1) in itertools.pairwise(LI_ION_CURVE):
        if cell_volts <= v1:
            return p0 + (p1 - p0) * (cell_volts - v0) / (v1 - v0)
    return 100.0


# --- sources ---------------------------------------------------------------------------------


class PowerSource:
    """Base of the sources: `read()` returns a reading or raises `HardwareError`."""

    name = "none"

    def read(self) -> PowerReading:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (an I2C bus); safe to call more than once."""

    @property
    def description(self) -> str:
        return self.name


class I2cSource(PowerSource):
    """A source on an I2C bus, opened on first use and reopened after a failure."""

    chip = "I2C device"

    def __init__(self, bus: int, address: int, bus_factory: BusFactory = open_smbus) -> None:
        self.bus_number = bus
        self.address = address
        self._bus_factory = bus_factory
        self._bus: SMBusLike | None = None

    @property
    def description(self) -> str:
        return f"{self.chip} at I2C {self.bus_number}:0x{self.address:02X}"

    def read(self) -> PowerReading:
        try:
            if self._bus is None:
                self._bus = self._bus_factory(self.bus_number)
            return self._read(self._bus)
        except FileNotFoundError as err:
            self.close()
            raise HardwareError(
                f"no I2C bus {self.bus_number} (/dev/i2c-{self.bus_number}): enable I2C "
                "(dtparam=i2c_arm=on in config.txt)"
            ) from err
        except PermissionError as err:
            self.close()
            raise HardwareError(
                f"no permission to use /dev/i2c-{self.bus_number}: the phone's user needs the "
                "i2c group"
            ) from err
        except OSError as err:
            self.close()
            raise HardwareError(f"{self.description} not answering: {err.strerror or err}") from err

    def _read(self, bus: SMBusLike) -> PowerReading:
        raise NotImplementedError

    def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            try:
                bus.close()
            except OSError as err:
                log.debug("closing I2C bus %d: %s", self.bus_number, err)


class Max17040Source(I2cSource):
    """MAX17040/17041/17043/17048 fuel gauge (Geekworm X728 and X1200). It measures the cell;
    whether mains is present comes from the board's power-loss pin."""

    chip = "MAX17040 gauge"
    VCELL = 0x02
    SOC = 0x04
    VOLTS_PER_LSB = 78.125e-6  # 1.25 mV per 12-bit step on the 17040, 78.125 uV on the 17048

    def __init__(self, name: str, bus: int, address: int, bus_factory: BusFactory) -> None:
        super().__init__(bus, address, bus_factory)
        self.name = name

    def _read(self, bus: SMBusLike) -> PowerReading:
        volts = _swapped(bus.read_word_data(self.address, self.VCELL)) * self.VOLTS_PER_LSB
        percent = _swapped(bus.read_word_data(self.address, self.SOC)) / 256.0
        return PowerReading(percent=percent, voltage=round(volts, 3))


class Ina219Source(I2cSource):
    """Waveshare UPS HAT: an INA219 power monitor between the cells and the Pi."""

    name = "waveshare"
    chip = "INA219 monitor"
    SHUNT = 0x01  # signed, 10 uV per LSB
    BUS = 0x02  # bits 15-3, 4 mV per LSB

    def __init__(self, bus: int, address: int, cells: int, bus_factory: BusFactory) -> None:
        super().__init__(bus, address, bus_factory)
        self.cells = cells

    def _read(self, bus: SMBusLike) -> PowerReading:
        volts = (_swapped(bus.read_word_data(self.address, self.BUS)) >> 3) * 0.004
        shunt_mv = _signed16(_swapped(bus.read_word_data(self.address, self.SHUNT))) * 0.01
        discharging = shunt_mv < INA219_DISCHARGE_MV
        return PowerReading(
            mains=not discharging,
            percent=round(percent_from_voltage(volts / self.cells), 1),
            voltage=round(volts, 3),
            charging=shunt_mv > INA219_CHARGE_MV,
        )


class PiSugar3Source(I2cSource):
    """PiSugar 3: its microcontroller reports external power, the charge and the voltage."""

    name = "pisugar3"
    chip = "PiSugar 3"
    STATUS = 0x02
    EXTERNAL_POWER = 0x80
    CHARGING = 0x40
    VOLTAGE_HIGH = 0x22
    VOLTAGE_LOW = 0x23
    PERCENT = 0x2A

    def _read(self, bus: SMBusLike) -> PowerReading:
        status = bus.read_byte_data(self.address, self.STATUS)
        millivolts = (
            bus.read_byte_data(self.address, self.VOLTAGE_HIGH) << 8
        ) | bus.read_byte_data(self.address, self.VOLTAGE_LOW)
        percent = bus.read_byte_data(self.address, self.PERCENT)
        return PowerReading(
            mains=bool(status & self.EXTERNAL_POWER),
            percent=float(percent),
            voltage=millivolts / 1000.0,
            charging=bool(status & self.CHARGING),
        )


class SysfsSource(PowerSource):
    """A battery the kernel knows: /sys/class/power_supply/<battery>, and its mains supplies."""

    name = "sysfs"
    MAINS_TYPES = ("Mains", "USB", "USB_C", "USB_PD", "USB_DCP", "USB_CDP", "USB_ACA")

    def __init__(self, battery: str = "", root: Path = SYSFS_ROOT) -> None:
        self.battery = battery
        self.root = root

    @property
    def description(self) -> str:
        return f"battery {self.battery or '(first found)'} in {self.root}"

    def read(self) -> PowerReading:
        try:
            supplies = {path.name: path for path in self.root.iterdir()}
            battery = self._battery(supplies)
            mains = self._mains(supplies, battery)
            capacity = _read_number(battery / "capacity")
            microvolts = _read_number(battery / "voltage_now")
            to_empty = _read_number(battery / "time_to_empty_now")
            status = _read_text(battery / "status")
        except OSError as err:
            raise HardwareError(f"{self.description}: {err.strerror or err}") from err
        return PowerReading(
            mains=mains,
            percent=capacity,
            voltage=None if microvolts is None else microvolts / 1e6,
            seconds_left=to_empty,
            charging=None if status is None else status == "Charging",
        )

    def _battery(self, supplies: dict[str, Path]) -> Path:
        if self.battery:
            if self.battery not in supplies:
                raise HardwareError(
                    f"no power supply {self.battery!r} in {self.root}; there are: "
                    f"{', '.join(sorted(supplies)) or 'none'}"
                )
            return supplies[self.battery]
        for name in sorted(supplies):
            path = supplies[name]
            # scope=Device marks a peripheral's battery (a wireless mouse), not the system's.
            if _read_text(path / "type") == "Battery" and _read_text(path / "scope") != "Device":
                return path
        raise HardwareError(f"no battery in {self.root}")

    def _mains(self, supplies: dict[str, Path], battery: Path) -> bool | None:
        online = [
            _read_number(path / "online")
            for path in supplies.values()
            if _read_text(path / "type") in self.MAINS_TYPES
        ]
        known = [value for value in online if value is not None]
        if known:
            return any(known)
        status = _read_text(battery / "status")
        if status == "Discharging":
            return False
        return True if status in ("Charging", "Full", "Not charging") else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        return None


def _read_number(path: Path) -> float | None:
    text = _read_text(path)
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


class SimulatedUps(PowerSource):
    """A UPS that does what the test or the simulator's user says; thread-safe."""

    name = "sim"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reading = PowerReading(mains=True, percent=100.0, voltage=4.15, charging=False)
        self._failure = ""
        self.changed: Callable[[], None] | None = None  # the monitor reads at once on a change

    @property
    def description(self) -> str:
        return "simulated UPS"

    def set(
        self,
        *,
        mains: bool | None = None,
        percent: float | None = None,
        failure: str | None = None,
    ) -> None:
        """Change the simulated state; `failure` non-empty makes the gauge stop answering."""
        with self._lock:
            reading = self._reading
            if mains is not None:
                reading = dataclasses.replace(reading, mains=mains, charging=mains)
            if percent is not None:
                volts = LI_ION_CURVE[0][0] + (LI_ION_CURVE[-1][0] - LI_ION_CURVE[0][0]) * (
                    percent / 100
                )
                reading = dataclasses.replace(reading, percent=percent, voltage=round(volts, 3))
            self._reading = reading
            if failure is not None:
                self._failure = failure
        if self.changed is not None:
            self.changed()

    def read(self) -> PowerReading:
        with self._lock:
            if self._failure:
                raise HardwareError(f"simulated UPS not answering: {self._failure}")
            return self._reading


# --- the power-loss pin ----------------------------------------------------------------------


class PowerLossPin:
    """A board's power-loss signal on a GPIO pin, read through gpiozero (interrupt-driven)."""

    def __init__(
        self,
        pin: int,
        *,
        loss_when_high: bool,
        on_change: Callable[[], None],
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import DigitalInputDevice
        from gpiozero.exc import GPIOZeroError

        self.pin = pin
        try:
            self._device = DigitalInputDevice(
                pin, pull_up=None, active_state=loss_when_high, pin_factory=pin_factory
            )
        except (GPIOZeroError, OSError) as err:
            raise HardwareError(f"power-loss signal on GPIO{pin} unusable: {err}") from err
        self._device.when_activated = on_change
        self._device.when_deactivated = on_change

    @property
    def mains(self) -> bool:
        return not self._device.is_active

    def close(self) -> None:
        self._device.close()


# --- the monitor ----------------------------------------------------------------------------


class PowerMonitor:
    """Reads a source on a timer and on every power-loss edge, and posts `PowerChanged`.

    Reads run in the loop's executor; every other method runs on the loop's thread.
    """

    def __init__(
        self,
        source: PowerSource,
        *,
        loop: asyncio.AbstractEventLoop,
        post: Callable[[Event], None],
        poll_mains: float,
        poll_battery: float,
        loss_pin: Callable[[Callable[[], None]], PowerLossPin] | None = None,
    ) -> None:
        self.source = source
        self._loop = loop
        self._post = post
        self._poll_mains = poll_mains
        self._poll_battery = poll_battery
        self._make_pin = loss_pin
        self._pin: PowerLossPin | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._settle: asyncio.TimerHandle | None = None
        self._reading: asyncio.Future[PowerReading] | None = None
        self._failures = 0
        self._on_battery = False
        self._closed = False
        self.reads = 0  # how many times the gauge was read (benchmarks watch idle wake-ups)

    def start(self) -> None:
        """Open the power-loss pin (a `HardwareError` if it cannot be used) and read at once."""
        if self._make_pin is not None:
            self._pin = self._make_pin(self._edge)
        if isinstance(self.source, SimulatedUps):
            self.source.changed = self._edge
        self.read_now()

    def close(self) -> None:
        self._closed = True
        for handle in (self._timer, self._settle):
            if handle is not None:
                handle.cancel()
        if isinstance(self.source, SimulatedUps):
            self.source.changed = None
        if self._pin is not None:
            self._pin.close()
            self._pin = None
        self.source.close()

    def read_now(self) -> None:
        """Read the source now (loop thread); a read already under way is not doubled."""
        if self._closed or self._reading is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.reads += 1
        self._reading = self._loop.run_in_executor(None, self.source.read)
        self._reading.add_done_callback(self._read_done)

    def _read_done(self, future: asyncio.Future[PowerReading]) -> None:
        self._reading = None
        if self._closed:
            return
        error = ""
        reading: PowerReading | None = None
        try:
            reading = future.result()
            self._failures = 0
        except HardwareError as err:
            error = str(err)
            self._failures += 1
        except Exception as err:  # a driver bug must not stop battery monitoring
            log.exception("reading %s failed", self.source.description)
            error = f"{self.source.description}: {err}"
            self._failures += 1
        if self._pin is not None:
            reading = dataclasses.replace(reading or PowerReading(), mains=self._pin.mains)
        if reading is not None and reading.mains is not None:
            self._on_battery = not reading.mains
        self._post(PowerChanged(reading, error))
        self._schedule()

    def _schedule(self) -> None:
        interval = self._poll_battery if self._on_battery else self._poll_mains
        if self._failures:
            interval = min(MAX_BACKOFF, interval * 2 ** min(self._failures - 1, 6))
        self._timer = self._loop.call_later(interval, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self.read_now()

    def _edge(self) -> None:
        """A power-loss edge or a simulated change (any thread): look again once it settled."""
        self._loop.call_soon_threadsafe(self._edge_on_loop)

    def _edge_on_loop(self) -> None:
        if self._closed:
            return
        if self._settle is not None:
            self._settle.cancel()
        delay = PIN_SETTLE if self._pin is not None else 0.0
        self._settle = self._loop.call_later(delay, self._settled)

    def _settled(self) -> None:
        self._settle = None
        if self._pin is not None and self._pin.mains == (not self._on_battery):
            return  # it bounced back
        self.read_now()


def board_pin(config: PowerConfig) -> tuple[int, bool] | None:
    """The power-loss pin the config means (its own or the board's) and whether high = lost."""
    board = BOARDS.get(config.source)
    pin = config.power_loss_pin if config.power_loss_pin >= 0 else None
    if pin is None and board is not None:
        pin = board.loss_pin
    if pin is None:
        return None
    return pin, board.loss_when_high if board is not None else config.power_loss_active_high


def open_source(config: PowerConfig, bus_factory: BusFactory = open_smbus) -> PowerSource | None:
    """The source `[power] source` names, or None for "none". Opening touches no hardware."""
    name = config.source
    if name == "none":
        return None
    if name == "sim":
        return SimulatedUps()
    if name == "sysfs":
        return SysfsSource(config.sysfs_battery, SYSFS_ROOT)
    address = config.i2c_address or BOARDS[name].default_address
    if name in ("x728", "x1200"):
        return Max17040Source(name, config.i2c_bus, address, bus_factory)
    if name == "waveshare":
        cells = config.battery_cells or (2 if address == 0x42 else 1)
        return Ina219Source(config.i2c_bus, address, cells, bus_factory)
    if name == "pisugar3":
        return PiSugar3Source(config.i2c_bus, address, bus_factory)
    raise ValueError(f"unknown power source {name!r}")


def open_monitor(
    config: PowerConfig,
    *,
    loop: asyncio.AbstractEventLoop,
    post: Callable[[Event], None],
    pin_factory: Any = None,
    bus_factory: BusFactory | None = None,
) -> PowerMonitor | None:
    """A monitor for the configured source (not started), or None without one."""
    source = open_source(config, bus_factory or open_smbus)
    if source is None:
        return None
    pin = board_pin(config)
    loss_pin = None
    if pin is not None:
        number, loss_when_high = pin

        def loss_pin(on_change: Callable[[], None]) -> PowerLossPin:
            return PowerLossPin(
                number,
                loss_when_high=loss_when_high,
                on_change=on_change,
                pin_factory=pin_factory,
            )

    return PowerMonitor(
        source,
        loop=loop,
        post=post,
        poll_mains=config.poll_seconds,
        poll_battery=config.poll_seconds_on_battery,
        loss_pin=loss_pin,
    )


def pin_problems(config: PowerConfig, profile: HardwareProfile) -> list[ConfigProblem]:
    """The power-loss pin must not be one the build's profile already uses."""
    pin = board_pin(config)
    if pin is None:
        return []
    number = pin[0]
    uses: dict[str, tuple[int | None, ...]] = {
        "keypad.rows": profile.keypad.rows,
        "keypad.columns": profile.keypad.columns,
        "hook.pin": (profile.hook.pin,),
        "keys": tuple(gpio for _, gpio in profile.keys),
        "leds": tuple(gpio for _, gpio in profile.leds),
        "display": (profile.display.dc_pin, profile.display.reset_pin),
    }
    for user, pins in uses.items():
        if number in pins:
            board = f"the {config.source.upper()}'s " if config.source in BOARDS else ""
            return [
                ConfigProblem(
                    "power.power_loss_pin",
                    f"GPIO{number} ({board}power-loss signal) is already used by {user} in "
                    f"profile {profile.name!r}; wire those to other pins (a profile of your own)",
                )
            ]
    return []
