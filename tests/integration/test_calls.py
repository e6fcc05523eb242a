"""The whole phone against real peers: Kamailio registrar, baresip far end, RTP on loopback."""

from __future__ import annotations

import gc
import logging
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deskphone import USER_AGENT
from deskphone.core.events import RegState
from deskphone.core.phone import EndReason, PhoneState
from deskphone.sip import media
from deskphone.sip.media import CLOCK_LINGER
from tests.harness import PhoneUnderTest
from tests.integration.conftest import FAR_TONE, PHONE_TONE
from tests.rig import g722, wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED, Baresip
from tests.rig.kamailio import Kamailio
from tests.rig.signals import has_tone, read_wav, to_pcm16, tone, write_wav

pytestmark = pytest.mark.integration

AUDIO_SECONDS = 3.0  # how long a call runs before hanging up; tones must fill half of it


def connected(phone: PhoneUnderTest, timeout: float = 10.0) -> None:
    phone.wait_for(
        lambda v: (
            v.state is PhoneState.CONNECTED
            and v.call is not None
            and v.call.connected_at is not None
        ),
        timeout,
        "the call to be up",
    )


def call_from_the_phone(
    phone_factory, baresip_factory, microphone: Path | None = None, **far_options: Any
) -> tuple[PhoneUnderTest, Baresip]:
    """The phone (1001, sending `microphone` if given) registered and in a call it made to
    baresip 1002 (`far_options`)."""
    far = baresip_factory("1002", **far_options)
    phone = phone_factory(microphone=microphone)
    phone.wait_registered()
    phone.command("dial", "1002")
    connected(phone)
    far.wait_event(CALL_ESTABLISHED)
    return phone, far


SLOW_MID_CALL = pytest.mark.kamailio(in_dialog_invite_delay_ms=300)  # re-INVITEs and ACKs


def waits_and_no_warning(
    caplog: pytest.LogCaptureFixture, *waits: str, source: str = "deskphone.sip.stack"
) -> None:
    """`source` (the SIP stack) said each of `waits` ("out-1: resume waits", say: the case
    in hand happened), and the journal holds no warning or error: the refusal of the early
    re-INVITE was expected and handled, not a failure to show the user."""
    messages = [r.getMessage() for r in caplog.records if r.name == source]
    for wait in waits:
        assert any(wait in m for m in messages), (wait, messages)
    warned = [r for r in caplog.records if r.name.startswith("deskphone")]
    assert not [r.getMessage() for r in warned if r.levelno >= logging.WARNING]


def assert_audio_both_ways(phone: PhoneUnderTest, far: Baresip) -> None:
    sent, rate = read_wav(far.last_received_wav())
    assert has_tone(sent, rate, PHONE_TONE, min_seconds=AUDIO_SECONDS / 2), (
        "the phone's microphone tone never reached the far end"
    )
    recording = phone.earpiece_recording
    assert recording is not None, "the phone recorded nothing"
    heard, rate = read_wav(recording)
    assert has_tone(heard, rate, FAR_TONE, min_seconds=AUDIO_SECONDS / 2), (
        "the far end's tone never reached the phone's earpiece"
    )


def test_registers_with_digest_auth_and_refreshes_before_expiry(kamailio, phone_factory) -> None:
    phone = phone_factory(expiry=10)
    phone.wait_registered()
    assert "1001: registered" in phone.screen_text()
    assert len(kamailio.wait_for_bindings("1001", 1, 5)) == 1
    registers = kamailio.requests("REGISTER", from_user="1001")
    assert registers and {r.user_agent for r in registers} == {USER_AGENT}
    first_count = kamailio.count("REGISTER", from_user="1001")
    # The binding was granted for 10 s; past that it is only alive if the phone refreshed it.
    time.sleep(11)
    assert kamailio.count("REGISTER", from_user="1001") > first_count
    assert len(kamailio.bindings("1001")) == 1
    assert phone.view().registrations[0].state is RegState.REGISTERED


