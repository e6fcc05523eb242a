"""The phone: one state machine and one command table.

`Phone.handle(event)` and `Phone.command(name, *args)` are the only ways in; both return the
effects the adapters must carry out. Keys, the control socket and the tests all reach the same
commands through `COMMANDS`, so a feature is never wired twice.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from deskphone.core import menu as menus
from deskphone.core.dialplan import DialPlan, Match
from deskphone.core.effects import (
    Answer,
    CancelTimer,
    ConnectAudio,
    DisconnectAudio,
    DtmfMethod,
    Effect,
    Hangup,
    JoinCalls,
    LogCall,
    MakeCall,
    PlayTone,
    PowerOff,
    Register,
    SaveSettings,
    SendDtmf,
    SetContrast,
    SetHold,
    SetMute,
    SetRoute,
    SetVolume,
    StartTimer,
    StopTone,
    ToneOutput,
    Transfer,
)
from deskphone.core.events import (
    AudioDeviceChanged,
    CallId,
    CallIncoming,
    CallMediaChanged,
    CallState,
    CallStateChanged,
    Event,
    HookChanged,
    KeyPressed,
    MessageWaiting,
    PowerChanged,
    RegistrationChanged,
    RegState,
    ReinviteRefused,
    ServiceProblem,
    Started,
    TimerExpired,
    TransferStatus,
)
from deskphone.core.history import EndReason, HistoryEntry
from deskphone.core.menu import MenuContext, MenuState, MenuView
from deskphone.core.power import PowerChange, PowerPolicy, PowerThresholds, PowerView
from deskphone.core.settings import RING_PATTERNS, VOLUME_MAX, AudioOutput, Settings
from deskphone.core.tones import ToneName, TonePlan, ring_tone, tone_plan
from deskphone.errors import DeskphoneError

if TYPE_CHECKING:
    from deskphone.config import Config

log = logging.getLogger(__name__)

DTMF_DIGITS = frozenset("0123456789*#ABCD")
DIAL_KEYS = frozenset("0123456789*#")
HISTORY_LENGTH = 100
PREDIAL_TIMEOUT = 30.0
TIMER_INTERDIGIT = "interdigit"
TIMER_ENDED = "ended"
TIMER_PREDIAL = "predial"
TIMER_MENU = "menu"
MENU_TIMEOUT = 30.0  # an untouched menu closes by itself
TIMER_POWER_GRACE = "power:grace"  # a critical battery's last minutes
TIMER_POWER_TONE = "power:tone"
POWER_TONE_SECONDS = 1.0  # the low-battery warning: one call-waiting beep
NO_POWER_SOURCE = PowerView()


def register_timer(account: int) -> str:
    """The name of an account's registration retry timer."""
    return f"register:{account}"


def reoffer_timer(call: CallId) -> str:
    """The name of the timer after which a call's hold or resume, met by the far end's own
    offer (491), is offered again."""
    return f"reoffer:{call}"


# RFC 3261 14.1: after a 491 the side that made the call waits 2.1-4 s before offering again,
# the other side 0-2 s, so the two offers that met do not meet again.
REOFFER_WAIT_CALLER = (2.1, 4.0)
REOFFER_WAIT_CALLEE = (0.0, 2.0)
REQUEST_PENDING = 491


class PhoneState(enum.Enum):
    IDLE = "idle"
    OFF_HOOK = "off hook"  # dial tone, no digits yet
    DIALING = "dialing"  # collecting digits (on-hook: pre-dialling, no tone)
    CALLING = "calling"  # our INVITE is out
    RINGING = "ringing"  # an incoming call waits for us
    CONNECTED = "connected"
    ENDED = "ended"  # the reason stays on screen for a few seconds


# What an off-hook user hears after each kind of ending (nothing where the key is absent).
_ENDED_TONE = {
    EndReason.BUSY: ToneName.BUSY,
    EndReason.DECLINED: ToneName.BUSY,
    EndReason.NOT_FOUND: ToneName.ERROR,
    EndReason.NOT_IN_DIAL_PLAN: ToneName.ERROR,
    EndReason.UNREACHABLE: ToneName.CONGESTION,
    EndReason.NETWORK_ERROR: ToneName.CONGESTION,
    EndReason.NOT_ALLOWED: ToneName.CONGESTION,
    EndReason.NO_ACCOUNT: ToneName.CONGESTION,
    EndReason.FAILED: ToneName.CONGESTION,
    EndReason.BATTERY: ToneName.CONGESTION,
}


def end_reason(
    *,
    incoming: bool,
    connected: bool,
    code: int,
    heard_from_network: bool,
    local: bool,
) -> EndReason:
    """Name the reason a call ended from what SIP reported.

    A call that never heard back from the network is "unreachable" whatever status the stack
    made up locally (408 for a timeout, 503 for a transport error).
    """
    if connected:
        return EndReason.HUNG_UP if local else EndReason.REMOTE_HUNG_UP
    if incoming:
        return EndReason.REJECTED if local else EndReason.MISSED
    if local or code == 487:
        return EndReason.HUNG_UP
    if not heard_from_network:
        return EndReason.UNREACHABLE
    if code in (486, 600):
        return EndReason.BUSY
    if code in (603, 607, 608):
        return EndReason.DECLINED
    if code in (404, 410, 484, 604):
        return EndReason.NOT_FOUND
    if code == 480:
        return EndReason.UNREACHABLE
    if code == 408:
        return EndReason.NO_ANSWER
    if code in (401, 403, 407):
        return EndReason.NOT_ALLOWED
    if 500 <= code < 600:
        return EndReason.NETWORK_ERROR
    if code >= 600:
        return EndReason.DECLINED
    return EndReason.FAILED


def backoff_delay(failures: int, low: float, high: float, rng: random.Random) -> float:
    """Capped exponential backoff with downward jitter: never above `high`, so a dead registrar
    is retried within a known bound, and phones restarted together spread their retries."""
    base = min(high, low * 2 ** max(0, failures - 1))
    return base * rng.uniform(0.8, 1.0)


class CommandError(DeskphoneError, ValueError):
    """A command that makes no sense now (nothing to answer) or has bad arguments."""


@dataclass(frozen=True, slots=True)
class Call:
    """One call as the user sees it; replaced (never mutated) when it changes."""

    id: CallId
    incoming: bool
    account: int
    number: str
    name: str = ""
    uri: str = ""
    sip_state: CallState = CallState.CALLING
    alerting: bool = False  # the far end rings (180/183)
    answered: bool = False  # we sent 200 to an incoming call
    media_active: bool = False
    codec: str = ""
    on_hold: bool = False
    held_by_remote: bool = False
    emergency: bool = False
    created_at: float = 0.0  # monotonic
    created_wall: float = 0.0  # wall clock, for the history
    connected_at: float | None = None  # monotonic

    @property
    def established(self) -> bool:
        """The call is up (or we answered it): not a call that still rings or knocks."""
        return self.answered or self.connected_at is not None


