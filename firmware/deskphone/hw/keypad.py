"""Matrix keypad and hook switch on GPIO pins, through gpiozero.

The keypad is interrupt-driven: while idle every row is held active (low) and the columns are
inputs with pull-ups, so any press pulls a column low and its edge wakes one scan. Nothing runs
while no key is down. While keys are held the loop rescans at a short interval, which catches
releases that cause no edge (two keys in one column) and drives long press and repeat.

Debounce is our own (gpiozero's `bounce_time` is known to drop events): after an edge the
matrix is read once the contacts have been quiet for the debounce time, and a change found by
the rescans of held keys counts once two scans agree. Three keys on the corners of a rectangle
make a fourth look pressed in a matrix without diodes; such ambiguous states are not reported.

Function keys may also sit on pins of their own (a button from the pin to ground); they share
the debounce, long press and repeat. A key held past the hold time reports a long press, or,
where the profile says so (`long_press`), another key: a build without a menu key opens the
menu by holding `*`.

gpiozero calls back on its own threads; those callbacks only schedule work on the loop, which
does all scanning and owns all state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping

from gpiozero import DigitalInputDevice, DigitalOutputDevice
from gpiozero.pins import Factory

from deskphone.core.events import Event, HookChanged, KeyPressed
from deskphone.hw.profile import HookPin, KeypadPins

Position = tuple[int, int]  # (row, column)

DEBOUNCE = 0.008  # membrane and tactile contacts settle within a few ms
HOLD_TIME = 0.8
REPEAT_INTERVAL = 0.15
HELD_SCAN_INTERVAL = 0.03
HOOK_DEBOUNCE = 0.03


def is_ambiguous(pressed: Iterable[Position]) -> bool:
    """True when the pressed set holds three corners of a rectangle: the fourth corner then
    reads as pressed whether it is or not (a ghost), so the state cannot be trusted."""
    keys = set(pressed)
    return any(
        r1 != r2 and c1 != c2 and ((r1, c2) in keys or (r2, c1) in keys)
        for r1, c1 in keys
        for r2, c2 in keys
    )


class Settle:
    """Our debounce: `then` runs once `delay` has passed with no further `poke`, so a bouncing
    contact is read after it has settled, whatever its bounces looked like."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, delay: float, then: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._delay = delay
        self._then = then
        self._due: asyncio.TimerHandle | None = None

    @property
    def pending(self) -> bool:
        return self._due is not None

    def poke(self) -> None:
        self.cancel()
        self._due = self._loop.call_later(self._delay, self._fire)

    def cancel(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None

    def _fire(self) -> None:
        self._due = None
        self._then()


class HeldKeys:
    """Turns the changing set of keys that are down into `KeyPressed` events: one per press,
    then, while a key stays down, a long press (or the key the profile names for holding it)
    and, for repeat keys, a repeat every `REPEAT_INTERVAL`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        post: Callable[[Event], None],
        *,
        hold_time: float = HOLD_TIME,
        repeat_keys: Iterable[str] = (),
        long_press: Mapping[str, str] | None = None,
    ) -> None:
        self._loop = loop
        self._post = post
        self._hold_time = hold_time
        self._repeat_keys = frozenset(repeat_keys)
        self._long_press = dict(long_press or {})
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self.down: tuple[str, ...] = ()

    def update(self, down: Iterable[str]) -> None:
        """The keys down now, in the order their presses are reported."""
        now = tuple(down)
        for key in now:
            if key not in self.down:
                self._post(KeyPressed(key))
                self._timers[key] = self._loop.call_later(self._hold_time, self._long, key)
        for key in self.down:
            if key not in now:
                handle = self._timers.pop(key, None)
                if handle is not None:
                    handle.cancel()
        self.down = now

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.down = ()

    def _long(self, key: str) -> None:
        if key not in self.down:
            return
        alias = self._long_press.get(key)
        self._post(KeyPressed(alias) if alias else KeyPressed(key, long=True))
        if key in self._repeat_keys:
            self._timers[key] = self._loop.call_later(REPEAT_INTERVAL, self._repeat, key)

    def _repeat(self, key: str) -> None:
        if key not in self.down:
            return
        self._post(KeyPressed(key, repeat=True))
        self._timers[key] = self._loop.call_later(REPEAT_INTERVAL, self._repeat, key)


class MatrixKeypad:
    """A row/column keypad reporting `KeyPressed` events (short, long, repeat)."""

    def __init__(
        self,
        pins: KeypadPins,
        *,
        loop: asyncio.AbstractEventLoop,
        post: Callable[[Event], None],
        pin_factory: Factory | None = None,
        debounce: float = DEBOUNCE,
        hold_time: float = HOLD_TIME,
        repeat_keys: Iterable[str] = (),
    ) -> None:
        self._keys = pins.keys
        self._loop = loop
        self._debounce = debounce
        self._rows = [
            DigitalOutputDevice(pin, active_high=False, initial_value=True, pin_factory=pin_factory)
            for pin in pins.rows
        ]
        self._columns = [
            DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory) for pin in pins.columns
        ]
        self._held = HeldKeys(
            loop,
            post,
            hold_time=hold_time,
            repeat_keys=repeat_keys,
            long_press=dict(pins.long_press),
        )
        self._reported: frozenset[Position] = frozenset()
        self._candidate: frozenset[Position] | None = None
        self._quiet = Settle(loop, debounce, self._scan_settled)  # scan once contacts are still
        self._poll_due: asyncio.TimerHandle | None = None  # rescan while keys are held
        self._idle_columns = self._read_columns()
        self._closed = False
        for column in self._columns:
            column.when_activated = self._edge
            column.when_deactivated = self._edge

    @property
    def pressed(self) -> list[str]:
        """Names of the keys reported down, for status and tests."""
        return list(self._held.down)

    def close(self) -> None:
        self._closed = True
        self._quiet.cancel()
        if self._poll_due is not None:
            self._poll_due.cancel()
        self._held.close()
        for device in (*self._columns, *self._rows):
            device.close()

    # -- gpiozero's thread -----------------------------------------------------------------

    def _edge(self) -> None:
        self._loop.call_soon_threadsafe(self._on_edge)

    # -- the loop --------------------------------------------------------------------------

    def _on_edge(self) -> None:
        """An edge on a column: scan once the contacts have been quiet for the debounce time.
        Every edge restarts that wait, so a bouncing contact is read after it settles."""
        if self._closed:
            return
        if not self._quiet.pending and self._read_columns() == self._idle_columns:
            return  # the echo of our own scan's row switching
        self._quiet.poke()

    def _scan_settled(self) -> None:
        if self._closed:
            return
        state = self._scan_matrix()
        if state != self._reported and not is_ambiguous(state):
            self._report(state)
        self._candidate = None
        self._keep_polling()

    def _poll(self) -> None:
        """While keys are held no edge need come (a release in a column another held key keeps
        low), so rescan; a change seen this way counts once two scans agree."""
        self._poll_due = None
        if self._closed:
            return
        state = self._scan_matrix()
        if state == self._reported or is_ambiguous(state):
            self._candidate = None
        elif state == self._candidate:
            self._report(state)
            self._candidate = None
        else:
            self._candidate = state
        self._keep_polling()

    def _keep_polling(self) -> None:
        if self._poll_due is not None or not (self._reported or self._candidate):
            return
        delay = self._debounce if self._candidate is not None else HELD_SCAN_INTERVAL
        self._poll_due = self._loop.call_later(delay, self._poll)

    def _report(self, state: frozenset[Position]) -> None:
        self._reported = state
        self._held.update(self._name(position) for position in sorted(state))

    def _scan_matrix(self) -> frozenset[Position]:
        pressed: set[Position] = set()
        for row in self._rows:
            row.off()
        for r, row in enumerate(self._rows):
            row.on()
            for c, column in enumerate(self._columns):
                if column.is_active:
                    pressed.add((r, c))
            row.off()
        for row in self._rows:
            row.on()
        self._idle_columns = self._read_columns()
        return frozenset(pressed)

    def _read_columns(self) -> tuple[bool, ...]:
        return tuple(column.is_active for column in self._columns)

    def _name(self, position: Position) -> str:
        row, column = position
        return self._keys[row][column]


class FunctionKeys:
    """Function keys on pins of their own, each a button from its pin to ground. Interrupt-
    driven like the matrix: an edge on any of them reads them all once they have settled."""

    def __init__(
        self,
        pins: Iterable[tuple[str, int]],
        *,
        loop: asyncio.AbstractEventLoop,
        post: Callable[[Event], None],
        pin_factory: Factory | None = None,
        debounce: float = DEBOUNCE,
        hold_time: float = HOLD_TIME,
        repeat_keys: Iterable[str] = (),
    ) -> None:
        self._loop = loop
        self._buttons = {
            name: DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
            for name, pin in pins
        }
        self._held = HeldKeys(loop, post, hold_time=hold_time, repeat_keys=repeat_keys)
        self._quiet = Settle(loop, debounce, self._read)
        self._closed = False
        for button in self._buttons.values():
            button.when_activated = self._edge
            button.when_deactivated = self._edge

    @property
    def pressed(self) -> list[str]:
        return list(self._held.down)

    def close(self) -> None:
        self._closed = True
        self._quiet.cancel()
        self._held.close()
        for button in self._buttons.values():
            button.close()

    def _edge(self) -> None:
        self._loop.call_soon_threadsafe(self._on_edge)

    def _on_edge(self) -> None:
        if not self._closed:
            self._quiet.poke()

    def _read(self) -> None:
        if not self._closed:
            self._held.update(name for name, b in self._buttons.items() if b.is_active)


class HookSwitch:
    """The handset's hook switch; reports `HookChanged` once the contact has settled."""

    def __init__(
        self,
        pin: HookPin,
        *,
        loop: asyncio.AbstractEventLoop,
        post: Callable[[Event], None],
        pin_factory: Factory | None = None,
        debounce: float = HOOK_DEBOUNCE,
    ) -> None:
        self._loop = loop
        self._post = post
        # Pulled towards the on-hook level, so an unplugged switch reads "on hook".
        self._input = DigitalInputDevice(pin.pin, pull_up=pin.off_hook_low, pin_factory=pin_factory)
        self._input.when_activated = self._edge
        self._input.when_deactivated = self._edge
        self._quiet = Settle(loop, debounce, self._check)  # read once the contact is quiet
        self.off_hook = bool(self._input.is_active)

    def close(self) -> None:
        self._quiet.cancel()
        self._input.close()

    def _edge(self) -> None:
        self._loop.call_soon_threadsafe(self._quiet.poke)

    def _check(self) -> None:
        level = bool(self._input.is_active)
        if level != self.off_hook:
            self.off_hook = level
            self._post(HookChanged(level))
