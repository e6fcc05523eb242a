"""The `deskphone` command line: check-config and its messages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from deskphone.cli import build_parser, main

GOOD = """
[[account]]
registrar = "sip:pbx.example.org:5070"
user = "1001"
password = "secret"
"""


def test_check_config_accepts_a_good_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "deskphone.toml"
    path.write_text(GOOD)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "1001@pbx.example.org" in out and "secret" not in out


def test_check_config_names_key_and_line_of_each_problem(tmp_path: Path, capsys) -> None:
    path = tmp_path / "deskphone.toml"
    path.write_text(GOOD + "expiry = 5\n\n[audio]\ncodecs = []\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 6" in err and "account[0].expiry" in err
    assert "line 9" in err and "audio.codecs" in err


def test_check_config_rejects_a_profile_pin_clash(tmp_path: Path, capsys) -> None:
    profile = tmp_path / "clash.toml"
    profile.write_text(
        '[keypad]\nrows = [5, 6]\ncolumns = [2, 6]\nkeys = [["1", "2"], ["3", "4"]]\n'
        "[hook]\npin = 40\n"
    )
    path = tmp_path / "deskphone.toml"
    path.write_text(GOOD + f'\n[hardware]\nprofile = "{profile}"\n')
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "GPIO2 is I2C SDA" in err
    assert "GPIO6 is already used by keypad.rows" in err
    assert "GPIO40 is not on the 40-pin header" in err


def test_explain_prints_every_section() -> None:
    assert main(["check-config", "--explain"]) == 0


def test_help_lists_every_command(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "sim", "check-config"):
        assert command in out


def test_a_broken_config_is_shown_on_the_display_the_phone_would_use(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`deskphone run` with a broken config exits with the message, and puts its first line on
    the display (the sim kit's: luma's dummy device) where it stays after the process ends."""
    import deskphone.hw.kits as kits

    shown = []
    real_show_notice = kits.show_notice

    def spy(*args, **kwargs):  # the real function; only what it returns is kept
        shown.append(real_show_notice(*args, **kwargs))
        return shown[-1]

    monkeypatch.setattr(kits, "show_notice", spy)
    path = tmp_path / "deskphone.toml"
    path.write_text(GOOD + "expiry = 5\n")
    assert main(["run", "--config", str(path), "--kit", "sim"]) == 2
    assert "account[0].expiry" in capsys.readouterr().err
    [display] = shown
    assert display is not None and display.screen is not None
    text = display.screen.text()
    assert "config error" in text and "line 6" in text
    assert display.image is not None and display.image.getbbox() is not None  # pixels lit
    assert display._device.persist  # luma leaves the picture up at exit


def test_a_notice_that_cannot_be_drawn_is_not_fatal(tmp_path: Path) -> None:
    from deskphone.config import default_config
    from deskphone.hw.kits import show_notice

    config = default_config()
    missing = dataclasses.replace(config.hardware, profile=str(tmp_path / "no-such-profile.toml"))
    broken = dataclasses.replace(config, hardware=missing)
    assert show_notice(broken, "config error", "line 1", kit="sim") is None
