"""Builds the phone from a config and a hardware kit and runs it on one asyncio loop.

Everything meets here: adapters post events, `dispatch` hands them to the core, and the effects
the core returns go to the adapter that owns each kind. The loop's thread is the only one that
touches phone state.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from deskphone.audio.devices import SoundDevices
from deskphone.config import Config
from deskphone.core.effects import (
    CancelTimer,
    Effect,
    SetContrast,
    StartTimer,
)
from deskphone.core.events import Event, HookChanged, RegState, Started, TimerExpired
from deskphone.core.phone import Phone, PhoneState, PhoneView
from deskphone.hw.kits import Kit, build_kit
from deskphone.hw.power import BusFactory
from deskphone.service.runtime import ServiceRuntime
from deskphone.sip.stack import SipStack
from deskphone.ui.render import SCROLL_INTERVAL
from deskphone.ui.screens import Screen, screen_for

log = logging.getLogger(__name__)


class StartupSteps:
    """How long each start-up step took, so a slow one shows in the journal and in benchmarks."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((name, time.monotonic() - began))

    def __str__(self) -> str:
        total = sum(seconds for _, seconds in self.steps)
        parts = ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in self.steps)
        return f"{total * 1000:.0f} ms ({parts})"


class App:
    """One running phone. `start`/`stop` bracket its life; `run` does both around a wait."""

    def __init__(
        self, config: Config, *, kit: str | None = None, i2c_bus: BusFactory | None = None
    ) -> None:
        self.config = config
        self.phone = Phone(config)
        # systemd, control socket, saved state, battery; `i2c_bus` stands in for /dev/i2c-N.
        self.service = ServiceRuntime(self, bus_factory=i2c_bus)
        self.kit: Kit | None = None
        self.stack: SipStack | None = None
        self.sound: SoundDevices | None = None  # the handset's sound devices (alsa backend)
        self._kit_name = kit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[type[Effect], Callable[[Any], None]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._tick: asyncio.TimerHandle | None = None
        self.listeners: list[Callable[[Event], None]] = []  # observers (simulator, tests)
        self.startup = StartupSteps()

    async def run(self, stop: asyncio.Event) -> None:
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Bring up the kit, then the SIP stack, then tell the core it may begin.
        Raises `DeskphoneError` subclasses with a message for the user."""
        self._loop = asyncio.get_running_loop()
        saved = self.service.load_state()
        self.phone = Phone(self.config, settings=saved.settings, history=saved.history)
        with self.startup.step("kit"):
            self.kit = build_kit(self.config, loop=self._loop, post=self.post, kit=self._kit_name)
        log.info("kit %s with profile %s", self.kit.name, self.kit.profile.name)
        if self.config.audio.backend == "alsa":
            try:
                with self.startup.step("sound devices"):
                    self.sound = SoundDevices(self.config.audio, self._loop, self.post)
                    self.sound.start()  # posts AudioDeviceChanged: present or why not
            except BaseException:
                self.kit.close()
                raise
        self.stack = SipStack(self.config, self._loop, self.dispatch, sound=self.sound)
        try:
            with self.startup.step("sip stack"):
                self.stack.start()
        except BaseException:
            self.kit.close()
            if self.sound is not None:
                self.sound.close()
            raise
        display = self.kit.display
        self._handlers = {
            **self.stack.effect_handlers(),
            StartTimer: self._start_timer,
            CancelTimer: self._cancel_timer,
            SetContrast: lambda e: display.set_contrast(e.level),
            **self.service.effect_handlers(),  # settings, call log, power-off
        }
        with self.startup.step("first events"):
            self.dispatch(Started())
            if self.kit.hook.off_hook:
                self.dispatch(HookChanged(True))
        with self.startup.step("services"):
            await self.service.start()
        # What start-up built (the libraries, the stack, the kit: ~39,000 objects) lives as long
        # as the phone. A full collection walks it all with the interpreter held (10 ms on a PC,
        # several times that on a Pi), while the audio callbacks, with ~17 ms on the card,
        # wait for the interpreter. Frozen, collections walk only what came since.
        gc.freeze()
        log.info("phone up in %s", self.startup)

    async def stop(self) -> None:
        await self.service.begin_stop()  # STOPPING=1; a battery power-off finishes first
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._tick is not None:
            self._tick.cancel()
        if self.stack is not None:
            await self.stack.shutdown()
        await self.service.stop()
        if self.sound is not None:
            self.sound.close()
        if self.kit is not None:
            self.kit.close()
        gc.unfreeze()  # what the phone built may be collected now (tests start many phones)
        log.info("phone stopped")

    # -- the loop's entry points -----------------------------------------------------------

    def post(self, event: Event) -> None:
        """Thread-safe: hand an event to the loop."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.dispatch, event)

    def dispatch(self, event: Event) -> None:
        """Run one event through the core and carry out what it decided (loop thread only)."""
        log.debug("event %r", event)
        try:
            effects = self.phone.handle(event)
        except Exception:
            log.exception("the phone's logic failed on %r; the event was dropped", event)
            return
        self.refresh_display()  # first: the screen answers the key before slower effects run
        self._execute(effects)
        for listener in self.listeners:
            listener(event)
        self.service.after_step(self.view())

    def command(self, name: str, *args: str) -> None:
        """Run a command from the core's table (loop thread only); `CommandError` if it can't."""
        self.carry_out(self.phone.command(name, *args))

    def carry_out(self, effects: list[Effect]) -> None:
        """Carry out effects the core returned outside an event (commands, reloads)."""
        self.refresh_display()
        self._execute(effects)
        self.service.after_step(self.view())

    def view(self) -> PhoneView:
        return self.phone.view()

    # -- effects ---------------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> None:
        for effect in effects:
            handler = self._handlers.get(type(effect))
            if handler is None:
                log.error("no adapter carries out %r", effect)
                continue
            try:
                handler(effect)
            except Exception:
                log.exception("carrying out %r failed", effect)

    def _start_timer(self, effect: StartTimer) -> None:
        self._cancel_timer(CancelTimer(effect.name))
        assert self._loop is not None
        self._timers[effect.name] = self._loop.call_later(
            effect.seconds, self._timer_expired, effect.name
        )

    def _cancel_timer(self, effect: CancelTimer) -> None:
        handle = self._timers.pop(effect.name, None)
        if handle is not None:
            handle.cancel()

    def _timer_expired(self, name: str) -> None:
        self._timers.pop(name, None)
        self.dispatch(TimerExpired(name))

    # -- display ---------------------------------------------------------------------------

    def screen(self) -> Screen:
        hint = "no account configured" if not self.config.accounts else ""
        network = self.kit.network if self.kit is not None else None
        return screen_for(self.view(), wall_time=time.time(), no_account_hint=hint, network=network)

    def refresh_display(self) -> None:
        """Redraw if the screen changed, and wake again only when it would change by itself
        (the call timer each second, the idle clock each minute, a long name scrolling)."""
        if self.kit is None or self._loop is None:
            return
        self.kit.update(self.view())  # LEDs and the display's dimming follow the view
        self.kit.display.show(self.screen())
        if self._tick is not None:
            self._tick.cancel()
        self._tick = self._loop.call_later(self._next_redraw(), self.refresh_display)

    def _next_redraw(self) -> float:
        if self.kit is not None and self.kit.display.animating:
            return SCROLL_INTERVAL
        view = self.view()
        counting = view.state is PhoneState.CONNECTED or (
            view.state is PhoneState.IDLE
            and any(r.state is RegState.FAILED for r in view.registrations)
        )
        if counting:
            return 1.0
        return 60.0 - time.time() % 60.0 + 0.05
