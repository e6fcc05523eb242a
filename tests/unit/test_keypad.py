"""The keypad scanner and hook switch, on gpiozero's MockFactory with the matrix modelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from deskphone.core.events import Event, HookChanged, KeyPressed
from deskphone.hw.keypad import DEBOUNCE, FunctionKeys, HookSwitch, MatrixKeypad, is_ambiguous
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


def run_profile(
    name: str,
    test: Callable[[KeyMatrix, MatrixKeypad, FunctionKeys | None, list[Event]], Awaitable[None]],
) -> None:
    """Like `run`, with a named profile's keypad and its function keys on their own pins."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        profile = load_profile(name)
        factory, matrix = mock_factory(profile)
        events: list[Event] = []
        keypad = MatrixKeypad(
            profile.keypad, loop=loop, post=events.append, pin_factory=factory, hold_time=0.3
        )
        buttons = None
        if profile.keys:
            buttons = FunctionKeys(
                profile.keys,
                loop=loop,
                post=events.append,
                pin_factory=factory,
                hold_time=0.3,
                repeat_keys=("dnd",),
            )
        try:
            await test(matrix, keypad, buttons, events)
        finally:
            keypad.close()
            if buttons is not None:
                buttons.close()

    asyncio.run(main())


def test_every_key_of_both_builds_is_reported_by_its_name() -> None:
    for name in ("reference", "minimal"):

        async def test(matrix, keypad, buttons, events):
            for key in matrix.keys:
                matrix.press(key)
                await asyncio.sleep(SETTLE)
                matrix.release(key)
                await asyncio.sleep(SETTLE)
            assert keys(events) == [(key, False, False) for key in matrix.keys]

        run_profile(name, test)


def test_a_function_key_on_its_own_pin_debounces_and_holds() -> None:
    async def test(matrix, keypad, buttons, events):
        for _ in range(4):  # bounce
            matrix.press("dnd")
            await asyncio.sleep(0.001)
            matrix.release("dnd")
            await asyncio.sleep(0.001)
        matrix.press("dnd")
        await asyncio.sleep(0.3 + 0.15 * 2 + 0.1)
        assert buttons.pressed == ["dnd"]
        matrix.release("dnd")
        await asyncio.sleep(SETTLE)
        seen = keys(events)
        assert seen[:2] == [("dnd", False, False), ("dnd", True, False)]
        assert ("dnd", False, True) in seen and buttons.pressed == []

    run_profile("reference", test)


def test_a_chord_of_a_matrix_key_and_a_function_key() -> None:
    async def test(matrix, keypad, buttons, events):
        matrix.press("5")
        matrix.press("voicemail")
        await asyncio.sleep(SETTLE)
        assert keypad.pressed == ["5"] and buttons.pressed == ["voicemail"]
        assert sorted(keys(events)) == [("5", False, False), ("voicemail", False, False)]

    run_profile("reference", test)


def test_holding_star_on_the_minimal_build_means_menu() -> None:
    async def test(matrix, keypad, buttons, events):
        matrix.press("*")
        await asyncio.sleep(0.3 + 0.1)
        matrix.release("*")
        await asyncio.sleep(SETTLE)
        assert keys(events) == [("*", False, False), ("menu", False, False)]

    run_profile("minimal", test)


def test_leds_follow_the_phone() -> None:
    from dataclasses import replace

    from deskphone.core.phone import PhoneState
    from deskphone.hw.leds import Leds, Light
    from tests.unit.test_screens import view

    profile = load_profile("reference")
    factory, _ = mock_factory(profile)
    leds = Leds(profile.leds, pin_factory=factory)
    try:
        idle = view()
        leds.update(replace(idle, messages_waiting=True))
        assert leds.is_lit("message") and not leds.is_lit("line")
        leds.update(replace(idle, state=PhoneState.CONNECTED, off_hook=True))
        assert leds.is_lit("line") and not leds.is_lit("message")
        leds.update(replace(idle, state=PhoneState.RINGING))
        assert leds.lights["line"] is Light.BLINK
        leds.update(idle)
        assert not leds.is_lit("line") and leds.lights["line"] is Light.OFF
    finally:
        leds.close()
