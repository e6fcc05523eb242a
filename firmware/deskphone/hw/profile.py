"""Hardware pin profiles: which GPIO pins a build wires to what, read from `hardware/profiles`.

A profile is data the config names (`[hardware] profile = "reference"`, or a path): the display
chip and its bus, the keypad matrix and its keymap, the hook switch, optional function keys and
LEDs on pins of their own, and the parts list. Mistakes a soldering iron can't undo are caught
here, before any pin is touched: a pin used twice, a pin the 40-pin header does not have, a pin
the display's bus owns, a key name the phone does not know. Every problem is reported at once.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deskphone.core.phone import DIAL_KEYS, KEY_COMMANDS
from deskphone.errors import ConfigError, ConfigProblem

HEADER_GPIOS = range(28)  # BCM GPIO 0-27 reach the 40-pin header on every Pi since the B+
BUS_PINS = {
    "i2c": {2: "I2C SDA", 3: "I2C SCL"},
    "spi": {7: "SPI CE1", 8: "SPI CE0", 9: "SPI MISO", 10: "SPI MOSI", 11: "SPI SCLK"},
}
DRIVERS = ("ssd1306", "sh1106", "ssd1309")
INTERFACES = ("i2c", "spi")
# Keys with a meaning of their own beyond digits: the core's key commands and the navigation
# keys (ok/back also answer and reject; menu, up and down open the menu; transfer its page).
FUNCTION_KEYS = frozenset({*KEY_COMMANDS, "ok", "back", "menu", "up", "down", "transfer"})
KNOWN_KEYS = FUNCTION_KEYS | DIAL_KEYS
LED_NAMES = ("message", "line", "dnd")  # voicemail waiting; off-hook or ringing; do not disturb
TOP_LEVEL = frozenset(
    {"name", "description", "display", "keypad", "hook", "keys", "leds", "audio", "part"}
)
ENV_DIR = "DESKPHONE_HARDWARE_DIR"


@dataclass(frozen=True, slots=True)
class KeypadPins:
    rows: tuple[int, ...]
    columns: tuple[int, ...]
    keys: tuple[tuple[str, ...], ...]  # keys[row][column]
    long_press: tuple[tuple[str, str], ...] = ()  # (key, what holding it means), e.g. * -> menu


@dataclass(frozen=True, slots=True)
class HookPin:
    pin: int
    off_hook_low: bool  # the pin reads low while the handset is lifted


@dataclass(frozen=True, slots=True)
class DisplayWiring:
    driver: str
    interface: str
    dc_pin: int | None = None  # SPI: data/command select
    reset_pin: int | None = None  # SPI: reset (optional)


@dataclass(frozen=True, slots=True)
class Part:
    """One line of the bill of materials."""

    quantity: int
    item: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    name: str
    description: str
    keypad: KeypadPins
    hook: HookPin
    source: str
    display: DisplayWiring = DisplayWiring("ssd1306", "i2c")
    keys: tuple[tuple[str, int], ...] = ()  # function keys on pins of their own (name, GPIO)
    leds: tuple[tuple[str, int], ...] = ()  # (name, GPIO)
    handset: str = ""  # how the handset's audio is connected, for the parts list
    parts: tuple[Part, ...] = ()

    @property
    def key_names(self) -> list[str]:
        """Every key the build has: the matrix's and the function keys'."""
        return [key for row in self.keypad.keys for key in row] + [name for name, _ in self.keys]


def profile_dirs() -> list[Path]:
    """Where named profiles are looked up, first match wins."""
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]))
    dirs.append(Path(__file__).resolve().parents[3] / "hardware" / "profiles")  # a checkout
    dirs.append(Path("/usr/share/deskphone/hardware/profiles"))  # the SD-card image
    return dirs


def known_profiles() -> list[str]:
    return sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.toml")})


def find_profile(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        return candidate
    for directory in profile_dirs():
        path = directory / f"{name_or_path}.toml"
        if path.is_file():
            return path
    raise ConfigError(
        "hardware.profile",
        [
            ConfigProblem(
                "hardware.profile",
                f"no profile {name_or_path!r}; known: {', '.join(known_profiles())}",
            )
        ],
    )


def load_profile(name_or_path: str, display_interface: str | None = None) -> HardwareProfile:
    """Read and check a profile; every problem is reported at once as a `ConfigError`.

    `display_interface` is the config's override of the profile's display bus ("profile" or
    None: the profile's own), since the bus decides which pins are taken."""
    path = find_profile(name_or_path)
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(
            source, [ConfigProblem("", f"cannot read profile: {err.strerror}")]
        ) from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, [ConfigProblem("", f"not valid TOML: {err}")]) from err
    reader = _Reader()
    profile = reader.profile(data, path, display_interface)
    if reader.problems:
        raise ConfigError(source, reader.problems)
    return profile