def test_what_start_up_built_is_left_out_of_collections_until_the_phone_stops(
    phone_factory,
) -> None:
    """A full collection walked the objects start-up builds (10 ms on a PC, several times that
    on a Pi) with the interpreter held, while the audio callbacks waited: once the phone is up
    they are frozen out of collections, and thawed when it stops, so that a process which
    starts phone after phone (these tests) can still collect what each one built."""
    assert gc.get_freeze_count() == 0
    phone = phone_factory()
    phone.wait_registered()
    # This process froze more than the phone built; the phone alone is ~39,000 objects.
    assert gc.get_freeze_count() > 30_000
    phone.stop()
    assert gc.get_freeze_count() == 0


def test_wrong_password_fails_clearly_without_a_tight_retry_loop(
    kamailio, phone_factory, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="deskphone")
    phone = phone_factory(password="not-the-password", retry_min=1.0, retry_max=4.0)
    view = phone.wait_for(
        lambda v: v.registrations[0].state is RegState.FAILED, 10, "registration to fail"
    )
    code = view.registrations[0].code
    assert code in (401, 403)
    phone.wait_screen(f"registration failed ({code}")
    assert any(f"registration failed ({code}" in r.getMessage() for r in caplog.records)
    watched_from = time.monotonic()
    time.sleep(8)
    # Backoff doubles from 1 s (jitter takes at most 20 % off) and is capped at 4 s: within
    # 8 s of the first failure at most three retries start. Each attempt is one REGISTER
    # without credentials and one with them, so 4 attempts are 8 REGISTERs at the very most.
    attempts = kamailio.count("REGISTER", from_user="1001")
    assert 4 <= attempts <= 8, f"{attempts} REGISTERs in {time.monotonic() - watched_from:.1f} s"
    assert kamailio.bindings("1001") == []


