"""Two calls at once: call waiting, hold and swap, three-way conference."""

from __future__ import annotations

import logging

import pytest

from deskphone.core.effects import (
    Answer,
    CancelTimer,
    ConnectAudio,
    DisconnectAudio,
    Hangup,
    JoinCalls,
    PlayTone,
    SetHold,
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
    ReinviteRefused,
    TimerExpired,
)
from deskphone.core.phone import Phone, PhoneState, reoffer_timer
from deskphone.core.tones import ToneName
from tests.unit.test_phone import connect, dial_out, incoming, make_phone, of_type

KNOCKER = CallId("in-7")


def in_call_with_a_knock(extra: str = "") -> tuple[Phone, CallId, list]:
    phone, _ = make_phone(extra)
    first = dial_out(phone)
    connect(phone, first)
    effects = phone.handle(CallIncoming(KNOCKER, 0, "1004", "Carol", "sip:1004@pbx"))
    return phone, first, effects


def test_a_second_caller_knocks_with_the_call_waiting_tone() -> None:
    phone, first, effects = in_call_with_a_knock()
    assert Answer(KNOCKER, 180) in effects and of_type(effects, Hangup) == []
    (tone,) = of_type(effects, PlayTone)
    assert tone.tone.name is ToneName.CALL_WAITING and tone.output is ToneOutput.VOICE
    view = phone.view()
    assert view.state is PhoneState.CONNECTED and view.call.id == first
    assert view.second is not None and view.second.number == "1004" and not view.second.answered


def test_without_call_waiting_the_second_caller_hears_busy() -> None:
    _, _, effects = in_call_with_a_knock("[phone]\ncall_waiting = false\n")
    assert Hangup(KNOCKER, 486) in effects


def test_answering_the_knock_holds_the_first_call() -> None:
    phone, first, _ = in_call_with_a_knock()
    effects = phone.command("answer")
    assert SetHold(first, True) in effects and Answer(KNOCKER, 200) in effects
    assert DisconnectAudio(first) in effects  # at once: the first caller hears no more
    assert StopTone(ToneOutput.VOICE) in effects
    assert phone.call.id == KNOCKER and phone.second.id == first and phone.second.on_hold


def test_swap_trades_the_held_and_the_active_call() -> None:
    phone, first, _ = in_call_with_a_knock()
    phone.command("answer")
    phone.handle(CallStateChanged(KNOCKER, CallState.CONFIRMED, 200, "OK"))
    effects = phone.command("swap")
    assert SetHold(KNOCKER, True) in effects and SetHold(first, False) in effects
    assert DisconnectAudio(KNOCKER) in effects
    assert phone.call.id == first and not phone.call.on_hold and phone.second.on_hold


def test_conference_joins_both_and_hanging_up_ends_both() -> None:
    phone, first, _ = in_call_with_a_knock()
    phone.command("answer")
    effects = phone.command("conference")
    assert SetHold(first, False) in effects and JoinCalls(KNOCKER, first) in effects
    assert phone.view().conference
    effects = phone.command("hangup")
    assert {Hangup(KNOCKER), Hangup(first)} <= set(effects)
    assert phone.state is PhoneState.ENDED and phone.second is None
    assert sorted(e.direction for e in list(phone.history)[:2]) == ["in", "out"]


def test_when_one_conference_party_leaves_the_other_call_goes_on() -> None:
    phone, first, _ = in_call_with_a_knock()
    phone.command("answer")
    phone.command("conference")
    phone.handle(CallStateChanged(first, CallState.DISCONNECTED, 200, "BYE"))
    assert phone.state is PhoneState.CONNECTED and phone.call.id == KNOCKER
    assert not phone.view().conference and phone.second is None


def test_the_knocking_caller_giving_up_is_a_missed_call() -> None:
    phone, first, _ = in_call_with_a_knock()
    effects = phone.handle(CallStateChanged(KNOCKER, CallState.DISCONNECTED, 487, "Cancelled"))
    assert StopTone(ToneOutput.VOICE) in effects
    assert phone.missed_calls == 1 and phone.second is None and phone.call.id == first


def test_rejecting_the_knock_keeps_the_call() -> None:
    phone, first, _ = in_call_with_a_knock()
    effects = phone.command("reject")
    assert Hangup(KNOCKER, 603) in effects and phone.call.id == first and phone.second is None


def test_when_the_call_ends_the_knocking_call_rings() -> None:
    phone, _, _ = in_call_with_a_knock()
    phone.handle(HookChanged(False))  # the user hangs up the first call
    assert phone.state is PhoneState.RINGING and phone.call.id == KNOCKER
    effects = phone.handle(HookChanged(True))
    assert Answer(KNOCKER, 200) in effects and phone.state is PhoneState.CONNECTED


def test_a_held_call_outlives_the_active_one_and_the_handset_going_down() -> None:
    phone, first, _ = in_call_with_a_knock()
    phone.command("answer")
    phone.handle(CallStateChanged(KNOCKER, CallState.DISCONNECTED, 200, "BYE"))
    assert phone.state is PhoneState.CONNECTED and phone.call.id == first
    assert phone.call.on_hold
    effects = phone.handle(HookChanged(False))  # down: the held call stays held
    assert of_type(effects, Hangup) == [] and phone.call.on_hold
    effects = phone.handle(HookChanged(True))  # up again: take it back
    assert SetHold(first, False) in effects and not phone.call.on_hold


