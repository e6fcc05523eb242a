"""The OLED: a luma device (ssd1306, sh1106 or ssd1309 on I2C or SPI, or luma's dummy device in
the simulated kit) showing screens rendered by `ui`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PIL import Image

from deskphone.errors import HardwareError
from deskphone.ui.render import render
from deskphone.ui.screens import Screen

if TYPE_CHECKING:
    from deskphone.config import DisplayConfig

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 128, 64


def open_device(config: DisplayConfig, simulated: bool) -> Any:
    """The luma device the config describes; `HardwareError` when it does not answer."""
    if simulated:
        from luma.core.device import dummy

        return dummy(width=WIDTH, height=HEIGHT, mode="1")
    from luma.core.error import DeviceNotFoundError, DevicePermissionError
    from luma.core.interface.serial import i2c, spi
    from luma.oled.device import sh1106, ssd1306, ssd1309

    drivers = {"ssd1306": ssd1306, "sh1106": sh1106, "ssd1309": ssd1309}
    try:
        if config.interface == "i2c":
            serial = i2c(port=config.i2c_bus, address=config.i2c_address)
            where = f"I2C bus {config.i2c_bus} address 0x{config.i2c_address:02X}"
        else:
            serial = spi()
            where = "SPI"
        device = drivers[config.driver](serial, width=WIDTH, height=HEIGHT, rotate=config.rotate)
        device.contrast(config.contrast)
    except (DeviceNotFoundError, DevicePermissionError, OSError) as err:
        raise HardwareError(f"{config.driver} display not answering on {where}: {err}") from err
    return device


class Display:
    """Shows screens; keeps the last one so `status`, the simulator and tests can read it."""

    def __init__(self, device: Any) -> None:
        self._device = device
        self.screen: Screen | None = None
        self.observers: list[Callable[[Screen], None]] = []  # e.g. the simulator's terminal

    @property
    def image(self) -> Image.Image | None:
        """The last image sent, where the device keeps one (luma's dummy device does)."""
        return getattr(self._device, "image", None)

    def show(self, screen: Screen) -> bool:
        """Draw the screen if it differs from what is shown; True when it was drawn."""
        if screen == self.screen:
            return False
        self.screen = screen
        try:
            self._device.display(render(screen, (self._device.width, self._device.height)))
        except OSError as err:  # an I2C write failed: the phone goes on without its screen
            log.error("display write failed: %s", err)
        for observer in self.observers:
            observer(screen)
        return True

    def set_contrast(self, level: int) -> None:
        try:
            self._device.contrast(level)
        except OSError as err:
            log.error("display contrast write failed: %s", err)

    def close(self) -> None:
        cleanup = getattr(self._device, "cleanup", None)
        if cleanup is not None:
            cleanup()
