"""The daemon as systemd runs it (`deskphone run` with NOTIFY_SOCKET and WATCHDOG_USEC as the
unit sets them, the control socket open, a simulated UPS read on its timer), registered with
Kamailio: what the service layer costs an idle phone, and how fast its paths are.

    python -m bench.service [--runs N] [--quick]      (or with the others: python -m bench)

Figures: spawn -> READY=1; idle CPU and resident memory with the watchdog pinging; watchdog
pings per minute; control-socket round trip (`status`); a setting changed over the socket
until it is on disk; a reload of an unchanged config. Results go to bench/results/service.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import Figure, cpu_seconds, figure, markdown_table, memory_mb, write_results
from deskphone.service.control import request
from tests.harness import phone_config_text
from tests.rig.kamailio import Kamailio

WATCHDOG_USEC = 20_000_000  # WatchdogSec=20s, as systemd/deskphone.service
WINDOW = 60.0
SETTLE = 3.0


class Notify:
    """NOTIFY_SOCKET, bound here as systemd would; counts what arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while self._running:
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode(errors="replace")))

    def first(self, line: str, after: float, timeout: float = 15.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, text in list(self.received):
                if at >= after and line in text.split("\n"):
                    return at
            time.sleep(0.002)
        raise TimeoutError(f"no {line} from the daemon")

    def count(self, line: str, start: float, end: float) -> int:
        return sum(1 for at, text in self.received if start <= at < end and line in text)

    def close(self) -> None:
        self._running = False
        self._thread.join(1)
        self._sock.close()


def start(config: Path, notify: Notify) -> tuple[subprocess.Popen[bytes], float]:
    """The daemon, and how long from spawn to READY=1."""
    spawned = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "NOTIFY_SOCKET": str(notify.path),
            "WATCHDOG_USEC": str(WATCHDOG_USEC),
        },
    )
    return proc, notify.first("READY=1", spawned) - spawned


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(runs: int, workdir: Path, quick: bool) -> list[Figure]:
    """The figures (the `python -m bench` entry point)."""
    window = 10.0 if quick else WINDOW
    workdir.mkdir(parents=True, exist_ok=True)
    kamailio = Kamailio(workdir / "kamailio")
    kamailio.start()
    notify = Notify(workdir / "notify.sock")
    config = workdir / "deskphone.toml"
    text = phone_config_text(kamailio.port, "1001", kamailio.users["1001"], workdir=workdir)
    quiet = text.replace('log_level = "debug"', 'log_level = "warning"')
    config.write_text(quiet + '\n[power]\nsource = "sim"\n')
    sock, state = workdir / "control.sock", workdir / "state" / "settings.json"
    ready, cpu, rss, pings, round_trip, saved, reload = [], [], [], [], [], [], []
    try:
        for index in range(runs):
            proc, took = start(config, notify)
            ready.append(took * 1000)
            try:
                kamailio.wait_for_bindings("1001", 1, 10)
                time.sleep(SETTLE)
                began, before = time.monotonic(), cpu_seconds(proc.pid)
                time.sleep(window)
                ended = time.monotonic()
                cpu.append((cpu_seconds(proc.pid) - before) * 60.0 / (ended - began))
                rss.append(memory_mb(proc.pid)[0])
                pings.append(notify.count("WATCHDOG=1", began, ended) * 60.0 / (ended - began))
                for _ in range(50):
                    asked = time.perf_counter()
                    request(sock, "status")
                    round_trip.append((time.perf_counter() - asked) * 1000)
                for level in range(3):
                    want = index * 3 + level
                    asked = time.perf_counter()
                    request(sock, "volume", ["ringer", str(want)])
                    while (
                        not state.exists()
                        or json.loads(state.read_text())["settings"]["ringer_volume"] != want
                    ):
                        time.sleep(0.0005)
                    saved.append((time.perf_counter() - asked) * 1000)
                asked = time.perf_counter()
                request(sock, "reload")
                reload.append((time.perf_counter() - asked) * 1000)
            finally:
                stop(proc)
    finally:
        notify.close()
        kamailio.stop()
    return [
        figure("service: spawn -> READY=1", "ms", ready),
        figure("service: idle CPU, watchdog and UPS timers on", "CPU-s/min", cpu, limit=0.06),
        figure("service: resident memory idle", "MB", rss, limit=50),
        figure("service: watchdog pings while idle", "per min", pings),
        figure("service: control socket round trip (status)", "ms", round_trip),
        figure("service: setting changed over the socket -> on disk", "ms", saved),
        figure("service: reload, config unchanged", "ms", reload),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10 s windows instead of 60 s")
    args = parser.parse_args()
    rows = run(args.runs, Path(tempfile.mkdtemp(prefix="bench-service-")), args.quick)
    path = write_results("service", {row.name: row.deskphone for row in rows})
    print(markdown_table(rows))
    print(f"\n{path}")


if __name__ == "__main__":
    main()
