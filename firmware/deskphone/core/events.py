"""What happened: the small immutable events every adapter posts to the loop.

Adapters (SIP, keypad, hook switch, timers, control socket) translate what their library
reported into one of these and post it with `loop.call_soon_threadsafe`; only the core decides
what to do about it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NewType

from deskphone.core.power import PowerReading

CallId = NewType("CallId", str)
"""A call's handle, stable for the call's life. Outgoing ids come from the core, incoming
ids from the SIP adapter; the two never collide because of their prefixes."""


class RegState(enum.Enum):
    """Where an account's registration stands, as the display shows it."""

    DISABLED = "disabled"
    UNREGISTERED = "not registered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "registration failed"


class CallState(enum.Enum):
    """The INVITE session's state as the SIP stack reports it (RFC 3261 dialog states)."""

    CALLING = "calling"  # INVITE sent, nothing heard yet
    EARLY = "early"  # a provisional response (180/183) was sent or received
    CONNECTING = "connecting"  # 2xx sent or received, ACK pending
    CONFIRMED = "confirmed"  # the call is up
    DISCONNECTED = "disconnected"


class Event:
    """Base of every event; subclasses are frozen dataclasses."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Started(Event):
    """The adapters are up; the core may register its accounts."""


@dataclass(frozen=True, slots=True)
class KeyPressed(Event):
    """A key on the keypad (digits, `*`, `#`) or a function key, by name.

    `long` marks a press held past the hold time; `repeat` marks an auto-repeat while held.
    """

    key: str
    long: bool = False
    repeat: bool = False


@dataclass(frozen=True, slots=True)
class HookChanged(Event):
    """The handset's hook switch moved."""

    off_hook: bool


@dataclass(frozen=True, slots=True)
class RegistrationChanged(Event):
    """A REGISTER transaction ended, or a binding was lost."""

    account: int
    state: RegState
    code: int = 0
    reason: str = ""
    expires: int = 0


@dataclass(frozen=True, slots=True)
class CallIncoming(Event):
    """An INVITE arrived for one of our accounts; nothing has been answered yet."""

    call: CallId
    account: int
    number: str
    name: str
    uri: str


@dataclass(frozen=True, slots=True)
class CallStateChanged(Event):
    """The INVITE session moved.

    `code` and `reason` are the last SIP status seen; `heard_from_network` says whether any
    response came back from the far side at all, which tells "unreachable" from "no answer".
    `local` says the disconnect was our own doing (hang-up, cancel, reject).
    """

    call: CallId
    state: CallState
    code: int = 0
    reason: str = ""
    heard_from_network: bool = True
    local: bool = False


@dataclass(frozen=True, slots=True)
class CallMediaChanged(Event):
    """The call's audio started, stopped, or changed codec or direction."""

    call: CallId
    active: bool
    codec: str = ""
    held_by_remote: bool = False


@dataclass(frozen=True, slots=True)
class DtmfReceived(Event):
    """The far end sent a DTMF digit."""

    call: CallId
    digit: str


@dataclass(frozen=True, slots=True)
class MessageWaiting(Event):
    """A message-summary NOTIFY (RFC 3842) for an account: voicemail waiting or not."""

    account: int
    waiting: bool
    new: int = 0
    old: int = 0


@dataclass(frozen=True, slots=True)
class AudioDeviceChanged(Event):
    """The handset's sound device appeared or went away (unplugged, failed)."""

    present: bool
    name: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TransferStatus(Event):
    """How the far end is getting on with a transfer we asked of it (NOTIFYs of our REFER)."""

    call: CallId
    code: int
    reason: str = ""
    final: bool = False


@dataclass(frozen=True, slots=True)
class ReinviteRefused(Event):
    """The far end (or a proxy) answered a re-INVITE of ours (a hold, a resume) with an
    error: the call goes on as it was before it."""

    call: CallId
    code: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TimerExpired(Event):
    """A timer the core asked for ran out."""

    name: str


@dataclass(frozen=True, slots=True)
class PowerChanged(Event):
    """The power source spoke: a reading (None when the gauge gave none) and, while the gauge
    is not answering, why (empty once it answers again)."""

    reading: PowerReading | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class ServiceProblem(Event):
    """Something around the phone failed (state not saved, config not reloaded, control socket
    not open) and the user should see it; an empty `message` says it is fixed."""

    source: str
    message: str = ""
