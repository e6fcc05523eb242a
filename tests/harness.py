"""The whole phone (App with the simulated kit) in the test process, on a loop thread of its own.

Tests act as a user would: press keys on the mocked keypad, lift and replace the handset, read
the display; every touch of phone state happens on the phone's loop thread.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from deskphone.app import App
from deskphone.config import Config, parse_config
from deskphone.core.events import RegState
from deskphone.core.phone import PhoneState, PhoneView
from tests.rig import RigError, wait_until

_T = TypeVar("_T")

KEY_HOLD = 0.06  # a key press as long as a finger's
KEY_GAP = 0.06


def phone_config_text(
    registrar_port: int,
    user: str,
    password: str,
    *,
    workdir: Path,
    microphone: Path | None = None,
    transport: str = "udp",
    expiry: int = 60,
    retry_min: float = 1.0,
    retry_max: float = 4.0,
    codecs: tuple[str, ...] = ("G722", "PCMA", "PCMU"),
    extra: str = "",
    account_extra: str = "",
    profile: str = "reference",
    audio_backend: str = "files",
    audio_extra: str = "",
) -> str:
    """A config for a phone registered to the rig's Kamailio on 127.0.0.1; its state
    directory and control socket are in `workdir`. `audio_extra` adds [audio] keys (the
    alsa backend's devices, say)."""
    mic = f'microphone_file = "{microphone}"\n' if microphone else ""
    return f"""
[phone]
sip_port = 0
bind_address = "127.0.0.1"
ended_display_seconds = 1.0
log_level = "debug"
state_dir = "{workdir / "state"}"

[hardware]
kit = "sim"
profile = "{profile}"

[control]
socket = "{workdir / "control.sock"}"

[audio]
backend = "{audio_backend}"
codecs = {json.dumps(list(codecs))}
{mic}recordings_dir = "{workdir / "earpiece"}"
{audio_extra}

[[account]]
registrar = "sip:127.0.0.1:{registrar_port}"
user = "{user}"
password = "{password}"
transport = "{transport}"
expiry = {expiry}
register_retry_min = {retry_min}
register_retry_max = {retry_max}
{account_extra}
{extra}
"""


class PhoneUnderTest:
    def __init__(self, config: Config | str, **app_options: Any) -> None:
        """`app_options` go to `App` (e.g. `i2c_bus`, a fake I2C bus for a UPS board)."""
        self.config = parse_config(config) if isinstance(config, str) else config
        self.app = App(self.config, kit="sim", **app_options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="phone-loop", daemon=True
        )
        self._running = False

    # -- lifetime --------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> PhoneUnderTest:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.app.start(), self._loop).result(timeout)
        self._running = True
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._running:
            self._running = False
            asyncio.run_coroutine_threadsafe(self.app.stop(), self._loop).result(timeout)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._loop.close()

    def __enter__(self) -> PhoneUnderTest:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- acting on the loop thread ---------------------------------------------------------

    def on_loop(self, function: Callable[..., _T], *args: Any, timeout: float = 5.0) -> _T:
        """Run `function(*args)` on the phone's loop thread and return its result."""
        done: Future[_T] = Future()

        def run() -> None:
            try:
                done.set_result(function(*args))
            except BaseException as err:  # handed to the test thread
                done.set_exception(err)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout)

    @property
    def matrix(self) -> Any:
        assert self.app.kit is not None and self.app.kit.matrix is not None
        return self.app.kit.matrix

    def press(self, keys: str | list[str]) -> float:
        """Tap keys one after another like a finger; returns when the last one went down."""
        last_down = 0.0
        for key in keys:
            self.on_loop(self.matrix.press, key)
            last_down = time.monotonic()
            time.sleep(KEY_HOLD)
            self.on_loop(self.matrix.release, key)
            time.sleep(KEY_GAP)
        return last_down

    def lift(self) -> None:
        """Lift the handset and, like a person waiting for dial tone, wait for the phone to
        notice (the hook contact is debounced)."""
        self.on_loop(self.matrix.set_hook, True)
        self.wait_for(lambda v: v.hook_up, 2.0, "the phone to see the handset lifted")

    def replace(self) -> None:
        self.on_loop(self.matrix.set_hook, False)
        self.wait_for(lambda v: not v.hook_up, 2.0, "the phone to see the handset replaced")

    def command(self, name: str, *args: str) -> None:
        self.on_loop(self.app.command, name, *args)

    # -- reading ---------------------------------------------------------------------------

    def view(self) -> PhoneView:
        return self.on_loop(self.app.view)

    def screen_text(self) -> str:
        def text() -> str:
            assert self.app.kit is not None
            screen = self.app.kit.display.screen
            return screen.text() if screen else ""

        return self.on_loop(text)

    def wait_for(
        self, predicate: Callable[[PhoneView], bool], timeout: float, what: str
    ) -> PhoneView:
        try:
            return wait_until(
                lambda: view if predicate(view := self.view()) else None, timeout, what
            )
        except RigError as err:
            view = self.view()
            raise AssertionError(
                f"{err}; phone is {view.state.value}, screen:\n{self.screen_text()}"
            ) from None

    def wait_state(self, state: PhoneState, timeout: float = 10.0) -> PhoneView:
        return self.wait_for(lambda v: v.state is state, timeout, f"state {state.value}")

    def wait_registered(self, timeout: float = 10.0) -> PhoneView:
        return self.wait_for(
            lambda v: bool(v.registrations) and v.registrations[0].state is RegState.REGISTERED,
            timeout,
            "registration",
        )

    def wait_screen(self, text: str, timeout: float = 5.0) -> str:
        try:
            return wait_until(
                lambda: screen if text in (screen := self.screen_text()) else None,
                timeout,
                f"the screen to show {text!r}",
            )
        except RigError as err:
            raise AssertionError(f"{err}; it shows:\n{self.screen_text()}") from None

    @property
    def earpiece_recording(self) -> Path | None:
        return self.app.stack.last_recording if self.app.stack else None


def stop_daemon(proc: subprocess.Popen[str]) -> tuple[float, str]:
    """SIGTERM a `deskphone run`, as systemd stops it: (seconds until it exited, its stderr).
    One that is still running 10 s later is killed and the test fails with its stderr."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        _, stderr = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        raise RigError(f"the daemon ignored SIGTERM for 10 s:\n{stderr[-3000:]}") from None
    return time.monotonic() - started, stderr
