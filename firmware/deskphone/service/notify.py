"""systemd's notify protocol: READY=1 once the phone is up, STATUS= lines that say what it is
doing, WATCHDOG=1 pings from the event loop itself, STOPPING=1 on the way out.

The pings come from one timer on the loop, every half `WatchdogSec`: if the loop is stuck (a
blocking call, a deadlock), the pings stop and systemd restarts the phone. A health check runs
with each ping, so a dead SIP event thread stops them too. Without NOTIFY_SOCKET (not started by
systemd) every method does nothing.

The protocol is one datagram of KEY=value lines to the unix socket NOTIFY_SOCKET names (a path,
or "@name" in the abstract namespace). It is sent here with a plain socket rather than through
systemd-python's `daemon.notify`, which would load libsystemd for it: 0.75 MB of the daemon's
50 MB budget for what is one `sendto`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

STATUS_MAX = 200  # systemctl shows one line; keep it readable


def notify_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The address NOTIFY_SOCKET names, abstract ("@name") turned into its socket form."""
    env = os.environ if environ is None else environ
    name = env.get("NOTIFY_SOCKET", "")
    if not name.startswith(("/", "@")):
        return None
    return "\0" + name[1:] if name.startswith("@") else name


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process (seconds), or None without one."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were forked off a supervised one)
    return int(usec) / 1e6


class Notifier:
    """Tells systemd how the daemon is doing; a no-op when not under systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._address = notify_address(environ)
        self.enabled = self._address is not None
        self.watchdog_timeout = watchdog_interval(environ) if self.enabled else None
        self._socket: socket.socket | None = None
        self._dropping = False  # the socket was full last time
        self._status = ""
        self._timer: asyncio.TimerHandle | None = None
        self._healthy: Callable[[], str] = lambda: ""
        self._unhealthy_reported = False
        self.pings = 0

    def ready(self, status: str) -> None:
        """The phone is up: systemd may start what waits for it."""
        self._status = _clip(status)
        if self.enabled:
            self._send(f"READY=1\nSTATUS={self._status}")

    def status(self, text: str) -> None:
        """Say what the phone is doing; only a changed line is sent."""
        text = _clip(text)
        if text == self._status:
            return
        self._status = text
        if self.enabled:
            self._send(f"STATUS={text}")

    def reloading(self) -> None:
        if self.enabled:
            self._send("RELOADING=1")

    def reloaded(self) -> None:
        if self.enabled:
            self._send(f"READY=1\nSTATUS={self._status}")

    def stopping(self, status: str = "stopping") -> None:
        self.stop_watchdog()
        self._status = _clip(status)
        if self.enabled:
            self._send(f"STOPPING=1\nSTATUS={self._status}")

    def _send(self, state: str) -> bool:
        """One datagram to NOTIFY_SOCKET; False if it could not go (never raises)."""
        if self._address is None:
            return False
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                self._socket = socket.socket(socket.AF_UNIX, kind)
            self._socket.sendto(state.encode(), self._address)
        except BlockingIOError:
            # Nobody reads the socket (a stuck manager, a test that binds and never reads): the
            # loop must not wait for it. The message is lost; the next one may go through.
            if not self._dropping:
                log.warning("systemd notify: the socket is full, messages are dropped")
            self._dropping = True
            return False
        except OSError as err:
            log.warning("systemd notify %s failed: %s", state.partition("=")[0], err)
            return False
        self._dropping = False
        return True

    def close(self) -> None:
        self.stop_watchdog()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    # -- watchdog ------------------------------------------------------------------------------

    def start_watchdog(
        self, loop: asyncio.AbstractEventLoop, healthy: Callable[[], str] | None = None
    ) -> None:
        """Ping every half timeout from `loop`; `healthy()` returns why not, or "" when well."""
        if self.watchdog_timeout is None:
            return
        if healthy is not None:
            self._healthy = healthy
        log.info("systemd watchdog: %.1f s, pinging every %.1f s", *self._periods())
        self._ping(loop)

    def stop_watchdog(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _periods(self) -> tuple[float, float]:
        assert self.watchdog_timeout is not None
        return self.watchdog_timeout, self.watchdog_timeout / 2

    def _ping(self, loop: asyncio.AbstractEventLoop) -> None:
        problem = self._healthy()
        if problem:
            if not self._unhealthy_reported:
                log.error("not pinging the systemd watchdog: %s", problem)
                self._unhealthy_reported = True
        else:
            self._unhealthy_reported = False
            if self._send("WATCHDOG=1"):
                self.pings += 1
        self._timer = loop.call_later(self._periods()[1], self._ping, loop)


def _clip(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= STATUS_MAX else line[: STATUS_MAX - 1] + "…"
