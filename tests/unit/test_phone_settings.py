"""The phone's user settings, audio routing, handset presence and call log, as effects."""

from __future__ import annotations

import pytest

from deskphone.core.effects import (
    Hangup,
    LogCall,
    MakeCall,
    PlayTone,
    SaveSettings,
    SetContrast,
    SetRoute,
    SetVolume,
    ToneOutput,
)
from deskphone.core.events import (
    AudioDeviceChanged,
    CallId,
    CallIncoming,
    HookChanged,
    KeyPressed,
    MessageWaiting,
    Started,
    TransferStatus,
)
from deskphone.core.history import EndReason, HistoryEntry
from deskphone.core.phone import CommandError, Phone, PhoneState
from deskphone.core.settings import AudioOutput, Settings
from deskphone.core.tones import RING_VOICES, ToneName
from deskphone.sip.mwi import message_summary
from tests.unit.test_phone import ACCOUNT, connect, dial_out, make_phone, of_type, press


def test_start_pushes_saved_volumes_and_contrast_to_the_adapters() -> None:
    settings = Settings(handset_volume=3, ringer_volume=9, contrast=40)
    phone = Phone(make_phone()[0]._config, settings=settings)
    effects = phone.handle(Started())
    assert SetVolume(AudioOutput.HANDSET, 3) in effects
    assert SetVolume(AudioOutput.RINGER, 9) in effects
    assert SetContrast(40) in effects
    assert SetRoute(AudioOutput.HANDSET) in effects


def test_volume_keys_adjust_the_ringer_when_idle_and_the_call_when_off_hook() -> None:
    phone, _ = make_phone()
    effects = phone.handle(KeyPressed("vol_up"))
    assert SetVolume(AudioOutput.RINGER, 7) in effects
    assert SaveSettings(phone.settings) in effects
    call = dial_out(phone)
    connect(phone, call)
    effects = phone.handle(KeyPressed("vol_down"))
    assert SetVolume(AudioOutput.HANDSET, 5) in effects
    phone.command("speaker")
    phone.handle(HookChanged(False))
    assert SetVolume(AudioOutput.SPEAKER, 4) in phone.command("volume", "4")


def test_volume_stops_at_its_limits_and_rejects_nonsense() -> None:
    phone, _ = make_phone()
    phone.command("volume", "ringer", "10")
    effects = phone.command("volume", "ringer", "up")
    assert of_type(effects, SetVolume) == [] and of_type(effects, SaveSettings) == []
    with pytest.raises(CommandError, match="expected up, down or 0-10"):
        phone.command("volume", "handset", "11")


def test_speaker_and_handset_switch_the_route() -> None:
    phone, _ = make_phone()
    phone.handle(HookChanged(True))
    assert SetRoute(AudioOutput.SPEAKER) in phone.command("speaker")
    assert SetRoute(AudioOutput.HANDSET) in phone.handle(HookChanged(True))


def test_dnd_ring_and_contrast_are_saved() -> None:
    phone, _ = make_phone()
    (saved,) = of_type(phone.command("dnd", "on"), SaveSettings)
    assert saved.settings.dnd
    effects = phone.command("ring", "soft")
    assert of_type(effects, SaveSettings)[0].settings.ring_pattern == "soft"
    assert SetContrast(80) in phone.command("contrast", "80")
    with pytest.raises(CommandError, match="ring: expected one of"):
        phone.command("ring", "loud")


def test_the_ring_sounds_in_the_chosen_voice() -> None:
    phone, _ = make_phone()
    phone.command("ring", "chirp")
    effects = phone.handle(CallIncoming(CallId("in-1"), 0, "1002", "", "sip:1002@pbx"))
    (play,) = of_type(effects, PlayTone)
    assert play.output is ToneOutput.RINGER and play.tone.name is ToneName.RING
    assert {s.frequencies for s in play.tone.segments} == {RING_VOICES["chirp"]}