class _Reader:
    """Reads a profile's tables, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[ConfigProblem] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))

    def profile(self, data: dict[str, Any], path: Path, interface: str | None) -> HardwareProfile:
        for key in sorted(set(data) - TOP_LEVEL):
            self.problem(key, f"unknown key; a profile has {', '.join(sorted(TOP_LEVEL))}")
        display = self.display(self.table(data, "display"), interface)
        keypad = self.keypad(self.table(data, "keypad"))
        hook = self.hook(self.table(data, "hook"))
        keys = self.pin_table(data, "keys", FUNCTION_KEYS)
        leds = self.pin_table(data, "leds", frozenset(LED_NAMES))
        on_matrix = {key for row in keypad.keys for key in row}
        for name, pin in keys:
            if name in on_matrix:
                self.problem(f"keys.{name}", f"{name!r} is on the keypad too (GPIO{pin})")
        uses: dict[str, list[int]] = {  # the display's pins first: its bus claims them
            **{
                f"display.{key}": [pin]
                for key in ("dc_pin", "reset_pin")
                if (pin := getattr(display, key)) is not None
            },
            "keypad.rows": list(keypad.rows),
            "keypad.columns": list(keypad.columns),
            "hook.pin": [hook.pin],
            **{f"keys.{name}": [pin] for name, pin in keys},
            **{f"leds.{name}": [pin] for name, pin in leds},
        }
        self.check_pins(uses, display.interface)
        audio = self.table(data, "audio")
        return HardwareProfile(
            name=str(data.get("name", path.stem)),
            description=str(data.get("description", "")),
            keypad=keypad,
            hook=hook,
            source=str(path),
            display=display,
            keys=keys,
            leds=leds,
            handset=str(audio.get("handset", "")),
            parts=self.parts(data.get("part", [])),
        )

    def table(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return {}
        return value

    def display(self, table: dict[str, Any], interface: str | None) -> DisplayWiring:
        self.unknown("display", table, {"driver", "interface", "dc_pin", "reset_pin"})
        driver = table.get("driver", "ssd1306")
        if driver not in DRIVERS:
            self.problem("display.driver", f"must be one of {', '.join(DRIVERS)}")
            driver = DRIVERS[0]
        own = table.get("interface", "i2c")
        if own not in INTERFACES:
            self.problem("display.interface", f"must be one of {', '.join(INTERFACES)}")
            own = "i2c"
        bus = own if interface in (None, "profile") else str(interface)
        dc_pin = self.optional_pin(table, "display.dc_pin", "dc_pin")
        if bus == "spi" and dc_pin is None:
            self.problem("display.dc_pin", "an SPI display needs its data/command pin")
        return DisplayWiring(
            driver, bus, dc_pin, self.optional_pin(table, "display.reset_pin", "reset_pin")
        )

    def keypad(self, table: dict[str, Any]) -> KeypadPins:
        self.unknown("keypad", table, {"rows", "columns", "keys", "long_press"})
        rows = self.pins(table.get("rows"), "keypad.rows")
        columns = self.pins(table.get("columns"), "keypad.columns")
        keys = table.get("keys")
        if not (
            isinstance(keys, list)
            and len(keys) == len(rows)
            and all(isinstance(r, list) and len(r) == len(columns) for r in keys)
            and all(isinstance(k, str) and k for r in keys for k in r)
        ):
            self.problem("keypad.keys", "needs one list of key names per row, one name per column")
            keys = []
        names = [key for row in keys for key in row]
        for name in sorted(set(names) - KNOWN_KEYS):
            self.problem("keypad.keys", f"unknown key {name!r}; known: {_known()}")
        for name in sorted({n for n in names if names.count(n) > 1}):
            self.problem("keypad.keys", f"key {name!r} appears twice")
        long_press = table.get("long_press", {})
        if not isinstance(long_press, dict):
            self.problem("keypad.long_press", "must be a table of key = key held")
            long_press = {}
        for key, alias in long_press.items():
            if key not in names:
                self.problem(f"keypad.long_press.{key}", f"{key!r} is not on the keypad")
            if alias not in FUNCTION_KEYS:
                self.problem(
                    f"keypad.long_press.{key}", f"unknown key {alias!r}; known: {_known()}"
                )
        return KeypadPins(
            tuple(rows),
            tuple(columns),
            tuple(tuple(r) for r in keys),
            tuple((str(k), str(v)) for k, v in long_press.items()),
        )

    def hook(self, table: dict[str, Any]) -> HookPin:
        self.unknown("hook", table, {"pin", "off_hook_level"})
        pin = table.get("pin")
        if not _is_int(pin):
            self.problem("hook.pin", "needs a GPIO number")
        level = table.get("off_hook_level", "low")
        if level not in ("low", "high"):
            self.problem("hook.off_hook_level", "must be 'low' or 'high'")
        return HookPin(pin if isinstance(pin, int) else -1, level == "low")

    def pin_table(
        self, data: dict[str, Any], section: str, names: frozenset[str]
    ) -> tuple[tuple[str, int], ...]:
        """A table of name = GPIO (function keys, LEDs)."""
        found = []
        for name, pin in self.table(data, section).items():
            if name not in names:
                self.problem(
                    f"{section}.{name}", f"unknown name; known: {', '.join(sorted(names))}"
                )
            elif not _is_int(pin):
                self.problem(f"{section}.{name}", "needs a GPIO number")
            else:
                found.append((name, int(pin)))
        return tuple(found)

    def parts(self, value: object) -> tuple[Part, ...]:
        if not isinstance(value, list):
            self.problem("part", "must be an array of tables ([[part]])")
            return ()
        parts = []
        for index, entry in enumerate(value, 1):
            where = f"part #{index}"
            if not isinstance(entry, dict):
                self.problem(where, "must be a table")
                continue
            self.unknown(where, entry, {"quantity", "item", "note"})
            quantity, item = entry.get("quantity", 1), entry.get("item")
            if not (_is_int(quantity) and quantity > 0) or not isinstance(item, str):
                self.problem(where, "needs an item (text) and a quantity above 0")
                continue
            parts.append(Part(quantity, item, str(entry.get("note", ""))))
        return tuple(parts)

    def unknown(self, section: str, table: dict[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(table) - allowed):
            self.problem(f"{section}.{key}", f"unknown key; known: {', '.join(sorted(allowed))}")

    def pins(self, value: object, key: str) -> list[int]:
        if not isinstance(value, list) or not value or not all(_is_int(p) for p in value):
            self.problem(key, "needs a non-empty list of GPIO numbers")
            return []
        return list(value)

    def optional_pin(self, table: dict[str, Any], key: str, name: str) -> int | None:
        pin = table.get(name)
        if pin is None:
            return None
        if not _is_int(pin):
            self.problem(key, "needs a GPIO number")
            return None
        return int(pin)

    def check_pins(self, uses: dict[str, list[int]], display_interface: str) -> None:
        bus = BUS_PINS.get(display_interface, {})
        seen: dict[int, str] = {}
        for key, pins in uses.items():
            for pin in pins:
                if pin == -1:
                    continue
                if pin not in HEADER_GPIOS:
                    self.problem(key, f"GPIO{pin} is not on the 40-pin header")
                elif pin in bus:
                    self.problem(
                        key, f"GPIO{pin} is {bus[pin]}, used by the {display_interface} display"
                    )
                elif pin in seen:
                    self.problem(key, f"GPIO{pin} is already used by {seen[pin]}")
                else:
                    seen[pin] = key


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _known() -> str:
    return ", ".join(sorted(FUNCTION_KEYS)) + " and 0-9 * #"
