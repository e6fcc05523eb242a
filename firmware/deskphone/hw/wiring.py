"""Wiring documents generated from a hardware profile: a table of every header pin used, an SVG
diagram of the 40-pin header with each wire labelled, and the bill of materials.

    python -m deskphone.hw.wiring [--out hardware] [PROFILE ...]

writes hardware/<profile>/README.md and hardware/<profile>/wiring.svg for each profile (all of
them by default). The documents are never edited by hand: a unit test regenerates them and
fails when the committed ones differ from the profile.
"""

from __future__ import annotations

import argparse
import html
from dataclasses import dataclass
from pathlib import Path

from deskphone.hw.profile import BUS_PINS, HardwareProfile, known_profiles, load_profile

# Physical pin -> BCM GPIO number, or the power rail it carries.
HEADER: dict[int, int | str] = {
    1: "3V3", 2: "5V", 3: 2, 4: "5V", 5: 3, 6: "GND", 7: 4, 8: 14, 9: "GND", 10: 15,
    11: 17, 12: 18, 13: 27, 14: "GND", 15: 22, 16: 23, 17: "3V3", 18: 24, 19: 10, 20: "GND",
    21: 9, 22: 25, 23: 11, 24: 8, 25: "GND", 26: 7, 27: 0, 28: 1, 29: 5, 30: "GND",
    31: 6, 32: 12, 33: 13, 34: "GND", 35: 19, 36: 16, 37: 26, 38: 20, 39: "GND", 40: 21,
}  # fmt: skip
PHYSICAL = {gpio: pin for pin, gpio in HEADER.items() if isinstance(gpio, int)}
# Which power pins feed what, so each part has a pin of its own to go to.
DISPLAY_POWER_I2C = (1, 6)  # (3V3, GND) beside the I2C pins
DISPLAY_POWER_SPI = (17, 20)  # (3V3, GND) beside the SPI pins
HOOK_GROUND, KEYS_GROUND, LEDS_GROUND = 39, 34, 14
COLOURS = {
    "display": "#1f77b4",
    "row": "#ff7f0e",
    "column": "#2ca02c",
    "hook": "#d62728",
    "key": "#9467bd",
    "led": "#bcbd22",
    "power": "#555555",
}
GROUP_NAMES = {
    "display": "display",
    "row": "keypad rows",
    "column": "keypad columns",
    "hook": "hook switch",
    "key": "function keys",
    "led": "LEDs",
    "power": "power and ground",
}


@dataclass(frozen=True, slots=True)
class Wire:
    pin: int  # physical header pin
    signal: str  # what the pin carries: GPIO5, 3V3, GND, I2C SDA
    to: str  # where the wire goes
    group: str  # for the diagram's colours


def wires(profile: HardwareProfile) -> list[Wire]:
    """Every wire from the header, in header order."""
    found: list[Wire] = []

    def gpio(number: int, to: str, group: str, signal: str = "") -> None:
        found.append(Wire(PHYSICAL[number], signal or f"GPIO{number}", to, group))

    display = profile.display
    chip = display.driver.upper()
    if display.interface == "i2c":
        vcc, ground = DISPLAY_POWER_I2C
        for number, signal in BUS_PINS["i2c"].items():
            gpio(number, f"{chip} {signal.split()[-1]}", "display", f"GPIO{number} ({signal})")
    else:
        vcc, ground = DISPLAY_POWER_SPI
        spi_pins = {10: "DIN (MOSI)", 11: "CLK (SCLK)", 8: "CS (CE0)"}
        for number, to in spi_pins.items():
            gpio(number, f"{chip} {to}", "display", f"GPIO{number} ({BUS_PINS['spi'][number]})")
        if display.dc_pin is not None:
            gpio(display.dc_pin, f"{chip} DC", "display")
        if display.reset_pin is not None:
            gpio(display.reset_pin, f"{chip} RES", "display")
    found.append(Wire(vcc, "3V3", f"{chip} VCC", "power"))
    found.append(Wire(ground, "GND", f"{chip} GND", "power"))
    keypad = profile.keypad
    for index, number in enumerate(keypad.rows):
        gpio(number, f"keypad row {index + 1} ({' '.join(keypad.keys[index])})", "row")
    for index, number in enumerate(keypad.columns):
        keys = " ".join(row[index] for row in keypad.keys)
        gpio(number, f"keypad column {index + 1} ({keys})", "column")
    level = "ground" if profile.hook.off_hook_low else "3V3"
    gpio(profile.hook.pin, f"hook switch (closes to {level} when lifted)", "hook")
    if profile.hook.off_hook_low:
        found.append(Wire(HOOK_GROUND, "GND", "hook switch, other side", "power"))
    else:
        found.append(Wire(17, "3V3", "hook switch, other side", "power"))
    for name, number in profile.keys:
        gpio(number, f"{name} button (to ground)", "key")
    if profile.keys:
        found.append(Wire(KEYS_GROUND, "GND", "function buttons, common side", "power"))
    for name, number in profile.leds:
        gpio(number, f"{name} LED anode, through 330 ohm", "led")
    if profile.leds:
        found.append(Wire(LEDS_GROUND, "GND", "LED cathodes", "power"))
    return sorted(found, key=lambda wire: wire.pin)


def wiring_table(profile: HardwareProfile) -> str:
    rows = [
        "| header pin | signal | goes to |",
        "|---:|---|---|",
        *(f"| {w.pin} | {w.signal} | {w.to} |" for w in wires(profile)),
    ]
    return "\n".join(rows)


