"""Every screen, rendered from a phone view alone and compared pixel by pixel with its reference
PNG in tests/snapshots (through luma's dummy device, as the sim kit shows it).

After a deliberate change of a screen, regenerate the references and look at them:

    DESKPHONE_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/unit/test_screens.py
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from deskphone.core import menu as menus
from deskphone.core.events import CallId, CallState, RegState
from deskphone.core.history import EndReason, HistoryEntry
from deskphone.core.phone import Call, PhoneState, PhoneView, Registration
from deskphone.core.settings import Settings
from deskphone.ui import fonts
from deskphone.ui.render import SCROLL_PAUSE, render, scroll_offset, scrolls
from deskphone.ui.screens import NetworkInfo, Screen, matching_contact, screen_for

SNAPSHOTS = Path(__file__).resolve().parents[1] / "snapshots"
UPDATE = os.environ.get("DESKPHONE_UPDATE_SNAPSHOTS") == "1"
NOW = 1000.0  # monotonic
WALL = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
KIM = "김민수"  # Hangul, drawn by the fallback font
HISTORY = (
    HistoryEntry("missed", "2001", KIM, WALL - 600, 0, EndReason.MISSED),
    HistoryEntry("out", "1002", "Zoë Ångström", WALL - 3600, 75, EndReason.HUNG_UP),
    HistoryEntry("in", "030123456", "", WALL - 7200, 12, EndReason.REMOTE_HUNG_UP),
    HistoryEntry("out", "100", "山田太郎", WALL - 9000, 3, EndReason.HUNG_UP),
)


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    """Clocks on screens are local time: pin the zone so references do not depend on it."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


