"""The image's first-boot helper (image/firstboot.py), run here against directories that stand in
for the card's FAT partition, /etc/deskphone and the data partition, with the firmware's real
`deskphone check-config` and its real (simulated) display. Fast: no VM."""

from __future__ import annotations

import dataclasses
import grp
import importlib.util
import logging
import os
import shutil
import stat
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from tests.e2e.vm import IMAGE_DIR

PASSWORD = "first-boot-secret"


def _load_firstboot() -> ModuleType:
    spec = importlib.util.spec_from_file_location("firstboot", IMAGE_DIR / "firstboot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["firstboot"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


firstboot = _load_firstboot()
if TYPE_CHECKING:
    from image.firstboot import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """The helper's paths in tmp_path; the current group stands in for the service user's."""
    for name in ("boot", "etc", "data"):
        (tmp_path / name).mkdir()
    return firstboot.Layout(
        boot=tmp_path / "boot",
        config_dir=tmp_path / "etc",
        data=tmp_path / "data",
        deskphone=Path(sys.executable).with_name("deskphone"),
        service_group=grp.getgrgid(os.getgid()).gr_name,
        remount=False,
    )


def config_text(layout: Layout, extra: str = "") -> str:
    return f"""
[phone]
country = "DE"

[hardware]
kit = "sim"

[[account]]
registrar = "sip:pbx.example.org"
user = "1001"
password_file = "{layout.config_dir / "1001.secret"}"
{extra}
"""


def on_card(layout: Layout) -> set[str]:
    return {p.name for p in layout.boot.iterdir()}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_config_and_password_file_move_off_the_card(layout: Layout) -> None:
    (layout.boot / "deskphone.toml").write_text(config_text(layout))
    (layout.boot / "1001.secret").write_text(PASSWORD + "\n")

    outcome = firstboot.take_settings(layout)

    assert outcome.problems == []
    assert sorted(outcome.taken) == ["1001.secret", "deskphone.toml"]
    assert on_card(layout) == set()
    assert layout.config.read_text() == config_text(layout)
    secret = layout.config_dir / "1001.secret"
    assert secret.read_text().strip() == PASSWORD
    assert mode(secret) == mode(layout.config) == 0o640
    assert secret.stat().st_gid == os.getgid()


def test_a_broken_config_is_reported_and_the_previous_one_kept(
    layout: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    (layout.config_dir / "1001.secret").write_text(PASSWORD)
    layout.config.write_text(config_text(layout))
    (layout.boot / "deskphone.toml").write_text(
        config_text(layout, extra='password = "typed-on-the-card"\ncolour = "red"')
    )

    with caplog.at_level(logging.INFO, logger="deskphone-firstboot"):
        firstboot.first_boot(layout, error_pause=0)

    assert layout.config.read_text() == config_text(layout)  # the previous one stays
    assert "deskphone.toml" not in on_card(layout)  # it held a password: it left the card
    report = (layout.boot / firstboot.ERROR_FILE).read_text()
    assert "account[0].colour: unknown key" in report
    assert "line 11" in report
    assert "typed-on-the-card" not in report and PASSWORD not in report
    shown = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("display:"))
    assert shown.startswith("display: Settings not taken: line 1")  # line 11 or 13
    assert shown.endswith(f"(see {firstboot.ERROR_FILE})") and "\n" not in shown
    # Kept for a look over SSH, readable by root only.
    assert mode(layout.data / "rejected" / "deskphone.toml") == 0o600


def test_a_good_config_clears_an_earlier_error_report(layout: Layout) -> None:
    (layout.boot / firstboot.ERROR_FILE).write_text("an earlier problem")
    (layout.boot / "1001.secret").write_text(PASSWORD)
    (layout.boot / "DESKPHONE.TOML.txt").write_text(config_text(layout))  # as an editor saves it

    assert firstboot.take_settings(layout).problems == []
    assert on_card(layout) == set()
    assert layout.config.exists()


def test_wifi_is_taken_for_wpa_supplicant_and_kept_private(layout: Layout) -> None:
    (layout.boot / "wpa_supplicant.conf").write_text(
        'network={\n    ssid="office"\n    psk="wifi password"\n}\n'
    )

    assert firstboot.take_settings(layout).taken == ["wpa_supplicant.conf"]
    conf = layout.wifi_file.read_text()
    assert conf.startswith("ctrl_interface=") and 'ssid="office"' in conf
    assert mode(layout.wifi_file) == 0o600
    assert on_card(layout) == set()


def test_a_bad_hostname_and_a_file_that_is_no_ssh_key_are_refused(
    layout: Layout,
) -> None:
    (layout.boot / "hostname.txt").write_text("front desk!\n")
    (layout.boot / "authorized_keys").write_text("my password is hunter2\n")

    outcome = firstboot.take_settings(layout)

    assert outcome.taken == []
    assert len(outcome.problems) == 2
    assert not layout.hostname_file.exists()
    assert not (layout.ssh_dir / "authorized_keys").exists()
    assert on_card(layout) == {firstboot.ERROR_FILE}


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen is not installed")
def test_an_ssh_key_enables_login_with_a_host_key_of_this_phone(layout: Layout) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2h0ZQ3c2cl3n1j0F9m2n7rYQ2p5J7a3mXh3o1u9Qe me@pc"
    (layout.boot / "authorized_keys").write_text(f"# mine\n{key}\n")
    (layout.boot / "hostname.txt").write_text("front-desk\n")

    outcome = firstboot.take_settings(layout)

    assert outcome.problems == []
    assert (layout.ssh_dir / "authorized_keys").read_text() == key + "\n"
    assert mode(layout.ssh_dir / "authorized_keys") == 0o600
    assert (layout.ssh_dir / "ssh_host_ed25519_key").exists()
    assert layout.hostname_file.read_text() == "front-desk\n"


def test_the_notice_is_drawn_by_the_firmwares_display(layout: Layout) -> None:
    display = firstboot.show_notice(layout, "No settings yet", "copy deskphone.toml")

    assert display is not None
    assert "No settings yet" in display.screen.text()
    assert display.image is not None and display.image.getbbox() is not None  # pixels lit


def test_without_a_sip_stack_the_phone_says_why_and_does_not_start(
    layout: Layout, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = tmp_path / "pjsua2-missing"
    reason.write_text("built without the pjproject 2.15.1 source\n")

    assert firstboot.no_sip_stack(layout, reason) != 0
    said = capsys.readouterr().err
    assert "pjsua2 (the SIP stack) is not in this image" in said
    assert "built without the pjproject 2.15.1 source" in said


def test_a_card_that_cannot_be_made_writable_keeps_its_files(layout: Layout) -> None:
    """The FAT partition is remounted read-write to take files; here "boot" is no mount point,
    so `mount -o remount,rw` fails as it would on a card whose partition is damaged."""
    unmounted = dataclasses.replace(layout, remount=True)
    (layout.boot / "deskphone.toml").write_text(config_text(layout))

    outcome = firstboot.take_settings(unmounted)

    assert outcome.taken == []
    assert "nothing was taken" in outcome.problems[0]
    assert on_card(layout) == {"deskphone.toml"}
    assert not layout.config.exists()
