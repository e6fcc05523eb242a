"""Keypad and display timing, through the real scanner on gpiozero's MockFactory, the real
renderer and luma's dummy device, with the whole phone running in-process:

- pin edge -> digit on screen: a key's contact closes (the column pin's edge) until the display
  has been sent a frame showing the digit (debounce, scan, core, render, device write);
- pin edge of the last digit -> INVITE on the wire: the digit that completes the digit map
  until Kamailio receives the INVITE (its own receive timestamp);
- CPU at idle: CPU time of the phone's loop thread (keypad, hook, display, LEDs, dimming,
  the core) over a minute with nothing happening, as a share of one core.

Targets: under 20 ms for both latencies, under 0.1 % of one core at idle.

    python -m bench.keys [--runs N] [--quick]      (or as part of: python -m bench)
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench.common import Figure, figure, write_results
from deskphone.config import default_config
from deskphone.core.phone import PhoneState
from deskphone.hw.display import Display, open_device
from deskphone.hw.keypad import MatrixKeypad
from deskphone.hw.profile import load_profile
from deskphone.hw.sim import mock_factory
from deskphone.ui.fonts import Face
from deskphone.ui.screens import Line, Screen
from tests.harness import KEY_GAP, KEY_HOLD, PhoneUnderTest, phone_config_text
from tests.rig import wait_until
from tests.rig.baresip import CALL_CLOSED, Baresip
from tests.rig.kamailio import Kamailio

LATENCY_TARGET_MS = 20.0
IDLE_TARGET_PERCENT = 0.1
NO_ACCOUNT = '[hardware]\nkit = "sim"\n[display]\npixel_shift_minutes = 0\n'


class ScreenWatch:
    """Records, on the loop thread, when a frame showing some text was sent to the display."""

    def __init__(self, phone: PhoneUnderTest) -> None:
        self.wanted = ""
        self.shown = threading.Event()
        self.at = 0.0
        assert phone.app.kit is not None
        phone.on_loop(phone.app.kit.display.observers.append, self._observe)

    def expect(self, text: str) -> None:
        self.wanted, self.at = text, 0.0
        self.shown.clear()

    def _observe(self, screen: Screen) -> None:
        showing = bool(screen.lines) and screen.lines[0].text == self.wanted
        if self.wanted and showing and not self.shown.is_set():
            self.at = time.perf_counter()
            self.shown.set()


def press_at(phone: PhoneUnderTest, key: str, clock: Any = time.perf_counter) -> float:
    """Close a key's contact on the loop thread; returns the moment of the pin edge."""

    def edge() -> float:
        moment = float(clock())
        phone.matrix.press(key)
        return moment

    pressed = phone.on_loop(edge)
    time.sleep(KEY_HOLD)
    phone.on_loop(phone.matrix.release, key)
    time.sleep(KEY_GAP)
    return pressed


def edge_to_screen(runs: int) -> list[float]:
    """Milliseconds from a digit's pin edge to the frame that shows it."""
    results = []
    with PhoneUnderTest(NO_ACCOUNT) as phone:
        watch = ScreenWatch(phone)
        for _ in range(runs):
            phone.lift()
            phone.wait_state(PhoneState.OFF_HOOK)
            digits = ""
            for digit in "2580":
                digits += digit
                watch.expect(digits)
                pressed = press_at(phone, digit)
                assert watch.shown.wait(2), f"{digits} never reached the screen"
                results.append((watch.at - pressed) * 1000)
            phone.replace()
            phone.wait_state(PhoneState.IDLE)
    return results


def edge_to_event(runs: int) -> list[float]:
    """Milliseconds from a pin edge to the keypad's `KeyPressed` (the keypad's own share:
    debounce, scan, hand-over to the loop), on the reference profile's matrix."""

    async def measure() -> list[float]:
        loop = asyncio.get_running_loop()
        profile = load_profile("reference")
        factory, matrix = mock_factory(profile)
        seen: asyncio.Queue[float] = asyncio.Queue()
        keypad = MatrixKeypad(
            profile.keypad,
            loop=loop,
            post=lambda _: seen.put_nowait(time.perf_counter()),
            pin_factory=factory,
        )
        results = []
        try:
            for _ in range(runs * 4):
                pressed = time.perf_counter()
                matrix.press("5")
                results.append((await seen.get() - pressed) * 1000)
                await asyncio.sleep(KEY_HOLD)
                matrix.release("5")
                await asyncio.sleep(KEY_GAP)
        finally:
            keypad.close()
        return results

    return asyncio.run(measure())


