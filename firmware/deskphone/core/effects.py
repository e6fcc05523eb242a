"""What the core wants done: the effects `Phone.handle` returns for the adapters to carry out.

The core never calls an adapter; it returns these, and the app hands each to the adapter that
owns it. That keeps the core pure and lets unit tests read its decisions as plain data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from deskphone.core.events import CallId
from deskphone.core.history import HistoryEntry
from deskphone.core.settings import AudioOutput, Settings
from deskphone.core.tones import Tone


class ToneOutput(enum.Enum):
    """Where a tone sounds: the voice path (handset or speaker) or the ringer."""

    VOICE = "voice"
    RINGER = "ringer"


class DtmfMethod(enum.Enum):
    RFC4733 = "rfc4733"
    SIP_INFO = "sip-info"


class Effect:
    """Base of every effect; subclasses are frozen dataclasses."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Register(Effect):
    """Send (or resend) a REGISTER for this account."""

    account: int


@dataclass(frozen=True, slots=True)
class MakeCall(Effect):
    """Call `target` (dialled digits or a SIP URI) from `account`."""

    call: CallId
    account: int
    target: str


@dataclass(frozen=True, slots=True)
class Answer(Effect):
    """Answer an incoming call with `code`: 180 to ring, 200 to take it."""

    call: CallId
    code: int = 200


@dataclass(frozen=True, slots=True)
class Hangup(Effect):
    """End a call: CANCEL, BYE or a final response `code` (0 lets the stack choose)."""

    call: CallId
    code: int = 0


@dataclass(frozen=True, slots=True)
class SendDtmf(Effect):
    call: CallId
    digits: str
    method: DtmfMethod


@dataclass(frozen=True, slots=True)
class SetHold(Effect):
    """Put the call on hold (re-INVITE sendonly) or take it off hold."""

    call: CallId
    hold: bool


@dataclass(frozen=True, slots=True)
class Transfer(Effect):
    """Blind transfer (REFER) of the call to `target`."""

    call: CallId
    target: str


@dataclass(frozen=True, slots=True)
class ConnectAudio(Effect):
    """Join the call's audio to the user's microphone and earpiece (again, if its media
    was renegotiated)."""

    call: CallId


@dataclass(frozen=True, slots=True)
class JoinCalls(Effect):
    """Three-way conference: each call hears the other as well as the user."""

    first: CallId
    second: CallId


@dataclass(frozen=True, slots=True)
class DisconnectAudio(Effect):
    call: CallId


@dataclass(frozen=True, slots=True)
class SetMute(Effect):
    """Stop (or resume) sending the microphone to the far end."""

    muted: bool


@dataclass(frozen=True, slots=True)
class PlayTone(Effect):
    """Play a tone on an output, replacing whatever tone was playing there."""

    tone: Tone
    output: ToneOutput = ToneOutput.VOICE


@dataclass(frozen=True, slots=True)
class StopTone(Effect):
    output: ToneOutput = ToneOutput.VOICE


@dataclass(frozen=True, slots=True)
class StartTimer(Effect):
    """Post `TimerExpired(name)` after `seconds`; a timer of the same name is replaced."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Effect):
    name: str


@dataclass(frozen=True, slots=True)
class SetRoute(Effect):
    """Send the voice path (call audio and tones) to the handset or the speaker."""

    output: AudioOutput


@dataclass(frozen=True, slots=True)
class SetVolume(Effect):
    """An output's volume, 0 (silent) to `settings.VOLUME_MAX`."""

    output: AudioOutput
    level: int


@dataclass(frozen=True, slots=True)
class SetContrast(Effect):
    level: int


@dataclass(frozen=True, slots=True)
class SaveSettings(Effect):
    """The user's settings changed: keep them across restarts."""

    settings: Settings


@dataclass(frozen=True, slots=True)
class LogCall(Effect):
    """A call ended: add it to the saved call log."""

    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class PowerOff(Effect):
    """The battery is spent: unregister, save the state and power the machine off."""

    reason: str