@pytest.mark.parametrize(
    ("setter", "bridge_shift", "codec_shift"), [("works", 1, 0), ("is missing", 0, 2)]
)
def test_a_g722_call_carries_the_microphone_rounded_down_to_the_codecs_bits(
    kamailio,
    phone_factory,
    baresip_factory,
    tmp_path,
    monkeypatch,
    setter: str,
    bridge_shift: int,
    codec_shift: int,
) -> None:
    """G.722 codes 14-bit samples: the bridge takes the 16-bit ones' lowest bit off rounding
    down, as spandsp does, not pjmedia's codec, whose division rounds toward zero (a dead band
    around silence that cost speech 0.04 PESQ: sip/media.py). The far end decodes, bit for
    bit, the rig's model of that path (tests/rig/g722.py) run on the microphone's samples.
    A pjsua2 build without the shift's setter keeps pjmedia's two bits, and the bridge then
    adds none (or the phone would send 6 dB soft)."""
    if setter == "is missing":
        real_setter = media.set_g722_pcm_shift

        def pjmedias_own(shift: int) -> bool:  # as if the setter were not there
            real_setter(codec_shift)  # pjmedia's default (an earlier phone in this process set 0)
            return False

        monkeypatch.setattr(media, "set_g722_pcm_shift", pjmedias_own)
    rate = 16000
    # A second of silence first: the coder's state settles there, wherever the call began.
    played = np.concatenate([np.zeros(rate, np.float32), tone([350.0, 1750.0], 4.0, rate)])
    microphone = write_wav(tmp_path / "microphone.wav", played, rate)
    phone, far = call_from_the_phone(phone_factory, baresip_factory, microphone, codecs=["G722"])
    time.sleep(AUDIO_SECONDS)
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)
    heard, heard_rate = read_wav(far.last_received_wav())
    assert heard_rate == rate
    recorded = np.round(heard * 32768).astype(np.int16)  # the WAV's samples again
    pcm = to_pcm16(played)  # the microphone WAV's samples
    whole = pcm[: len(pcm) // g722.FRAME * g722.FRAME]
    coded = g722.pjmedia_encode(whole, bridge_shift=bridge_shift, codec_shift=codec_shift)
    expected = g722.spandsp_decode(coded)
    # Where the far end's recording holds 50 ms of the tone exactly as coded; then a second.
    key = expected[rate + 400 : rate + 1200]
    windows = np.lib.stride_tricks.sliding_window_view(recorded, len(key))
    starts = np.flatnonzero((windows == key).all(axis=1))
    assert len(starts) == 1, "the microphone's tone, as the model codes it, is not in the recording"
    begin = int(starts[0])  # the key's place in the recording
    got = recorded[begin : begin + rate]  # a second of the tone, from the key on
    assert np.array_equal(got, expected[rate + 400 : rate + 400 + len(got)]) and len(got) == rate


def test_outgoing_call_dialled_on_the_keypad_carries_audio_both_ways(
    kamailio, phone_factory, baresip_factory, tone_wav
) -> None:
    far = baresip_factory("1002", audio_source=tone_wav(FAR_TONE))
    phone = phone_factory()
    phone.wait_registered()
    phone.lift()
    phone.wait_state(PhoneState.OFF_HOOK)
    phone.press("1002#")
    connected(phone)
    far.wait_event(CALL_ESTABLISHED)
    assert "1002" in phone.wait_screen("in call")
    time.sleep(AUDIO_SECONDS)
    phone.replace()
    phone.wait_screen("call ended")
    phone.wait_state(PhoneState.IDLE, 5)
    far.wait_event(CALL_CLOSED)
    assert_audio_both_ways(phone, far)
    # Dial tone, key clicks, ringback and the call kept the media clock running throughout:
    # one session, so one earpiece recording, not one per tone.
    assert phone.earpiece_recording is not None
    assert len(list(phone.earpiece_recording.parent.glob("earpiece-*.wav"))) == 1
    assert kamailio.count("BYE", from_user="1001") == 1
    # Every request the phone sent names it (pjsip builds the ACK of a 2xx bare, as RFC 3261
    # allows), and no re-INVITE followed the answer: one INVITE and its authenticated copy.
    sent = [r for r in kamailio.requests(from_user="1001") if r.method != "ACK"]
    assert {r.method for r in sent} >= {"REGISTER", "INVITE", "BYE"}
    assert {r.user_agent for r in sent} == {USER_AGENT}
    assert len({r.cseq for r in kamailio.requests("INVITE", from_user="1001")}) == 2
    assert len(kamailio.bindings("1001")) == 1  # calls leave the one binding alone


def test_each_call_hears_the_microphone_file_from_its_start(
    kamailio, phone_factory, baresip_factory, tone_wav, tmp_path
) -> None:
    # The tone fills the first 1.5 s of the file; a call lasts longer. Played on from where
    # the first call left it, the second call would send only the silence after it.
    microphone = write_wav(
        tmp_path / "tone-then-silence.wav",
        np.concatenate([tone(PHONE_TONE, 1.5), tone([], 20.0)]),
        16000,
    )
    far = baresip_factory("1002", audio_source=tone_wav(FAR_TONE))
    phone = phone_factory(microphone=microphone)
    phone.wait_registered()
    for call in ("first", "second"):
        closed = len(far.events())
        phone.command("dial", "1002")
        connected(phone)
        time.sleep(AUDIO_SECONDS)
        phone.command("hangup")
        phone.wait_state(PhoneState.IDLE, 5)
        far.wait_event(CALL_CLOSED, since=closed)
        sent, rate = read_wav(far.last_received_wav())
        assert has_tone(sent, rate, PHONE_TONE, min_seconds=1.0), f"{call} call: no tone sent"
        time.sleep(CLOCK_LINGER + 1.0)  # the session ends: the next call opens its own
    assert phone.earpiece_recording is not None
    assert len(list(phone.earpiece_recording.parent.glob("earpiece-*.wav"))) == 2


def test_incoming_call_rings_and_lifting_the_hook_answers(
    kamailio, phone_factory, baresip_factory, tone_wav
) -> None:
    far = baresip_factory("1002", audio_source=tone_wav(FAR_TONE), auto_answer=False)
    phone = phone_factory()
    phone.wait_registered()
    kamailio.wait_for_bindings("1001", 1, 5)
    far.dial(kamailio.aor("1001"))
    phone.wait_state(PhoneState.RINGING)
    assert "1002" in phone.wait_screen("incoming call")
    phone.lift()
    connected(phone)
    far.wait_event(CALL_ESTABLISHED)
    time.sleep(AUDIO_SECONDS)
    far.hangup()  # the far end hangs up first
    phone.wait_screen("far end hung up")
    assert phone.view().end_reason is EndReason.REMOTE_HUNG_UP
    phone.replace()
    phone.wait_state(PhoneState.IDLE, 5)
    assert_audio_both_ways(phone, far)
    assert phone.view().missed_calls == 0


def test_missed_incoming_call_is_counted_on_the_idle_screen(
    kamailio, phone_factory, baresip_factory
) -> None:
    far = baresip_factory("1002", auto_answer=False)
    phone = phone_factory()
    phone.wait_registered()
    kamailio.wait_for_bindings("1001", 1, 5)
    far.dial(kamailio.aor("1001"))
    phone.wait_state(PhoneState.RINGING)
    far.hangup()
    phone.wait_screen("missed call")
    phone.wait_state(PhoneState.IDLE, 5)
    assert "1 missed call" in phone.screen_text()


@pytest.mark.parametrize("method", ["rfc4733", "sip-info"])
def test_dtmf_pressed_in_a_call_arrives_at_the_far_end(
    method, kamailio, phone_factory, baresip_factory
) -> None:
    far = baresip_factory("1002")
    phone = phone_factory(account_extra=f'dtmf = "{method}"')
    phone.wait_registered()
    phone.lift()
    phone.press("1002#")
    connected(phone)
    far.wait_event(CALL_ESTABLISHED)
    phone.press("5*")
    assert far.wait_dtmf("5*").endswith("5*")
    if method == "sip-info":
        assert kamailio.count("INFO", from_user="1001") == 2
    phone.replace()
    far.wait_event(CALL_CLOSED)


def test_calling_a_number_that_does_not_exist_shows_not_found(kamailio, phone_factory) -> None:
    phone = phone_factory()
    phone.wait_registered()
    phone.lift()
    phone.press("1999#")
    phone.wait_state(PhoneState.ENDED)
    assert phone.view().end_reason is EndReason.NOT_FOUND
    assert "not found" in phone.screen_text()
    replies = [r for r in kamailio.replies() if r.method == "INVITE" and r.code == 404]
    assert replies, "Kamailio never answered 404"


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_phone_re_registers_by_itself_after_the_registrar_restarts(
    transport, kamailio, phone_factory
) -> None:
    retry_max = 4.0
    phone = phone_factory(transport=transport, expiry=10, retry_min=1.0, retry_max=retry_max)
    phone.wait_registered()
    kamailio.wait_for_bindings("1001", 1, 5)
    kamailio.kill()
    # The phone learns at its next refresh (≤ 5 s): at once over TCP (connection refused),
    # after SIP's 32 s transaction timeout over UDP.
    phone.wait_for(
        lambda v: v.registrations[0].state is RegState.FAILED,
        15 if transport == "tcp" else 50,
        "the phone to notice the registrar is gone",
    )
    assert "registration failed" in phone.screen_text()
    kamailio.restart()
    back = time.monotonic()
    phone.wait_registered(timeout=retry_max + 5)
    took = time.monotonic() - back
    assert took <= retry_max + 1.0, f"re-registered {took:.1f} s after the registrar came back"
    assert len(kamailio.wait_for_bindings("1001", 1, 2)) == 1


def test_calling_with_the_registrar_down_shows_unreachable(kamailio, phone_factory) -> None:
    phone = phone_factory(transport="tcp")
    phone.wait_registered()
    kamailio.kill()
    phone.lift()
    phone.press("1002#")
    phone.wait_state(PhoneState.ENDED)
    assert phone.view().end_reason is EndReason.UNREACHABLE
    assert "unreachable" in phone.screen_text()


@pytest.mark.parametrize(
    ("codecs", "expected"),
    [
        (("G722", "PCMA", "PCMU"), "G722/16000"),
        (("PCMU", "G722"), "PCMU/8000"),
        (("PCMA",), "PCMA/8000"),
    ],
)
def test_codec_order_comes_from_the_config(
    codecs, expected, kamailio, phone_factory, baresip_factory
) -> None:
    far = baresip_factory("1002")  # offers and accepts G722, PCMU and PCMA
    phone = phone_factory(codecs=codecs)
    phone.wait_registered()
    phone.command("dial", "1002")
    connected(phone)
    view = phone.wait_for(lambda v: v.call is not None and v.call.codec, 5, "the codec")
    assert view.call.codec == expected
    assert expected.split("/")[0] in phone.screen_text()
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)


