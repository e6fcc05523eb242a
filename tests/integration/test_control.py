"""The control socket driving a real phone: `deskphone dial/status/dtmf/hold/hangup/history`
as a script would run them, against the phone registered to Kamailio, calling baresip; and the
state directory full or read-only while calls go on."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deskphone.core.phone import PhoneState
from deskphone.service.control import ControlError, request
from tests.harness import PhoneUnderTest
from tests.rig import wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED

pytestmark = pytest.mark.integration


def cli(phone: PhoneUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `deskphone ARGS --socket <the phone's socket>` as a separate process."""
    socket = phone.config.control.socket
    assert socket is not None
    return subprocess.run(
        [sys.executable, "-m", "deskphone", *args, "--socket", str(socket)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def status(phone: PhoneUnderTest) -> dict[str, Any]:
    done = cli(phone, "status", "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def ask(phone: PhoneUnderTest, command: str, *args: str) -> Any:
    assert phone.config.control.socket is not None
    return request(phone.config.control.socket, command, args)


def test_cli_verbs_drive_a_real_call_with_baresip(phone_factory, baresip_factory) -> None:
    far = baresip_factory("1002")
    phone = phone_factory()
    phone.wait_registered()
    idle = cli(phone, "status")
    assert idle.returncode == 0 and "account 1001: registered" in idle.stdout

    dialled = cli(phone, "dial", "1002")
    assert dialled.returncode == 0, dialled.stderr
    assert dialled.stdout.strip() == "calling: 1002"
    far.wait_event(CALL_ESTABLISHED)
    phone.wait_for(lambda v: v.call is not None and v.call.connected_at is not None, 10, "up")
    up = status(phone)
    assert up["state"] == "connected" and up["call"]["number"] == "1002"
    assert up["call"]["direction"] == "out" and up["call"]["connected"]

    assert cli(phone, "dtmf", "159").returncode == 0
    far.wait_dtmf("159")
    assert cli(phone, "hold", "on").returncode == 0
    assert status(phone)["call"]["on_hold"] is True
    assert cli(phone, "hold").returncode == 0  # toggles back
    assert status(phone)["call"]["on_hold"] is False

    assert cli(phone, "hangup").returncode == 0
    far.wait_event(CALL_CLOSED)
    history = cli(phone, "history", "-n", "1")
    assert history.returncode == 0 and "1002" in history.stdout and "call ended" in history.stdout
    entries = json.loads(cli(phone, "history", "--json").stdout)
    assert entries[0]["number"] == "1002" and entries[0]["duration"] > 0


def test_refusals_and_usage_errors_say_why(phone_factory) -> None:
    phone = phone_factory()
    refused = cli(phone, "answer")
    assert refused.returncode == 1
    assert "answer: no call is ringing" in refused.stderr
    unknown = cli(phone, "command", "fly")
    assert unknown.returncode == 1 and "unknown command 'fly'" in unknown.stderr
    bad = cli(phone, "command", "volume", "ringer", "11")
    assert bad.returncode == 1 and "volume: expected up, down or 0-10" in bad.stderr
    assert cli(phone, "dtmf", "1").stderr == "deskphone: dtmf: no connected call\n"


def test_an_incoming_call_answered_and_ended_over_the_socket(phone_factory, baresip_factory):
    far = baresip_factory("1002")
    phone = phone_factory()
    phone.wait_registered()
    far.dial("sip:1001@127.0.0.1:" + str(far.registrar_port))
    phone.wait_state(PhoneState.RINGING)
    assert ask(phone, "status")["call"]["direction"] == "in"
    answered = ask(phone, "answer")
    assert answered["state"] == "connected"
    far.wait_event(CALL_ESTABLISHED)
    ask(phone, "hangup")
    far.wait_event(CALL_CLOSED)
    with pytest.raises(ControlError, match="hangup: no call") as caught:
        ask(phone, "hangup")
    assert caught.value.kind == "command"


def test_every_command_of_the_table_is_reachable(phone_factory) -> None:
    phone = phone_factory()
    names = {entry["name"] for entry in ask(phone, "commands")}
    assert {"dial", "answer", "hangup", "hold", "dtmf", "mute", "dnd", "volume"} <= names
    assert {"status", "history", "battery", "reload"} <= names
    ask(phone, "volume", "ringer", "3")  # the same command a key press runs
    assert phone.view().settings.ringer_volume == 3


def test_no_daemon_exits_3_with_a_clear_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "deskphone", "status", "--socket", str(tmp_path / "none.sock")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3
    assert "deskphone is not running" in done.stderr


# -- the state directory full or read-only ---------------------------------------------------


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str = "64k") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Fill a filesystem to the last byte."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while os.write(descriptor, b"\0" * 4096):
                pass
    finally:
        os.close(descriptor)
    return filler


def a_call_still_works(phone: PhoneUnderTest, far) -> None:
    ask(phone, "dial", "1002")
    far.wait_event(CALL_ESTABLISHED)
    phone.wait_state(PhoneState.CONNECTED)
    ask(phone, "hangup")
    far.wait_event(CALL_CLOSED)


def test_a_full_state_disk_is_reported_and_calls_go_on(
    phone_factory, baresip_factory, tmp_path: Path
) -> None:
    far = baresip_factory("1002")
    with tiny_filesystem(tmp_path / "phone-1001" / "state") as state:
        filler = fill(state)
        phone = phone_factory()
        phone.wait_registered()
        ask(phone, "volume", "ringer", "2")
        problem = f"call log and settings not saved: {state} is full"
        wait_until(lambda: problem in ask(phone, "status")["problems"], 10, "the report")
        assert ask(phone, "status")["state_saved"] is False
        phone.wait_screen("not saved")
        a_call_still_works(phone, far)
        filler.unlink()  # space again: the next save goes through and the report goes away
        ask(phone, "volume", "ringer", "4")
        wait_until(lambda: not ask(phone, "status")["problems"], 10, "the report to clear")
        saved = json.loads((state / "settings.json").read_text())
        assert saved["settings"]["ringer_volume"] == 4
        history = json.loads((state / "history.json").read_text())
        assert history["calls"][0]["number"] == "1002"  # the call logged while full, kept
        phone.stop()


def test_a_read_only_state_directory_is_reported_and_calls_go_on(
    phone_factory, baresip_factory, tmp_path: Path
) -> None:
    far = baresip_factory("1002")
    with tiny_filesystem(tmp_path / "phone-1001" / "state") as state:
        subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
        phone = phone_factory()
        phone.wait_registered()
        a_call_still_works(phone, far)
        problem = f"call log and settings not saved: {state} is read-only"
        wait_until(lambda: problem in ask(phone, "status")["problems"], 10, "the report")
        assert len(phone.view().history) == 1  # the phone still knows the call it made
        phone.stop()