def view(**changes: object) -> PhoneView:
    base = PhoneView(
        state=PhoneState.IDLE,
        off_hook=False,
        hook_up=False,
        speaker=False,
        digits="",
        call=None,
        end_reason=None,
        end_code=0,
        registrations=(Registration("1001", RegState.REGISTERED, 200),),
        dnd=False,
        muted=False,
        missed_calls=0,
        settings=Settings(),
        messages_waiting=False,
        new_messages=0,
        handset_present=True,
        history=HISTORY,
        now=NOW,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def call(**changes: object) -> Call:
    base = Call(
        id=CallId("out-1"),
        incoming=False,
        account=0,
        number="1002",
        sip_state=CallState.CONFIRMED,
        media_active=True,
        codec="G722",
        created_at=NOW - 100,
        connected_at=NOW - 83,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def menu_view(page: str, cursor: int = 0, **state: object) -> menus.MenuView:
    context = menus.MenuContext(Settings(ringer_volume=8), HISTORY, in_call=page == menus.CALL)
    opened = menus.open_menu(context, page)
    opened = dataclasses.replace(opened, stack=(*opened.stack[:-1], (page, cursor)), **state)  # type: ignore[arg-type]
    return menus.view(opened, context)


NETWORK = NetworkInfo("deskphone", (("eth0", "192.0.2.10"), ("wlan0", "fe80::1")))


@dataclasses.dataclass(frozen=True)
class Case:
    view: PhoneView
    hint: str = "no account configured"
    scroll_time: float = 0.0


CASES: dict[str, Case] = {
    "idle": Case(view()),
    "idle_missed_messages_dnd": Case(
        view(
            missed_calls=2,
            messages_waiting=True,
            new_messages=3,
            dnd=True,
            settings=Settings(dnd=True),
        )
    ),
    "idle_registering": Case(view(registrations=(Registration("1001", RegState.REGISTERING),))),
    "error_no_account": Case(view(registrations=())),
    "error_registration_failed": Case(
        view(
            registrations=(
                Registration(
                    "1001", RegState.FAILED, 403, "Forbidden", failures=2, retry_at=NOW + 8
                ),
            )
        )
    ),
    "error_no_handset": Case(view(handset_present=False)),
    "off_hook": Case(view(state=PhoneState.OFF_HOOK, off_hook=True, hook_up=True)),
    "dialing_contact": Case(
        view(state=PhoneState.DIALING, off_hook=True, hook_up=True, digits="100")
    ),
    "dialing_long_number": Case(
        view(state=PhoneState.DIALING, off_hook=True, hook_up=True, digits="00493012345678901")
    ),
    "predialing": Case(view(state=PhoneState.DIALING, digits="2001")),
    "calling": Case(
        view(state=PhoneState.CALLING, off_hook=True, call=call(connected_at=None, alerting=True))
    ),
    "incoming_hangul": Case(
        view(state=PhoneState.RINGING, call=call(incoming=True, name=KIM, number="2001"))
    ),
    "incoming_long_name_start": Case(
        view(
            state=PhoneState.RINGING,
            call=call(incoming=True, name="Dr. Maximilian Müller-Lüdenscheidt", number="2002"),
        )
    ),
    "incoming_long_name_scrolled": Case(
        view(
            state=PhoneState.RINGING,
            call=call(incoming=True, name="Dr. Maximilian Müller-Lüdenscheidt", number="2002"),
        ),
        scroll_time=SCROLL_PAUSE + 2.0,
    ),
    "in_call": Case(view(state=PhoneState.CONNECTED, off_hook=True, call=call())),
    "in_call_named_hold_muted": Case(
        view(
            state=PhoneState.CONNECTED,
            off_hook=True,
            muted=True,
            call=call(name="山田太郎", number="100", on_hold=True, codec="PCMU"),
        )
    ),
    "in_call_with_a_caller_waiting": Case(
        view(
            state=PhoneState.CONNECTED,
            off_hook=True,
            call=call(),
            second=call(
                id=CallId("in-2"),
                incoming=True,
                name="Carol",
                number="1004",
                connected_at=None,
                media_active=False,
            ),
        )
    ),
    "in_call_with_one_on_hold": Case(
        view(
            state=PhoneState.CONNECTED,
            off_hook=True,
            call=call(id=CallId("in-2"), incoming=True, answered=True, number="1004"),
            second=call(on_hold=True, media_active=False),
        )
    ),
    "conference": Case(
        view(
            state=PhoneState.CONNECTED,
            off_hook=True,
            conference=True,
            call=call(id=CallId("in-2"), incoming=True, answered=True, number="1004"),
            second=call(name="Bob", number="1002"),
        )
    ),
    "ended_busy": Case(
        view(
            state=PhoneState.ENDED,
            off_hook=True,
            end_reason=EndReason.BUSY,
            end_code=486,
            history=(HistoryEntry("out", "1002", "", WALL, 0, EndReason.BUSY, 486), *HISTORY),
        )
    ),
    "ended_hung_up": Case(
        view(
            state=PhoneState.ENDED,
            end_reason=EndReason.REMOTE_HUNG_UP,
            history=(
                HistoryEntry("out", "1002", "Zoë", WALL, 75, EndReason.REMOTE_HUNG_UP),
                *HISTORY,
            ),
        )
    ),
    "menu_main": Case(view(menu=menu_view(menus.MAIN, 2))),
    "menu_history": Case(view(menu=menu_view(menus.HISTORY, 0))),
    "menu_history_empty": Case(
        view(
            menu=menus.view(
                menus.MenuState(((menus.HISTORY, 0),)), menus.MenuContext(Settings(), ())
            )
        )
    ),
    "menu_settings": Case(view(menu=menu_view(menus.SETTINGS, 3))),
    "menu_ringer_volume": Case(view(menu=menu_view("volume:ringer"))),
    "menu_ring": Case(view(menu=menu_view(menus.RING, 1))),
    "menu_contrast": Case(view(menu=menu_view(menus.CONTRAST))),
    "menu_network": Case(view(menu=menu_view(menus.NETWORK))),
    "menu_call": Case(view(state=PhoneState.CONNECTED, call=call(), menu=menu_view(menus.CALL))),
    "menu_transfer_notice": Case(
        view(
            state=PhoneState.CONNECTED,
            call=call(),
            menu=menu_view(menus.TRANSFER, typed="2001", notice="transfer: no target"),
        )
    ),
}


def screen_of(case: Case) -> Screen:
    return screen_for(case.view, wall_time=WALL, no_account_hint=case.hint, network=lambda: NETWORK)


def rendered(case: Case) -> Image.Image:
    """Through luma's dummy device, as the sim kit and the real displays receive it."""
    from luma.core.device import dummy

    device = dummy(width=128, height=64, mode="1")
    device.display(render(screen_of(case), scroll_time=case.scroll_time))
    return device.image


def test_fonts_for_the_references_are_installed() -> None:
    missing = [
        package
        for path, package in (
            (fonts.DEJAVU, "fonts-dejavu-core"),
            (fonts.DEJAVU_BOLD, "fonts-dejavu-core"),
            (fonts.UNIFONT, "fonts-unifont"),
        )
        if fonts.find_font(path) is None
    ]
    assert not missing, f"install {', '.join(sorted(set(missing)))} (./bootstrap.sh test does)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_screen_matches_its_reference(name: str) -> None:
    image = rendered(CASES[name]).convert("L")
    reference_path = SNAPSHOTS / f"{name}.png"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        image.convert("1").save(reference_path)
    assert reference_path.exists(), f"no reference {reference_path.name}; see the module doc"
    reference = Image.open(reference_path).convert("L")
    difference = ImageChops.difference(image, reference)
    if difference.getbbox() is not None:
        failed = reference_path.with_name(f"{name}.actual.png")
        image.save(failed)
        pytest.fail(f"{name} differs from its reference in {difference.getbbox()}; see {failed}")


def test_hangul_and_han_are_drawn_not_boxes() -> None:
    chain = fonts.chain(fonts.Face.NAME)
    for text in (KIM, "山田"):
        assert [run.font for run in chain.runs(text)] != [chain.fonts[0]], text
    box = chain.fonts[0].getmask("\uffff", mode="1")
    assert bytes(chain.fonts[-1].getmask(KIM[0], mode="1")) != bytes(box)


def test_accented_latin_stays_in_the_main_font() -> None:
    chain = fonts.chain(fonts.Face.SMALL)
    assert [run.font for run in chain.runs("Zoë Ångström Łódź ş")] == [chain.fonts[0]]


def test_long_names_scroll_and_short_ones_do_not() -> None:
    long_name = CASES["incoming_long_name_start"]
    assert scrolls(screen_of(long_name))
    assert not scrolls(screen_of(CASES["incoming_hangul"]))
    start = rendered(long_name)
    later = rendered(dataclasses.replace(long_name, scroll_time=SCROLL_PAUSE + 2.0))
    assert ImageChops.difference(start, later).getbbox() is not None


def test_scrolling_rests_then_moves_in_steps_and_comes_round() -> None:
    assert scroll_offset(200, 0.0) == 0
    assert scroll_offset(200, SCROLL_PAUSE - 0.01) == 0
    moved = [scroll_offset(200, SCROLL_PAUSE + t / 10) for t in range(40)]
    assert moved == sorted(moved) and moved[-1] > 0
    assert all(offset % 4 == 0 for offset in moved)


def test_text_form_keeps_the_words() -> None:
    text = screen_of(CASES["error_registration_failed"]).text()
    assert "1001: registration failed (403 Forbidden), retry in 8 s" in text
    assert "1001: registered" in screen_of(CASES["idle"]).text()
    assert "2 missed calls" in screen_of(CASES["idle_missed_messages_dnd"]).text()
    in_call = screen_of(CASES["in_call_named_hold_muted"]).text()
    assert "in call" in in_call and "山田太郎" in in_call and "hold muted" in in_call
    assert "01:23" in screen_of(CASES["in_call"]).text()


def test_a_dialled_number_shows_the_contact_it_matches() -> None:
    assert matching_contact("100", HISTORY) == "山田太郎"  # exact beats prefix ("1002")
    assert matching_contact("2001", HISTORY) == KIM
    assert matching_contact("10", HISTORY) == ""  # too short to be worth a guess
    assert matching_contact("0301", HISTORY) == ""  # that caller left no name
    assert (
        "Zoë Ångström"
        in screen_of(Case(view(state=PhoneState.DIALING, off_hook=True, digits="1002"))).text()
    )


def test_pixel_shift_moves_the_whole_frame() -> None:
    screen = screen_of(CASES["idle"])
    still = render(screen)
    moved = render(screen, shift=(1, 1))
    assert moved.getbbox() != still.getbbox()
    assert (
        ImageChops.difference(moved.crop((1, 1, 128, 64)), still.crop((0, 0, 127, 63))).getbbox()
        is None
    )


def test_the_network_page_asks_for_addresses_only_when_shown() -> None:
    asked: list[bool] = []

    def network() -> NetworkInfo:
        asked.append(True)
        return NETWORK

    screen_for(CASES["idle"].view, wall_time=WALL, network=network)
    assert asked == []
    text = screen_for(CASES["menu_network"].view, wall_time=WALL, network=network).text()
    assert asked == [True] and "192.0.2.10" in text


def test_every_state_has_a_case() -> None:
    covered = {case.view.state for case in CASES.values()}
    assert covered == set(PhoneState)
    kinds = {screen_of(case).kind for case in CASES.values()}
    assert kinds == {"idle", "error", "dialing", "calling", "incoming", "call", "ended", "menu"}


# -- the display adapter: dimming, pixel shift, the terminal's picture -------------------------


class Contrast:
    """A luma dummy device that also remembers the contrast it was last given."""

    def __init__(self) -> None:
        from luma.core.device import dummy

        self.device = dummy(width=128, height=64, mode="1")
        self.levels: list[int] = []
        self.device.contrast = self.levels.append


def test_the_display_dims_when_idle_and_brightens_on_a_key() -> None:
    import asyncio

    from deskphone.hw.display import Dimmer, Display

    async def main() -> None:
        loop = asyncio.get_running_loop()
        device = Contrast()
        display = Display(device.device, dim_contrast=10)
        display.set_contrast(200)
        dimmer = Dimmer(display, loop, dim_after=0.05, dim_after_on_battery=0.05)
        dimmer.update(CASES["idle"].view)
        assert not display.dimmed and dimmer.armed
        await asyncio.sleep(0.1)
        assert display.dimmed and device.levels[-1] == 10
        assert not dimmer.armed  # dimmed and idle: nothing left to wake the loop
        dimmer.touch()
        assert not display.dimmed and device.levels[-1] == 200 and dimmer.armed
        dimmer.update(CASES["in_call"].view)  # a call keeps it bright, with no timer
        await asyncio.sleep(0.1)
        assert not display.dimmed and not dimmer.armed
        dimmer.close()

    asyncio.run(main())


def test_on_battery_the_display_dims_sooner() -> None:
    import asyncio

    from deskphone.hw.display import Dimmer, Display

    class Power:
        percent, on_battery, charging = 40.0, True, False

    class OnBattery:
        """A view with a battery, as the power work's `PhoneView.power` will carry."""

        def __init__(self, base: PhoneView) -> None:
            self._base = base
            self.power = Power()

        def __getattr__(self, name: str) -> object:
            return getattr(self._base, name)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        display = Display(Contrast().device, dim_contrast=10)
        dimmer = Dimmer(display, loop, dim_after=30, dim_after_on_battery=0.05)
        dimmer.update(OnBattery(CASES["idle"].view))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)
        assert display.dimmed
        dimmer.close()

    asyncio.run(main())


def test_the_picture_shifts_by_a_pixel_every_few_minutes() -> None:
    from deskphone.hw.display import SHIFTS, pixel_shift

    assert pixel_shift(WALL, 0) == (0, 0)
    seen = [pixel_shift(minute * 60.0, 3) for minute in range(0, 12 * 3, 3)]
    assert set(seen) == set(SHIFTS) and seen[0] != seen[1]
    assert pixel_shift(10.0, 3) == pixel_shift(100.0, 3)  # steady within the period


@pytest.mark.parametrize("braille", [False, True])
def test_the_terminal_picture_reads_back_exactly(braille: bool) -> None:
    from deskphone.hw.terminal import decode_picture, draw_picture

    image = rendered(CASES["in_call_named_hold_muted"])
    text = "\n".join(["some caption", *draw_picture(image, braille=braille), "more"])
    back = decode_picture(text)
    assert ImageChops.difference(back.convert("L"), image.convert("L")).getbbox() is None
    with pytest.raises(ValueError, match="no display picture"):
        decode_picture("nothing here")
