"""The phone as a systemd service: the unit files checked by systemd's own tools, the notify
protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING) received on a socket the test binds,
a stalled loop that stops the watchdog pings, structured journal fields, and config reloads."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deskphone.config import load_config
from deskphone.core.phone import PhoneState
from deskphone.service.control import ControlError, request
from tests.harness import PhoneUnderTest, phone_config_text, stop_daemon
from tests.rig import wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
INSTALLED_BINARY = "/opt/deskphone/venv/bin/deskphone"  # where the SD-card image puts it


def needs_root_and_namespaces() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a private mount namespace")


class DatagramSink:
    """A unix datagram socket the test binds (NOTIFY_SOCKET, or journald's); keeps every
    message received, read by a thread of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.1)
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(256 * 1024)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data))

    def texts(self) -> list[str]:
        with self._lock:
            return [data.decode(errors="replace") for _, data in self.messages]

    def wait_for(self, predicate: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        return wait_until(
            lambda: next((text for text in self.texts() if predicate(text)), None), timeout, what
        )

    def times_of(self, line: str) -> list[float]:
        with self._lock:
            return [at for at, data in self.messages if line.encode() in data.split(b"\n")]

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self._sock.close()


# -- the unit files --------------------------------------------------------------------------


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Verified as installed: ExecStart's binary must exist, so in a private mount namespace
    /opt/deskphone/venv/bin/deskphone is this checkout's `deskphone` (nothing else changes)."""
    needs_root_and_namespaces()
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: bootstrap.sh installs systemd for the tests")
    ours = Path(sys.executable).parent / "deskphone"
    script = (
        "set -e; mount -t tmpfs tmpfs /opt; mkdir -p /opt/deskphone/venv/bin; "
        f'ln -s "{ours}" {INSTALLED_BINARY}; '
        f'systemd-analyze verify "{UNITS / "deskphone.service"}"; '
        f'systemd-analyze security --offline=true --threshold=30 "{UNITS / "deskphone.service"}"'
    )
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deskphone.service:" not in done.stderr, done.stderr  # no warnings either
    exposure = re.search(r"exposure level for deskphone.service: ([0-9.]+)", done.stdout)
    assert exposure and float(exposure[1]) <= 3.0, done.stdout[-500:]


def test_the_unit_is_what_the_issue_asks_for() -> None:
    unit = (UNITS / "deskphone.service").read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if re.match(r"^[A-Z]\w*=", line)
    )
    assert settings["Type"] == "notify" and settings["Restart"] == "on-failure"
    assert settings["ExecStart"] == f"{INSTALLED_BINARY} run --config /etc/deskphone/deskphone.toml"
    assert settings["ExecReload"] == f"{INSTALLED_BINARY} reload"
    assert int(settings["WatchdogSec"].rstrip("s")) > 0
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp"):
        assert settings[hardening] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["User"] == settings["Group"] == "deskphone"
    assert settings["SupplementaryGroups"].split() == ["audio", "gpio", "i2c", "spi"]
    for directory in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert settings[directory] == "deskphone"


def test_sysusers_makes_the_user_and_its_device_groups(tmp_path: Path) -> None:
    if shutil.which("systemd-sysusers") is None:
        pytest.fail("systemd-sysusers is missing: bootstrap.sh installs systemd for the tests")
    (tmp_path / "etc").mkdir()
    done = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "deskphone.sysusers")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    passwd = (tmp_path / "etc" / "passwd").read_text()
    assert re.search(r"^deskphone:x:\d+:\d+:.*:/var/lib/deskphone:/usr/sbin/nologin$", passwd, re.M)
    groups = {
        line.split(":")[0]: line.split(":")[3].split(",")
        for line in (tmp_path / "etc" / "group").read_text().splitlines()
    }
    for group in ("audio", "gpio", "i2c", "spi"):
        assert "deskphone" in groups[group], groups


def test_the_udev_rule_names_the_handset_card() -> None:
    rule = (UNITS / "90-deskphone.rules").read_text()
    handset = next(line for line in rule.splitlines() if 'ATTR{id}="handset"' in line)
    assert 'SUBSYSTEM=="sound"' in handset and 'SUBSYSTEMS=="usb"' in handset
    assert 'KERNEL=="card*"' in handset and 'ACTION=="add"' in handset


# -- notify ----------------------------------------------------------------------------------


