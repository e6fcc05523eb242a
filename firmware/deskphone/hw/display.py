"""The OLED: a luma device (ssd1306, sh1106 or ssd1309 on I2C or SPI, or luma's dummy device in
the simulated kit) showing screens rendered by `ui`.

Besides drawing, the display looks after itself: it dims when the phone has been idle for a
while (sooner on battery) and moves the whole picture by a pixel every few minutes against
burn-in. Neither wakes the loop on its own while idle: the pixel shift changes with the idle
clock's minute redraw, and dimming is one timer armed when something happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PIL import Image

from deskphone.core.phone import PhoneState, PhoneView
from deskphone.errors import HardwareError
from deskphone.hw.profile import DisplayWiring
from deskphone.ui.render import render, scrolls
from deskphone.ui.screens import Screen, battery_of

if TYPE_CHECKING:
    from deskphone.config import DisplayConfig

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 128, 64
# The picture wanders over these offsets, one step per `pixel_shift_minutes`.
SHIFTS = ((0, 0), (1, 0), (1, 1), (0, 1))
FROM_PROFILE = "profile"
TIMER_SLACK = 0.01  # asyncio may run a timer up to a clock tick early


def pixel_shift(wall_time: float, minutes: float) -> tuple[int, int]:
    """The offset of the picture at this time: a slow walk round a 2x2 square."""
    if minutes <= 0:
        return (0, 0)
    return SHIFTS[int(wall_time // (minutes * 60)) % len(SHIFTS)]


def chosen_driver(config: DisplayConfig, wiring: DisplayWiring) -> str:
    return wiring.driver if config.driver == FROM_PROFILE else config.driver


def open_device(config: DisplayConfig, wiring: DisplayWiring, simulated: bool) -> Any:
    """The luma device the profile and config describe; `HardwareError` when it does not
    answer. The config's [display] driver and interface override the profile's."""
    if simulated:
        from luma.core.device import dummy

        return dummy(width=WIDTH, height=HEIGHT, mode="1")
    from luma.core.error import DeviceNotFoundError, DevicePermissionError
    from luma.core.interface.serial import i2c, spi
    from luma.oled.device import sh1106, ssd1306, ssd1309

    drivers = {"ssd1306": ssd1306, "sh1106": sh1106, "ssd1309": ssd1309}
    driver = chosen_driver(config, wiring)
    where = f"I2C bus {config.i2c_bus} address 0x{config.i2c_address:02X}"
    try:
        if wiring.interface == "i2c":
            serial = i2c(port=config.i2c_bus, address=config.i2c_address)
        else:
            where = f"SPI 0.0 (DC GPIO{wiring.dc_pin}, reset GPIO{wiring.reset_pin})"
            serial = spi(port=0, device=0, gpio_DC=wiring.dc_pin, gpio_RST=wiring.reset_pin)
        device = drivers[driver](serial, width=WIDTH, height=HEIGHT, rotate=config.rotate)
        device.contrast(config.contrast)
    except (DeviceNotFoundError, DevicePermissionError, OSError) as err:
        raise HardwareError(f"{driver} display not answering on {where}: {err}") from err
    except ImportError as err:  # luma's SPI needs RPi.GPIO (rpi-lgpio on bookworm)
        raise HardwareError(f"{driver} display on {where}: {err}") from err
    return device


class Display:
    """Shows screens; keeps the last one so `status`, the simulator and tests can read it."""

    def __init__(
        self,
        device: Any,
        *,
        pixel_shift_minutes: float = 0.0,
        dim_contrast: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._device = device
        self._shift_minutes = pixel_shift_minutes
        self._dim_contrast = dim_contrast
        self._clock = clock
        self.screen: Screen | None = None
        self.shift = (0, 0)
        self.animating = False  # some text scrolls: a new frame is due every SCROLL_INTERVAL
        self.dimmed = False
        self.contrast = 255
        self._scrolling: tuple[str, ...] = ()
        self._scroll_since = 0.0
        self.observers: list[Callable[[Screen], None]] = []  # e.g. the simulator's terminal

    @property
    def image(self) -> Image.Image | None:
        """The last image sent, where the device keeps one (luma's dummy device does)."""
        return getattr(self._device, "image", None)

    @property
    def size(self) -> tuple[int, int]:
        return (self._device.width, self._device.height)

    def show(self, screen: Screen, *, wall_time: float | None = None) -> bool:
        """Draw the screen if it (or its shift, or a scrolling text's position) changed;
        True when it was drawn."""
        shift = pixel_shift(time.time() if wall_time is None else wall_time, self._shift_minutes)
        if screen == self.screen and shift == self.shift and not self.animating:
            return False
        now = self._clock()
        scrolling = tuple(line.text for line in screen.lines if line.scroll)
        if scrolling != self._scrolling:
            self._scrolling, self._scroll_since = scrolling, now
        self.screen, self.shift = screen, shift
        self.animating = scrolls(screen, self.size[0])
        image = render(screen, self.size, shift=shift, scroll_time=now - self._scroll_since)
        try:
            self._device.display(image)
        except OSError as err:  # an I2C write failed: the phone goes on without its screen
            log.error("display write failed: %s", err)
        self._notify()
        return True

    def set_contrast(self, level: int) -> None:
        """The user's contrast; while dimmed the display stays at the dim level."""
        self.contrast = level
        self._apply_contrast()

    def set_dimmed(self, dimmed: bool) -> None:
        if dimmed != self.dimmed:
            self.dimmed = dimmed
            self._apply_contrast()
            self._notify()

    def close(self) -> None:
        cleanup = getattr(self._device, "cleanup", None)
        if cleanup is not None:
            cleanup()

    def _apply_contrast(self) -> None:
        level = min(self.contrast, self._dim_contrast) if self.dimmed else self.contrast
        try:
            self._device.contrast(level)
        except OSError as err:
            log.error("display contrast write failed: %s", err)

    def _notify(self) -> None:
        if self.screen is not None:
            for observer in self.observers:
                observer(self.screen)


class Dimmer:
    """Dims the display once the phone has sat idle for `dim_after` seconds (on battery, for
    `dim_after_on_battery`); a key, the hook or any change of what the phone is doing
    brightens it again. One timer, armed only when something happened."""

    def __init__(
        self,
        display: Display,
        loop: asyncio.AbstractEventLoop,
        *,
        dim_after: float,
        dim_after_on_battery: float,
    ) -> None:
        self._display = display
        self._loop = loop
        self._dim_after = dim_after
        self._dim_after_on_battery = dim_after_on_battery
        self._last_activity = loop.time()
        self._seen: tuple[object, ...] = ()
        self._view: PhoneView | None = None
        self._due: asyncio.TimerHandle | None = None
        self._due_at = 0.0

    @property
    def armed(self) -> bool:
        """A timer is waiting to dim the display (none while dimmed or busy)."""
        return self._due is not None

    def touch(self) -> None:
        """A key or the hook moved: brighten, and count the idle time from now."""
        self._last_activity = self._loop.time()
        if self._view is not None:
            self.update(self._view)

    def update(self, view: PhoneView) -> None:
        self._view = view
        seen = (view.state, view.off_hook, view.digits, view.menu, view.call, view.settings)
        if seen != self._seen:
            self._seen = seen
            self._last_activity = self._loop.time()
        battery = battery_of(view)
        delay = self._dim_after_on_battery if battery and battery.on_battery else self._dim_after
        resting = view.state is PhoneState.IDLE and view.menu is None and not view.off_hook
        if not resting or delay <= 0:
            self._cancel()
            self._display.set_dimmed(False)
            return
        due = self._last_activity + delay
        if self._loop.time() >= due - TIMER_SLACK:
            self._display.set_dimmed(True)
            return
        self._display.set_dimmed(False)
        if self._due is None or self._due_at != due:
            self._cancel()
            self._due_at = due
            self._due = self._loop.call_at(due, self._expired)

    def close(self) -> None:
        self._cancel()

    def _expired(self) -> None:
        self._due = None
        if self._view is not None:
            self.update(self._view)

    def _cancel(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