@dataclass(frozen=True, slots=True)
class Registration:
    label: str
    state: RegState
    code: int = 0
    reason: str = ""
    failures: int = 0
    retry_at: float | None = None  # monotonic

    def describe(self) -> str:
        """The one line the display and `status` show."""
        if self.state is RegState.FAILED:
            status = f"{self.code} {self.reason}".strip()
            return f"{self.state.value} ({status})" if status else self.state.value
        return self.state.value


@dataclass(frozen=True, slots=True)
class PhoneView:
    """Everything a screen or `status` shows, read-only."""

    state: PhoneState
    off_hook: bool  # the user has the line: handset up or speaker on
    hook_up: bool  # the handset itself is lifted
    speaker: bool
    digits: str
    call: Call | None
    end_reason: EndReason | None
    end_code: int
    registrations: tuple[Registration, ...]
    dnd: bool
    muted: bool
    missed_calls: int
    settings: Settings
    messages_waiting: bool  # voicemail waiting on any account
    new_messages: int
    handset_present: bool
    history: tuple[HistoryEntry, ...]  # newest first
    now: float  # monotonic
    second: Call | None = None  # a call waiting (unanswered) or on hold beside the active one
    conference: bool = False  # the two calls are joined
    menu: MenuView | None = None  # the open menu page, if any
    power: PowerView = NO_POWER_SOURCE  # battery backup (draw the battery, dim on battery)
    problems: tuple[str, ...] = ()  # what went wrong around the phone (state not saved, ...)


@dataclass(frozen=True, slots=True)
class Command:
    """An entry of the one command table."""

    name: str
    usage: str  # argument names, e.g. "NUMBER"; "[on|off]" marks an optional one
    summary: str
    run: Callable[..., None]

    @property
    def max_args(self) -> int:
        return len(self.usage.split())

    @property
    def min_args(self) -> int:
        return sum(1 for arg in self.usage.split() if not arg.startswith("["))


COMMANDS: dict[str, Command] = {}