def test_unsolicited_message_summary_sets_message_waiting(kamailio, phone_factory) -> None:
    phone = phone_factory()
    phone.wait_registered()
    assert phone.app.stack is not None
    body = "Messages-Waiting: yes\r\nVoice-Message: 3/1\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        here = sock.getsockname()[1]
        there = phone.app.stack.sip_port
        sock.sendto(
            (
                f"NOTIFY sip:1001@127.0.0.1:{there} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{here};branch=z9hG4bK-mwi-1;rport\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:voicemail@127.0.0.1>;tag=mwi\r\n"
                "To: <sip:1001@127.0.0.1>\r\n"
                "Call-ID: mwi-test@127.0.0.1\r\n"
                "CSeq: 1 NOTIFY\r\n"
                f"Contact: <sip:voicemail@127.0.0.1:{here}>\r\n"
                "Event: message-summary\r\n"
                "Subscription-State: active\r\n"
                "Content-Type: application/simple-message-summary\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode(),
            ("127.0.0.1", there),
        )
        reply = sock.recv(4096).decode()
    assert reply.startswith("SIP/2.0 200"), reply
    view = phone.wait_for(lambda v: v.messages_waiting, 5, "message waiting")
    assert view.new_messages == 3


def test_hold_and_resume_renegotiate_the_call(kamailio, phone_factory, baresip_factory) -> None:
    phone, far = call_from_the_phone(phone_factory, baresip_factory)
    invites = len(kamailio.requests("INVITE", from_user="1001"))
    phone.command("hold")
    view = phone.wait_for(lambda v: v.call is not None and not v.call.media_active, 5, "hold")
    assert view.call.on_hold and "hold" in phone.screen_text()
    phone.command("hold", "off")
    phone.wait_for(lambda v: v.call is not None and v.call.media_active, 5, "resume")
    # Each of hold and resume was one re-INVITE through the registrar.
    assert len(kamailio.requests("INVITE", from_user="1001")) == invites + 2
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)


