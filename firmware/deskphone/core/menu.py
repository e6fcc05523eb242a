"""The on-screen menu: pages, a cursor, and which command each choice runs.

Pure data and functions. `MenuState` is where the user is; `page()` builds a page from the
phone's data (`MenuContext`); `press()` turns a key into the next state and, when the choice
does something, names the command of the phone's one command table to run (`volume handset up`,
`ring chirp`, `dial 1002`, `transfer 2001`, ...). The menu never changes the phone itself: the
phone runs what it names, so a menu choice and the same command from the control socket are one
code path.

Keys: up/down move (on a keypad without them, 2 and 8), OK opens or runs (#), back returns (*),
menu closes. On a page that takes digits (transfer), the digits are typed, # runs, * deletes.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass

from deskphone.core.history import HistoryEntry
from deskphone.core.settings import RING_PATTERNS, VOLUME_MAX, AudioOutput, Settings

MAIN = "main"  # the root while idle
CALL = "call"  # the root during a call
HISTORY = "history"
SETTINGS = "settings"
RING = "ring"
CONTRAST = "contrast"
NETWORK = "network"
TRANSFER = "transfer"
VOLUME_PREFIX = "volume:"

CONTRAST_STEP = 32
CONTRAST_MAX = 255
UP_KEYS = frozenset({"up", "2"})
DOWN_KEYS = frozenset({"down", "8"})
OK_KEYS = frozenset({"ok", "#"})
BACK_KEYS = frozenset({"back", "*"})
CLOSE_KEYS = frozenset({"menu"})
TYPED_DIGITS = frozenset("0123456789")
HISTORY_DIRECTION = {"in": "↙", "out": "↗", "missed": "✗"}

Command = tuple[str, ...]  # a command name and its arguments


class PageKind(enum.Enum):
    LIST = "list"  # items and a cursor; OK opens an item's page or runs its command
    VALUE = "value"  # a level adjusted with up and down
    INPUT = "input"  # digits typed; OK runs the page's command with them
    INFO = "info"  # read-only; the screen fills it in (network addresses)


@dataclass(frozen=True, slots=True)
class MenuItem:
    label: str
    value: str = ""  # shown on the right: a level, "on", the ring's name, a time
    opens: str = ""  # the page OK opens
    runs: Command = ()  # or the command OK runs
    marked: bool = False  # the current choice among several (the ring in use)


@dataclass(frozen=True, slots=True)
class MenuPage:
    id: str
    title: str
    kind: PageKind
    items: tuple[MenuItem, ...] = ()
    empty: str = ""  # what a list with no items says
    level: int = 0  # VALUE: the level now, of `maximum`
    maximum: int = 0
    up: Command = ()  # VALUE: the commands up and down run
    down: Command = ()
    runs: Command = ()  # INPUT: the command the typed digits are appended to


@dataclass(frozen=True, slots=True)
class MenuContext:
    """What the pages are built from: the phone's data, read-only."""

    settings: Settings
    history: tuple[HistoryEntry, ...]
    in_call: bool = False
    on_hold: bool = False
    muted: bool = False


@dataclass(frozen=True, slots=True)
class MenuState:
    """Where the user is: the pages opened from the root, each with its cursor."""

    stack: tuple[tuple[str, int], ...]
    typed: str = ""  # digits typed on an INPUT page
    notice: str = ""  # why the last choice could not run

    @property
    def page_id(self) -> str:
        return self.stack[-1][0]

    @property
    def cursor(self) -> int:
        return self.stack[-1][1]

    @property
    def root(self) -> str:
        return self.stack[0][0]

    def with_notice(self, notice: str) -> MenuState:
        return dataclasses.replace(self, notice=notice)


@dataclass(frozen=True, slots=True)
class MenuView:
    """The open page as the screen draws it."""

    page: MenuPage
    cursor: int
    typed: str
    notice: str


@dataclass(frozen=True, slots=True)
class Press:
    """What a key did to the menu: the next state (None: closed), a command to run, and
    whether the menu took the key at all (if not, the phone handles it as usual)."""

    state: MenuState | None
    run: Command = ()
    consumed: bool = True


def open_menu(context: MenuContext, page_id: str = "") -> MenuState:
    """The menu opened at its root (the call menu during a call), or straight at one page."""
    root = CALL if context.in_call else MAIN
    stack: tuple[tuple[str, int], ...] = ((root, 0),)
    if page_id and page_id != root:
        items = page(root, context).items
        index = next((i for i, item in enumerate(items) if item.opens == page_id), 0)
        stack = ((root, index), (page_id, 0))
    return MenuState(stack)


