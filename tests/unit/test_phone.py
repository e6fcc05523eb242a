"""The phone's state machine and command table, driven by events and read through effects."""

from __future__ import annotations

import itertools
import random

import pytest

from deskphone.config import parse_config
from deskphone.core.effects import (
    Answer,
    CancelTimer,
    ConnectAudio,
    DisconnectAudio,
    DtmfMethod,
    Hangup,
    LogCall,
    MakeCall,
    PlayTone,
    Register,
    SendDtmf,
    SetHold,
    SetMute,
    StartTimer,
    StopTone,
    ToneOutput,
)
from deskphone.core.events import (
    CallId,
    CallIncoming,
    CallMediaChanged,
    CallState,
    CallStateChanged,
    HookChanged,
    KeyPressed,
    RegistrationChanged,
    RegState,
    Started,
    TimerExpired,
)
from deskphone.core.phone import (
    COMMANDS,
    CommandError,
    EndReason,
    Phone,
    PhoneState,
    backoff_delay,
    end_reason,
    register_timer,
)
from deskphone.core.tones import ToneName, tone_plan

ACCOUNT = """
[[account]]
registrar = "sip:127.0.0.1:5060"
user = "1001"
password = "secret"
register_retry_min = 2
register_retry_max = 30
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_phone(extra: str = "", accounts: str = ACCOUNT) -> tuple[Phone, Clock]:
    clock = Clock()
    config = parse_config(accounts + extra)
    return Phone(config, clock=clock, wall_clock=lambda: 1.7e9, rng=random.Random(7)), clock


def of_type(effects: list, kind: type) -> list:
    return [e for e in effects if isinstance(e, kind)]


def tones(effects: list) -> list[ToneName]:
    return [e.tone.name for e in of_type(effects, PlayTone)]


def press(phone: Phone, keys: str) -> list:
    effects: list = []
    for key in keys:
        effects += phone.handle(KeyPressed(key))
    return effects


def dial_out(phone: Phone, number: str = "1002") -> CallId:
    phone.handle(HookChanged(True))
    effects = press(phone, number + "#")
    (make,) = of_type(effects, MakeCall)
    return make.call


def connect(phone: Phone, call: CallId) -> list:
    effects = phone.handle(CallStateChanged(call, CallState.EARLY, 180, "Ringing"))
    effects += phone.handle(CallMediaChanged(call, True, "G722/16000"))
    effects += phone.handle(CallStateChanged(call, CallState.CONFIRMED, 200, "OK"))
    return effects


# -- registration ----------------------------------------------------------------------------


def test_started_registers_every_enabled_account() -> None:
    second = ACCOUNT.replace('"1001"', '"1003"') + "enabled = false\n"
    phone, _ = make_phone(accounts=ACCOUNT + second)
    assert of_type(phone.handle(Started()), Register) == [Register(0)]
    assert [r.state for r in phone.registrations] == [RegState.REGISTERING, RegState.DISABLED]


def test_failed_registration_retries_with_capped_backoff() -> None:
    phone, _ = make_phone()
    phone.handle(Started())
    delays = []
    for _ in range(8):
        effects = phone.handle(RegistrationChanged(0, RegState.FAILED, 401, "Unauthorized"))
        (timer,) = of_type(effects, StartTimer)
        assert timer.name == register_timer(0)
        delays.append(timer.seconds)
        assert phone.registrations[0].describe() == "registration failed (401 Unauthorized)"
        assert phone.handle(TimerExpired(timer.name)) == [Register(0)]
        assert phone.registrations[0].state is RegState.REGISTERING
    assert 1.6 <= delays[0] <= 2.0
    assert all(later >= earlier * 0.8 for earlier, later in itertools.pairwise(delays))
    assert max(delays) <= 30.0 and delays[-1] >= 24.0  # capped, with downward jitter only
    assert phone.registrations[0].failures == 8


def test_registration_success_resets_backoff_and_cancels_retry() -> None:
    phone, _ = make_phone()
    phone.handle(RegistrationChanged(0, RegState.FAILED, 503, "Service Unavailable"))
    effects = phone.handle(RegistrationChanged(0, RegState.REGISTERED, 200, "OK", 300))
    assert CancelTimer(register_timer(0)) in effects
    assert phone.registrations[0].state is RegState.REGISTERED
    assert phone.registrations[0].failures == 0


def test_backoff_never_exceeds_its_bound() -> None:
    rng = random.Random(1)
    assert all(backoff_delay(n, 1.0, 4.0, rng) <= 4.0 for n in range(1, 50))


# -- outgoing calls --------------------------------------------------------------------------


def test_off_hook_gives_dial_tone_and_first_digit_stops_it() -> None:
    phone, _ = make_phone()
    effects = phone.handle(HookChanged(True))
    assert phone.state is PhoneState.OFF_HOOK and tones(effects) == [ToneName.DIAL]
    effects = press(phone, "1")
    assert phone.state is PhoneState.DIALING and phone.digits == "1"
    assert StopTone(ToneOutput.VOICE) in effects
    assert StartTimer("interdigit", 4.0) in effects


def test_whole_outgoing_call_through_hang_up() -> None:
    phone, clock = make_phone()
    call = dial_out(phone, "1002")
    assert phone.state is PhoneState.CALLING and phone.call.number == "1002"
    effects = phone.handle(CallStateChanged(call, CallState.EARLY, 180, "Ringing"))
    assert tones(effects) == [ToneName.RINGBACK] and phone.call.alerting
    effects = phone.handle(CallMediaChanged(call, True, "G722/16000"))
    assert ConnectAudio(call) in effects
    effects = phone.handle(CallStateChanged(call, CallState.CONFIRMED, 200, "OK"))
    assert phone.state is PhoneState.CONNECTED and StopTone(ToneOutput.VOICE) in effects
    clock.now += 65
    effects = phone.handle(HookChanged(False))
    assert Hangup(call) in effects and DisconnectAudio(call) in effects
    assert phone.state is PhoneState.ENDED and phone.end_reason is EndReason.HUNG_UP
    assert StartTimer("ended", 3.0) in effects
    entry = phone.history[0]
    assert (entry.direction, entry.number, entry.duration) == ("out", "1002", 65)
    phone.handle(TimerExpired("ended"))
    assert phone.state is PhoneState.IDLE


def test_far_end_hang_up_shows_reason_then_idle() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.handle(HookChanged(False))  # replaced before the BYE is seen: the call is ours to end
    assert phone.state is PhoneState.ENDED
    phone2, _ = make_phone()
    call2 = dial_out(phone2)
    connect(phone2, call2)
    effects = phone2.handle(
        CallStateChanged(call2, CallState.DISCONNECTED, 200, "Normal call clearing")
    )
    assert phone2.end_reason is EndReason.REMOTE_HUNG_UP and phone2.call is None
    assert tones(effects) == []  # a normal ending plays nothing
    phone2.handle(TimerExpired("ended"))
    assert phone2.state is PhoneState.OFF_HOOK  # handset still up: dial tone again


def test_full_digit_map_match_dials_at_once() -> None:
    phone, _ = make_phone('[dialplan]\ndigit_map = "[2-9]xxx|0x."\n')
    phone.handle(HookChanged(True))
    effects = press(phone, "2345")
    assert of_type(effects, MakeCall)[0].target == "2345"


def test_number_outside_digit_map_ends_with_error_tone() -> None:
    phone, _ = make_phone('[dialplan]\ndigit_map = "[2-8]xxx"\n')
    phone.handle(HookChanged(True))
    effects = press(phone, "0")
    assert phone.state is PhoneState.ENDED and phone.end_reason is EndReason.NOT_IN_DIAL_PLAN
    assert tones(effects) == [ToneName.ERROR]  # the error tone, not a click, answers it


def test_digits_click_except_the_one_that_places_the_call() -> None:
    phone, _ = make_phone('[dialplan]\ndigit_map = "[2-9]xxx"\n')
    phone.handle(HookChanged(True))
    assert tones(press(phone, "234")) == [ToneName.KEY_CLICK] * 3
    last = press(phone, "5")
    assert of_type(last, MakeCall) and ToneName.KEY_CLICK not in tones(last)


def test_emergency_numbers_dial_at_once_whatever_the_digit_map() -> None:
    phone, _ = make_phone(
        '[dialplan]\ndigit_map = "[2-9]xxx"\nemergency_numbers = ["112", "999"]\n'
    )
    phone.handle(HookChanged(True))
    (make,) = of_type(press(phone, "999"), MakeCall)
    assert make.target == "999" and phone.call.emergency


def test_inter_digit_timeout_dials_an_extendable_number_and_rejects_a_partial_one() -> None:
    phone, _ = make_phone('[dialplan]\ndigit_map = "0x.|[2-9]xxx"\n')
    phone.handle(HookChanged(True))
    press(phone, "0123")
    (make,) = of_type(phone.handle(TimerExpired("interdigit")), MakeCall)
    assert make.target == "0123"
    phone2, _ = make_phone('[dialplan]\ndigit_map = "0x.|[2-9]xxx"\n')
    phone2.handle(HookChanged(True))
    press(phone2, "23")
    phone2.handle(TimerExpired("interdigit"))
    assert phone2.end_reason is EndReason.NOT_IN_DIAL_PLAN


def test_hash_completing_a_feature_code_is_part_of_the_number() -> None:
    phone, _ = make_phone('[dialplan]\ndigit_map = "*21#|[2-9]xxx"\n')
    phone.handle(HookChanged(True))
    (make,) = of_type(press(phone, "*21#"), MakeCall)
    assert make.target == "*21#"


def test_predialling_on_hook_then_lifting_the_handset_dials() -> None:
    phone, _ = make_phone()
    effects = press(phone, "1002")
    assert phone.state is PhoneState.DIALING and not phone.off_hook
    assert tones(effects) == [] and StartTimer("predial", 30.0) in effects
    (make,) = of_type(phone.handle(HookChanged(True)), MakeCall)
    assert make.target == "1002"


def test_back_key_deletes_digits_then_returns_to_dial_tone() -> None:
    phone, _ = make_phone()
    phone.handle(HookChanged(True))
    press(phone, "12")
    phone.handle(KeyPressed("back"))
    assert phone.digits == "1"
    effects = phone.handle(KeyPressed("back"))
    assert phone.state is PhoneState.OFF_HOOK and tones(effects) == [ToneName.DIAL]


def test_early_media_replaces_local_ringback() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    effects = phone.handle(CallMediaChanged(call, True, "PCMU/8000"))
    effects += phone.handle(CallStateChanged(call, CallState.EARLY, 183, "Session Progress"))
    assert StopTone(ToneOutput.VOICE) in effects and ToneName.RINGBACK not in tones(effects)


@pytest.mark.parametrize(
    ("code", "heard", "reason", "tone"),
    [
        (486, True, EndReason.BUSY, ToneName.BUSY),
        (603, True, EndReason.DECLINED, ToneName.BUSY),
        (404, True, EndReason.NOT_FOUND, ToneName.ERROR),
        (408, True, EndReason.NO_ANSWER, None),
        (408, False, EndReason.UNREACHABLE, ToneName.CONGESTION),
        (503, True, EndReason.NETWORK_ERROR, ToneName.CONGESTION),
        (480, True, EndReason.UNREACHABLE, ToneName.CONGESTION),
        (403, True, EndReason.NOT_ALLOWED, ToneName.CONGESTION),
        (488, True, EndReason.FAILED, ToneName.CONGESTION),
    ],
)
def test_failed_call_shows_its_reason_and_plays_its_tone(code, heard, reason, tone) -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    effects = phone.handle(
        CallStateChanged(call, CallState.DISCONNECTED, code, "x", heard_from_network=heard)
    )
    assert phone.state is PhoneState.ENDED and phone.end_reason is reason
    assert phone.end_code == code
    assert tones(effects) == ([tone] if tone else [])


def test_end_reason_of_connected_and_incoming_calls() -> None:
    common = {"code": 200, "heard_from_network": True}
    assert end_reason(incoming=False, connected=True, local=True, **common) is EndReason.HUNG_UP
    remote = end_reason(incoming=True, connected=True, local=False, **common)
    assert remote is EndReason.REMOTE_HUNG_UP
    assert end_reason(incoming=True, connected=False, local=False, **common) is EndReason.MISSED
    assert end_reason(incoming=True, connected=False, local=True, **common) is EndReason.REJECTED


def test_no_account_means_no_call() -> None:
    phone, _ = make_phone(accounts="")
    phone.handle(HookChanged(True))
    press(phone, "1002#")
    assert phone.end_reason is EndReason.NO_ACCOUNT


def test_tones_follow_the_configured_country() -> None:
    phone, _ = make_phone('[phone]\ncountry = "DE"\n')
    (play,) = of_type(phone.handle(HookChanged(True)), PlayTone)
    assert play.tone == tone_plan("DE").tone(ToneName.DIAL)


# -- incoming calls --------------------------------------------------------------------------


def incoming(phone: Phone, number: str = "1002") -> tuple[CallId, list]:
    call = CallId("in-1")
    effects = phone.handle(CallIncoming(call, 0, number, "Bob", f"sip:{number}@pbx"))
    return call, effects


def test_incoming_call_rings_and_lifting_the_handset_answers() -> None:
    phone, _ = make_phone()
    call, effects = incoming(phone)
    assert phone.state is PhoneState.RINGING
    assert Answer(call, 180) in effects
    assert [(e.tone.name, e.output) for e in of_type(effects, PlayTone)] == [
        (ToneName.RING, ToneOutput.RINGER)
    ]
    effects = phone.handle(HookChanged(True))
    assert Answer(call, 200) in effects and StopTone(ToneOutput.RINGER) in effects
    assert phone.state is PhoneState.CONNECTED
    phone.handle(CallStateChanged(call, CallState.CONFIRMED, 200, "OK"))
    assert phone.call.connected_at is not None
    phone.handle(CallStateChanged(call, CallState.DISCONNECTED, 200, "BYE"))
    assert phone.end_reason is EndReason.REMOTE_HUNG_UP and phone.history[0].direction == "in"


def test_caller_giving_up_is_a_missed_call() -> None:
    phone, _ = make_phone()
    call, _ = incoming(phone)
    effects = phone.handle(
        CallStateChanged(call, CallState.DISCONNECTED, 487, "Request Terminated")
    )
    assert phone.end_reason is EndReason.MISSED and phone.missed_calls == 1
    assert StopTone(ToneOutput.RINGER) in effects
    assert phone.history[0].direction == "missed"


def test_busy_phone_refuses_a_second_call_and_dnd_refuses_all() -> None:
    phone, _ = make_phone()
    dial_out(phone)
    effects = phone.handle(CallIncoming(CallId("in-9"), 0, "1003", "", "sip:1003@pbx"))
    assert of_type(effects, Hangup) == [Hangup(CallId("in-9"), 486)] and phone.missed_calls == 1
    (logged,) = of_type(effects, LogCall)
    assert (logged.entry.direction, logged.entry.number) == ("missed", "1003")
    idle, _ = make_phone()
    idle.command("dnd", "on")
    effects = idle.handle(CallIncoming(CallId("in-2"), 0, "1003", "", "sip:1003@pbx"))
    assert of_type(effects, Hangup) == [Hangup(CallId("in-2"), 480)]
    assert idle.state is PhoneState.IDLE


def test_reject_declines_with_603() -> None:
    phone, _ = make_phone()
    call, _ = incoming(phone)
    effects = phone.command("reject")
    assert Hangup(call, 603) in effects and phone.end_reason is EndReason.REJECTED


# -- hook and speaker ------------------------------------------------------------------------


def test_speaker_key_takes_and_releases_the_line() -> None:
    phone, _ = make_phone()
    phone.handle(KeyPressed("speaker"))
    assert phone.state is PhoneState.OFF_HOOK and phone.speaker
    phone.handle(KeyPressed("speaker"))
    assert phone.state is PhoneState.IDLE


def test_call_moves_between_handset_and_speaker_without_dropping() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.handle(KeyPressed("speaker"))  # handset up, speaker on
    effects = phone.handle(HookChanged(False))  # handset down: the speaker keeps the call
    assert of_type(effects, Hangup) == [] and phone.state is PhoneState.CONNECTED
    phone.handle(HookChanged(True))  # handset up again takes over from the speaker
    assert not phone.speaker
    assert Hangup(call) in phone.handle(HookChanged(False))


# -- commands --------------------------------------------------------------------------------


def test_dial_command_uses_the_speaker_when_on_hook() -> None:
    phone, _ = make_phone()
    (make,) = of_type(phone.command("dial", "sip:bob@example.org"), MakeCall)
    assert make.target == "sip:bob@example.org" and phone.speaker
    with pytest.raises(CommandError, match="busy"):
        phone.command("dial", "1003")


def test_redial_calls_the_last_number() -> None:
    phone, _ = make_phone()
    with pytest.raises(CommandError):
        phone.command("redial")
    call = dial_out(phone, "1003")
    phone.handle(CallStateChanged(call, CallState.DISCONNECTED, 486, "Busy Here"))
    phone.handle(HookChanged(False))
    phone.handle(TimerExpired("ended"))
    (make,) = of_type(phone.handle(KeyPressed("redial")), MakeCall)
    assert make.target == "1003"


def test_keypad_digits_in_a_call_send_dtmf_by_the_account_method() -> None:
    phone, _ = make_phone(accounts=ACCOUNT + 'dtmf = "sip-info"\n')
    call = dial_out(phone)
    connect(phone, call)
    assert press(phone, "5") == [SendDtmf(call, "5", DtmfMethod.SIP_INFO)]
    with pytest.raises(CommandError, match="digits"):
        phone.command("dtmf", "5x")


def test_hold_toggles_and_mute_is_lifted_when_the_call_ends() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    # Its sound is cut at once, not when (or if) the far end answers the hold.
    assert phone.command("hold") == [SetHold(call, True), DisconnectAudio(call)]
    assert phone.call.on_hold
    assert phone.command("hold", "off") == [SetHold(call, False)]
    assert phone.command("mute") == [SetMute(True)]
    effects = phone.handle(CallStateChanged(call, CallState.DISCONNECTED, 200, "BYE"))
    assert SetMute(False) in effects and not phone.muted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("answer",), "no call is ringing"),
        (("nonsense",), "unknown command"),
        (("dial",), "usage: dial NUMBER"),
        (("hold",), "no connected call"),
        (("dnd", "maybe"), "expected 'on' or 'off'"),
    ],
)
def test_commands_explain_why_they_cannot_run(args, message) -> None:
    phone, _ = make_phone()
    with pytest.raises(CommandError, match=message):
        phone.command(*args)


def test_command_table_is_the_one_place_commands_live() -> None:
    assert {
        "dial",
        "answer",
        "hangup",
        "hold",
        "dtmf",
        "redial",
        "dnd",
        "mute",
        "transfer",
        "speaker",
        "reject",
    } <= set(COMMANDS)
    assert all(c.summary for c in COMMANDS.values())