def test_a_conference_call_whose_media_comes_back_is_joined_again() -> None:
    phone, first, _ = in_call_with_a_knock()
    phone.command("answer")
    phone.command("conference")
    effects = phone.handle(CallMediaChanged(first, True, "G722/16000"))
    assert ConnectAudio(first) in effects and JoinCalls(KNOCKER, first) in effects


def test_a_call_on_hold_is_never_wired_to_the_handset() -> None:
    """Its hold not yet answered (the knocker answered and swapped away at once), a call's
    media may come up: it stays cut, so the far end never hears the user."""
    phone, first, _ = in_call_with_a_knock()
    phone.command("answer")
    phone.command("swap")  # the knocker on hold before its media came up
    effects = phone.handle(CallMediaChanged(KNOCKER, True, "G722/16000"))
    assert DisconnectAudio(KNOCKER) in effects and ConnectAudio(KNOCKER) not in effects
    effects = phone.handle(CallMediaChanged(first, True, "G722/16000"))  # resumed
    assert ConnectAudio(first) in effects


def test_a_refused_hold_is_kept_here() -> None:
    """The far end refuses the hold (488): its media goes on, so the phone cuts the call's
    sound itself and the screen's "hold" stays true; resuming wires it up again."""
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.command("hold")
    effects = phone.handle(ReinviteRefused(call, 488, "Not Acceptable Here"))
    assert effects == [DisconnectAudio(call)] and phone.call.on_hold
    assert phone.command("hold", "off") == [SetHold(call, False)]
    effects = phone.handle(ReinviteRefused(call, 488, "Not Acceptable Here"))
    assert effects == [ConnectAudio(call)] and not phone.call.on_hold  # never held


def test_a_refused_resume_leaves_a_held_call_held() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.command("hold")
    phone.handle(CallMediaChanged(call, False))  # held by the network
    phone.command("hold", "off")
    effects = phone.handle(ReinviteRefused(call, 488, "Not Acceptable Here"))
    assert effects == [DisconnectAudio(call)] and phone.call.on_hold  # try again later
    assert phone.command("hold", "off") == [SetHold(call, False)]


PENDING = "Request Pending"


def reoffer_wait(effects: list, call: CallId) -> float:
    """The wait of the one re-offer timer among `effects`, which must be the call's."""
    (timer,) = of_type(effects, StartTimer)
    assert timer.name == reoffer_timer(call)
    return timer.seconds


@pytest.mark.parametrize("hold", [True, False])
def test_an_offer_that_met_the_far_ends_own_is_made_again(
    hold: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """491: the far end was sending an offer of its own (a glare). Nothing changed, so the
    phone makes the same offer again after RFC 3261's wait (2.1-4 s for the side that made
    the call), with no warning: a glare is no fault. A held call stays cut meanwhile."""
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.command("hold")
    if not hold:
        phone.handle(CallMediaChanged(call, False))  # held by the network
        phone.command("hold", "off")
    with caplog.at_level(logging.INFO):
        effects = phone.handle(ReinviteRefused(call, 491, PENDING))
    assert 2.1 <= reoffer_wait(effects, call) <= 4.0
    assert DisconnectAudio(call) in effects and phone.call.on_hold is hold
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "again" in caplog.text
    assert phone.handle(TimerExpired(reoffer_timer(call))) == [SetHold(call, hold)]
    assert phone.handle(TimerExpired(reoffer_timer(call))) == []  # once


def test_the_answering_side_offers_again_sooner() -> None:
    """The side that did not make the call waits 0-2 s, so the two offers do not meet again."""
    phone, _ = make_phone()
    call, _ = incoming(phone)
    phone.handle(HookChanged(True))
    phone.handle(CallMediaChanged(call, True, "G722/16000"))
    phone.handle(CallStateChanged(call, CallState.CONFIRMED, 200, "OK"))
    phone.command("hold")
    wait = reoffer_wait(phone.handle(ReinviteRefused(call, 491, PENDING)), call)
    assert 0.0 <= wait <= 2.0
    assert phone.handle(TimerExpired(reoffer_timer(call))) == [SetHold(call, True)]


def hold_met_by_a_491() -> tuple[Phone, CallId]:
    """A call the phone made, its hold answered 491: the hold waits to be offered again."""
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    phone.command("hold")
    phone.handle(ReinviteRefused(call, 491, PENDING))
    return phone, call


def test_the_users_next_wish_replaces_an_offer_waiting_after_a_491() -> None:
    phone, call = hold_met_by_a_491()
    effects = phone.command("hold", "off")
    assert effects[:2] == [CancelTimer(reoffer_timer(call)), SetHold(call, False)]
    # A timer already on its way when it was cancelled offers nothing more.
    assert phone.handle(TimerExpired(reoffer_timer(call))) == []


def test_an_offer_waiting_after_a_491_ends_with_its_call() -> None:
    phone, call = hold_met_by_a_491()
    phone.handle(CallStateChanged(call, CallState.DISCONNECTED, 200, "OK"))
    assert of_type(phone.handle(TimerExpired(reoffer_timer(call))), SetHold) == []


def test_a_refusal_for_a_call_gone_changes_nothing() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    assert phone.handle(ReinviteRefused(CallId("out-99"), 488)) == []
    assert not phone.call.on_hold