def page(page_id: str, context: MenuContext) -> MenuPage:
    """Build a page from the phone's data; an unknown id is a programming error."""
    settings = context.settings
    if page_id == MAIN:
        return MenuPage(
            MAIN,
            "Menu",
            PageKind.LIST,
            (
                MenuItem("Call history", str(len(context.history)), opens=HISTORY),
                MenuItem("Voicemail", runs=("voicemail",)),
                MenuItem("Settings", opens=SETTINGS),
                MenuItem("Network", opens=NETWORK),
            ),
        )
    if page_id == CALL:
        return MenuPage(
            CALL,
            "Call",
            PageKind.LIST,
            (
                MenuItem("Transfer", opens=TRANSFER),
                MenuItem("Resume" if context.on_hold else "Hold", runs=("hold",)),
                MenuItem("Unmute" if context.muted else "Mute", runs=("mute",)),
            ),
        )
    if page_id == HISTORY:
        return MenuPage(
            HISTORY,
            "Call history",
            PageKind.LIST,
            tuple(_history_item(entry) for entry in context.history),
            empty="no calls yet",
        )
    if page_id == SETTINGS:
        volumes = tuple(
            MenuItem(
                f"{output.value.capitalize()} volume",
                str(settings.volume(output)),
                opens=VOLUME_PREFIX + output.value,
            )
            for output in AudioOutput
        )
        return MenuPage(
            SETTINGS,
            "Settings",
            PageKind.LIST,
            (
                *volumes,
                MenuItem("Ring", settings.ring_pattern, opens=RING),
                MenuItem("Contrast", str(settings.contrast), opens=CONTRAST),
                MenuItem("Do not disturb", "on" if settings.dnd else "off", runs=("dnd",)),
            ),
        )
    if page_id.startswith(VOLUME_PREFIX):
        output = AudioOutput(page_id.removeprefix(VOLUME_PREFIX))
        return MenuPage(
            page_id,
            f"{output.value.capitalize()} volume",
            PageKind.VALUE,
            level=settings.volume(output),
            maximum=VOLUME_MAX,
            up=("volume", output.value, "up"),
            down=("volume", output.value, "down"),
        )
    if page_id == RING:
        return MenuPage(
            RING,
            "Ring",
            PageKind.LIST,
            tuple(
                MenuItem(name, runs=("ring", name), marked=name == settings.ring_pattern)
                for name in RING_PATTERNS
            ),
        )
    if page_id == CONTRAST:
        level = settings.contrast
        return MenuPage(
            CONTRAST,
            "Contrast",
            PageKind.VALUE,
            level=level,
            maximum=CONTRAST_MAX,
            up=("contrast", str(min(CONTRAST_MAX, level + CONTRAST_STEP))),
            down=("contrast", str(max(0, level - CONTRAST_STEP))),
        )
    if page_id == NETWORK:
        return MenuPage(NETWORK, "Network", PageKind.INFO)
    if page_id == TRANSFER:
        return MenuPage(TRANSFER, "Transfer to", PageKind.INPUT, runs=("transfer",))
    raise ValueError(f"no menu page {page_id!r}")


def view(state: MenuState, context: MenuContext) -> MenuView:
    shown = page(state.page_id, context)
    cursor = min(state.cursor, max(0, len(shown.items) - 1))
    return MenuView(shown, cursor, state.typed, state.notice)


def press(state: MenuState, key: str, context: MenuContext) -> Press:
    """What `key` does on the open page."""
    if key in CLOSE_KEYS:
        return Press(None)
    current = page(state.page_id, context)
    state = dataclasses.replace(state, notice="")
    if current.kind is PageKind.INPUT:
        return _press_input(state, key, current)
    if key in BACK_KEYS:
        return Press(_back(state))
    if current.kind is PageKind.VALUE:
        if key in UP_KEYS:
            return Press(state, current.up)
        if key in DOWN_KEYS:
            return Press(state, current.down)
        if key in OK_KEYS:
            return Press(_back(state))
    elif current.kind is PageKind.LIST:
        return _press_list(state, key, current)
    elif key in UP_KEYS | DOWN_KEYS | OK_KEYS:
        return Press(state)  # an INFO page only shows
    return Press(state, consumed=False)


def _press_list(state: MenuState, key: str, current: MenuPage) -> Press:
    count = len(current.items)
    cursor = min(state.cursor, max(0, count - 1))
    if key in UP_KEYS | DOWN_KEYS:
        if count:
            step = -1 if key in UP_KEYS else 1
            cursor = (cursor + step) % count  # wraps round, as on most phones
        return Press(_move(state, cursor))
    if key in OK_KEYS:
        if not count:
            return Press(state)
        item = current.items[cursor]
        if item.opens:
            opened = (*state.stack[:-1], (state.page_id, cursor), (item.opens, 0))
            return Press(MenuState(opened))
        return Press(_move(state, cursor), item.runs)
    return Press(state, consumed=False)


def _press_input(state: MenuState, key: str, current: MenuPage) -> Press:
    if key in TYPED_DIGITS:
        return Press(dataclasses.replace(state, typed=state.typed + key))
    if key in BACK_KEYS:
        if state.typed:
            return Press(dataclasses.replace(state, typed=state.typed[:-1]))
        return Press(_back(state))
    if key in OK_KEYS:
        if not state.typed:
            return Press(state.with_notice("type a number first"))
        return Press(state, (*current.runs, state.typed))
    if key in UP_KEYS | DOWN_KEYS:
        return Press(state)
    return Press(state, consumed=False)


def _back(state: MenuState) -> MenuState | None:
    """One page back; closed from the root."""
    if len(state.stack) == 1:
        return None
    return MenuState(state.stack[:-1])


def _move(state: MenuState, cursor: int) -> MenuState:
    return dataclasses.replace(state, stack=(*state.stack[:-1], (state.page_id, cursor)))


def _history_item(entry: HistoryEntry) -> MenuItem:
    label = f"{HISTORY_DIRECTION.get(entry.direction, '')} {entry.name or entry.number}".strip()
    when = time.strftime("%H:%M", time.localtime(entry.started))
    return MenuItem(label, when, runs=("dial", entry.number))
