"""The menu: its pages and keys as a pure model, and through the phone, where each choice runs a
command of the one command table."""

from __future__ import annotations

from deskphone.core import menu as menus
from deskphone.core.effects import (
    MakeCall,
    SaveSettings,
    SetContrast,
    SetVolume,
    StartTimer,
    Transfer,
)
from deskphone.core.events import HookChanged, KeyPressed, TimerExpired
from deskphone.core.history import EndReason, HistoryEntry
from deskphone.core.phone import COMMANDS, TIMER_MENU, Phone, PhoneState
from deskphone.core.settings import RING_PATTERNS, AudioOutput, Settings
from tests.unit.test_phone import connect, dial_out, make_phone, of_type

HISTORY = (
    HistoryEntry("missed", "2001", "Kim", 1.7e9, 0, EndReason.MISSED),
    HistoryEntry("out", "1002", "", 1.7e9 - 60, 30, EndReason.HUNG_UP),
)
CONTEXT = menus.MenuContext(Settings(), HISTORY)


def keys(phone: Phone, *names: str) -> list:
    effects: list = []
    for name in names:
        effects += phone.handle(KeyPressed(name))
    return effects


def page_id(phone: Phone) -> str | None:
    view = phone.view().menu
    return view.page.id if view else None


# -- the model --------------------------------------------------------------------------------


def test_every_command_a_page_names_is_in_the_command_table() -> None:
    """The menu only names commands; each must exist with an acceptable number of arguments."""
    contexts = (CONTEXT, menus.MenuContext(Settings(), HISTORY, in_call=True))
    pages = [menus.MAIN, menus.CALL, menus.HISTORY, menus.SETTINGS, menus.RING, menus.CONTRAST]
    pages += [menus.VOLUME_PREFIX + o.value for o in AudioOutput] + [menus.TRANSFER]
    for context in contexts:
        for page_name in pages:
            page = menus.page(page_name, context)
            commands = [item.runs for item in page.items if item.runs]
            commands += [c for c in (page.up, page.down) if c]
            if page.runs:
                commands.append((*page.runs, "2001"))
            for name, *args in commands:
                entry = COMMANDS[name]
                assert entry.min_args <= len(args) <= entry.max_args, (page_name, name, args)
            for item in page.items:
                if item.opens:
                    menus.page(item.opens, context)  # every page an item opens exists


def test_up_and_down_move_the_cursor_round_and_ok_opens_and_back_returns() -> None:
    state = menus.open_menu(CONTEXT)
    assert state.page_id == menus.MAIN
    state = menus.press(state, "up", CONTEXT).state  # wraps round to the last item
    assert state is not None and state.cursor == 3
    state = menus.press(state, "8", CONTEXT).state  # 8 is down on a keypad without arrows
    assert state is not None and state.cursor == 0
    opened = menus.press(state, "#", CONTEXT).state  # # is OK
    assert opened is not None and opened.page_id == menus.HISTORY
    back = menus.press(opened, "*", CONTEXT).state  # * is back, to where the cursor was
    assert back is not None and (back.page_id, back.cursor) == (menus.MAIN, 0)
    assert menus.press(back, "back", CONTEXT).state is None  # back from the root closes
    assert menus.press(opened, "menu", CONTEXT).state is None  # the menu key closes at once


def test_keys_the_menu_does_not_use_are_left_to_the_phone() -> None:
    state = menus.open_menu(CONTEXT)
    assert not menus.press(state, "vol_up", CONTEXT).consumed
    assert not menus.press(state, "5", CONTEXT).consumed


def test_a_history_entry_dials_its_number() -> None:
    state = menus.open_menu(CONTEXT, menus.HISTORY)
    state = menus.press(state, "down", CONTEXT).state
    assert state is not None
    assert menus.press(state, "ok", CONTEXT).run == ("dial", "1002")
    view = menus.view(state, CONTEXT)
    assert [item.label for item in view.page.items] == ["✗ Kim", "↗ 1002"]


def test_value_pages_run_their_up_and_down_commands() -> None:
    state = menus.open_menu(CONTEXT, menus.CONTRAST)
    context = menus.MenuContext(Settings(contrast=100), ())
    assert menus.press(state, "up", context).run == ("contrast", "132")
    assert menus.press(state, "2", context).run == ("contrast", "132")
    assert menus.press(state, "down", context).run == ("contrast", "68")
    full = menus.MenuContext(Settings(contrast=250), ())
    assert menus.press(state, "up", full).run == ("contrast", "255")


