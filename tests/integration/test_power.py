"""Battery backup through the whole phone: UPS boards read through a fake I2C bus shaped like
smbus2 and the power-loss pin through gpiozero's MockFactory, a real call with baresip, and the
shutdown sequence at a critical battery, down to the un-REGISTER seen at Kamailio and the
power-off asked of a stand-in command."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from deskphone.core.phone import PhoneState
from deskphone.service.control import request
from tests.fake_i2c import FakeSMBus
from tests.harness import PhoneUnderTest, phone_config_text
from tests.rig import wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED

pytestmark = pytest.mark.integration

# The X728 and X1200 drive GPIO6, a keypad row in the stock profiles: a build with one of
# them wires the keypad elsewhere.
UPS_PROFILE = """
name = "ups-build"
description = "3x4 keypad clear of GPIO6, hook switch"
[keypad]
rows = [5, 22, 13, 19]
columns = [12, 16, 20]
keys = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["*", "0", "#"]]
[hook]
pin = 26
off_hook_level = "low"
"""

# Stands in for `systemctl poweroff`: notes when it ran and what the state directory held then.
POWEROFF_STAND_IN = """
import shutil, sys, time, pathlib
out, state = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
shutil.copy(state / "history.json", out / "history-at-poweroff.json")
(out / "powered-off").write_text(repr(time.time()))
"""


def ups_phone(
    kamailio: Any, tmp_path: Path, tone_wav: Any, bus: FakeSMBus, power: str
) -> PhoneUnderTest:
    workdir = tmp_path / "phone"
    profile = tmp_path / "ups-build.toml"
    profile.write_text(UPS_PROFILE)
    stand_in = tmp_path / "poweroff.py"
    stand_in.write_text(POWEROFF_STAND_IN)
    command = f"{sys.executable} {stand_in} {tmp_path} {workdir / 'state'}"
    text = phone_config_text(
        kamailio.port,
        "1001",
        kamailio.users["1001"],
        workdir=workdir,
        microphone=tone_wav(1000.0, seconds=5.0),
        profile=str(profile),
        extra=f'[power]\n{power}\npoweroff_command = "{command}"\n',
    )
    return PhoneUnderTest(text, i2c_bus=bus.factory).start()


def ask(phone: PhoneUnderTest, command: str, *args: str) -> Any:
    assert phone.config.control.socket is not None
    return request(phone.config.control.socket, command, args)


def read_gauge_now(phone: PhoneUnderTest) -> None:
    """Rather than wait for the next poll."""
    monitor = phone.app.service.power
    assert monitor is not None
    phone.on_loop(monitor.read_now)


def battery(phone: PhoneUnderTest) -> dict[str, Any]:
    result: dict[str, Any] = ask(phone, "battery")
    return result


def test_x728_mains_loss_then_critical_battery_ends_the_call_unregisters_and_powers_off(
    kamailio, baresip_factory, tmp_path: Path, tone_wav
) -> None:
    far = baresip_factory("1002")
    bus = FakeSMBus()
    bus.max17040(volts=4.12, percent=96)
    power = 'source = "x728"\ngrace_seconds = 2\npoll_seconds_on_battery = 1'
    phone = ups_phone(kamailio, tmp_path, tone_wav, bus, power)
    try:
        phone.wait_registered()
        wait_until(lambda: battery(phone)["percent"] == 96, 5, "the first gauge reading")
        assert battery(phone)["supply"] == "mains"
        ask(phone, "dial", "1002")
        far.wait_event(CALL_ESTABLISHED)
        phone.wait_state(PhoneState.CONNECTED)

        pin = phone.app.kit.pin_factory.pin(6) if phone.app.kit else None
        assert pin is not None
        phone.on_loop(pin.drive_high)  # the X728 says: mains lost
        wait_until(lambda: battery(phone)["supply"] == "battery", 5, "on battery")
        assert "on battery 96%" in ask(phone, "status")["power"]["summary"]

        bus.max17040(volts=3.41, percent=4)  # the cells are nearly spent
        wait_until(lambda: battery(phone)["level"] == "critical", 10, "critical")
        assert battery(phone)["shutdown_in"] is not None
        assert phone.view().state is PhoneState.CONNECTED  # the call has its grace period
        far.wait_event(CALL_CLOSED, timeout=10)  # ...then it is ended
        ended_at = time.time()

        marker = tmp_path / "powered-off"
        wait_until(marker.exists, 10, "the power-off command")
        powered_off_at = float(marker.read_text())
        assert kamailio.bindings("1001") == []  # un-REGISTERed before the power-off
        unregister = kamailio.requests("REGISTER", from_user="1001")[-1]
        assert ended_at - 2 < unregister.time <= powered_off_at
        saved = json.loads((tmp_path / "history-at-poweroff.json").read_text())
        assert saved["calls"][0]["number"] == "1002"  # the call log was on disk by then
        wait_until(phone.app.service.finished.is_set, 5, "the phone to say it is done")
    finally:
        phone.stop()


def test_mains_back_in_the_grace_period_keeps_the_phone_on(
    kamailio, baresip_factory, tmp_path: Path, tone_wav
) -> None:
    far = baresip_factory("1002")
    bus = FakeSMBus()
    bus.max17040(volts=3.41, percent=4)
    power = 'source = "x1200"\ngrace_seconds = 3\npoll_seconds_on_battery = 1'
    phone = ups_phone(kamailio, tmp_path, tone_wav, bus, power)
    try:
        phone.wait_registered()
        pin = phone.app.kit.pin_factory.pin(6) if phone.app.kit else None
        assert pin is not None
        phone.on_loop(pin.drive_high)  # the X1200 holds it high while mains is fine
        wait_until(lambda: battery(phone)["supply"] == "mains", 5, "on mains")
        ask(phone, "dial", "1002")
        far.wait_event(CALL_ESTABLISHED)
        phone.on_loop(pin.drive_low)  # low: mains lost
        wait_until(lambda: battery(phone)["level"] == "critical", 10, "critical")
        phone.on_loop(pin.drive_high)  # the power came back
        wait_until(lambda: battery(phone)["supply"] == "mains", 5, "mains again")
        assert battery(phone)["level"] == "normal" and battery(phone)["shutdown_in"] is None
        time.sleep(4)  # past the grace period
        assert not far.events(CALL_CLOSED) and phone.view().state is PhoneState.CONNECTED
        assert not (tmp_path / "powered-off").exists()
        assert len(kamailio.bindings("1001")) == 1
    finally:
        phone.stop()


def test_a_gauge_that_stops_answering_is_reported_and_calls_go_on(
    kamailio, baresip_factory, tmp_path: Path, tone_wav
) -> None:
    far = baresip_factory("1002")
    bus = FakeSMBus()
    bus.pisugar3(mains=True, charging=False, millivolts=4150, percent=99)
    power = 'source = "pisugar3"\npoll_seconds = 5'
    phone = ups_phone(kamailio, tmp_path, tone_wav, bus, power)
    try:
        phone.wait_registered()
        wait_until(lambda: battery(phone)["percent"] == 99, 5, "the first reading")
        bus.remove(0x57)
        read_gauge_now(phone)
        wait_until(lambda: battery(phone)["error"], 5, "the gauge error")
        error = battery(phone)["error"]
        assert error == "PiSugar 3 at I2C 1:0x57 not answering: Remote I/O error"
        ask(phone, "dial", "1002")  # the phone does not care
        far.wait_event(CALL_ESTABLISHED)
        ask(phone, "hangup")
        far.wait_event(CALL_CLOSED)
        bus.pisugar3(mains=False, charging=False, millivolts=3700, percent=61)
        read_gauge_now(phone)
        wait_until(lambda: not battery(phone)["error"], 5, "the gauge back")
        assert battery(phone)["supply"] == "battery" and battery(phone)["percent"] == 61
    finally:
        phone.stop()