def command_entry(
    name: str, usage: str, summary: str
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Put a Phone method into the command table under `name`."""

    def register(method: Callable[..., None]) -> Callable[..., None]:
        COMMANDS[name] = Command(name, usage, summary, method)
        return method

    return register


# Function keys that simply run a command of the same meaning.
KEY_COMMANDS: dict[str, tuple[str, ...]] = {
    "speaker": ("speaker",),
    "hold": ("hold",),
    "redial": ("redial",),
    "mute": ("mute",),
    "dnd": ("dnd",),
    "voicemail": ("voicemail",),
    "vol_up": ("volume", "up"),
    "vol_down": ("volume", "down"),
}


class Phone:
    """The desk phone's logic, free of I/O: events and commands in, effects out."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        settings: Settings | None = None,
        history: Iterable[HistoryEntry] = (),
    ) -> None:
        self._config = config
        self._dialplan: DialPlan = config.dialplan.to_dialplan()
        self._tones: TonePlan = tone_plan(config.phone.country)
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()
        self._effects: list[Effect] = []
        self._next_call = 0

        self.state = PhoneState.IDLE
        self.hook_up = False
        self.speaker = False
        self.digits = ""
        self.call: Call | None = None  # the call the user deals with
        self.second: Call | None = None  # waiting (not answered yet) or held, beside it
        self.conference = False
        self._reoffers: set[CallId] = set()  # calls whose hold or resume waits after a 491
        self.end_reason: EndReason | None = None
        self.end_code = 0
        self.settings = settings or Settings()
        self.muted = False
        self.missed_calls = 0
        self.handset_present = True
        self.messages: dict[int, MessageWaiting] = {}
        self.history: deque[HistoryEntry] = deque(history, maxlen=HISTORY_LENGTH)
        self.menu: MenuState | None = None
        self.last_dialed = next((e.number for e in self.history if e.direction == "out"), "")
        self._route: AudioOutput | None = None  # the voice route last sent to the audio layer
        self.registrations: list[Registration] = _registrations(config)
        self.power = PowerPolicy(_power_thresholds(config), config.power.source)
        self.problems: dict[str, str] = {}  # source -> what is wrong (ServiceProblem)
        self._shutdown_at: float | None = None  # the critical battery's grace period ends
        self._grace_over = False
        self._powering_off = False

    # -- the two ways in -------------------------------------------------------------------

    def handle(self, event: Event) -> list[Effect]:
        """Apply one event; return what the adapters must do about it."""
        handler = self._EVENT_HANDLERS.get(type(event))
        if handler is None:
            log.debug("ignored event %r", event)
            return []
        return self._run(handler, self, event)

    def command(self, name: str, *args: str) -> list[Effect]:
        """Run a command from the table; `CommandError` says why it cannot run now."""
        entry = COMMANDS.get(name)
        if entry is None:
            raise CommandError(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
        if not entry.min_args <= len(args) <= entry.max_args:
            raise CommandError(f"usage: {name} {entry.usage}".rstrip())
        return self._run(entry.run, self, *args)

    def view(self) -> PhoneView:
        return PhoneView(
            state=self.state,
            off_hook=self.off_hook,
            hook_up=self.hook_up,
            speaker=self.speaker,
            digits=self.digits,
            call=self.call,
            end_reason=self.end_reason,
            end_code=self.end_code,
            registrations=tuple(self.registrations),
            dnd=self.dnd,
            muted=self.muted,
            missed_calls=self.missed_calls,
            settings=self.settings,
            messages_waiting=any(m.waiting for m in self.messages.values()),
            new_messages=sum(m.new for m in self.messages.values()),
            handset_present=self.handset_present,
            history=tuple(self.history),
            now=self._clock(),
            second=self.second,
            conference=self.conference,
            menu=None if self.menu is None else menus.view(self.menu, self._menu_context()),
            power=self.power.view(shutdown_at=self._shutdown_at, powering_off=self._powering_off),
            problems=tuple(message for _, message in sorted(self.problems.items())),
        )

    @property
    def off_hook(self) -> bool:
        """The handset is lifted or the speaker is on: either way the user has the line."""
        return self.hook_up or self.speaker

    @property
    def dnd(self) -> bool:
        return self.settings.dnd

    @property
    def voice_output(self) -> AudioOutput:
        """Where the voice path goes: the speaker when handsfree, else the handset."""
        return AudioOutput.SPEAKER if self.speaker else AudioOutput.HANDSET

    # -- events ----------------------------------------------------------------------------

    def _on_started(self, event: Started) -> None:
        for output in AudioOutput:
            self._emit(SetVolume(output, self.settings.volume(output)))
        self._emit(SetContrast(self.settings.contrast))
        for index, account in enumerate(self._config.accounts):
            if account.enabled:
                self._register(index)

    def _on_key(self, event: KeyPressed) -> None:
        if self._menu_key(event):
            return
        key = event.key
        try:
            if key in DIAL_KEYS:
                if not event.long:
                    self._dial_key(key)
            elif key in KEY_COMMANDS:
                name, *args = KEY_COMMANDS[key]
                COMMANDS[name].run(self, *args)
            elif key == "ok":
                self._ok_key()
            elif key == "back":
                self._back_key()
            else:
                log.info("key %r has no action", key)
        except CommandError as err:
            log.info("key %r: %s", key, err)

    def _on_hook(self, event: HookChanged) -> None:
        was_off_hook = self.off_hook
        self.hook_up = event.off_hook
        if event.off_hook:
            self.speaker = False  # lifting the handset takes the call off the speaker
        if self.off_hook and not was_off_hook:
            self._line_taken()
        elif was_off_hook and not self.off_hook:
            self._line_released()

    def _on_registration(self, event: RegistrationChanged) -> None:
        index = event.account
        if not 0 <= index < len(self.registrations):
            return
        current = self.registrations[index]
        if event.state is RegState.FAILED:
            account = self._config.accounts[index]
            failures = current.failures + 1
            delay = backoff_delay(
                failures, account.register_retry_min, account.register_retry_max, self._rng
            )
            self.registrations[index] = dataclasses.replace(
                current,
                state=RegState.FAILED,
                code=event.code,
                reason=event.reason,
                failures=failures,
                retry_at=self._clock() + delay,
            )
            self._emit(StartTimer(register_timer(index), delay))
            log.warning(
                "account %s: registration failed (%s %s), retry in %.1f s",
                current.label,
                event.code,
                event.reason,
                delay,
            )
            return
        if event.state is RegState.REGISTERED:
            if current.state is not RegState.REGISTERED:
                log.info("account %s: registered (expires %s s)", current.label, event.expires)
            self._emit(CancelTimer(register_timer(index)))
            self.registrations[index] = Registration(current.label, RegState.REGISTERED, event.code)
            return
        self.registrations[index] = dataclasses.replace(
            current, state=event.state, code=event.code, reason=event.reason, retry_at=None
        )

    def _on_incoming(self, event: CallIncoming) -> None:
        call = Call(
            id=event.call,
            incoming=True,
            account=event.account,
            number=event.number,
            name=event.name,
            uri=event.uri,
            sip_state=CallState.EARLY,
            created_at=self._clock(),
            created_wall=self._wall(),
        )
        can_ring = self.state is PhoneState.IDLE or (
            not self.off_hook and self.state in (PhoneState.ENDED, PhoneState.DIALING)
        )
        battery = self._refused_for_battery(emergency=False)
        if self._may_knock(battery):
            self.second = call
            log.info("call waiting: %s", event.number)
            self._emit(Answer(call.id, 180))
            self._play(ToneName.CALL_WAITING)
            return
        if self.dnd or not can_ring or not self.handset_present or battery:
            code = 486 if self.handset_present and not self.dnd and not battery else 480
            log.info("incoming call from %s refused with %d", event.number, code)
            self._emit(Hangup(call.id, code))
            self._remember(call, EndReason.MISSED, code)
            self.missed_calls += 1
            return
        self._cancel_timers(TIMER_ENDED, TIMER_PREDIAL)
        self.digits = ""
        self.call = call
        self.state = PhoneState.RINGING
        self._emit(Answer(call.id, 180))
        self._play(ToneName.RING, ToneOutput.RINGER)

    def _on_call_state(self, event: CallStateChanged) -> None:
        if self.second is not None and self.second.id == event.call:
            self._second_call_state(event)
            return
        call = self.call
        if call is None or call.id != event.call:
            return  # a call we already let go of (hung up, refused)
        if event.state is CallState.DISCONNECTED:
            self._call_gone(call, event)
            return
        call = dataclasses.replace(call, sip_state=event.state)
        if event.state is CallState.EARLY and not call.incoming and event.code in (180, 183):
            if not call.alerting and not call.media_active:
                self._play(ToneName.RINGBACK)
            call = dataclasses.replace(call, alerting=True)
        elif event.state is CallState.CONFIRMED and call.connected_at is None:
            call = dataclasses.replace(call, connected_at=self._clock())
            self._stop_tone()
            self.state = PhoneState.CONNECTED
        self.call = call

    def _on_media(self, event: CallMediaChanged) -> None:
        if self.second is not None and self.second.id == event.call:
            self.second = dataclasses.replace(
                self.second,
                media_active=event.active,
                codec=event.codec or self.second.codec,
                held_by_remote=event.held_by_remote,
            )
            self._wire_audio(self.second)
            return
        call = self.call
        if call is None or call.id != event.call:
            return
        early_media = event.active and not call.media_active and call.connected_at is None
        self.call = dataclasses.replace(
            call,
            media_active=event.active,
            codec=event.codec or call.codec,
            held_by_remote=event.held_by_remote,
        )
        if early_media and not call.incoming:
            self._stop_tone()  # the far end sends its own ringback or announcement
        self._wire_audio(self.call)

    def _wire_audio(self, call: Call) -> None:
        """Wire the call's audio up, or cut it: a call on hold stays cut whatever its media
        does (its hold not answered yet, or refused), so its far end never hears the user; a
        conference call whose media came back (taken off hold, renegotiated) is joined to the
        other again."""
        if not call.media_active or call.on_hold:
            self._emit(DisconnectAudio(call.id))
            return
        self._emit(ConnectAudio(call.id))
        if self.conference and self.call is not None and self.second is not None:
            self._emit(JoinCalls(self.call.id, self.second.id))

    def _on_reinvite_refused(self, event: ReinviteRefused) -> None:
        """The far end refused a hold or a resume; the call's media is as it was. A call the
        user holds stays cut here, so the far end never hears the user while the screen says
        "hold"; a resume that was refused leaves the call held (the user may try again),
        unless the network never held it, and then its sound comes back. A 491 refuses
        nothing: the offer is made again (`_reoffer_later`)."""
        call = self._live_call(event.call)
        if call is None:
            return
        if event.code == REQUEST_PENDING:
            self._reoffer_later(call)
            return
        log.warning(
            "the far end refused to %s the call with %s: %s %s",
            "hold" if call.on_hold else "resume",
            call.number,
            event.code,
            event.reason,
        )
        if not call.on_hold and not call.media_active:
            call = dataclasses.replace(call, on_hold=True)
            if self.call is not None and self.call.id == call.id:
                self.call = call
            else:
                self.second = call
        self._wire_audio(call)

    def _reoffer_later(self, call: Call) -> None:
        """The far end was making an offer of its own when ours came (a glare, 491): nothing
        changed on either side, so the user's wish is offered again after RFC 3261's wait.
        Until then a held call stays cut, as ever."""
        low, high = REOFFER_WAIT_CALLEE if call.incoming else REOFFER_WAIT_CALLER
        wait = round(self._rng.uniform(low, high), 2)  # in 10 ms steps, as the RFC counts
        log.info(
            "the far end was changing the call with %s itself; the phone offers the %s again"
            " in %.2f s",
            call.number,
            "hold" if call.on_hold else "resume",
            wait,
        )
        self._reoffers.add(call.id)
        self._emit(StartTimer(reoffer_timer(call.id), wait))
        self._wire_audio(call)

    def _live_call(self, handle: CallId) -> Call | None:
        """The call (first or second) the core knows by `handle`, if it still does."""
        return next((c for c in (self.call, self.second) if c and c.id == handle), None)

    def _offer_hold(self, call: CallId, hold: bool) -> None:
        """Ask the network to hold or resume the call; an offer the far end met with its own
        (491) and that waits to be made again gives way to this one."""
        if call in self._reoffers:
            self._reoffers.discard(call)
            self._emit(CancelTimer(reoffer_timer(call)))
        self._emit(SetHold(call, hold))

    def _on_audio_device(self, event: AudioDeviceChanged) -> None:
        if event.present == self.handset_present:
            return
        self.handset_present = event.present
        if event.present:
            log.info("handset %s is back", event.name)
            return
        log.error("handset %s is gone: %s", event.name, event.reason or "unplugged")
        self._drop_second(EndReason.NO_AUDIO)  # calls with no microphone and earpiece are none
        if self.call is not None:
            self._hang_up()

    def _on_messages(self, event: MessageWaiting) -> None:
        if 0 <= event.account < len(self.registrations):
            self.messages[event.account] = event
            log.info("account %s: %d new, %d old messages", event.account, event.new, event.old)

    def _on_transfer_status(self, event: TransferStatus) -> None:
        """A blind transfer that succeeded ends our part of the call; one that failed leaves
        the caller with us."""
        call = self.call
        if call is None or call.id != event.call or not event.final:
            return
        if 200 <= event.code < 300:
            self._emit(Hangup(call.id))
            self._drop_call(call, EndReason.TRANSFERRED, event.code)
        else:
            log.warning("transfer of %s failed: %s %s", call.number, event.code, event.reason)

    def _on_timer(self, event: TimerExpired) -> None:
        name = event.name
        if name == TIMER_INTERDIGIT and self.state is PhoneState.DIALING and self.off_hook:
            if self._dialplan.match(self.digits) is Match.FULL_EXTENDABLE:
                self._place_call(self.digits)
            else:
                self._end(EndReason.NOT_IN_DIAL_PLAN)
        elif name == TIMER_ENDED and self.state is PhoneState.ENDED:
            if self.off_hook:
                self._enter_off_hook()
            else:
                self._enter_idle()
        elif name == TIMER_PREDIAL and self.state is PhoneState.DIALING and not self.off_hook:
            self._enter_idle()
        elif name == TIMER_MENU:
            self.menu = None
        elif name.startswith("power:"):
            self._power_timer(name)
        elif name.startswith("register:"):
            index = int(name.partition(":")[2])
            if 0 <= index < len(self.registrations):
                self._register(index)
        elif name.startswith("reoffer:"):
            handle = CallId(name.partition(":")[2])
            if handle not in self._reoffers:
                return  # the user asked again in the meantime, and that was offered
            self._reoffers.discard(handle)
            call = self._live_call(handle)
            if call is not None and call.established:
                self._offer_hold(call.id, call.on_hold)

    # -- battery backup (the policy is core/power.py) --------------------------------------

    def _on_power(self, event: PowerChanged) -> None:
        # The journal hears of supply and level changes from the service layer, with fields.
        for change in self.power.update(event.reading, event.error, self._clock()):
            if change is PowerChange.MAINS_BACK:
                self._end_power_emergency()
            elif change is PowerChange.LOW:
                self._battery_warning()
            elif change is PowerChange.CRITICAL:
                grace = self.power.thresholds.grace_seconds
                log.error("battery critical: powering off when idle, at most %.0f s on", grace)
                self._shutdown_at = self._clock() + grace
                self._emit(StartTimer(TIMER_POWER_GRACE, grace))

    def _end_power_emergency(self) -> None:
        """Mains is back (or the source changed): no grace period, no power-off."""
        self._cancel_timers(TIMER_POWER_GRACE)
        self._shutdown_at = None
        self._grace_over = False

    def _battery_warning(self) -> None:
        """One beep: in the earpiece during a call, else on the ringer (unless it rings)."""
        if self.state is PhoneState.RINGING:
            return
        output = ToneOutput.VOICE if self.state is PhoneState.CONNECTED else ToneOutput.RINGER
        self._play(ToneName.CALL_WAITING, output)
        self._emit(StartTimer(TIMER_POWER_TONE, POWER_TONE_SECONDS))

    def _power_timer(self, name: str) -> None:
        if name == TIMER_POWER_TONE:
            if self.state is PhoneState.CONNECTED:
                self._stop_tone(ToneOutput.VOICE)
            elif self.state is not PhoneState.RINGING:
                self._stop_tone(ToneOutput.RINGER)
        elif name == TIMER_POWER_GRACE and self.power.critical:
            self._grace_over = True
            if self.call is not None and not self.call.emergency:
                log.error("battery critical: grace period over, ending the call")
                self._hang_up()

    def _power_effects(self) -> None:
        """At a critical battery the phone powers off as soon as it is idle on-hook, or when the
        grace period is over; an emergency call is never cut, the power-off waits for it."""
        if self._powering_off or not self.power.critical:
            return
        if self.call is not None and (self.call.emergency or not self._grace_over):
            return
        if self.call is None and self.off_hook and not self._grace_over:
            return  # the user may be about to dial an emergency number
        self._powering_off = True
        self._cancel_timers(TIMER_POWER_GRACE)
        self._emit(PowerOff(f"battery critical ({self.power.view().describe()})"))

    def _refused_for_battery(self, emergency: bool) -> bool:
        """New calls are refused at a critical battery, emergency calls never."""
        return (self.power.critical or self._powering_off) and not emergency

    def _on_problem(self, event: ServiceProblem) -> None:
        if event.message:
            self.problems[event.source] = event.message
        else:
            self.problems.pop(event.source, None)

    _EVENT_HANDLERS: ClassVar[dict[type[Event], Callable[..., None]]] = {
        Started: _on_started,
        KeyPressed: _on_key,
        HookChanged: _on_hook,
        RegistrationChanged: _on_registration,
        CallIncoming: _on_incoming,
        CallStateChanged: _on_call_state,
        CallMediaChanged: _on_media,
        TimerExpired: _on_timer,
        AudioDeviceChanged: _on_audio_device,
        MessageWaiting: _on_messages,
        TransferStatus: _on_transfer_status,
        ReinviteRefused: _on_reinvite_refused,
        PowerChanged: _on_power,
        ServiceProblem: _on_problem,
    }

    # -- commands --------------------------------------------------------------------------

    @command_entry("dial", "NUMBER", "call a number or a SIP URI (the speaker is used if on-hook)")
    def cmd_dial(self, target: str) -> None:
        target = target.strip()
        if not target:
            raise CommandError("dial: nothing to dial")
        if self.state not in (
            PhoneState.IDLE,
            PhoneState.OFF_HOOK,
            PhoneState.DIALING,
            PhoneState.ENDED,
        ):
            raise CommandError(f"dial: the phone is busy ({self.state.value})")
        self._take_line_for(target)

    @command_entry("redial", "", "call the last number dialled again")
    def cmd_redial(self) -> None:
        if not self.last_dialed:
            raise CommandError("redial: nothing dialled yet")
        self.cmd_dial(self.last_dialed)

    @command_entry("voicemail", "", "call the voicemail of the account that has messages")
    def cmd_voicemail(self) -> None:
        accounts = self._config.accounts
        waiting = [i for i, m in self.messages.items() if m.waiting and accounts[i].voicemail]
        default = self._outgoing_account()
        index = waiting[0] if waiting else default
        if index is None or not accounts[index].voicemail:
            raise CommandError("voicemail: no voicemail number configured")
        self.cmd_dial(accounts[index].voicemail)

    @command_entry(
        "answer", "", "answer the ringing call (on the speaker unless the handset is up)"
    )
    def cmd_answer(self) -> None:
        if self._waiting() is not None:
            self._answer_waiting()
            return
        if self.state is not PhoneState.RINGING:
            raise CommandError("answer: no call is ringing")
        self.speaker = self.speaker or not self.hook_up
        self._answer()

    @command_entry("reject", "", "decline the ringing call")
    def cmd_reject(self) -> None:
        waiting = self._waiting()
        if waiting is not None and self.state is not PhoneState.RINGING:
            self._emit(Hangup(waiting.id, 603))
            self._drop_second(EndReason.REJECTED, 603)
            return
        call = self._require_call("reject", PhoneState.RINGING)
        self._emit(Hangup(call.id, 603))
        self._drop_call(call, EndReason.REJECTED, 603)

    @command_entry("swap", "", "put the call on hold and take the held one back")
    def cmd_swap(self) -> None:
        call = self._require_call("swap", PhoneState.CONNECTED)
        held = self.second
        if held is None or not held.established:
            raise CommandError("swap: no call on hold")
        if self.conference:
            raise CommandError("swap: the calls are in a conference")
        if not call.on_hold:
            call = self._put_on_hold(call)
        self._offer_hold(held.id, False)
        self.call, self.second = dataclasses.replace(held, on_hold=False), call

    @command_entry("conference", "", "join the call and the held call: all three talk")
    def cmd_conference(self) -> None:
        call = self._require_call("conference", PhoneState.CONNECTED)
        other = self.second
        if other is None or not other.established:
            raise CommandError("conference: no second call to join (answer or call one first)")
        if self.conference:
            raise CommandError("conference: the calls are already joined")
        for held in (call, other):
            if held.on_hold:
                self._offer_hold(held.id, False)
        self.call = dataclasses.replace(call, on_hold=False)
        self.second = dataclasses.replace(other, on_hold=False)
        self.conference = True
        self._emit(JoinCalls(call.id, other.id))

    @command_entry("hangup", "", "end the call, or stop dialling, and put the speaker off")
    def cmd_hangup(self) -> None:
        if self.state is PhoneState.RINGING:
            self.cmd_reject()
        elif self.state in (PhoneState.CALLING, PhoneState.CONNECTED):
            self.speaker = False
            self._hang_up()
        elif self.state in (PhoneState.OFF_HOOK, PhoneState.DIALING):
            self.speaker = False
            if self.hook_up:
                self._enter_off_hook()
            else:
                self._enter_idle()
        else:
            raise CommandError("hangup: no call")

    @command_entry("speaker", "", "switch the speaker (handsfree) on or off")
    def cmd_speaker(self) -> None:
        if self.speaker:
            self.speaker = False
            if not self.hook_up:
                self._line_released()
        else:
            was_off_hook = self.off_hook
            self.speaker = True
            if not was_off_hook:
                self._line_taken()

    @command_entry("dtmf", "DIGITS", "send DTMF digits in the call")
    def cmd_dtmf(self, digits: str) -> None:
        call = self._require_call("dtmf", PhoneState.CONNECTED)
        bad = set(digits) - DTMF_DIGITS
        if not digits or bad:
            raise CommandError(f"dtmf: digits must be 0-9, *, #, A-D (got {digits!r})")
        method = DtmfMethod(self._config.accounts[call.account].dtmf)
        self._emit(SendDtmf(call.id, digits, method))

    @command_entry("hold", "[on|off]", "put the call on hold or take it back (no argument: toggle)")
    def cmd_hold(self, setting: str = "") -> None:
        call = self._require_call("hold", PhoneState.CONNECTED)
        if self.conference:
            raise CommandError("hold: the calls are in a conference")
        if call.connected_at is None:
            raise CommandError("hold: the call is not up yet")
        hold = _switch("hold", setting, call.on_hold)
        if hold and not call.on_hold:
            self.call = self._put_on_hold(call)
        elif call.on_hold and not hold:
            self.call = dataclasses.replace(call, on_hold=False)
            self._offer_hold(call.id, False)

    def _put_on_hold(self, call: Call) -> Call:
        """Ask the network to hold the call, and cut its sound here at once: the far end
        stops hearing the user now, not when (or if) the hold is answered."""
        self._offer_hold(call.id, True)
        self._emit(DisconnectAudio(call.id))
        return dataclasses.replace(call, on_hold=True)

    @command_entry("transfer", "NUMBER", "hand the call over to another number (blind transfer)")
    def cmd_transfer(self, target: str) -> None:
        call = self._require_call("transfer", PhoneState.CONNECTED)
        if not target.strip():
            raise CommandError("transfer: no target")
        self._emit(Transfer(call.id, target.strip()))

    @command_entry(
        "mute", "[on|off]", "stop or resume sending the microphone (no argument: toggle)"
    )
    def cmd_mute(self, setting: str = "") -> None:
        muted = _switch("mute", setting, self.muted)
        if muted != self.muted:
            self.muted = muted
            self._emit(SetMute(muted))

    @command_entry("dnd", "[on|off]", "do not disturb: refuse incoming calls (no argument: toggle)")
    def cmd_dnd(self, setting: str = "") -> None:
        dnd = _switch("dnd", setting, self.dnd)
        self.settings = dataclasses.replace(self.settings, dnd=dnd)
        log.info("do not disturb %s", "on" if dnd else "off")

    @command_entry(
        "volume",
        "[handset|speaker|ringer] [up|down|0-10]",
        "set a volume (default: the sound in use: the call or tone, else the ringer)",
    )
    def cmd_volume(self, *args: str) -> None:
        outputs = {o.value: o for o in AudioOutput}
        words = list(args)
        output = outputs.get(words[0]) if words else None
        if output is not None:
            words.pop(0)
        elif self.off_hook:
            output = self.voice_output
        else:
            output = AudioOutput.RINGER
        if len(words) != 1:
            raise CommandError("usage: volume [handset|speaker|ringer] up|down|0-10")
        level = self.settings.volume(output)
        if words[0] in ("up", "down"):
            level += 1 if words[0] == "up" else -1
        elif words[0].isdigit() and 0 <= int(words[0]) <= VOLUME_MAX:
            level = int(words[0])
        else:
            raise CommandError(f"volume: expected up, down or 0-{VOLUME_MAX}, got {words[0]!r}")
        self.settings = self.settings.with_volume(output, level)

    @command_entry("ring", "PATTERN", f"choose the ring: {', '.join(RING_PATTERNS)}")
    def cmd_ring(self, pattern: str) -> None:
        if pattern not in RING_PATTERNS:
            raise CommandError(f"ring: expected one of {', '.join(RING_PATTERNS)}")
        self.settings = dataclasses.replace(self.settings, ring_pattern=pattern)
        if self.state is PhoneState.RINGING:
            self._play(ToneName.RING, ToneOutput.RINGER)

    @command_entry("contrast", "0-255", "set the display's contrast")
    def cmd_contrast(self, value: str) -> None:
        if not value.isdigit() or int(value) > 255:
            raise CommandError(f"contrast: expected 0-255, got {value!r}")
        self.settings = dataclasses.replace(self.settings, contrast=int(value))

    # -- keys ------------------------------------------------------------------------------

    def _dial_key(self, key: str) -> None:
        if self.state is PhoneState.CONNECTED:
            if self.call is not None and self.call.connected_at is not None:
                self.cmd_dtmf(key)
            return
        if self.state is PhoneState.DIALING and key == "#" and self.digits:
            self._send_digits()
            return
        if self.state in (PhoneState.IDLE, PhoneState.OFF_HOOK, PhoneState.ENDED):
            self._cancel_timers(TIMER_ENDED)
            self._stop_tone()
            self.state = PhoneState.DIALING
            self.end_reason = None
            self.digits = ""
        if self.state is not PhoneState.DIALING:
            return
        self.digits += key
        if self.off_hook:
            self._evaluate_digits()
            if self.state is PhoneState.DIALING:  # the digit that places the call needs none
                self._play(ToneName.KEY_CLICK)
        else:
            self._emit(StartTimer(TIMER_PREDIAL, PREDIAL_TIMEOUT))

    def _ok_key(self) -> None:
        if self._waiting() is not None or self.state is PhoneState.RINGING:
            self.cmd_answer()
        elif self.state is PhoneState.DIALING and self.digits:
            self._send_digits()

    def _back_key(self) -> None:
        if self._waiting() is not None or self.state is PhoneState.RINGING:
            self.cmd_reject()
        elif self.state is PhoneState.DIALING:
            self.digits = self.digits[:-1]
            if not self.digits:
                self._cancel_timers(TIMER_INTERDIGIT)
                if self.off_hook:
                    self._enter_off_hook()
                else:
                    self._enter_idle()

    # -- transitions -----------------------------------------------------------------------

    def _line_taken(self) -> None:
        """The user went off-hook (handset or speaker) from on-hook."""
        if self.state in (PhoneState.IDLE, PhoneState.ENDED):
            self._cancel_timers(TIMER_ENDED)
            self._enter_off_hook()
        elif self.state is PhoneState.DIALING:
            self._cancel_timers(TIMER_PREDIAL)
            self._send_digits()
        elif self.state is PhoneState.RINGING:
            self._answer()
        elif self.state is PhoneState.CONNECTED and self.call is not None and self.call.on_hold:
            self.cmd_hold("off")  # picking up again takes back the call left on hold

    def _line_released(self) -> None:
        """The user went on-hook: put the handset down or switched the speaker off."""
        if self.state in (PhoneState.OFF_HOOK, PhoneState.DIALING):
            self._enter_idle()
        elif self.state is PhoneState.CALLING or (
            self.state is PhoneState.CONNECTED and not (self.call and self.call.on_hold)
        ):
            self._hang_up()  # a call on hold stays there: the user put down the active one
        elif self.state is PhoneState.ENDED:
            self._stop_tone()  # the reason stays on screen until its timer runs out

    def _take_line_for(self, target: str) -> None:
        if not self.off_hook:
            self.speaker = True
        self._cancel_timers(TIMER_ENDED, TIMER_PREDIAL, TIMER_INTERDIGIT)
        self._place_call(target)

    def _enter_idle(self) -> None:
        self._cancel_timers(TIMER_INTERDIGIT, TIMER_PREDIAL, TIMER_ENDED)
        self._stop_tone()
        self.state = PhoneState.IDLE
        self.digits = ""
        self.end_reason = None
        self.end_code = 0

    def _enter_off_hook(self) -> None:
        self._cancel_timers(TIMER_INTERDIGIT)
        self.state = PhoneState.OFF_HOOK
        self.digits = ""
        self.end_reason = None
        self.end_code = 0
        self._play(ToneName.DIAL)

    def _evaluate_digits(self) -> None:
        match = self._dialplan.match(self.digits)
        # An emergency number goes out at once, even where the digit map could extend it.
        if match is Match.FULL or self._dialplan.is_emergency(self.digits):
            self._place_call(self.digits)
        elif match is Match.NONE:
            self._end(EndReason.NOT_IN_DIAL_PLAN)
        else:
            self._emit(StartTimer(TIMER_INTERDIGIT, self._config.dialplan.inter_digit_timeout))

    def _send_digits(self) -> None:
        """`#` (or OK, or lifting the handset while pre-dialling) sends what was typed.

        A `#` that completes a pattern of the digit map (a feature code such as `*21#`) is
        part of the number; otherwise it only means "send".
        """
        digits = self.digits
        if not digits:
            return
        if self._dialplan.match(digits + "#") is Match.FULL:
            digits += "#"
        if self._dialplan.match(digits) is Match.NONE:
            self._end(EndReason.NOT_IN_DIAL_PLAN)
            return
        if not self.off_hook:
            self.speaker = True
        self._place_call(digits)

    def _place_call(self, target: str) -> None:
        self._cancel_timers(TIMER_INTERDIGIT, TIMER_PREDIAL)
        self._stop_tone()
        self.digits = ""
        self.last_dialed = target
        account = self._outgoing_account()
        if account is None:
            self._end(EndReason.NO_ACCOUNT)
            return
        if not self.handset_present:
            self._end(EndReason.NO_AUDIO)
            return
        if self._refused_for_battery(self._dialplan.is_emergency(target)):
            log.warning("call to %s refused: the battery is critical", target)
            self._end(EndReason.BATTERY)
            return
        self._next_call += 1
        call = Call(
            id=CallId(f"out-{self._next_call}"),
            incoming=False,
            account=account,
            number=target,
            emergency=self._dialplan.is_emergency(target),
            created_at=self._clock(),
            created_wall=self._wall(),
        )
        self.call = call
        self.state = PhoneState.CALLING
        self.end_reason = None
        log.info("calling %s%s", target, " (emergency)" if call.emergency else "")
        self._emit(MakeCall(call.id, account, target))

    def _answer(self) -> None:
        call = self.call
        if call is None or call.answered:
            return
        self.call = dataclasses.replace(call, answered=True)
        self.state = PhoneState.CONNECTED
        self._stop_tone(ToneOutput.RINGER)
        self._emit(Answer(call.id, 200))

    def _hang_up(self) -> None:
        call = self.call
        if call is None:
            return
        if self.conference:  # hanging up a conference ends it for everyone
            self._drop_second(EndReason.HUNG_UP, hang_up=True)
        self._emit(Hangup(call.id))
        connected = call.connected_at is not None
        self._drop_call(call, EndReason.HUNG_UP, 0 if connected else 487)

    def _call_gone(self, call: Call, event: CallStateChanged) -> None:
        reason = end_reason(
            incoming=call.incoming,
            connected=call.connected_at is not None,
            code=event.code,
            heard_from_network=event.heard_from_network,
            local=event.local,
        )
        if reason is EndReason.MISSED:
            self.missed_calls += 1
        log.info(
            "call with %s ended: %s (%s %s)", call.number, reason.value, event.code, event.reason
        )
        self._drop_call(call, reason, event.code)

    def _drop_call(self, call: Call, reason: EndReason, code: int) -> None:
        self._remember(call, reason, code)
        if call.media_active:
            self._emit(DisconnectAudio(call.id))
        self.call = None
        if self.muted:
            self.cmd_mute("off")
        if self.second is not None:
            self._promote_second()
        else:
            self._end(reason, code)

    # -- a second call: waiting, held, in conference ---------------------------------------

    def _waiting(self) -> Call | None:
        """The second call while it knocks (call waiting), not yet answered."""
        return self.second if self.second is not None and not self.second.established else None

    def _may_knock(self, battery_refuses: bool) -> bool:
        call = self.call
        return (
            self._config.phone.call_waiting
            and self.state is PhoneState.CONNECTED
            and call is not None
            and call.connected_at is not None
            and self.second is None
            and not self.dnd
            and self.handset_present
            and not battery_refuses
        )

    def _answer_waiting(self) -> None:
        """Take the knocking call; the current one goes on hold."""
        waiting, active = self.second, self.call
        assert waiting is not None
        if active is not None and active.connected_at is not None and not active.on_hold:
            active = self._put_on_hold(active)
        self._stop_tone()
        self.second = active
        self.call = dataclasses.replace(waiting, answered=True)
        self.state = PhoneState.CONNECTED
        self._emit(Answer(waiting.id, 200))

    def _second_call_state(self, event: CallStateChanged) -> None:
        second = self.second
        assert second is not None
        if event.state is CallState.DISCONNECTED:
            reason = end_reason(
                incoming=second.incoming,
                connected=second.connected_at is not None,
                code=event.code,
                heard_from_network=event.heard_from_network,
                local=event.local,
            )
            self._drop_second(reason, event.code)
            return
        if event.state is CallState.CONFIRMED and second.connected_at is None:
            second = dataclasses.replace(second, connected_at=self._clock())
        self.second = dataclasses.replace(second, sip_state=event.state)

    def _drop_second(self, reason: EndReason, code: int = 0, hang_up: bool = False) -> None:
        """The second call is over (or is ended now, with `hang_up`)."""
        second, self.second = self.second, None
        if second is None:
            return
        if hang_up:
            self._emit(Hangup(second.id))
        if not second.established:
            self._stop_tone()  # the call-waiting tone
            if reason is EndReason.MISSED:
                self.missed_calls += 1
        if second.media_active:
            self._emit(DisconnectAudio(second.id))
        self.conference = False
        self._remember(second, reason, code)

    def _promote_second(self) -> None:
        """The active call ended beside another: a knocking call rings now, a held one (or
        the rest of a conference) becomes the call on screen."""
        second, self.second = self.second, None
        assert second is not None
        self.conference = False
        self.call = second
        if second.established:
            self.state = PhoneState.CONNECTED
        else:
            self._stop_tone()
            self.state = PhoneState.RINGING
            self._play(ToneName.RING, ToneOutput.RINGER)

    def _end(self, reason: EndReason, code: int = 0) -> None:
        self._cancel_timers(TIMER_INTERDIGIT, TIMER_PREDIAL)
        self._stop_tone(ToneOutput.RINGER)
        self.state = PhoneState.ENDED
        self.digits = ""
        self.end_reason = reason
        self.end_code = code
        tone = _ENDED_TONE.get(reason)
        if tone is not None and self.off_hook:
            self._play(tone)
        else:
            self._stop_tone()
        self._emit(StartTimer(TIMER_ENDED, self._config.phone.ended_display_seconds))

    def _register(self, index: int) -> None:
        current = self.registrations[index]
        self.registrations[index] = dataclasses.replace(
            current, state=RegState.REGISTERING, retry_at=None
        )
        self._emit(Register(index))

    # -- menu ------------------------------------------------------------------------------

    def _menu_context(self) -> MenuContext:
        return MenuContext(
            settings=self.settings,
            history=tuple(self.history),
            in_call=self.state is PhoneState.CONNECTED,
            on_hold=self.call is not None and self.call.on_hold,
            muted=self.muted,
        )

    def _menu_fits(self) -> bool:
        """The idle menu lives while the phone is idle and on-hook, the call menu while the
        call lasts; anything else (a call coming in, the handset lifted) closes it."""
        assert self.menu is not None
        if self.menu.root == menus.CALL:
            return self.state is PhoneState.CONNECTED
        return self.state is PhoneState.IDLE and not self.off_hook

    def _menu_opened_by(self, key: str) -> str | None:
        """The page a key opens while no menu is open, or None."""
        if self.state is PhoneState.CONNECTED:
            return {"menu": menus.CALL, "transfer": menus.TRANSFER}.get(key)
        on_hook = not self.off_hook and self.state in (
            PhoneState.IDLE,
            PhoneState.ENDED,
            PhoneState.DIALING,
        )
        if on_hook and (key == "menu" or (key in ("up", "down") and self.state is PhoneState.IDLE)):
            return menus.MAIN
        return None

    def _menu_key(self, event: KeyPressed) -> bool:
        """Give a key to the menu; True when the menu took it (opening the menu counts)."""
        if self.menu is None:
            page = self._menu_opened_by(event.key)
            if page is None or event.repeat:
                return False
            if self.state is not PhoneState.CONNECTED:
                self._enter_idle()  # the menu key drops pre-dialled digits or an ended call
            self.menu = menus.open_menu(self._menu_context(), page)
        else:
            result = menus.press(self.menu, event.key, self._menu_context())
            if not result.consumed:
                return False
            if event.long:
                return True  # presses and repeats move the menu; the long press adds nothing
            self.menu = result.state
            if result.run:
                self._run_menu_choice(result.run)
        if self.menu is None:
            self._cancel_timers(TIMER_MENU)
        else:
            self._emit(StartTimer(TIMER_MENU, MENU_TIMEOUT))
        return True

    def _run_menu_choice(self, command: menus.Command) -> None:
        """Run what a menu choice names through the one command table."""
        name, *args = command
        try:
            COMMANDS[name].run(self, *args)
        except CommandError as err:
            log.info("menu: %s", err)
            if self.menu is not None:
                self.menu = self.menu.with_notice(str(err))

    def _close_menu(self) -> None:
        self.menu = None
        self._cancel_timers(TIMER_MENU)

    # -- helpers ---------------------------------------------------------------------------

    def _outgoing_account(self) -> int | None:
        """The first enabled account places outgoing calls."""
        for index, account in enumerate(self._config.accounts):
            if account.enabled:
                return index
        return None

    def _require_call(self, name: str, state: PhoneState) -> Call:
        if self.state is not state or self.call is None:
            raise CommandError(f"{name}: no {state.value} call")
        return self.call

    def _remember(self, call: Call, reason: EndReason, code: int) -> None:
        answered = "in" if call.established else "missed"
        direction = answered if call.incoming else "out"
        duration = 0.0 if call.connected_at is None else self._clock() - call.connected_at
        entry = HistoryEntry(
            direction, call.number, call.name, call.created_wall, duration, reason, code
        )
        self.history.appendleft(entry)
        self._emit(LogCall(entry))

    def _play(self, name: ToneName, output: ToneOutput = ToneOutput.VOICE) -> None:
        tone = self._tones.tone(name)
        if name is ToneName.RING:
            tone = ring_tone(tone, self.settings.ring_pattern)
        self._emit(PlayTone(tone, output))

    def _stop_tone(self, output: ToneOutput = ToneOutput.VOICE) -> None:
        self._emit(StopTone(output))

    def _cancel_timers(self, *names: str) -> None:
        for name in names:
            self._emit(CancelTimer(name))

    def _emit(self, effect: Effect) -> None:
        self._effects.append(effect)

    def _run(self, step: Callable[..., None], *args: object) -> list[Effect]:
        """Run one step and hand back exactly the effects it emitted, plus those that follow
        from what it changed (a new voice route, new settings), so no step can forget them."""
        self._effects = []
        before = self.settings
        try:
            step(*args)
            if self.menu is not None and not self._menu_fits():
                self._close_menu()
            self._derive_effects(before)
            self._power_effects()
            return self._effects
        finally:
            self._effects = []

    def _derive_effects(self, before: Settings) -> None:
        if self.voice_output is not self._route:
            self._route = self.voice_output
            self._emit(SetRoute(self._route))
        after = self.settings
        if after == before:
            return
        for output in AudioOutput:
            if after.volume(output) != before.volume(output):
                self._emit(SetVolume(output, after.volume(output)))
        if after.contrast != before.contrast:
            self._emit(SetContrast(after.contrast))
        self._emit(SaveSettings(after))

    # -- reload ----------------------------------------------------------------------------

    def reconfigure(self, config: Config) -> list[Effect]:
        """Take a reloaded config (tones, dial plan, battery thresholds, accounts). The app
        changes accounts only while no call is up; they register afresh."""
        return self._run(self._reconfigure, config)

    def _reconfigure(self, config: Config) -> None:
        accounts_changed = config.accounts != self._config.accounts
        self._config = config
        self._dialplan = config.dialplan.to_dialplan()
        self._tones = tone_plan(config.phone.country)
        if config.power.source != self.power.source and not self._powering_off:
            self.power = PowerPolicy(_power_thresholds(config), config.power.source)
            self._end_power_emergency()
        self.power.thresholds = _power_thresholds(config)
        if accounts_changed:
            self._cancel_timers(*(register_timer(i) for i in range(len(self.registrations))))
            self.messages.clear()
            self.registrations = _registrations(config)
            for index, account in enumerate(config.accounts):
                if account.enabled:
                    self._register(index)


def _registrations(config: Config) -> list[Registration]:
    return [
        Registration(
            label=account.label,
            state=RegState.UNREGISTERED if account.enabled else RegState.DISABLED,
        )
        for account in config.accounts
    ]


def _power_thresholds(config: Config) -> PowerThresholds:
    power = config.power
    return PowerThresholds(
        low_percent=power.low_percent,
        critical_percent=power.critical_percent,
        hysteresis_percent=power.hysteresis_percent,
        grace_seconds=power.grace_seconds,
    )


def _switch(name: str, setting: str, current: bool) -> bool:
    """Read an optional on/off argument; no argument toggles."""
    if setting == "":
        return not current
    if setting in ("on", "off"):
        return setting == "on"
    raise CommandError(f"{name}: expected 'on' or 'off', got {setting!r}")


def commands() -> Iterator[Command]:
    """The command table in a stable order, for `--help` and the control socket."""
    return iter(sorted(COMMANDS.values(), key=lambda c: c.name))