@SLOW_MID_CALL
def test_hold_and_back_in_one_go_leaves_the_call_off_hold(
    kamailio, phone_factory, baresip_factory, tone_wav, caplog
) -> None:
    """Hold and resume at once, as when the conference key follows answering a second call:
    the resume comes while the hold's re-INVITE is unanswered (Kamailio holds it 0.3 s), and
    pjsua refuses a second offer then. The phone makes it once the hold is answered, so the
    call ends where the user left it, with the far end's sound back in the earpiece."""
    caplog.set_level(logging.INFO, logger="deskphone.sip.stack")
    phone, far = call_from_the_phone(
        phone_factory, baresip_factory, audio_source=tone_wav(FAR_TONE)
    )
    since = time.time()
    phone.on_loop(lambda: (phone.app.command("hold", "on"), phone.app.command("hold", "off")))
    wait_until(
        lambda: len(kamailio.requests("INVITE", from_user="1001", since=since)) >= 2,
        5,
        "the resume's re-INVITE after the hold's",
    )
    phone.wait_for(lambda v: v.call is not None and v.call.media_active, 5, "the resume")
    recording = phone.earpiece_recording  # this session's: a later one records anew
    assert recording is not None, "the phone records nothing"
    time.sleep(AUDIO_SECONDS)
    assert not phone.view().call.on_hold
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)
    phone.wait_state(PhoneState.ENDED)
    # The earpiece is cut from a held call, so the far end's tone there says the call came
    # back. (baresip's own recording of what it hears stays empty after any re-INVITE.)
    heard, rate = read_wav(recording)
    assert has_tone(heard, rate, FAR_TONE, min_seconds=AUDIO_SECONDS / 2)
    waits_and_no_warning(caplog, "out-1: resume waits")


@SLOW_MID_CALL
def test_a_resume_still_waiting_when_the_call_ends_goes_with_it(
    kamailio, phone_factory, baresip_factory, caplog
) -> None:
    """Hold, resume and hang up at once: the resume waits for the hold's answer, and the
    call's end, not a late re-INVITE on a call that is going, is its last word (a re-INVITE
    then would be refused, and the journal would say a call operation failed)."""
    caplog.set_level(logging.INFO, logger="deskphone.sip.stack")
    phone, far = call_from_the_phone(phone_factory, baresip_factory)
    phone.on_loop(
        lambda: [phone.app.command(*c) for c in (("hold", "on"), ("hold", "off"), ("hangup",))]
    )
    far.wait_event(CALL_CLOSED)
    phone.wait_state(PhoneState.ENDED)  # the call's last events are in, and what they woke
    waits_and_no_warning(caplog, "out-1: resume waits")


