"""The keypad scanner and hook switch, on gpiozero's MockFactory with the matrix modelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from deskphone.core.events import Event, HookChanged, KeyPressed
from deskphone.hw.keypad import DEBOUNCE, HookSwitch, MatrixKeypad, is_ambiguous
from deskphone.hw.profile import load_profile
from deskphone.hw.sim import KeyMatrix, mock_factory

SETTLE = DEBOUNCE * 4  # long enough for an edge, a debounce wait and a confirming scan


def run(
    test: Callable[[KeyMatrix, MatrixKeypad, HookSwitch, list[Event]], Awaitable[None]],
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        profile = load_profile("reference")
        factory, matrix = mock_factory(profile)
        events: list[Event] = []
        keypad = MatrixKeypad(
            profile.keypad,
            loop=loop,
            post=events.append,
            pin_factory=factory,
            hold_time=0.3,
            repeat_keys=("hold",),
        )
        hook = HookSwitch(profile.hook, loop=loop, post=events.append, pin_factory=factory)
        try:
            await test(matrix, keypad, hook, events)
        finally:
            keypad.close()
            hook.close()

    asyncio.run(main())


def keys(events: list[Event]) -> list[tuple[str, bool, bool]]:
    return [(e.key, e.long, e.repeat) for e in events if isinstance(e, KeyPressed)]


def test_a_key_press_is_reported_once() -> None:
    async def test(matrix, keypad, hook, events):
        matrix.press("5")
        await asyncio.sleep(SETTLE)
        assert keypad.pressed == ["5"]
        matrix.release("5")
        await asyncio.sleep(SETTLE)
        assert keys(events) == [("5", False, False)] and keypad.pressed == []

    run(test)


def test_two_keys_at_once_are_both_reported_without_ghosts() -> None:
    async def test(matrix, keypad, hook, events):
        matrix.press("1")
        matrix.press("9")  # different rows and columns: no fourth corner can appear
        await asyncio.sleep(SETTLE)
        assert sorted(keypad.pressed) == ["1", "9"]
        matrix.release("1")  # no edge on its own column... but the held-key rescan sees it
        await asyncio.sleep(SETTLE * 2)
        assert keypad.pressed == ["9"]

    run(test)


def test_release_of_one_key_of_two_in_a_column_is_seen() -> None:
    async def test(matrix, keypad, hook, events):
        matrix.press("1")
        matrix.press("4")  # same column: releasing one leaves the column low
        await asyncio.sleep(SETTLE)
        matrix.release("4")
        await asyncio.sleep(SETTLE * 2)
        assert keypad.pressed == ["1"]

    run(test)


def test_three_corners_of_a_rectangle_are_not_trusted() -> None:
    assert is_ambiguous({(0, 0), (0, 1), (1, 0)})
    assert not is_ambiguous({(0, 0), (1, 1)})
    assert not is_ambiguous({(0, 0), (0, 1)})

    async def test(matrix, keypad, hook, events):
        for key in "124":
            matrix.press(key)
        await asyncio.sleep(SETTLE)
        assert "5" not in keypad.pressed  # the ghost at the fourth corner is never reported

    run(test)


def test_contact_bounce_gives_one_press() -> None:
    async def test(matrix, keypad, hook, events):
        for _ in range(5):  # a bouncing contact: several make/break edges within a few ms
            matrix.press("7")
            await asyncio.sleep(0.001)
            matrix.release("7")
            await asyncio.sleep(0.001)
        matrix.press("7")
        await asyncio.sleep(SETTLE)
        matrix.release("7")
        await asyncio.sleep(SETTLE)
        assert keys(events) == [("7", False, False)]

    run(test)


def test_a_glitch_shorter_than_the_debounce_is_ignored() -> None:
    async def test(matrix, keypad, hook, events):
        matrix.press("3")
        await asyncio.sleep(0.002)
        matrix.release("3")
        await asyncio.sleep(SETTLE * 2)
        assert keys(events) == []

    run(test)


def test_long_press_and_repeat() -> None:
    async def test(matrix, keypad, hook, events):
        matrix.press("0")
        matrix.press("hold")
        await asyncio.sleep(0.3 + 0.15 * 2 + 0.1)
        matrix.release("0")
        matrix.release("hold")
        await asyncio.sleep(SETTLE)
        seen = keys(events)
        assert ("0", True, False) in seen and ("hold", True, False) in seen
        assert ("hold", False, True) in seen  # the hold key repeats while held
        assert ("0", False, True) not in seen  # digits do not

    run(test)


def test_hook_switch_reports_settled_changes_only() -> None:
    async def test(matrix, keypad, hook, events):
        assert not hook.off_hook
        for lifted in (True, False, True):  # a bouncing hook contact
            matrix.set_hook(lifted)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.1)
        matrix.set_hook(False)
        await asyncio.sleep(0.1)
        assert [e for e in events if isinstance(e, HookChanged)] == [
            HookChanged(True),
            HookChanged(False),
        ]

    run(test)


def test_unknown_key_is_a_clear_error() -> None:
    async def test(matrix, keypad, hook, events):
        with pytest.raises(ValueError, match="no key 'volume'"):
            matrix.press("volume")

    run(test)
