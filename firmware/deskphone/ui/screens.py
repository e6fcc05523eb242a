"""Screens: the phone's view turned into what the 128x64 display shows.

Pure functions of the view (and the wall clock, and network addresses for the network page), so
every screen is a unit test and a reference image. A `Screen` says what to show: a status bar
or a title bar, then lines of text in one of three faces, and a footer for hints; `ui.render`
turns it into pixels. `Screen.text()` is the same screen in words, for the simulator's caption,
`status` and tests.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deskphone.core.events import RegState
from deskphone.core.history import HistoryEntry
from deskphone.core.menu import MenuView, PageKind
from deskphone.core.phone import Call, PhoneState, PhoneView
from deskphone.ui.fonts import Face


class Align(enum.Enum):
    LEFT = "left"
    CENTER = "center"
    RIGHT = "right"


@dataclass(frozen=True, slots=True)
class Line:
    """One row of a screen (a wrapped one may take several)."""

    text: str = ""
    face: Face = Face.SMALL
    align: Align = Align.LEFT
    value: str = ""  # small text on the right of the same row: a menu value, call flags
    scroll: bool = False  # a name too long for the row scrolls instead of being cut
    wrap: bool = False  # a message too long for the row breaks over several
    keep_end: bool = False  # cut from the front when too long (dialled digits)
    inverse: bool = False  # the menu's cursor
    bar: tuple[int, int] | None = None  # (level, maximum): a level bar instead of text

    def words(self) -> str:
        if self.bar is not None:
            return f"{self.text} {self.bar[0]}/{self.bar[1]}".strip()
        return f"{self.text}  {self.value}".strip() if self.value else self.text


@dataclass(frozen=True, slots=True)
class StatusBar:
    """The idle screen's top row: who we are and what state the line is in, as icons."""

    label: str  # the account's label (the extension)
    registration: str  # the words for the icon, e.g. "1001: registered"
    registered: RegState | None  # None: no account
    clock: str = ""
    messages: bool = False
    dnd: bool = False
    battery: int | None = None  # percent; None: no battery
    charging: bool = False
    battery_low: bool = False

    def words(self) -> str:
        parts = [self.clock, self.registration]
        if self.messages:
            parts.append("voicemail waiting")
        if self.dnd:
            parts.append("do not disturb")
        if self.battery is not None:
            parts.append(f"battery {self.battery}%{' charging' if self.charging else ''}")
        return " | ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class Screen:
    """What the display shows, from which `ui.render` draws the pixels."""

    kind: str  # idle, error, dialing, calling, incoming, call, ended, menu
    title: str = ""  # the title bar (when there is no status bar)
    lines: tuple[Line, ...] = ()
    status: StatusBar | None = None
    title_right: str = ""  # small text at the title bar's right end (codec, position)
    footer: Line | None = None  # pinned to the bottom row: hints and notices
    centered: bool = False  # the lines sit in the middle of the space between

    def text(self) -> str:
        head = " ".join(p for p in (self.title, self.title_right) if p)
        rows = [head] if head else []
        if self.status is not None:
            rows.append(self.status.words())
        rows += [line.words() for line in self.lines]
        if self.footer is not None:
            rows.append(self.footer.words())
        return "\n".join(rows)


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """The phone's addresses, for the network page (read by `hw.netinfo`)."""

    hostname: str
    addresses: tuple[tuple[str, str], ...]  # (interface, address)


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


def matching_contact(digits: str, history: Sequence[HistoryEntry]) -> str:
    """The name of someone called before whose number is (or starts with) what is dialled.

    The call log is the phone's address book for now; an exact number wins over a prefix."""
    if not digits:
        return ""
    named = [entry for entry in history if entry.name]
    for entry in named:
        if entry.number == digits:
            return entry.name
    if len(digits) < 3:
        return ""  # two digits match too much to be worth showing
    return next((entry.name for entry in named if entry.number.startswith(digits)), "")


@dataclass(frozen=True, slots=True)
class Battery:
    percent: int | None
    on_battery: bool
    charging: bool
    low: bool


def battery_of(view: PhoneView) -> Battery | None:
    """The battery as the power policy reports it in `view.power`, or None without one.

    Read by duck type (`percent`, `on_battery`, `charging`, `level`) so the screens do not
    depend on how the power work models its sources."""
    power: Any = getattr(view, "power", None)
    if power is None or getattr(power, "percent", None) is None:
        return None
    level = getattr(getattr(power, "level", None), "value", "normal")
    return Battery(
        percent=round(power.percent),
        on_battery=bool(getattr(power, "on_battery", False)),
        charging=bool(getattr(power, "charging", False)),
        low=level != "normal",
    )


