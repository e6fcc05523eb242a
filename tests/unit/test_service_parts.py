"""The service layer's small parts on their own: the notify protocol against a socket the test
binds, the watchdog's health check, journal fields, and what a reload changes."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from pathlib import Path

import pytest

from deskphone.config import parse_config
from deskphone.service.logs import fields, journal_fields, stderr_is_journal
from deskphone.service.notify import Notifier, watchdog_interval
from deskphone.service.reload import plan

# -- notify ----------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A socket bound by the test and named by NOTIFY_SOCKET, as systemd does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_ready_and_status_lines_reach_the_socket_and_repeats_are_not_sent(
    notify_socket: socket.socket,
) -> None:
    notifier = Notifier()
    notifier.ready("1001 registered; idle")
    notifier.status("1001 registered; idle")  # unchanged: not sent again
    notifier.status("1001 registered;\n in call with 1002")
    notifier.stopping()
    assert received(notify_socket) == [
        "READY=1\nSTATUS=1001 registered; idle",
        "STATUS=1001 registered; in call with 1002",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_without_notify_socket_nothing_is_sent(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET")
    notifier = Notifier()
    notifier.ready("up")
    assert not notifier.enabled and received(notify_socket) == []


def test_an_abstract_notify_socket_is_reached_too(tmp_path: Path) -> None:
    name = f"deskphone-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.ready("up")
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
        notifier.close()
    finally:
        sock.close()


def test_a_socket_nobody_reads_never_blocks_the_loop(notify_socket: socket.socket) -> None:
    notifier = Notifier()
    started = time.monotonic()
    sent = [notifier._send(f"STATUS={n}") for n in range(1000)]
    assert time.monotonic() - started < 1.0
    assert sent[0] and not all(sent)  # the queue filled up; the rest were dropped, not waited on
    notifier.close()


def test_the_watchdog_interval_comes_from_systemd() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 20.0
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None


def test_an_unhealthy_phone_stops_pinging_and_says_why_once(
    notify_socket: socket.socket, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "40000")
    problem = ["the SIP event thread has stopped"]

    async def scenario() -> list[str]:
        notifier = Notifier()
        notifier.start_watchdog(asyncio.get_running_loop(), lambda: problem[0])
        await asyncio.sleep(0.1)  # five pings' worth
        sick = received(notify_socket)
        problem[0] = ""
        await asyncio.sleep(0.05)
        notifier.stop_watchdog()
        assert sick == []
        return received(notify_socket)

    with caplog.at_level(logging.ERROR):
        well = asyncio.run(scenario())
    assert well and set(well) == {"WATCHDOG=1"}
    assert [r.message for r in caplog.records] == [
        "not pinging the systemd watchdog: the SIP event thread has stopped"
    ]


# -- journal fields --------------------------------------------------------------------------


def test_only_the_fields_given_become_journal_fields() -> None:
    record = logging.LogRecord("deskphone", logging.INFO, "x.py", 1, "call %s", ("1002",), None)
    for name, value in fields("call_ended", call_number="1002", sip_code=486, name="").items():
        setattr(record, name, value)
    assert journal_fields(record) == {
        "DESKPHONE_EVENT": "call_ended",
        "CALL_NUMBER": "1002",
        "SIP_CODE": "486",
    }


def test_stderr_is_the_journal_only_when_journal_stream_names_it() -> None:
    info = os.fstat(sys.stderr.fileno())
    assert stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    assert not stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
    assert not stderr_is_journal({})


# -- what a reload changes -------------------------------------------------------------------

BASE = """
[phone]
sip_port = 5060

[[account]]
registrar = "sip:pbx.example.org"
user = "1001"
password = "x"
"""


def test_a_reload_applies_what_it_can_and_names_what_takes_a_restart() -> None:
    running = parse_config(BASE)
    new = parse_config(
        BASE.replace("sip_port = 5060", 'sip_port = 5070\ncountry = "DE"')
        + "\n[dialplan]\ninter_digit_timeout = 6\n[display]\nrotate = 2\n"
    )
    result = plan(running, new)
    assert result.changed == ["phone.country", "dialplan.inter_digit_timeout"]
    assert result.restart_needed == ["phone.sip_port", "display"]
    assert result.config.phone.country == "DE" and result.config.phone.sip_port == 5060
    assert result.config.display == running.display
    assert not result.accounts_changed
    assert "takes a restart: phone.sip_port, display" in result.describe()


def test_changed_accounts_are_one_change() -> None:
    running = parse_config(BASE)
    result = plan(running, parse_config(BASE.replace('user = "1001"', 'user = "1003"')))
    assert result.changed == ["account"] and result.accounts_changed
    assert result.config.accounts[0].user == "1003"
    assert plan(running, parse_config(BASE)).describe() == "config reloaded: nothing changed"
