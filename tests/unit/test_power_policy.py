"""The battery-backup policy (core/power.py) and what the phone does about it: pure, no I/O."""

from __future__ import annotations

import pytest

from deskphone.core.effects import Hangup, MakeCall, PlayTone, PowerOff, StartTimer, ToneOutput
from deskphone.core.events import (
    CallState,
    CallStateChanged,
    HookChanged,
    PowerChanged,
    TimerExpired,
)
from deskphone.core.history import EndReason
from deskphone.core.phone import TIMER_POWER_GRACE, TIMER_POWER_TONE, PhoneState
from deskphone.core.power import (
    BatteryLevel,
    PowerChange,
    PowerPolicy,
    PowerReading,
    PowerThresholds,
    Supply,
    format_time_left,
)
from deskphone.core.tones import ToneName
from tests.unit.test_phone import connect, dial_out, incoming, make_phone, of_type, press

THRESHOLDS = PowerThresholds(low_percent=20, critical_percent=5, hysteresis_percent=3)
POWER = '\n[power]\nsource = "sim"\ngrace_seconds = 60\n'


def on_battery(percent: float) -> PowerReading:
    return PowerReading(mains=False, percent=percent)


def feed(policy: PowerPolicy, *readings: PowerReading, start: float = 0.0, step: float = 10.0):
    """Every change the readings cause, in order."""
    changes = []
    for index, reading in enumerate(readings):
        changes += policy.update(reading, "", start + index * step)
    return changes


# -- the policy ------------------------------------------------------------------------------


def test_mains_loss_and_return_are_reported_once_each() -> None:
    policy = PowerPolicy(THRESHOLDS, "sim")
    assert feed(policy, PowerReading(mains=True, percent=90)) == []  # the first reading
    changes = feed(policy, on_battery(90), on_battery(89), PowerReading(mains=True, percent=89))
    assert changes == [PowerChange.MAINS_LOST, PowerChange.MAINS_BACK]
    assert policy.supply is Supply.MAINS and policy.level is BatteryLevel.NORMAL


def test_low_warns_once_while_the_charge_wobbles_around_the_threshold() -> None:
    policy = PowerPolicy(THRESHOLDS, "sim")
    changes = feed(policy, *(on_battery(p) for p in (21, 20, 21, 19.5, 20.5, 19)))
    assert changes.count(PowerChange.LOW) == 1


def test_low_warning_rearms_only_after_charging_past_the_hysteresis() -> None:
    policy = PowerPolicy(THRESHOLDS, "sim")
    feed(policy, on_battery(19))
    charging = PowerReading(mains=True, percent=22)  # above low, not above low + hysteresis
    assert feed(policy, charging, on_battery(19)) == [
        PowerChange.MAINS_BACK,
        PowerChange.MAINS_LOST,
    ]
    recharged = PowerReading(mains=True, percent=24)
    changes = feed(policy, recharged, on_battery(19))
    assert changes == [PowerChange.MAINS_BACK, PowerChange.MAINS_LOST, PowerChange.LOW]


def test_critical_needs_two_readings_and_is_latched_until_mains_returns() -> None:
    policy = PowerPolicy(THRESHOLDS, "sim")
    assert feed(policy, on_battery(4)) == [PowerChange.MAINS_LOST, PowerChange.LOW]
    assert not policy.critical  # one sag under load is not enough
    assert feed(policy, on_battery(6)) == []  # the count starts again
    assert feed(policy, on_battery(5), on_battery(5)) == [PowerChange.CRITICAL]
    assert feed(policy, on_battery(12)) == [] and policy.critical  # a rising gauge is the gauge
    assert feed(policy, PowerReading(mains=True)) == [PowerChange.MAINS_BACK]
    assert not policy.critical and policy.level is BatteryLevel.NORMAL


def test_without_a_mains_signal_nothing_is_acted_on() -> None:
    policy = PowerPolicy(THRESHOLDS, "x728")
    assert feed(policy, *(PowerReading(percent=p) for p in (3, 3, 2))) == []
    view = policy.view()
    assert view.supply is Supply.UNKNOWN and view.percent == 2 and not policy.critical


def test_a_failing_gauge_is_reported_and_its_return_too() -> None:
    policy = PowerPolicy(THRESHOLDS, "x728")
    assert policy.update(None, "MAX17040 gauge not answering", 0) == [PowerChange.GAUGE_FAILED]
    assert policy.update(None, "MAX17040 gauge not answering", 60) == []
    assert policy.view().error == "MAX17040 gauge not answering"
    assert policy.update(on_battery(50), "", 120) == [
        PowerChange.GAUGE_BACK,
        PowerChange.MAINS_LOST,
    ]


def test_time_left_from_the_rate_of_discharge_or_the_gauge_itself() -> None:
    policy = PowerPolicy(THRESHOLDS, "sim")
    feed(policy, on_battery(80), on_battery(79), step=30)
    assert policy.seconds_left() is None  # under a minute of data says little
    feed(policy, on_battery(78), start=120)
    # 2 % in 120 s: 78 % lasts 78 minutes more.
    assert policy.view().seconds_left == pytest.approx(78 * 60)
    assert "about 1 h 18 min left" in policy.view().describe()
    feed(policy, PowerReading(mains=False, percent=77, seconds_left=600.0), start=180)
    assert policy.view().seconds_left == 600.0


def test_nonsense_readings_are_clamped_or_ignored() -> None:
    policy = PowerPolicy(THRESHOLDS, "sim")
    feed(policy, PowerReading(mains=True, percent=104.5))
    assert policy.view().percent == 100.0
    feed(policy, PowerReading(mains=True, percent=float("nan")))
    assert policy.view().percent == 100.0


