"""Real SIP peers on 127.0.0.1 for integration tests and benchmarks.

Kamailio plays the PBX, baresip the far end; both are started and stopped by the test that needs
them, on free ports, with their logs kept in the test's work dir. Nothing here imports pytest
except `fixtures`, so bench/ can drive the same peers.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

T = TypeVar("T")


class RigError(RuntimeError):
    """A peer could not be started, controlled or stopped; the message carries its log tail."""


def wait_until(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02
) -> T:
    """Poll `condition` until it returns something truthy (and return that), or raise RigError
    saying `what` did not happen. Tests wait on conditions, never on fixed sleeps."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RigError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Killable(Protocol):
    def kill(self) -> None: ...


# Peers still running, killed at interpreter exit if a test run dies without its teardown.
live_peers: set[Killable] = set()


def signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send `sig` to the process group a peer was started in (`start_new_session=True`), so
    that its children get it too; a group already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


class Pausable(Protocol):
    def pause(self) -> None: ...
    def resume(self) -> None: ...


# Work a test session runs in the background (an SD-card image build) while its tests run.
background_work: set[Pausable] = set()


@contextlib.contextmanager
def machine_to_ourselves() -> Iterator[None]:
    """Pause the session's background work for a while: what runs in real time (a sound
    server's clock, a terminal driven by keystrokes) misses its deadlines on a loaded 2-core
    machine even when the load has the lowest priority.

    What the work wrote and the kernel has not yet put on disk is written first: the kernel
    writes it back on its own time, and while 2 GB went to disk here, threads at real-time
    priority 50 on both processors woke 15-38 ms late, again and again, for 20 s (the stall
    witness, tests/rig/host.py)."""
    paused = list(background_work)
    for work in paused:
        work.pause()
    os.sync()
    try:
        yield
    finally:
        for work in paused:
            work.resume()


@atexit.register
def _kill_leftovers() -> None:
    for peer in list(live_peers):
        peer.kill()


def module_dir(candidates: Iterable[str], marker: str, program: str) -> str:
    """The first of `candidates` holding the module file `marker` of `program`."""
    dirs = list(candidates)
    for candidate in dirs:
        if Path(candidate, marker).exists():
            return candidate
    raise RigError(f"{program} modules not found in any of {dirs}; is {program} installed?")