def far_end_heard_in_turns(
    recording: tuple[np.ndarray, int], began: float, turns: list[tuple[float, bool]]
) -> None:
    """The far end's `recording` (begun at `began`, monotonic) holds the phone's tone, or
    none of it, in turns: (when the turn began, monotonic; tone or not); the last runs on to
    the recording's end. Each turn's edges are left out, blurred by where the recording began
    and by the bridge's buffers."""
    heard, rate = recording
    margin = 0.3
    ends = [start for start, _ in turns[1:]] + [began + len(heard) / rate]
    for (start, tone_on), end in zip(turns, ends, strict=True):
        part = heard[int((start - began + margin) * rate) : int((end - began - margin) * rate)]
        if tone_on:
            assert has_tone(part, rate, PHONE_TONE, min_seconds=0.5), (start - began, "tone")
        else:
            assert not has_tone(part, rate, PHONE_TONE, min_seconds=0.1), (start - began, "none")


@pytest.mark.kamailio(in_dialog_invite_refusal=488)
def test_a_hold_the_far_end_refuses_is_kept_by_the_phone(
    kamailio, phone_factory, baresip_factory, tone_wav, caplog
) -> None:
    """Some far ends (or their PBX) refuse a hold's re-INVITE. The call's media then goes on
    as before, and the phone cuts the call's sound itself: the far end must not hear the
    user while the screen says "hold". A resume (refused as well here: the network never
    held the call) brings the sound back."""
    phone, far = call_from_the_phone(
        phone_factory, baresip_factory, audio_source=tone_wav(FAR_TONE)
    )
    began = time.monotonic()  # about where the far end's recording begins

    def refusals() -> int:
        return sum("far end refused" in r.getMessage() for r in caplog.records)

    time.sleep(AUDIO_SECONDS / 2)
    phone.command("hold")
    wait_until(lambda: refusals() == 1, 5, "the phone to hear the hold refused")
    turns = [(began, True), (time.monotonic(), False)]
    assert phone.view().call.on_hold and "hold" in phone.screen_text()
    time.sleep(AUDIO_SECONDS / 2)
    phone.command("hold", "off")
    wait_until(lambda: refusals() == 2, 5, "the phone to hear the resume refused")
    turns.append((time.monotonic(), True))
    assert not phone.view().call.on_hold
    time.sleep(AUDIO_SECONDS / 2)
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)
    far_end_heard_in_turns(read_wav(far.last_received_wav()), began, turns)


@pytest.mark.kamailio(in_dialog_invite_refusal=491, in_dialog_invite_refusals=1)
def test_a_hold_that_met_the_far_ends_own_offer_is_made_again(
    kamailio, phone_factory, baresip_factory, caplog
) -> None:
    """491 Request Pending: the far end was sending an offer of its own when the phone's hold
    came (here Kamailio answers the first re-INVITE so). Nothing changed on either side, so
    the phone offers the hold again after RFC 3261's wait, 2.1-4 s for the side that made
    the call, and the call ends held, with no warning in the journal."""
    caplog.set_level(logging.INFO, logger="deskphone.core.phone")
    phone, far = call_from_the_phone(phone_factory, baresip_factory)
    since = time.time()
    phone.command("hold")
    view = phone.wait_for(
        lambda v: v.call is not None and not v.call.media_active, 8, "the hold made again"
    )
    assert view.call.on_hold and "hold" in phone.screen_text()
    time.sleep(1.0)  # nothing more is offered
    refused, held = kamailio.requests("INVITE", from_user="1001", since=since)
    assert 2.1 <= held.time - refused.time <= 4.0 + 0.5  # the wait, and Kamailio's own time
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)
    waits_and_no_warning(caplog, "offers the hold again", source="deskphone.core.phone")