def test_thresholds_must_make_sense() -> None:
    with pytest.raises(ValueError, match="critical"):
        PowerThresholds(low_percent=5, critical_percent=5)


def test_time_left_reads_like_a_person_says_it() -> None:
    assert format_time_left(30) == "under 1 min"
    assert format_time_left(12 * 60) == "12 min"
    assert format_time_left(3 * 3600 + 5 * 60) == "3 h 05 min"


# -- the phone acting on it ------------------------------------------------------------------


def power(phone, reading: PowerReading | None, error: str = "") -> list:
    return phone.handle(PowerChanged(reading, error))


def go_critical(phone) -> list:
    return power(phone, on_battery(4)) + power(phone, on_battery(4))


def test_low_battery_beeps_once_on_the_ringer_and_stops() -> None:
    phone, _ = make_phone(POWER)
    effects = power(phone, on_battery(15))
    (beep,) = of_type(effects, PlayTone)
    assert beep.tone.name is ToneName.CALL_WAITING and beep.output is ToneOutput.RINGER
    assert StartTimer(TIMER_POWER_TONE, 1.0) in effects
    assert of_type(power(phone, on_battery(14)), PlayTone) == []
    assert phone.view().power.level is BatteryLevel.LOW
    assert "on battery 14% (low)" in phone.view().power.describe()


def test_low_battery_in_a_call_beeps_in_the_earpiece() -> None:
    phone, _ = make_phone(POWER)
    connect(phone, dial_out(phone))
    (beep,) = of_type(power(phone, on_battery(15)), PlayTone)
    assert beep.output is ToneOutput.VOICE


def test_critical_battery_when_idle_powers_off_at_once() -> None:
    phone, _ = make_phone(POWER)
    effects = go_critical(phone)
    (off,) = of_type(effects, PowerOff)
    assert "battery critical" in off.reason
    assert phone.view().power.powering_off
    assert of_type(power(phone, on_battery(3)), PowerOff) == []  # asked once


def test_critical_battery_lets_a_call_finish_within_the_grace_period() -> None:
    phone, clock = make_phone(POWER)
    call = dial_out(phone)
    connect(phone, call)
    effects = go_critical(phone)
    assert StartTimer(TIMER_POWER_GRACE, 60.0) in effects and of_type(effects, PowerOff) == []
    assert phone.view().power.shutdown_at == clock.now + 60
    effects = phone.handle(TimerExpired(TIMER_POWER_GRACE))
    assert Hangup(call) in effects  # the grace is over: the call ends...
    assert of_type(effects, PowerOff)  # ...and the phone powers off


def test_hanging_up_during_the_grace_period_powers_off() -> None:
    phone, _ = make_phone(POWER)
    call = dial_out(phone)
    connect(phone, call)
    go_critical(phone)
    assert of_type(phone.handle(HookChanged(False)), PowerOff)


def test_emergency_calls_are_never_cut_nor_refused() -> None:
    phone, _ = make_phone(POWER)
    call = dial_out(phone, "112")
    connect(phone, call)
    go_critical(phone)
    effects = phone.handle(TimerExpired(TIMER_POWER_GRACE))
    assert of_type(effects, Hangup) == [] and of_type(effects, PowerOff) == []
    assert phone.state is PhoneState.CONNECTED
    effects = phone.handle(CallStateChanged(call, CallState.DISCONNECTED, 200, "BYE"))
    assert of_type(effects, PowerOff)  # the emergency call ended: now the phone goes


def test_at_critical_new_calls_are_refused_but_emergency_numbers_dial() -> None:
    phone, _ = make_phone(POWER)
    phone.handle(HookChanged(True))  # off-hook: the phone waits, the user may need 112
    assert of_type(go_critical(phone), PowerOff) == []
    effects = press(phone, "1002#")
    assert of_type(effects, MakeCall) == [] and phone.end_reason is EndReason.BATTERY
    phone.handle(TimerExpired("ended"))
    (make,) = of_type(press(phone, "911"), MakeCall)
    assert make.target == "911"


def test_at_critical_incoming_calls_are_refused() -> None:
    phone, _ = make_phone(POWER)
    connect(phone, dial_out(phone))
    go_critical(phone)
    phone.handle(HookChanged(False))
    _, effects = incoming(phone)
    assert of_type(effects, Hangup)[0].code == 480


def test_mains_back_during_the_grace_period_cancels_the_power_off() -> None:
    phone, _ = make_phone(POWER)
    connect(phone, dial_out(phone))
    go_critical(phone)
    effects = power(phone, PowerReading(mains=True, percent=4))
    assert of_type(effects, PowerOff) == [] and phone.view().power.shutdown_at is None
    effects = phone.handle(TimerExpired(TIMER_POWER_GRACE))
    assert of_type(effects, Hangup) == [] and phone.state is PhoneState.CONNECTED
    assert of_type(phone.handle(HookChanged(False)), PowerOff) == []


def test_a_failing_gauge_shows_in_the_view_and_stops_nothing() -> None:
    phone, _ = make_phone(POWER)
    effects = power(phone, None, "MAX17040 gauge at I2C 1:0x36 not answering: Remote I/O error")
    assert of_type(effects, PowerOff) == []
    assert "not answering" in phone.view().power.error
    call = dial_out(phone)
    assert call  # calls go on


def test_reload_with_another_source_starts_the_policy_afresh() -> None:
    phone, _ = make_phone(POWER)
    power(phone, on_battery(50))
    config = make_phone('\n[power]\nsource = "sysfs"\n')[0]._config
    phone.reconfigure(config)
    view = phone.view().power
    assert view.source == "sysfs" and view.supply is Supply.UNKNOWN and view.percent is None