def start_daemon(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def write_config(kamailio: Any, tmp_path: Path, **options: Any) -> Path:
    path = tmp_path / "deskphone.toml"
    text = phone_config_text(
        kamailio.port, "1001", kamailio.users["1001"], workdir=tmp_path, **options
    )
    path.write_text(text.replace('log_level = "debug"', 'log_level = "info"'))
    return path


def test_daemon_tells_systemd_ready_status_watchdog_reload_and_stopping(
    kamailio, baresip_factory, tmp_path: Path
) -> None:
    far = baresip_factory("1002")
    notify = DatagramSink(tmp_path / "notify.sock")
    config = write_config(kamailio, tmp_path)
    proc = start_daemon(config, {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"})
    try:
        ready = notify.wait_for(lambda t: "READY=1" in t, "READY=1")
        assert "STATUS=" in ready
        notify.wait_for(lambda t: "STATUS=1001 registered; idle" in t, "registered status")
        request(tmp_path / "control.sock", "dial", ["1002"])
        far.wait_event(CALL_ESTABLISHED)
        notify.wait_for(lambda t: "STATUS=1001 registered; in call with 1002" in t, "call status")
        request(tmp_path / "control.sock", "hangup")
        far.wait_event(CALL_CLOSED)
        # WatchdogSec=1 s: a ping every half second, from the loop.
        wait_until(lambda: len(notify.times_of("WATCHDOG=1")) >= 4, 5, "four pings")
        pings = notify.times_of("WATCHDOG=1")
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < 0.9, gaps
        proc.send_signal(signal.SIGHUP)  # reload, config unchanged
        notify.wait_for(lambda t: t.startswith("RELOADING=1"), "RELOADING=1")
        reloaded_at = notify.times_of("RELOADING=1")[0]
        wait_until(
            lambda: any(at > reloaded_at for at in notify.times_of("READY=1")), 5, "READY again"
        )
    finally:
        _, stderr = stop_daemon(proc)
        notify.close()
    assert proc.returncode == 0, stderr[-3000:]
    assert any(t.startswith("STOPPING=1") for t in notify.texts())
    assert "config reloaded: nothing changed" in stderr


def test_a_stalled_loop_stops_the_watchdog_pings(phone_factory, tmp_path, monkeypatch) -> None:
    notify = DatagramSink(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(notify.path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        phone = phone_factory()
        wait_until(lambda: len(notify.times_of("WATCHDOG=1")) >= 3, 5, "pings")
        stalled_from = time.monotonic()
        phone.on_loop(time.sleep, 1.0, timeout=5)  # something blocks the event loop for 1 s
        stalled_to = time.monotonic()
        wait_until(
            lambda: any(at > stalled_to for at in notify.times_of("WATCHDOG=1")), 2, "pings again"
        )
        pings = notify.times_of("WATCHDOG=1")
        during = [at for at in pings if stalled_from + 0.05 < at < stalled_to - 0.05]
        assert during == [], "the watchdog was pinged while the loop was stuck"
        before = [at for at in pings if at < stalled_from]
        gaps = [b - a for a, b in itertools.pairwise(before)]
        assert gaps and max(gaps) < 0.3, gaps  # the loop pinged steadily while it ran
    finally:
        notify.close()


# -- the journal -----------------------------------------------------------------------------


def journal_fields(datagram: bytes) -> dict[str, str]:
    """One message of journald's native protocol: KEY=value lines, or KEY, a 64-bit
    little-endian length and the raw value for values holding newlines."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        line, newline, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode(errors="replace")
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8 : 8 + size].decode(errors="replace")
            rest = after[8 + size + 1 :]
        if not newline:
            break
    return fields


def test_journal_gets_structured_fields_when_stderr_is_the_journal(
    kamailio, tmp_path: Path
) -> None:
    """In a private mount namespace journald's socket is one the test binds, and
    JOURNAL_STREAM names the daemon's stderr, as systemd does for a service."""
    needs_root_and_namespaces()
    journal = DatagramSink(tmp_path / "journal.sock")
    config = write_config(kamailio, tmp_path)
    script = (
        "set -e; mount -t tmpfs tmpfs /run/systemd; mkdir -p /run/systemd/journal; "
        f"touch /run/systemd/journal/socket; mount --bind {journal.path} "
        "/run/systemd/journal/socket; "
        "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); "
        'exec "$0" -m deskphone run --config "$1"'
    )

    def record(event: str) -> dict[str, str] | None:
        """The first journal record of a DESKPHONE_EVENT."""
        for _, data in list(journal.messages):
            fields = journal_fields(data)
            if fields.get("DESKPHONE_EVENT") == event:
                return fields
        return None

    proc = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", script, sys.executable, str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: record("ready"), 10, "the ready record")
        kamailio.wait_for_bindings("1001", 1, 10)
        request(tmp_path / "control.sock", "dial", ["5999"])  # nobody: Kamailio says 404
        ended = wait_until(lambda: record("call_ended"), 10, "the call_ended record")
        control = record("control_command")
    finally:
        _, stderr = stop_daemon(proc)
        journal.close()
    assert ended["CALL_NUMBER"] == "5999" and ended["SIP_CODE"] == "404"
    assert ended["END_REASON"] == "not_found" and ended["CALL_DIRECTION"] == "out"
    assert ended["PRIORITY"] == "6" and ended["SYSLOG_IDENTIFIER"] == "deskphone"
    assert ended["MESSAGE"] == "call out 5999: not found, 0 s"
    assert control is not None
    assert control["COMMAND"] == "dial" and control["PEER_UID"] == str(os.getuid())
    assert "SIP stack up" not in stderr  # records went to the journal, not to the stream


# -- reload ----------------------------------------------------------------------------------


def file_phone(kamailio: Any, tmp_path: Path, tone_wav: Any, **options: Any) -> PhoneUnderTest:
    """A phone started from a config file (so it has one to reload)."""
    path = tmp_path / "deskphone.toml"
    microphone = tone_wav(1000.0, seconds=5.0)
    path.write_text(
        phone_config_text(
            kamailio.port,
            options.pop("user", "1001"),
            options.pop("password", kamailio.users["1001"]),
            workdir=tmp_path,
            microphone=microphone,
            **options,
        )
    )
    return PhoneUnderTest(load_config(path))


def test_an_invalid_config_is_refused_and_the_running_one_stays(
    kamailio, tmp_path: Path, tone_wav
) -> None:
    phone = file_phone(kamailio, tmp_path, tone_wav).start()
    try:
        phone.wait_registered()
        config = tmp_path / "deskphone.toml"
        config.write_text(config.read_text() + '\n[power]\nsource = "x728"\nlow_percent = 300\n')
        with pytest.raises(ControlError) as refused:
            request(tmp_path / "control.sock", "reload")
        assert refused.value.kind == "config"
        message = str(refused.value)
        assert "power.low_percent: must be 1 to 100, not 300" in message
        assert "GPIO6" not in message or "power.power_loss_pin" in message
        status = request(tmp_path / "control.sock", "status")
        assert status["power"]["source"] == "none"  # nothing of it applied
        assert status["problems"][0].startswith("config not reloaded: line ")
        phone.wait_screen("config not reloaded")
        assert phone.view().registrations[0].state.value == "registered"
    finally:
        phone.stop()


def test_a_valid_reload_keeps_the_call_and_switches_accounts_after_it(
    kamailio, baresip_factory, tmp_path: Path, tone_wav
) -> None:
    far = baresip_factory("1002")
    phone = file_phone(kamailio, tmp_path, tone_wav).start()
    try:
        phone.wait_registered()
        request(tmp_path / "control.sock", "dial", ["1002"])
        far.wait_event(CALL_ESTABLISHED)
        phone.wait_state(PhoneState.CONNECTED)
        config = tmp_path / "deskphone.toml"
        text = config.read_text()
        text = text.replace('user = "1001"', 'user = "1003"').replace(
            kamailio.users["1001"], kamailio.users["1003"]
        )
        text = text.replace("sip_port = 0", 'sip_port = 0\nname = "front desk"')
        config.write_text(text + '\n[dialplan]\ndigit_map = "1xxx"\n')
        result = request(tmp_path / "control.sock", "reload")
        assert "account" in result["changed"] and "dialplan.digit_map" in result["changed"]
        assert "phone.name" in result["changed"]
        assert result["deferred"] == ["account"]
        time.sleep(1.0)
        assert not far.events(CALL_CLOSED), "the reload dropped the call"
        assert phone.view().state is PhoneState.CONNECTED
        assert kamailio.bindings("1001") and not kamailio.bindings("1003")
        request(tmp_path / "control.sock", "hangup")
        far.wait_event(CALL_CLOSED)
        kamailio.wait_for_bindings("1003", 1, 10)  # the new account, once the call ended
        kamailio.wait_for_bindings("1001", 0, 10)  # the old one un-REGISTERed
        phone.wait_registered()
        assert phone.view().registrations[0].label == "1003"
    finally:
        phone.stop()


def test_keys_wired_into_the_process_wait_for_a_restart(kamailio, tmp_path, tone_wav) -> None:
    phone = file_phone(kamailio, tmp_path, tone_wav).start()
    try:
        phone.wait_registered()
        port = phone.app.stack.sip_port if phone.app.stack else 0
        config = tmp_path / "deskphone.toml"
        config.write_text(config.read_text().replace("sip_port = 0", "sip_port = 5098"))
        result = request(tmp_path / "control.sock", "reload")
        assert result["restart_needed"] == ["phone.sip_port"] and result["changed"] == []
        assert "takes a restart: phone.sip_port" in result["summary"]
        assert phone.app.config.phone.sip_port == 0 and phone.app.stack.sip_port == port
    finally:
        phone.stop()
