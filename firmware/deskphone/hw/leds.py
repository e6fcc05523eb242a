"""Indicator LEDs on GPIO pins: voicemail waiting, the line's state, do not disturb.

Each LED follows the phone's view; `update` is called after every change and only touches a
pin whose state differs. Blinking (the line LED while a call rings) runs on gpiozero's own
blink thread, which exists only while an LED blinks, so an idle phone has no LED work at all.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from gpiozero import LED
from gpiozero.pins import Factory

from deskphone.core.phone import PhoneState, PhoneView

BLINK_ON = 0.4
BLINK_OFF = 0.4


class Light(enum.Enum):
    OFF = "off"
    ON = "on"
    BLINK = "blinking"


def wanted(name: str, view: PhoneView) -> Light:
    """What an LED shows for this view."""
    if name == "message":
        return Light.ON if view.messages_waiting else Light.OFF
    if name == "dnd":
        return Light.ON if view.dnd else Light.OFF
    if name == "line":
        if view.state is PhoneState.RINGING:
            return Light.BLINK
        busy = view.off_hook or view.state in (PhoneState.CALLING, PhoneState.CONNECTED)
        return Light.ON if busy else Light.OFF
    raise ValueError(f"no LED {name!r}")


class Leds:
    def __init__(self, pins: Iterable[tuple[str, int]], *, pin_factory: Factory | None = None):
        self._leds = {name: LED(pin, pin_factory=pin_factory) for name, pin in pins}
        self.lights: dict[str, Light] = dict.fromkeys(self._leds, Light.OFF)

    def update(self, view: PhoneView) -> None:
        for name, led in self._leds.items():
            light = wanted(name, view)
            if light is self.lights[name]:
                continue
            self.lights[name] = light
            if light is Light.BLINK:
                led.blink(BLINK_ON, BLINK_OFF)
            elif light is Light.ON:
                led.on()
            else:
                led.off()

    def is_lit(self, name: str) -> bool:
        """The pin's level now (for tests and the simulator)."""
        return bool(self._leds[name].is_lit)

    def close(self) -> None:
        for led in self._leds.values():
            led.close()