def test_blind_transfer_hands_the_far_end_to_another_number(
    kamailio, phone_factory, baresip_factory
) -> None:
    transferee = baresip_factory("1002")
    target = baresip_factory("1004")
    phone = phone_factory()
    phone.wait_registered()
    phone.command("dial", "1002")
    connected(phone)
    transferee.wait_event(CALL_ESTABLISHED)
    phone.command("transfer", "1004")
    # The far end calls the transfer target itself, and our call ends.
    target.wait_event(CALL_ESTABLISHED, timeout=10)
    phone.wait_state(PhoneState.ENDED, 10)
    assert kamailio.count("REFER", from_user="1001") == 1
    assert [r for r in kamailio.requests("INVITE", from_user="1002") if r.to_user == "1004"]


KNOCKER_TONE = 800.0


def second_call_knocking(
    kamailio: Kamailio, phone_factory, baresip_factory, tone_wav
) -> tuple[PhoneUnderTest, Baresip, Baresip]:
    """The phone in a call with 1002 (sending FAR_TONE), 1004 (KNOCKER_TONE) knocking."""
    first = baresip_factory("1002", audio_source=tone_wav(FAR_TONE))
    knocker = baresip_factory("1004", audio_source=tone_wav(KNOCKER_TONE))
    phone = phone_factory()
    phone.wait_registered()
    kamailio.wait_for_bindings("1001", 1, 5)
    phone.command("dial", "1002")
    connected(phone)
    first.wait_event(CALL_ESTABLISHED)
    knocker.dial(kamailio.aor("1001"))
    view = phone.wait_for(lambda v: v.second is not None, 5, "the second caller to knock")
    assert view.state is PhoneState.CONNECTED and view.call.number == "1002"
    assert "1004" in phone.screen_text()
    return phone, first, knocker


def three_party_call(
    kamailio: Kamailio, phone_factory, baresip_factory, tone_wav
) -> tuple[PhoneUnderTest, Baresip, Baresip]:
    """The phone in a call with 1002, 1004 knocking and answered: 1002 is on hold."""
    phone, first, knocker = second_call_knocking(kamailio, phone_factory, baresip_factory, tone_wav)
    phone.command("answer")
    knocker.wait_event(CALL_ESTABLISHED)
    phone.wait_for(
        lambda v: (
            v.call.number == "1004"
            and v.call.connected_at is not None
            and v.second is not None
            and v.second.on_hold
        ),
        5,
        "the knocking call answered, the first on hold",
    )
    return phone, first, knocker


def test_call_waiting_and_swap_between_two_calls(
    kamailio, phone_factory, baresip_factory, tone_wav
) -> None:
    phone, first, knocker = three_party_call(kamailio, phone_factory, baresip_factory, tone_wav)
    invites = len(kamailio.requests("INVITE", from_user="1001"))
    phone.command("swap")
    phone.wait_for(
        lambda v: v.call.number == "1002" and v.call.media_active and v.second.on_hold,
        5,
        "the swap",
    )
    # A swap is two re-INVITEs: hold for one call, resume for the other.
    assert len(kamailio.requests("INVITE", from_user="1001")) == invites + 2
    phone.command("hangup")  # ends 1002; 1004 stays, on hold
    first.wait_event(CALL_CLOSED)
    view = phone.wait_for(lambda v: v.call is not None and v.call.number == "1004", 5, "1004")
    assert view.state is PhoneState.CONNECTED and view.call.on_hold and view.second is None
    phone.command("hangup")
    knocker.wait_event(CALL_CLOSED)


