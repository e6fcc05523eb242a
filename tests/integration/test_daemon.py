"""`deskphone run` as a process: start, register, SIGTERM, and what it writes to the journal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import phone_config_text, stop_daemon
from tests.rig.kamailio import Kamailio
from tests.rig.relay import DelayingRelay

pytestmark = pytest.mark.integration

SHUTDOWN_BUDGET = 3.0


@pytest.fixture
def start_daemon() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """`start_daemon(config, *args)` -> a running `deskphone run`; any still running when the
    test ends (it failed before stopping it) is killed, never left behind."""
    started: list[subprocess.Popen[str]] = []

    def start(config: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deskphone", "run", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def write_config(kamailio: Kamailio, tmp_path: Path, password: str | None = None) -> Path:
    path = tmp_path / "deskphone.toml"
    path.write_text(
        phone_config_text(
            kamailio.port, "1001", password or kamailio.users["1001"], workdir=tmp_path
        )
    )
    return path


def test_sigterm_unregisters_and_exits_cleanly_within_budget(
    kamailio, tmp_path, start_daemon
) -> None:
    proc = start_daemon(write_config(kamailio, tmp_path))
    kamailio.wait_for_bindings("1001", 1, 10)
    registers_before = kamailio.count("REGISTER", from_user="1001")
    took, stderr = stop_daemon(proc)
    assert proc.returncode == 0, stderr[-3000:]
    assert took < SHUTDOWN_BUDGET, f"shutdown took {took:.2f} s"
    assert kamailio.count("REGISTER", from_user="1001") > registers_before  # the un-REGISTER
    assert kamailio.bindings("1001") == [], "the registrar kept a stale binding"
    assert "SIP stack destroyed" in stderr
    assert "Assertion" not in stderr and "Traceback" not in stderr


def test_sigterm_with_the_registrar_gone_still_exits_within_budget(
    kamailio, tmp_path, start_daemon
) -> None:
    proc = start_daemon(write_config(kamailio, tmp_path))
    kamailio.wait_for_bindings("1001", 1, 10)
    kamailio.kill()  # the un-REGISTER will get no answer; the wait for it is bounded
    took, stderr = stop_daemon(proc)
    assert proc.returncode == 0, stderr[-3000:]
    assert took < SHUTDOWN_BUDGET, f"shutdown took {took:.2f} s"


def test_password_never_reaches_the_log_even_at_debug_level(
    kamailio, tmp_path, start_daemon
) -> None:
    password = kamailio.users["1001"]
    proc = start_daemon(write_config(kamailio, tmp_path), "--debug")
    kamailio.wait_for_bindings("1001", 1, 10)
    _, stderr = stop_daemon(proc)
    assert "REGISTER sip:" in stderr  # SIP messages are logged at debug level...
    assert password not in stderr  # ...but never the password


def test_broken_config_exits_non_zero_naming_the_problem(tmp_path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text('[phone]\nname = "desk"\nlog_levle = "info"\n\n[[account]]\nuser = "1001"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "line 3" in proc.stderr and "log_levle" in proc.stderr and "log_level" in proc.stderr
    assert "registrar" in proc.stderr  # the missing required key is reported too


def test_missing_config_file_exits_non_zero(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deskphone", "run", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and "nope.toml" in proc.stderr


def test_simulator_without_a_config_starts_and_says_how_to_add_an_account(tmp_path) -> None:
    env = {**os.environ, "HOME": str(tmp_path)}  # no ~/.config/deskphone either
    proc = subprocess.Popen(
        [sys.executable, "-m", "deskphone", "sim"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 15
    screen = ""
    assert proc.stdout is not None
    while "no account configured" not in screen and time.monotonic() < deadline:
        screen += proc.stdout.readline()
    _, stderr = stop_daemon(proc)
    assert "no account configured" in screen, screen + stderr
    assert "[[account]]" in stderr and ".config/deskphone/deskphone.toml" in stderr
    assert proc.returncode == 0


def test_sigterm_while_the_register_is_in_flight_leaves_no_binding(
    kamailio, tmp_path, start_daemon
) -> None:
    """On a slow link the registrar may already hold the binding when SIGTERM arrives and the
    phone has not yet heard so; it must wait for the answer and then remove the binding."""
    with DelayingRelay(kamailio.port, delay=0.3) as relay:
        config = tmp_path / "deskphone.toml"
        config.write_text(
            phone_config_text(
                kamailio.port,
                "1001",
                kamailio.users["1001"],
                workdir=tmp_path,
                account_extra=f'outbound_proxy = "sip:127.0.0.1:{relay.port}"',
            )
        )
        proc = start_daemon(config)
        # The second REGISTER carries the credentials: once Kamailio has it, the binding exists
        # and the 200 OK is still 0.3 s away from the phone.
        kamailio.wait_for_requests("REGISTER", from_user="1001", count=2, timeout=10)
        kamailio.wait_for_bindings("1001", 1, 0.25)  # saved, its 200 OK still on the way
        took, stderr = stop_daemon(proc)
    assert proc.returncode == 0, stderr[-3000:]
    assert took < SHUTDOWN_BUDGET, f"shutdown took {took:.2f} s"
    assert kamailio.bindings("1001") == [], "the registrar kept a stale binding"
