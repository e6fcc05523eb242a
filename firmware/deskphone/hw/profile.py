"""Hardware pin profiles: which GPIO pins a build wires to what, read from `hardware/profiles`.

A profile is data the config names (`[hardware] profile = "reference"`, or a path). Mistakes a
soldering iron can't undo are caught here, before any pin is touched: a pin used twice, a pin
the 40-pin header does not have, a pin the display's bus already owns.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from deskphone.errors import ConfigError, ConfigProblem

HEADER_GPIOS = range(28)  # BCM GPIO 0-27 reach the 40-pin header on every Pi since the B+
BUS_PINS = {
    "i2c": {2: "I2C SDA", 3: "I2C SCL"},
    "spi": {7: "SPI CE1", 8: "SPI CE0", 9: "SPI MISO", 10: "SPI MOSI", 11: "SPI SCLK"},
}
ENV_DIR = "DESKPHONE_HARDWARE_DIR"


@dataclass(frozen=True, slots=True)
class KeypadPins:
    rows: tuple[int, ...]
    columns: tuple[int, ...]
    keys: tuple[tuple[str, ...], ...]  # keys[row][column]


@dataclass(frozen=True, slots=True)
class HookPin:
    pin: int
    off_hook_low: bool  # the pin reads low while the handset is lifted


@dataclass(frozen=True, slots=True)
class HardwareProfile:
    name: str
    description: str
    keypad: KeypadPins
    hook: HookPin
    source: str


def profile_dirs() -> list[Path]:
    """Where named profiles are looked up, first match wins."""
    dirs = []
    if os.environ.get(ENV_DIR):
        dirs.append(Path(os.environ[ENV_DIR]))
    dirs.append(Path(__file__).resolve().parents[3] / "hardware" / "profiles")  # a checkout
    dirs.append(Path("/usr/share/deskphone/hardware/profiles"))  # the SD-card image
    return dirs


def find_profile(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        return candidate
    for directory in profile_dirs():
        path = directory / f"{name_or_path}.toml"
        if path.is_file():
            return path
    known = sorted({p.stem for d in profile_dirs() if d.is_dir() for p in d.glob("*.toml")})
    raise ConfigError(
        "hardware.profile",
        [
            ConfigProblem(
                "hardware.profile", f"no profile {name_or_path!r}; known: {', '.join(known)}"
            )
        ],
    )


def load_profile(name_or_path: str, display_interface: str = "i2c") -> HardwareProfile:
    """Read and check a profile; every problem is reported at once as a `ConfigError`."""
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
    problems: list[ConfigProblem] = []
    keypad = data.get("keypad", {})
    hook = data.get("hook", {})
    rows = _pins(keypad.get("rows"), "keypad.rows", problems)
    columns = _pins(keypad.get("columns"), "keypad.columns", problems)
    keys = keypad.get("keys")
    if not (
        isinstance(keys, list)
        and len(keys) == len(rows)
        and all(isinstance(r, list) and len(r) == len(columns) for r in keys)
        and all(isinstance(k, str) and k for r in keys for k in r)
    ):
        problems.append(
            ConfigProblem("keypad.keys", "needs one list of key names per row, one name per column")
        )
        keys = []
    hook_pin = hook.get("pin")
    if not isinstance(hook_pin, int) or isinstance(hook_pin, bool):
        problems.append(ConfigProblem("hook.pin", "needs a GPIO number"))
        hook_pin = -1
    level = hook.get("off_hook_level", "low")
    if level not in ("low", "high"):
        problems.append(ConfigProblem("hook.off_hook_level", "must be 'low' or 'high'"))
    _check_pins(
        {"keypad.rows": rows, "keypad.columns": columns, "hook.pin": [hook_pin]},
        display_interface,
        problems,
    )
    if problems:
        raise ConfigError(source, problems)
    return HardwareProfile(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        keypad=KeypadPins(tuple(rows), tuple(columns), tuple(tuple(r) for r in keys)),
        hook=HookPin(hook_pin, level == "low"),
        source=source,
    )


def _pins(value: object, key: str, problems: list[ConfigProblem]) -> list[int]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(p, int) and not isinstance(p, bool) for p in value)
    ):
        problems.append(ConfigProblem(key, "needs a non-empty list of GPIO numbers"))
        return []
    return list(value)


def _check_pins(
    uses: dict[str, list[int]], display_interface: str, problems: list[ConfigProblem]
) -> None:
    bus = BUS_PINS.get(display_interface, {})
    seen: dict[int, str] = {}
    for key, pins in uses.items():
        for pin in pins:
            if pin == -1:
                continue
            if pin not in HEADER_GPIOS:
                problems.append(ConfigProblem(key, f"GPIO{pin} is not on the 40-pin header"))
            elif pin in bus:
                problems.append(
                    ConfigProblem(
                        key, f"GPIO{pin} is {bus[pin]}, used by the {display_interface} display"
                    )
                )
            elif pin in seen:
                problems.append(ConfigProblem(key, f"GPIO{pin} is already used by {seen[pin]}"))
            else:
                seen[pin] = key