@SLOW_MID_CALL
def test_swap_straight_after_answering_the_knocker_ends_on_the_first_call(
    kamailio, phone_factory, baresip_factory, tone_wav, caplog
) -> None:
    """Answer the knocking call and swap back at once: the first call's hold is unanswered
    and the second call's ACK has not come (Kamailio holds both 0.3 s), and pjsua refuses a
    re-INVITE in either state. Each wish waits for its call and goes then; the user ends up
    talking to the first caller with the second on hold."""
    caplog.set_level(logging.INFO, logger="deskphone.sip.stack")
    phone, first, knocker = second_call_knocking(kamailio, phone_factory, baresip_factory, tone_wav)
    phone.on_loop(lambda: (phone.app.command("answer"), phone.app.command("swap")))
    knocker.wait_event(CALL_ESTABLISHED)

    def invites_to(far_end: str) -> int:  # told apart by CSeq: retransmissions share one
        return len({r.cseq for r in kamailio.requests("INVITE", "1001", to_user=far_end)})

    # 1002's INVITEs: the call (challenged, so twice), its hold and its return; 1004's: its hold.
    wait_until(lambda: invites_to("1002") == 4 and invites_to("1004") == 1, 5, "two re-INVITEs")
    phone.wait_for(
        lambda v: v.call.number == "1002" and v.call.media_active and v.second.on_hold,
        5,
        "the swap",
    )
    recording = phone.earpiece_recording  # this session's: a later one records anew
    assert recording is not None, "the phone records nothing"
    time.sleep(AUDIO_SECONDS)
    phone.command("hangup")  # ends 1002; 1004 stays, on hold
    first.wait_event(CALL_CLOSED)
    phone.wait_for(lambda v: v.call is not None and v.call.number == "1004", 5, "1004")
    phone.command("hangup")
    knocker.wait_event(CALL_CLOSED)
    phone.wait_state(PhoneState.ENDED)
    heard, rate = read_wav(recording)
    assert has_tone(heard, rate, FAR_TONE, min_seconds=AUDIO_SECONDS / 2)
    waits_and_no_warning(caplog, "out-1: resume waits", "in-1: hold waits")


def test_mute_silences_the_microphone_and_unmute_brings_it_back(
    kamailio, phone_factory, baresip_factory
) -> None:
    phone, far = call_from_the_phone(phone_factory, baresip_factory)
    began = time.monotonic()  # about where the far end's recording begins
    turns = [(began, True)]
    for setting in ("on", "off"):
        time.sleep(AUDIO_SECONDS / 2)
        phone.command("mute", setting)
        turns.append((time.monotonic(), setting == "off"))
    assert not phone.view().muted
    time.sleep(AUDIO_SECONDS / 2)
    phone.command("hangup")
    far.wait_event(CALL_CLOSED)
    far_end_heard_in_turns(read_wav(far.last_received_wav()), began, turns)


def test_a_call_answered_while_muted_hears_nothing_until_unmute(
    kamailio, phone_factory, baresip_factory, tone_wav
) -> None:
    """Mute is the microphone's, not a call's: a call joined while it is on (here the
    knocker, answered while muted) hears nothing of the user until it is off."""
    phone, _, knocker = second_call_knocking(kamailio, phone_factory, baresip_factory, tone_wav)
    phone.command("mute", "on")
    phone.command("answer")
    knocker.wait_event(CALL_ESTABLISHED)
    began = time.monotonic()
    assert phone.view().muted
    time.sleep(AUDIO_SECONDS / 2)
    phone.command("mute", "off")
    turns = [(began, False), (time.monotonic(), True)]
    time.sleep(AUDIO_SECONDS / 2)
    phone.command("hangup")  # ends the knocker's call
    knocker.wait_event(CALL_CLOSED)
    far_end_heard_in_turns(read_wav(knocker.last_received_wav()), began, turns)


def test_conference_lets_each_party_hear_the_other(
    kamailio, phone_factory, baresip_factory, tone_wav
) -> None:
    phone, first, knocker = three_party_call(kamailio, phone_factory, baresip_factory, tone_wav)
    phone.command("conference")
    phone.wait_for(
        lambda v: v.conference and v.call.media_active and v.second.media_active,
        5,
        "the conference",
    )
    time.sleep(AUDIO_SECONDS)
    phone.command("hangup")
    first.wait_event(CALL_CLOSED)
    knocker.wait_event(CALL_CLOSED)
    phone.wait_state(PhoneState.ENDED)
    # The knocker (never held, so its recording runs unbroken) heard the first caller through
    # the phone's bridge. Two tones arrive mixed (the phone's microphone too), so each holds
    # about half the power.
    heard, rate = read_wav(knocker.last_received_wav())
    assert has_tone(heard, rate, FAR_TONE, min_ratio=0.3, min_seconds=AUDIO_SECONDS / 2)
    assert {e.number for e in phone.view().history[:2]} == {"1002", "1004"}