def screen_for(
    view: PhoneView,
    *,
    wall_time: float | None = None,
    no_account_hint: str = "no account configured",
    network: Callable[[], NetworkInfo] | None = None,
) -> Screen:
    """The screen for the phone's current state. `network` is asked for only while the
    network page is open."""
    if view.menu is not None:
        return menu_screen(view.menu, network)
    state = view.state
    call = view.call
    if state is PhoneState.IDLE:
        return idle_screen(view, wall_time, no_account_hint)
    if state in (PhoneState.OFF_HOOK, PhoneState.DIALING):
        return dialing_screen(view)
    if state is PhoneState.CALLING and call is not None:
        return Screen(
            "calling",
            "calling",
            (
                Line(call.name or call.number, Face.NAME, scroll=True),
                Line(call.number if call.name else ""),
                Line("ringing" if call.alerting else ""),
            ),
        )
    if state is PhoneState.RINGING and call is not None:
        return Screen(
            "incoming",
            "incoming call",
            (
                Line(call.name or call.number, Face.NAME, scroll=True),
                Line(call.number if call.name else ""),
            ),
            footer=Line("lift to answer", align=Align.CENTER),
        )
    if state is PhoneState.CONNECTED and call is not None:
        return call_screen(view, call)
    if state is PhoneState.ENDED and view.end_reason is not None:
        return ended_screen(view)
    return Screen("other", state.value)


def status_bar(view: PhoneView, clock: str, no_account_hint: str) -> StatusBar:
    first = view.registrations[0] if view.registrations else None
    battery = battery_of(view)
    return StatusBar(
        label=first.label if first else "",
        registration=registration_line(view, no_account_hint),
        registered=first.state if first else None,
        clock=clock,
        messages=view.messages_waiting,
        dnd=view.dnd,
        battery=battery.percent if battery else None,
        charging=bool(battery and battery.charging),
        battery_low=bool(battery and battery.low),
    )


def idle_screen(view: PhoneView, wall_time: float | None, no_account_hint: str) -> Screen:
    """The clock, the line's state in the status bar, and what waits for the user; a problem
    that stops calls (no account, registration failed, no handset) takes the screen."""
    clock = time.strftime("%H:%M", time.localtime(wall_time))
    problem = idle_problem(view, no_account_hint)
    if problem is not None:
        return notice_screen(*problem, status=status_bar(view, clock, no_account_hint))
    notes = list(view.problems)  # state not saved, config not reloaded (service layer)
    if view.missed_calls:
        plural = "s" if view.missed_calls > 1 else ""
        notes.append(f"{view.missed_calls} missed call{plural}")
    if view.new_messages:
        plural = "s" if view.new_messages > 1 else ""
        notes.append(f"{view.new_messages} new message{plural}")
    elif view.messages_waiting:
        notes.append("voicemail waiting")
    if view.dnd:
        notes.append("do not disturb")
    return Screen(
        "idle",
        lines=(
            Line(clock, Face.BIG, Align.CENTER),
            *(Line(note, align=Align.CENTER) for note in notes[:2]),
        ),
        status=status_bar(view, "", no_account_hint),
        centered=True,
    )


def notice_screen(headline: str, detail: str, status: StatusBar | None = None) -> Screen:
    """A problem in large type with what to do about it: the idle phone's, or one that keeps
    the phone from starting at all (a broken config), drawn without any phone state."""
    return Screen(
        "error",
        lines=(Line(headline, Face.NAME, Align.CENTER, wrap=True), Line(detail, wrap=True)),
        status=status,
        centered=True,
    )


def idle_problem(view: PhoneView, no_account_hint: str) -> tuple[str, str] | None:
    """(headline, detail) of what keeps the idle phone from calling, if anything."""
    if not view.registrations:
        return no_account_hint, "add an [[account]] to the config file"
    if not view.handset_present:
        return "no handset", "plug the handset in; calls need it"
    first = view.registrations[0]
    if first.state is RegState.FAILED:
        return "registration failed", registration_line(view, no_account_hint)
    return None


