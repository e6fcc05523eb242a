"""Hardware kits: the keypad, hook switch and display of a real Pi, or their simulations.

Like gpiozero's pin factories, the kit is the one place that picks real or simulated backends;
everything above it is the same code either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from deskphone.core.events import Event
from deskphone.hw.display import Display, open_device
from deskphone.hw.keypad import HookSwitch, MatrixKeypad
from deskphone.hw.profile import HardwareProfile, load_profile
from deskphone.hw.sim import KeyMatrix, mock_factory

if TYPE_CHECKING:
    from deskphone.config import Config

REPEAT_KEYS = ("vol_up", "vol_down")


def on_raspberry_pi(model_file: Path = Path("/proc/device-tree/model")) -> bool:
    try:
        return "Raspberry Pi" in model_file.read_text(errors="replace")
    except OSError:
        return False


def choose_kit(setting: str) -> str:
    """`auto` means the real hardware on a Pi and the simulation anywhere else."""
    if setting != "auto":
        return setting
    return "pi" if on_raspberry_pi() else "sim"


@dataclass
class Kit:
    name: str
    profile: HardwareProfile
    display: Display
    keypad: MatrixKeypad
    hook: HookSwitch
    matrix: KeyMatrix | None  # the simulated contacts (sim kit only)

    def close(self) -> None:
        self.keypad.close()
        self.hook.close()
        self.display.close()


def build_kit(
    config: Config,
    *,
    loop: asyncio.AbstractEventLoop,
    post: Callable[[Event], None],
    kit: str | None = None,
) -> Kit:
    name = kit or choose_kit(config.hardware.kit)
    profile = load_profile(config.hardware.profile, config.display.interface)
    simulated = name == "sim"
    factory, matrix = mock_factory(profile) if simulated else (None, None)
    display = Display(open_device(config.display, simulated))
    keypad = MatrixKeypad(
        profile.keypad, loop=loop, post=post, pin_factory=factory, repeat_keys=REPEAT_KEYS
    )
    hook = HookSwitch(profile.hook, loop=loop, post=post, pin_factory=factory)
    return Kit(name, profile, display, keypad, hook, matrix)
