"""Screens: the phone's view turned into the lines a 128x64 display shows.

Pure functions of the view and the clock, so every screen is a unit test. Rendering the lines
to pixels is `ui.render`'s job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from deskphone.core.events import RegState
from deskphone.core.phone import Call, PhoneState, PhoneView


@dataclass(frozen=True, slots=True)
class Screen:
    """What the display shows: a title bar and a few lines of text."""

    title: str
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join((self.title, *self.lines))


def format_duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def peer_line(call: Call) -> str:
    return f"{call.name} ({call.number})" if call.name else call.number


def registration_line(view: PhoneView, no_account_hint: str) -> str:
    if not view.registrations:
        return no_account_hint
    first = view.registrations[0]
    line = f"{first.label}: {first.describe()}"
    if first.state is RegState.FAILED and first.retry_at is not None:
        line += f", retry in {max(0, round(first.retry_at - view.now))} s"
    return line


def screen_for(
    view: PhoneView,
    *,
    wall_time: float | None = None,
    no_account_hint: str = "no account configured",
) -> Screen:
    """The screen for the phone's current state."""
    state = view.state
    call = view.call
    if state is PhoneState.IDLE:
        clock = time.strftime("%H:%M", time.localtime(wall_time))
        notes = [registration_line(view, no_account_hint)]
        if view.missed_calls:
            plural = "s" if view.missed_calls > 1 else ""
            notes.append(f"{view.missed_calls} missed call{plural}")
        if view.dnd:
            notes.append("do not disturb")
        return Screen(clock, tuple(notes))
    if state is PhoneState.OFF_HOOK:
        return Screen("dial", ("",))
    if state is PhoneState.DIALING:
        return Screen("dial", (view.digits,))
    if state is PhoneState.CALLING and call is not None:
        return Screen("calling", (peer_line(call), "ringing" if call.alerting else ""))
    if state is PhoneState.RINGING and call is not None:
        return Screen("incoming call", (call.name or call.number, call.number if call.name else ""))
    if state is PhoneState.CONNECTED and call is not None:
        if call.connected_at is None:
            detail = "connecting"
        else:
            detail = format_duration(view.now - call.connected_at)
        flags = [
            f
            for f, on in (
                ("hold", call.on_hold),
                ("held", call.held_by_remote),
                ("muted", view.muted),
            )
            if on
        ]
        return Screen("in call", (peer_line(call), detail, " ".join([call.codec, *flags]).strip()))
    if state is PhoneState.ENDED and view.end_reason is not None:
        return Screen("call ended", (view.end_reason.value,))
    return Screen(state.value, ())
