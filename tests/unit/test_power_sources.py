"""Battery sources (hw/power.py): the UPS chips through a fake I2C bus shaped like smbus2, the
kernel's power_supply class through a sysfs tree in a temp dir, the power-loss pin through
gpiozero's MockFactory, and the monitor that reads them on a real asyncio loop."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from deskphone.config import PowerConfig
from deskphone.core.events import Event, PowerChanged
from deskphone.core.power import PowerReading
from deskphone.errors import HardwareError
from deskphone.hw import power as hwpower
from deskphone.hw.power import (
    Ina219Source,
    Max17040Source,
    PiSugar3Source,
    PowerLossPin,
    PowerMonitor,
    SimulatedUps,
    SysfsSource,
    board_pin,
    open_monitor,
    open_source,
    percent_from_voltage,
    pin_problems,
)
from deskphone.hw.profile import load_profile
from tests.fake_i2c import FakeSMBus

# -- the chips -------------------------------------------------------------------------------


def test_max17040_reads_cell_voltage_and_charge_in_the_chips_byte_order() -> None:
    bus = FakeSMBus()
    bus.max17040(volts=3.912, percent=67.5)
    reading = Max17040Source("x728", 1, 0x36, bus.factory).read()
    assert reading.voltage == pytest.approx(3.912, abs=0.001)
    assert reading.percent == pytest.approx(67.5, abs=0.01)
    assert reading.mains is None  # the X728's pin says that, not the gauge


def test_a_gauge_that_stops_answering_is_a_hardware_error_and_the_bus_is_reopened() -> None:
    bus = FakeSMBus()
    source = Max17040Source("x1200", 1, 0x36, bus.factory)
    with pytest.raises(HardwareError, match=r"MAX17040 gauge at I2C 1:0x36 not answering: Remote"):
        source.read()
    assert bus.closed == 1
    bus.max17040(volts=4.0, percent=90)
    assert source.read().percent == pytest.approx(90)
    assert bus.opened == 2


def test_a_missing_i2c_bus_says_how_to_enable_it() -> None:
    source = Max17040Source("x728", 3, 0x36, FakeSMBus(number=1).factory)
    with pytest.raises(HardwareError, match=r"no I2C bus 3 \(/dev/i2c-3\): enable I2C"):
        source.read()


def test_ina219_two_cells_discharging_means_no_mains() -> None:
    bus = FakeSMBus()
    bus.ina219(volts=7.48, shunt_millivolts=-3.2)
    reading = Ina219Source(1, 0x42, 2, bus.factory).read()
    assert reading.mains is False and reading.charging is False
    assert reading.voltage == pytest.approx(7.48, abs=0.004)
    assert reading.percent == pytest.approx(percent_from_voltage(3.74), abs=0.5)


def test_ina219_charging_current_means_mains() -> None:
    bus = FakeSMBus()
    bus.ina219(volts=4.1, shunt_millivolts=6.0, address=0x43)
    source = open_source(PowerConfig(source="waveshare", i2c_address=0x43), bus.factory)
    assert isinstance(source, Ina219Source) and source.cells == 1  # 0x43 is the 1-cell HAT
    reading = source.read()
    assert reading.mains is True and reading.charging is True


def test_pisugar3_reports_power_charge_and_millivolts() -> None:
    bus = FakeSMBus()
    bus.pisugar3(mains=False, charging=False, millivolts=3876, percent=58)
    reading = PiSugar3Source(1, 0x57, bus.factory).read()
    assert reading == PowerReading(mains=False, percent=58.0, voltage=3.876, charging=False)
    bus.pisugar3(mains=True, charging=True, millivolts=4100, percent=91)
    assert PiSugar3Source(1, 0x57, bus.factory).read().mains is True


def test_charge_from_voltage_follows_the_li_ion_curve() -> None:
    assert percent_from_voltage(2.8) == 0.0
    assert percent_from_voltage(4.25) == 100.0
    assert 40 < percent_from_voltage(3.76) < 55
    assert percent_from_voltage(3.9) < percent_from_voltage(4.0)


# -- sysfs -----------------------------------------------------------------------------------


def supply(root: Path, name: str, **files: object) -> None:
    directory = root / name
    directory.mkdir(parents=True)
    for key, value in files.items():
        (directory / key).write_text(f"{value}\n")


def test_sysfs_battery_and_mains_supply(tmp_path: Path) -> None:
    supply(tmp_path, "AC", type="Mains", online=0)
    supply(
        tmp_path,
        "BAT0",
        type="Battery",
        capacity=57,
        status="Discharging",
        voltage_now=3801000,
        time_to_empty_now=5400,
    )
    supply(tmp_path, "hid-mouse-battery", type="Battery", scope="Device", capacity=5)
    reading = SysfsSource("", tmp_path).read()
    assert reading == PowerReading(
        mains=False, percent=57.0, voltage=3.801, seconds_left=5400.0, charging=False
    )
    (tmp_path / "AC" / "online").write_text("1\n")
    assert SysfsSource("", tmp_path).read().mains is True


def test_sysfs_without_a_mains_supply_goes_by_the_battery_status(tmp_path: Path) -> None:
    supply(tmp_path, "battery", type="Battery", capacity=80, status="Charging")
    assert SysfsSource("", tmp_path).read().mains is True
    (tmp_path / "battery" / "status").write_text("Discharging\n")
    assert SysfsSource("", tmp_path).read().mains is False


def test_sysfs_names_what_is_missing(tmp_path: Path) -> None:
    supply(tmp_path, "AC", type="Mains", online=1)
    with pytest.raises(HardwareError, match="no battery in"):
        SysfsSource("", tmp_path).read()
    with pytest.raises(HardwareError, match=r"no power supply 'BAT1' .* there are: AC"):
        SysfsSource("BAT1", tmp_path).read()


# -- the power-loss pin ----------------------------------------------------------------------


@pytest.mark.parametrize(("board", "lost_level"), [("x728", "high"), ("x1200", "low")])
def test_power_loss_pin_polarity_differs_between_x728_and_x1200(board, lost_level) -> None:
    factory = MockFactory()
    number, loss_when_high = board_pin(PowerConfig(source=board)) or (None, None)
    assert number == 6
    pin = PowerLossPin(
        6, loss_when_high=bool(loss_when_high), on_change=lambda: None, pin_factory=factory
    )
    try:
        signal = factory.pin(6)
        (signal.drive_high if lost_level == "high" else signal.drive_low)()
        assert pin.mains is False
        (signal.drive_low if lost_level == "high" else signal.drive_high)()
        assert pin.mains is True
    finally:
        pin.close()


def test_a_power_loss_pin_of_ones_own() -> None:
    config = PowerConfig(source="sysfs", power_loss_pin=22, power_loss_active_high=False)
    assert board_pin(config) == (22, False)
    assert board_pin(PowerConfig(source="pisugar3")) is None


def test_the_boards_pin_must_not_clash_with_the_keypad(tmp_path: Path) -> None:
    reference = load_profile("reference")
    (problem,) = pin_problems(PowerConfig(source="x728"), reference)
    assert problem.key == "power.power_loss_pin"
    assert "GPIO6 (the X728's power-loss signal) is already used by keypad.rows" in problem.message
    free = dataclasses.replace(
        reference, keypad=dataclasses.replace(reference.keypad, rows=(5, 22, 13, 19, 17, 27))
    )
    assert pin_problems(PowerConfig(source="x1200"), free) == []
    assert pin_problems(PowerConfig(source="waveshare"), reference) == []


def test_check_config_reports_the_clash(tmp_path: Path, capsys) -> None:
    from deskphone.cli import main

    path = tmp_path / "deskphone.toml"
    path.write_text('[power]\nsource = "x728"\n')
    assert main(["check-config", str(path)]) == 2
    assert "power.power_loss_pin: GPIO6" in capsys.readouterr().err


# -- the monitor -----------------------------------------------------------------------------


async def until(condition: Callable[[], object], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def power_events(events: list[Event]) -> list[PowerChanged]:
    return [e for e in events if isinstance(e, PowerChanged)]


def test_monitor_reads_at_once_then_on_each_change_of_the_simulated_ups() -> None:
    async def scenario() -> None:
        events: list[Event] = []
        ups = SimulatedUps()
        monitor = PowerMonitor(
            ups, loop=asyncio.get_running_loop(), post=events.append, poll_mains=60, poll_battery=10
        )
        monitor.start()
        try:
            await until(lambda: power_events(events))
            assert power_events(events)[0].reading.mains is True
            ups.set(mains=False, percent=42)
            await until(lambda: len(power_events(events)) == 2)
            last = power_events(events)[-1].reading
            assert last.mains is False and last.percent == 42
            # On battery the next read comes sooner.
            assert monitor._timer is not None
            due = monitor._timer.when() - asyncio.get_running_loop().time()
            assert 9 < due <= 10
        finally:
            monitor.close()

    asyncio.run(scenario())


def test_monitor_reports_a_failing_gauge_and_backs_off() -> None:
    async def scenario() -> None:
        events: list[Event] = []
        bus = FakeSMBus()
        source = Max17040Source("x1200", 1, 0x36, bus.factory)
        loop = asyncio.get_running_loop()
        monitor = PowerMonitor(
            source, loop=loop, post=events.append, poll_mains=60, poll_battery=10
        )
        monitor.start()
        try:
            await until(lambda: power_events(events))
            assert "not answering" in power_events(events)[0].error
            first_wait = monitor._timer.when() - loop.time()
            monitor.read_now()
            await until(lambda: len(power_events(events)) == 2)
            assert monitor._timer.when() - loop.time() > first_wait * 1.9  # doubled
            bus.max17040(volts=3.9, percent=77)
            monitor.read_now()
            await until(lambda: len(power_events(events)) == 3)
            assert power_events(events)[-1].error == ""
            assert 59 < monitor._timer.when() - loop.time() <= 60  # back to normal
        finally:
            monitor.close()
        assert bus.closed >= 1

    asyncio.run(scenario())


def test_monitor_with_the_x728_pin_knows_of_mains_loss_at_once_and_ignores_bounces() -> None:
    async def scenario() -> None:
        events: list[Event] = []
        bus = FakeSMBus()
        bus.max17040(volts=4.1, percent=95)
        factory = MockFactory()
        config = PowerConfig(source="x728")
        monitor = open_monitor(
            config,
            loop=asyncio.get_running_loop(),
            post=events.append,
            pin_factory=factory,
            bus_factory=bus.factory,
        )
        assert monitor is not None
        monitor.start()
        try:
            await until(lambda: power_events(events))
            assert power_events(events)[0].reading.mains is True
            reads = monitor.reads
            factory.pin(6).drive_high()  # a bounce: back before it settled
            await asyncio.sleep(0.02)
            factory.pin(6).drive_low()
            await asyncio.sleep(hwpower.PIN_SETTLE * 2)
            assert monitor.reads == reads and len(power_events(events)) == 1
            factory.pin(6).drive_high()  # mains lost for real
            await until(lambda: len(power_events(events)) == 2)
            assert power_events(events)[-1].reading == PowerReading(
                mains=False, percent=95.0, voltage=pytest.approx(4.1, abs=0.001)
            )
        finally:
            monitor.close()

    asyncio.run(scenario())
