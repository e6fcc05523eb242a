"""Hardware kits: the keypad, function keys, hook switch, LEDs and display of a real Pi, or
their simulations.

Like gpiozero's pin factories, the kit is the one place that picks real or simulated backends;
everything above it is the same code either way. The sim kit runs the very same scanning,
debouncing and drawing code on gpiozero's MockFactory and luma's dummy device.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskphone.core.events import Event, HookChanged, KeyPressed
from deskphone.core.phone import PhoneView
from deskphone.hw.display import Dimmer, Display, open_device
from deskphone.hw.keypad import FunctionKeys, HookSwitch, MatrixKeypad
from deskphone.hw.leds import Leds
from deskphone.hw.netinfo import read_network_info
from deskphone.hw.profile import HardwareProfile, load_profile
from deskphone.hw.sim import KeyMatrix, mock_factory
from deskphone.ui.screens import NetworkInfo, notice_screen

if TYPE_CHECKING:
    from deskphone.config import Config

log = logging.getLogger(__name__)

REPEAT_KEYS = ("vol_up", "vol_down", "up", "down")
NETWORK_FRESH = 5.0  # seconds the network page's addresses are reused before being read again
SOUND_CARDS = Path("/proc/asound/cards")


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


def show_notice(
    config: Config, headline: str, detail: str, *, kit: str | None = None
) -> Display | None:
    """Put a problem that keeps the phone from starting (a broken config, no SIP stack) on its
    display, with the wiring `config` gives (pass the defaults when the config itself is what
    is broken). The picture stays after the process ends, so that it can be read. Never fails
    (the caller has put the message in the journal); returns the display, or None if it did
    not open."""
    try:
        profile = load_profile(config.hardware.profile, config.display.interface)
        simulated = (kit or choose_kit(config.hardware.kit)) == "sim"
        device = open_device(config.display, profile.display, simulated)
        device.persist = True  # luma blanks the panel at exit otherwise
        display = Display(device)
        display.show(notice_screen(headline, detail))
    except Exception as err:  # a courtesy to whoever looks at the phone: report and go on
        log.warning("cannot show this on the display: %s", err)
        return None
    return display


@dataclass
class Kit:
    name: str
    profile: HardwareProfile
    display: Display
    keypad: MatrixKeypad
    hook: HookSwitch
    matrix: KeyMatrix | None  # the simulated contacts (sim kit only)
    function_keys: FunctionKeys | None = None
    leds: Leds | None = None
    dimmer: Dimmer | None = None
    _network: tuple[float, NetworkInfo] | None = field(default=None, repr=False)
    pin_factory: Any = None  # gpiozero's factory for other pins (a UPS's power-loss signal)

    def update(self, view: PhoneView) -> None:
        """Bring the LEDs and the display's brightness in line with the phone's view."""
        if self.leds is not None:
            self.leds.update(view)
        if self.dimmer is not None:
            self.dimmer.update(view)

    def network(self) -> NetworkInfo:
        """The phone's addresses, read at most every few seconds while the page shows them."""
        now = time.monotonic()
        if self._network is None or now - self._network[0] > NETWORK_FRESH:
            self._network = (now, read_network_info())
        return self._network[1]

    def close(self) -> None:
        self.keypad.close()
        if self.function_keys is not None:
            self.function_keys.close()
        self.hook.close()
        if self.leds is not None:
            self.leds.close()
        if self.dimmer is not None:
            self.dimmer.close()
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
    settings = config.display
    display = Display(
        open_device(settings, profile.display, simulated),
        pixel_shift_minutes=settings.pixel_shift_minutes,
        dim_contrast=settings.dim_contrast,
    )
    display.contrast = settings.contrast
    dimmer = Dimmer(
        display,
        loop,
        dim_after=settings.dim_after,
        dim_after_on_battery=settings.dim_after_on_battery,
    )

    def post_input(event: Event) -> None:
        """Keys and the hook also brighten the display (called on the loop's thread)."""
        if isinstance(event, KeyPressed | HookChanged):
            dimmer.touch()
        post(event)

    keypad = MatrixKeypad(
        profile.keypad,
        loop=loop,
        post=post_input,
        pin_factory=factory,
        repeat_keys=REPEAT_KEYS,
    )
    function_keys = None
    if profile.keys:
        function_keys = FunctionKeys(
            profile.keys, loop=loop, post=post_input, pin_factory=factory, repeat_keys=REPEAT_KEYS
        )
    hook = HookSwitch(profile.hook, loop=loop, post=post_input, pin_factory=factory)
    leds = Leds(profile.leds, pin_factory=factory) if profile.leds else None
    parts = (display, keypad, hook, matrix, function_keys, leds, dimmer)
    return Kit(name, profile, *parts, pin_factory=factory)


def simulator_audio(config: Config) -> tuple[Config, str]:
    """The audio the simulator uses, and a line for the user saying what it is.

    The one place that chooses: the computer's default sound devices through an "alsa"
    backend once the firmware has one (the handset-audio work) and the computer has a sound
    card; otherwise the config's own backend, and the note says calls will be silent."""
    backends = _audio_backends()
    cards = _sound_cards()
    if "alsa" in backends and cards:
        audio = dataclasses.replace(config.audio, backend="alsa")
        return dataclasses.replace(config, audio=audio), f"audio: {cards[0]} (default devices)"
    if not cards:
        why = "this computer has no sound card"
    else:
        why = "this build has no sound-card backend yet"
    return config, f"audio: no audio device ({why}); calls connect but are silent"


def _audio_backends() -> tuple[str, ...]:
    """The audio backends the config schema accepts ([audio] backend's choices)."""
    from deskphone.config import AudioConfig, Setting

    hint = typing.get_type_hints(AudioConfig, include_extras=True)["backend"]
    return next((m.choices for m in hint.__metadata__ if isinstance(m, Setting)), ())


def _sound_cards() -> list[str]:
    """Names of the ALSA sound cards the kernel knows (none in most containers and VMs)."""
    try:
        lines = SOUND_CARDS.read_text().splitlines()
    except OSError:
        return []
    return [line.split(":", 1)[1].strip() for line in lines if line[:3].strip().isdigit()]


def prepare_simulator(config: Config, profile: str | None = None) -> tuple[Config, list[str]]:
    """The config `deskphone sim` runs (another hardware profile if asked for, the audio
    `simulator_audio` picks) and the notes shown under the picture. `ConfigError` when the
    profile is unknown or broken."""
    if profile is not None:
        hardware = dataclasses.replace(config.hardware, profile=profile)
        config = dataclasses.replace(config, hardware=hardware)
    load_profile(config.hardware.profile, config.display.interface)
    config, audio_note = simulator_audio(config)
    notes = [f"profile: {config.hardware.profile}", audio_note]
    if not config.accounts:
        notes.append(
            "no account configured: add an [[account]] to ~/.config/deskphone/deskphone.toml "
            "(see README, 'Configuration') or start with --config FILE"
        )
    return config, notes
