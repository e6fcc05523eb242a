"""Hardware profiles: the shipped ones load, mistakes are config errors naming the key, and the
wiring documents in hardware/ are what the profiles generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskphone.errors import ConfigError
from deskphone.hw import wiring
from deskphone.hw.profile import known_profiles, load_profile

ROOT = Path(__file__).resolve().parents[2]
GOOD = """
name = "test"
[display]
driver = "sh1106"
interface = "i2c"
[keypad]
rows = [5, 6, 13, 19]
columns = [12, 16, 20]
keys = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["*", "0", "#"]]
[hook]
pin = 26
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "profile.toml"
    path.write_text(text)
    return str(path)


def problems(tmp_path: Path, text: str, interface: str | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_profile(write(tmp_path, text), interface)
    return str(caught.value)


def test_the_reference_and_minimal_builds_load() -> None:
    assert {"reference", "minimal"} <= set(known_profiles())
    reference = load_profile("reference")
    assert (reference.display.driver, reference.display.interface) == ("ssd1306", "i2c")
    assert len(reference.keypad.columns) == 4 and reference.hook.off_hook_low
    assert {"menu", "ok", "back", "up", "down", "vol_up", "vol_down", "transfer"} <= set(
        reference.key_names
    )
    assert dict(reference.leds) == {"message": 22, "line": 23}
    minimal = load_profile("minimal")
    assert (minimal.display.driver, len(minimal.keypad.columns)) == ("sh1106", 3)
    assert dict(minimal.keypad.long_press) == {"*": "menu"}
    assert minimal.parts and reference.parts


def test_a_good_profile_loads(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, GOOD))
    assert profile.keypad.keys[3] == ("*", "0", "#")


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        ("[keys]\nmenu = 26\n", "keys.menu", "GPIO26 is already used by hook.pin"),
        ("[keys]\nmenu = 28\n", "keys.menu", "GPIO28 is not on the 40-pin header"),
        ("[keys]\nmenu = 3\n", "keys.menu", "GPIO3 is I2C SCL, used by the i2c display"),
        ("[keys]\nteleport = 4\n", "keys.teleport", "unknown name"),
        ("[leds]\nmessage = 2\n", "leds.message", "GPIO2 is I2C SDA"),
        ("[leds]\nmessage = true\n", "leds.message", "needs a GPIO number"),
        ("[keys]\n'1' = 4\n", "keys.1", "unknown name"),
        ("[gpio]\nx = 1\n", "gpio", "unknown key"),
    ],
)
def test_pin_mistakes_are_config_errors_naming_the_key(
    tmp_path: Path, change: str, key: str, message: str
) -> None:
    text = problems(tmp_path, GOOD + change)
    assert key in text and message in text


def test_keymap_mistakes_are_config_errors(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD.replace('"0"', '"zero"').replace('["1",', '["2",'))
    assert "unknown key 'zero'" in text and "key '2' appears twice" in text
    text = problems(tmp_path, GOOD.replace("[hook]", '[keypad.long_press]\n"5" = "fly"\n[hook]'))
    assert "keypad.long_press.5" in text and "unknown key 'fly'" in text
    text = problems(tmp_path, GOOD + "[keys]\n'*' = 4\n")
    assert "unknown name" in text  # digits and * # belong to the keypad


def test_a_function_key_on_the_keypad_and_a_pin_is_an_error(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD.replace('"#"]]', '"menu"]]') + "[keys]\nmenu = 4\n")
    assert "'menu' is on the keypad too" in text


def test_spi_display_pins_are_taken_and_its_data_command_pin_required(tmp_path: Path) -> None:
    spi = GOOD.replace('interface = "i2c"', 'interface = "spi"\ndc_pin = 24\nreset_pin = 25')
    profile = load_profile(write(tmp_path, spi))
    assert (profile.display.dc_pin, profile.display.reset_pin) == (24, 25)
    text = problems(tmp_path, spi + "[keys]\nok = 10\n[leds]\nline = 25\n")
    assert "GPIO10 is SPI MOSI" in text and "GPIO25 is already used by display.reset_pin" in text
    assert "needs its data/command pin" in problems(tmp_path, GOOD, interface="spi")
    # The config's interface overrides the profile's, and with it which pins are the bus's.
    with_gpio2 = spi + "[keys]\nok = 2\n"
    assert load_profile(write(tmp_path, with_gpio2)).keys == (("ok", 2),)
    assert "GPIO2 is I2C SDA" in problems(tmp_path, with_gpio2, interface="i2c")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = problems(tmp_path, GOOD + "[keys]\nmenu = 99\n[leds]\nline = 5\n")
    assert "GPIO99" in text and "GPIO5 is already used by keypad.rows" in text


@pytest.mark.parametrize("name", ["reference", "minimal"])
def test_wiring_documents_are_generated_from_the_profile(name: str) -> None:
    for file_name, text in wiring.documents(name).items():
        committed = ROOT / "hardware" / name / file_name
        assert committed.read_text(encoding="utf-8") == text, (
            f"{committed} is stale: run python -m deskphone.hw.wiring"
        )


def test_the_wiring_table_has_every_pin_of_the_profile_once() -> None:
    profile = load_profile("reference")
    table = wiring.wiring_table(profile)
    used = [*profile.keypad.rows, *profile.keypad.columns, profile.hook.pin]
    used += [pin for _, pin in (*profile.keys, *profile.leds)]
    for gpio in used:
        assert table.count(f"| GPIO{gpio} |") == 1, gpio
    pins = [wire.pin for wire in wiring.wires(profile)]
    assert len(pins) == len(set(pins)), "two wires on one header pin"
    assert "<svg" in wiring.diagram(profile) and "keypad row 1 (1 2 3 speaker)" in table
