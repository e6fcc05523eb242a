"""The simulated hardware underneath the sim kit: gpiozero's MockFactory with the keypad's
wiring modelled electrically, so the real scanning code runs unchanged.

A pressed key joins its row and its column: a column input reads low while any pressed key in
it sits on a row that is driven low. Rows are outputs, so each row change re-evaluates the
columns, exactly what the scanner relies on.
"""

from __future__ import annotations

import threading

from gpiozero.pins.mock import MockFactory, MockPin

from deskphone.hw.profile import HardwareProfile


class MatrixPin(MockPin):  # type: ignore[misc]
    """A mock pin that tells the factory's key matrix when it changes as an output."""

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        matrix = getattr(self.factory, "key_matrix", None)
        if changed and matrix is not None and self._function == "output":
            matrix.rows_changed()
        return changed


class KeyMatrix:
    """The keypad's contacts, function keys and hook switch, pressed by tests or the terminal
    keyboard."""

    def __init__(self, factory: MockFactory, profile: HardwareProfile) -> None:
        self._factory = factory
        self._rows = profile.keypad.rows
        self._columns = profile.keypad.columns
        self._positions = {
            key: (r, c) for r, row in enumerate(profile.keypad.keys) for c, key in enumerate(row)
        }
        self._buttons = dict(profile.keys)  # function keys on pins of their own
        self._hook = profile.hook
        self._pressed: set[tuple[int, int]] = set()
        self._lock = threading.RLock()
        factory.key_matrix = self

    @property
    def keys(self) -> list[str]:
        return [*self._positions, *self._buttons]

    def press(self, key: str) -> None:
        """Close a key's contact: a matrix key joins its row and column, a function key pulls
        its pin to ground."""
        with self._lock:
            if key in self._buttons:
                self._factory.pin(self._buttons[key]).drive_low()
                return
            self._pressed.add(self._position(key))
            self.rows_changed()

    def release(self, key: str) -> None:
        with self._lock:
            if key in self._buttons:
                self._factory.pin(self._buttons[key]).drive_high()
                return
            self._pressed.discard(self._position(key))
            self.rows_changed()

    def set_hook(self, off_hook: bool) -> None:
        """Lift (True) or replace (False) the handset."""
        pin = self._factory.pin(self._hook.pin)
        low = off_hook == self._hook.off_hook_low
        with self._lock:
            if low:
                pin.drive_low()
            else:
                pin.drive_high()

    def rows_changed(self) -> None:
        with self._lock:
            for c, column_pin in enumerate(self._columns):
                pin = self._factory.pin(column_pin)
                if pin.function != "input":
                    continue
                pulled_low = any(
                    self._factory.pin(self._rows[r]).state == 0
                    for r, col in self._pressed
                    if col == c and self._factory.pin(self._rows[r]).function == "output"
                )
                if pulled_low:
                    pin.drive_low()
                else:
                    pin.drive_high()

    def _position(self, key: str) -> tuple[int, int]:
        try:
            return self._positions[key]
        except KeyError:
            raise ValueError(f"no key {key!r} on this keypad; it has {self.keys}") from None


def mock_factory(profile: HardwareProfile) -> tuple[MockFactory, KeyMatrix]:
    """A private MockFactory (not gpiozero's global one) wired as the profile says."""
    factory = MockFactory(pin_class=MatrixPin)
    return factory, KeyMatrix(factory, profile)