def render_and_show(runs: int) -> list[float]:
    """Milliseconds to render a dialling screen and send it to luma's dummy device."""
    config = default_config()
    display = Display(open_device(config.display, load_profile("reference").display, True))
    results = []
    for index in range(runs * 20):
        screen = Screen("dialing", "dial", (Line(str(1000 + index), Face.BIG),))
        began = time.perf_counter()
        display.show(screen)
        results.append((time.perf_counter() - began) * 1000)
    return results


def last_digit_to_invite(workdir: Path, runs: int) -> list[float]:
    """Milliseconds from the pin edge of the digit that completes the map to the INVITE."""
    results = []
    with Kamailio(workdir / "kamailio") as kamailio:
        far = Baresip(workdir, "1002", kamailio.users["1002"], kamailio)
        config = phone_config_text(
            kamailio.port,
            "1001",
            kamailio.users["1001"],
            workdir=workdir,
            extra='[dialplan]\ndigit_map = "1xxx"\n',
        )
        with far, PhoneUnderTest(config) as phone:
            phone.wait_registered()
            for _ in range(runs):
                phone.lift()
                phone.wait_state(PhoneState.OFF_HOOK)
                phone.press("100")
                pressed = press_at(phone, "2", time.time)
                invite = wait_until(
                    partial(kamailio.requests, "INVITE", from_user="1001", since=pressed),
                    5,
                    "the INVITE",
                )[0]
                results.append((invite.time - pressed) * 1000)
                phone.wait_state(PhoneState.CONNECTED, 10)
                closed = len(far.events())
                phone.replace()
                far.wait_event(CALL_CLOSED, since=closed)
                phone.wait_state(PhoneState.IDLE, 5)
    return results


def idle_cpu(seconds: float, runs: int) -> list[float]:
    """Percent of one core the loop thread used while the phone sat idle for `seconds`."""
    results = []
    for _ in range(runs):
        with PhoneUnderTest(NO_ACCOUNT) as phone:
            time.sleep(1.0)  # start-up work done
            began, cpu_began = time.monotonic(), phone.on_loop(time.thread_time)
            time.sleep(seconds)
            cpu = phone.on_loop(time.thread_time) - cpu_began
            results.append(cpu / (time.monotonic() - began) * 100)
    return results


def run(runs: int, workdir: Path, quick: bool = False) -> list[Figure]:
    """The figures for `python -m bench` (a shorter idle window with `quick`)."""
    idle_seconds = 10.0 if quick else 60.0
    workdir.mkdir(parents=True, exist_ok=True)
    return [
        figure("pin edge -> digit on screen", "ms", edge_to_screen(runs), limit=LATENCY_TARGET_MS),
        figure("  of which pin edge -> KeyPressed (keypad)", "ms", edge_to_event(runs)),
        figure("  of which render + show one screen", "ms", render_and_show(runs)),
        figure(
            "pin edge of last digit -> INVITE on the wire",
            "ms",
            last_digit_to_invite(workdir, runs),
            limit=LATENCY_TARGET_MS,
        ),
        figure(
            f"loop thread CPU at idle over {idle_seconds:g} s",
            "% of one core",
            idle_cpu(idle_seconds, 1),
            limit=IDLE_TARGET_PERCENT,
            note="keypad, hook, display, LEDs, dimming and the core; SIP's own thread excluded",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="calls and key sequences")
    parser.add_argument("--quick", action="store_true", help="10 s of idle instead of 60 s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-keys-") as tmp:
        rows = run(args.runs, Path(tmp), args.quick)
    for row in rows:
        stats = row.deskphone
        verdict = (
            f"  (target {row.target}: {'met' if row.met else 'NOT met'})" if row.target else ""
        )
        print(
            f"{row.name:<46} median {stats['median']:.3g}  min {stats['min']:.3g}  "
            f"max {stats['max']:.3g} {row.unit}{verdict}"
        )
    figures = {row.name: {**row.deskphone, "target": row.target, "met": row.met} for row in rows}
    print(f"written to {write_results('keys', figures)}")


if __name__ == "__main__":
    main()