def parts_table(profile: HardwareProfile) -> str:
    rows = ["| qty | part | note |", "|---:|---|---|"]
    rows += [f"| {p.quantity} | {p.item} | {p.note} |" for p in profile.parts]
    return "\n".join(rows)


def readme(profile: HardwareProfile, source: str) -> str:
    display = profile.display
    if display.interface == "i2c":
        bus, overlay = "I2C (address from [display] i2c_address, 0x3C by default)", "i2c_arm"
    else:
        bus, overlay = "SPI 0.0", "spi"
    notes = [
        f"- Display: {display.driver.upper()} 128x64 on {bus}. Enable the bus with "
        f"`raspi-config` (Interface Options) or `dtparam={overlay}=on` in "
        "/boot/firmware/config.txt; 400 kHz I2C (`dtparam=i2c_arm_baudrate=400000`) keeps "
        "scrolling names smooth.",
        "- Keypad: rows are outputs, columns inputs with the Pi's internal pull-ups; no resistors "
        "or diodes are needed (ghost keys from three pressed corners are ignored).",
        "- Hook switch: "
        + (
            'closes to ground when the handset is lifted (`off_hook_level = "low"`).'
            if profile.hook.off_hook_low
            else "closes to 3V3 when the handset is lifted."
        ),
    ]
    if profile.keys:
        notes.append(
            "- Function keys: one side to the GPIO, the other to ground; internal pull-ups."
        )
    if profile.leds:
        notes.append("- LEDs: GPIO to a 330 ohm resistor to the LED's anode; cathodes to ground.")
    if profile.keypad.long_press:
        held = ", ".join(f"hold {key} for {alias}" for key, alias in profile.keypad.long_press)
        notes.append(f"- Long presses: {held}.")
    if profile.handset:
        notes.append(f"- Audio: {profile.handset}.")
    return (
        f"# {profile.name}: {profile.description}\n\n"
        f"Generated from `{source}` by `python -m deskphone.hw.wiring`; do not edit by hand.\n\n"
        "![wiring diagram](wiring.svg)\n\n"
        "## Wiring\n\nPins are the physical pins of the 40-pin header (pin 1 is 3V3, nearest the "
        "SD card); signals are BCM GPIO numbers, as in the profile.\n\n"
        f"{wiring_table(profile)}\n\n" + "\n".join(notes) + "\n\n"
        f"## Bill of materials\n\n{parts_table(profile)}\n"
    )


def diagram(profile: HardwareProfile) -> str:
    """An SVG of the header seen from above, pin 1 top left, each wire labelled and coloured."""
    by_pin: dict[int, list[Wire]] = {}
    for wire in wires(profile):
        by_pin.setdefault(wire.pin, []).append(wire)
    width, row_height, top = 1120, 22, 70
    centre = width // 2
    height = top + 20 * row_height + 40 + 24 * len(COLOURS)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{centre}" y="28" text-anchor="middle" font-size="18">'
        f"{html.escape(profile.name)}: {html.escape(profile.description)}</text>",
        f'<text x="{centre}" y="50" text-anchor="middle" fill="#555">Raspberry Pi 40-pin '
        "header from above, pin 1 top left</text>",
        f'<rect x="{centre - 30}" y="{top - 14}" width="60" height="{20 * row_height + 8}" '
        'rx="4" fill="#222"/>',
    ]
    for pin in range(1, 41):
        row, right = (pin - 1) // 2, pin % 2 == 0
        x = centre + (12 if right else -12)
        y = top + row * row_height
        used = by_pin.get(pin, [])
        colour = COLOURS[used[0].group] if used else "#999"
        parts.append(f'<circle cx="{x}" cy="{y}" r="7" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + (22 if right else -22)}" y="{y + 4}" '
            f'text-anchor="{"start" if right else "end"}" fill="#222">{pin}</text>'
        )
        name = HEADER[pin] if isinstance(HEADER[pin], str) else f"GPIO{HEADER[pin]}"
        label = "; ".join(f"{w.signal} → {w.to}" for w in used) if used else str(name)
        anchor = "start" if right else "end"
        text_x = x + (48 if right else -48)
        line_end = x + (40 if right else -40)
        if used:
            parts.append(
                f'<line x1="{x}" y1="{y}" x2="{line_end}" y2="{y}" stroke="{colour}" '
                'stroke-width="3"/>'
            )
        parts.append(
            f'<text x="{text_x}" y="{y + 4}" text-anchor="{anchor}" '
            f'fill="{colour if used else "#999"}">{html.escape(label)}</text>'
        )
    legend_y = top + 20 * row_height + 30
    for index, (group, colour) in enumerate(COLOURS.items()):
        y = legend_y + index * 24
        parts.append(f'<rect x="40" y="{y - 10}" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="62" y="{y + 2}">{GROUP_NAMES[group]}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def documents(name: str) -> dict[str, str]:
    """The generated files of one profile, by file name."""
    profile = load_profile(name)
    source = f"hardware/profiles/{Path(profile.source).name}"
    return {"README.md": readme(profile, source), "wiring.svg": diagram(profile)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="*", help="profile names (default: all)")
    parser.add_argument("--out", type=Path, default=Path("hardware"), help="output directory")
    args = parser.parse_args(argv)
    for name in args.profiles or known_profiles():
        directory = args.out / name
        directory.mkdir(parents=True, exist_ok=True)
        for file_name, text in documents(name).items():
            (directory / file_name).write_text(text, encoding="utf-8")
            print(f"wrote {directory / file_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