def dialing_screen(view: PhoneView) -> Screen:
    contact = matching_contact(view.digits, view.history)
    if not view.digits:
        hint = "dial a number"
    elif view.off_hook:
        hint = "# to send"
    else:
        hint = "lift to call"
    return Screen(
        "dialing",
        "dial",
        (
            Line(view.digits, Face.BIG, Align.RIGHT, keep_end=True),
            Line(contact, Face.NAME, Align.RIGHT, scroll=True),
        ),
        footer=Line(hint, align=Align.CENTER),
    )


def call_screen(view: PhoneView, call: Call) -> Screen:
    if call.connected_at is None:
        timer = "connecting"
    else:
        timer = format_duration(view.now - call.connected_at)
    flags = [
        flag
        for flag, on in (
            ("hold", call.on_hold),
            ("held", call.held_by_remote),
            ("muted", view.muted),
        )
        if on
    ]
    return Screen(
        "call",
        "conference" if view.conference else "in call",
        (
            Line(call.name or call.number, Face.NAME, scroll=True),
            Line(call.number if call.name else "", value=" ".join(flags)),
            Line(timer, Face.BIG if call.connected_at is not None else Face.NAME, Align.CENTER),
        ),
        title_right=call.codec,
        footer=second_call_line(view),
    )


def second_call_line(view: PhoneView) -> Line | None:
    """The other call beside the one on screen: knocking, on hold, or in the conference."""
    second = view.second
    if second is None:
        return None
    if view.conference:
        what = "+"
    elif not second.established:
        what = "waiting:"
    else:
        what = "on hold:"
    return Line(f"{what} {peer_line(second)}", scroll=True)


def ended_screen(view: PhoneView) -> Screen:
    assert view.end_reason is not None
    detail = ""
    last = view.history[0] if view.history else None
    if last is not None and last.reason is view.end_reason:
        detail = last.name or last.number
        if last.duration:
            detail += f"  {format_duration(last.duration)}"
    code = f"SIP {view.end_code}" if view.end_code >= 400 else ""
    return Screen(
        "ended",
        "call ended",
        (
            Line(view.end_reason.value, Face.NAME, Align.CENTER, wrap=True),
            Line(detail, align=Align.CENTER),
        ),
        footer=Line(code, align=Align.CENTER) if code else None,
        centered=True,
    )


MENU_ROWS = 3  # NAME rows under the title bar


def menu_screen(menu: MenuView, network: Callable[[], NetworkInfo] | None) -> Screen:
    page = menu.page
    notice = Line(menu.notice, inverse=True, align=Align.CENTER) if menu.notice else None
    if page.kind is PageKind.LIST:
        if not page.items:
            return Screen(
                "menu", page.title, (Line(page.empty, align=Align.CENTER),), footer=notice
            )
        first = max(0, min(menu.cursor - 1, len(page.items) - MENU_ROWS))
        shown = page.items[first : first + MENU_ROWS]
        rows = tuple(
            Line(
                item.label,
                Face.NAME,
                value="●" if item.marked else item.value,
                inverse=first + index == menu.cursor,
                scroll=first + index == menu.cursor,
            )
            for index, item in enumerate(shown)
        )
        position = f"{menu.cursor + 1}/{len(page.items)}"
        return Screen("menu", page.title, rows, title_right=position, footer=notice)
    if page.kind is PageKind.VALUE:
        return Screen(
            "menu",
            page.title,
            (
                Line(str(page.level), Face.BIG, Align.CENTER),
                Line(bar=(page.level, page.maximum)),
            ),
            footer=notice or Line("up/down (2/8) · OK (#)", align=Align.CENTER),
            centered=True,
        )
    if page.kind is PageKind.INPUT:
        return Screen(
            "menu",
            page.title,
            (Line(menu.typed, Face.BIG, Align.RIGHT, keep_end=True),),
            footer=notice or Line("# to confirm · * to delete", align=Align.CENTER),
            centered=True,
        )
    info = network() if network is not None else None
    return Screen("menu", page.title, network_lines(info), footer=notice)


def network_lines(info: NetworkInfo | None) -> tuple[Line, ...]:
    if info is None:
        return (Line("network unknown"),)
    rows = [Line(info.hostname, value="host")]
    rows += [Line(address, value=interface) for interface, address in info.addresses]
    if not info.addresses:
        rows.append(Line("no network address"))
    return tuple(rows)