def test_the_transfer_page_takes_digits_and_runs_transfer_with_them() -> None:
    context = menus.MenuContext(Settings(), (), in_call=True)
    state = menus.open_menu(context, menus.TRANSFER)
    assert state.stack[0][0] == menus.CALL
    for digit in "2081":
        state = menus.press(state, digit, context).state  # 2 and 8 are digits here
        assert state is not None
    state = menus.press(state, "*", context).state  # * deletes the last digit
    assert state is not None and state.typed == "208"
    assert menus.press(state, "#", context).run == ("transfer", "208")
    empty = menus.open_menu(context, menus.TRANSFER)
    nothing = menus.press(empty, "ok", context)
    assert nothing.run == () and nothing.state and nothing.state.notice


# -- through the phone ------------------------------------------------------------------------


def test_the_menu_key_opens_the_menu_when_idle_and_it_times_out() -> None:
    phone, _ = make_phone()
    effects = keys(phone, "menu")
    assert page_id(phone) == menus.MAIN
    assert StartTimer(TIMER_MENU, 30.0) in effects
    phone.handle(TimerExpired(TIMER_MENU))
    assert phone.view().menu is None


def test_volume_from_the_menu_is_the_volume_command() -> None:
    phone, _ = make_phone()
    keys(phone, "menu", "down", "down", "ok")  # Settings
    assert page_id(phone) == menus.SETTINGS
    keys(phone, "down", "down", "ok")  # Ringer volume
    assert page_id(phone) == "volume:ringer"
    effects = keys(phone, "up")
    assert SetVolume(AudioOutput.RINGER, 7) in effects and of_type(effects, SaveSettings)
    assert phone.settings.ringer_volume == 7 and page_id(phone) == "volume:ringer"


def test_ring_and_contrast_from_the_menu() -> None:
    phone, _ = make_phone()
    keys(phone, "menu", "down", "down", "ok", "down", "down", "down", "ok")  # Settings, Ring
    assert page_id(phone) == menus.RING
    keys(phone, "down", "ok")
    assert phone.settings.ring_pattern == RING_PATTERNS[1]
    keys(phone, "back", "down", "ok", "down")  # Contrast, one step down
    assert phone.settings.contrast == 255 - menus.CONTRAST_STEP
    assert of_type(phone.handle(KeyPressed("down")), SetContrast)


def test_a_choice_that_cannot_run_shows_why_in_the_menu() -> None:
    phone, _ = make_phone()  # no voicemail number configured
    keys(phone, "menu", "down", "ok")  # Voicemail
    view = phone.view().menu
    assert view is not None and "voicemail" in view.notice
    keys(phone, "down")
    view = phone.view().menu
    assert view is not None and view.notice == ""  # the next key clears it


def test_dialling_from_the_history_closes_the_menu_and_calls() -> None:
    phone, _ = make_phone()
    phone.history.extend(HISTORY)
    keys(phone, "menu", "ok")  # Call history
    effects = keys(phone, "down", "ok")
    assert [e.target for e in of_type(effects, MakeCall)] == ["1002"]
    assert phone.state is PhoneState.CALLING and phone.view().menu is None


def test_lifting_the_handset_closes_the_menu() -> None:
    phone, _ = make_phone()
    keys(phone, "menu")
    phone.handle(HookChanged(True))
    assert phone.view().menu is None and phone.state is PhoneState.OFF_HOOK


def test_the_menu_key_drops_predialled_digits() -> None:
    phone, _ = make_phone()
    keys(phone, "1", "2")
    assert phone.state is PhoneState.DIALING
    keys(phone, "menu")
    assert phone.state is PhoneState.IDLE and phone.digits == "" and page_id(phone) == menus.MAIN


def test_holding_star_opens_the_menu_on_a_build_without_a_menu_key() -> None:
    """The minimal profile maps a long * to "menu": the short * first starts pre-dialling."""
    phone, _ = make_phone()
    keys(phone, "*")
    keys(phone, "menu")
    assert page_id(phone) == menus.MAIN and phone.digits == ""


def test_up_and_down_open_the_menu_only_when_idle() -> None:
    phone, _ = make_phone()
    keys(phone, "down")
    assert page_id(phone) == menus.MAIN
    off_hook, _ = make_phone()
    off_hook.handle(HookChanged(True))
    keys(off_hook, "down")
    assert off_hook.view().menu is None


def test_the_transfer_key_in_a_call_asks_for_the_number_and_transfers() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    keys(phone, "transfer")
    assert page_id(phone) == menus.TRANSFER
    effects = keys(phone, "2", "0", "0", "1", "#")
    assert Transfer(call, "2001") in effects
    assert not of_type(effects, MakeCall)  # the digits went to the page, not out as DTMF


def test_the_call_menu_holds_and_closes_when_the_call_ends() -> None:
    phone, _ = make_phone()
    call = dial_out(phone)
    connect(phone, call)
    keys(phone, "menu", "down", "ok")  # Hold
    assert phone.call is not None and phone.call.on_hold
    phone.command("hangup")  # (the handset going down would leave a held call on hold)
    assert phone.view().menu is None