def test_without_a_handset_calls_are_refused_with_that_reason() -> None:
    phone, _ = make_phone()
    phone.handle(AudioDeviceChanged(False, "USB handset", "unplugged"))
    phone.handle(HookChanged(True))
    press(phone, "1002#")
    assert phone.end_reason is EndReason.NO_AUDIO
    effects = phone.handle(CallIncoming(CallId("in-1"), 0, "1003", "", "sip:1003@pbx"))
    assert Hangup(CallId("in-1"), 480) in effects
    phone.handle(AudioDeviceChanged(True, "USB handset"))
    phone.handle(HookChanged(False))
    phone.handle(HookChanged(True))
    assert of_type(press(phone, "1002#"), MakeCall)


def test_unplugging_the_handset_mid_call_ends_the_call() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    effects = phone.handle(AudioDeviceChanged(False, "USB handset"))
    assert Hangup(call) in effects and phone.state is PhoneState.ENDED


def test_every_ended_call_is_logged_and_redial_survives_a_restart() -> None:
    phone, _ = make_phone()
    call = dial_out(phone, "1004")
    connect(phone, call)
    (logged,) = of_type(phone.handle(HookChanged(False)), LogCall)
    assert (logged.entry.direction, logged.entry.number) == ("out", "1004")
    restarted = Phone(phone._config, history=[logged.entry])
    assert restarted.last_dialed == "1004" and restarted.history[0] == logged.entry


def test_settings_from_saved_data_keep_what_is_valid() -> None:
    settings, dropped = Settings.from_dict(
        {"handset_volume": 3, "ringer_volume": 99, "dnd": True, "colour": "red"}
    )
    assert settings == Settings(handset_volume=3, dnd=True)
    assert sorted(dropped) == ["colour", "ringer_volume"]
    assert Settings.from_dict(settings.to_dict()) == (settings, [])


def test_history_entries_round_trip_and_reject_garbage() -> None:
    entry = HistoryEntry("missed", "1002", "Bob", 1.7e9, 0.0, EndReason.MISSED, 487)
    assert HistoryEntry.from_dict(entry.to_dict()) == entry
    with pytest.raises(ValueError, match="not a call-log entry"):
        HistoryEntry.from_dict({"direction": "sideways", "number": "1"})


def test_message_waiting_shows_and_the_voicemail_key_calls_the_box() -> None:
    phone, _ = make_phone(accounts=ACCOUNT + 'voicemail = "*97"\n')
    phone.handle(MessageWaiting(0, True, 2, 5))
    view = phone.view()
    assert view.messages_waiting and view.new_messages == 2
    (make,) = of_type(phone.handle(KeyPressed("voicemail")), MakeCall)
    assert make.target == "*97"
    phone.handle(MessageWaiting(0, False))
    assert not phone.view().messages_waiting


def test_voicemail_without_a_number_says_so() -> None:
    phone, _ = make_phone()
    with pytest.raises(CommandError, match="no voicemail number"):
        phone.command("voicemail")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "Messages-Waiting: yes\r\nMessage-Account: sip:*97@pbx\r\nVoice-Message: 2/8 (0/2)\r\n",
            (True, 2, 8),
        ),
        ("Messages-Waiting: no\r\n", (False, 0, 0)),
        (
            "NOTIFY sip:1001@x SIP/2.0\r\nEvent: message-summary\r\n\r\nMessages-Waiting: yes\r\n",
            (True, 0, 0),
        ),
        ("something else entirely", None),
    ],
)
def test_message_summary_bodies(body, expected) -> None:
    event = message_summary(0, body)
    assert (None if event is None else (event.waiting, event.new, event.old)) == expected


def test_a_transfer_that_succeeds_ends_our_leg_and_one_that_fails_keeps_the_call() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.command("transfer", "1004")
    assert phone.handle(TransferStatus(call, 100, "Trying")) == []
    failed = phone.handle(TransferStatus(call, 486, "Busy Here", final=True))
    assert of_type(failed, Hangup) == [] and phone.state is PhoneState.CONNECTED
    done = phone.handle(TransferStatus(call, 200, "OK", final=True))
    assert Hangup(call) in done and phone.end_reason is EndReason.TRANSFERRED
