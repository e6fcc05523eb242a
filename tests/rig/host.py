"""A witness of the machine itself: did it stop running programs for a while?

The audio tests score seconds of speech through a sound server, and PESQ is ruled by the
worst moment (a 10 ms gap in a syllable costs up to 2 MOS). The machines the tests run on are
shared virtual machines, and now and then one of their processors stands still for tens or
hundreds of ms while the host runs something else: every thread on it stops, the phone's
clock thread or the sound server's among them, and no phone plays through that. One such
stop let the phone's jitter buffer fill to its 500 ms limit while its network thread, on the
other processor, saw nothing amiss.

The witness is one small process per processor, pinned there at a real-time priority above
everything the phone and the rig run (the phone's audio threads ask for 10, the rig's sound
server 5), sleeping a few ms at a time. Only something beneath the tests (the hypervisor, the
kernel, the kernel's cap on real-time work) can keep it from waking on time: if it wakes more
than `threshold_ms` late, that processor stalled. Without leave to run at real-time priority
(not root, no RLIMIT_RTPRIO) it would wait behind the phone's own threads and could blame the
machine for the phone's faults, so it does not run at all and reports no stall.

`retried_over_stalls` runs a scenario again when it failed while the witness saw a stall
(and warns, so that the run's summary names it); a failure without one is the phone's, and is
raised at once.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # where `python -m tests.rig.host` is found
WITNESS_PRIORITY = 90  # SCHED_FIFO, above the phone's audio threads (10) and the rig's (5)
WAKE_SECONDS = 0.005
STALL_MS = 40.0  # longer than any buffer on the sound path absorbs (the earpiece's ~17 ms)


@dataclass(frozen=True)
class Stall:
    cpu: int
    began: float  # time.monotonic(): CLOCK_MONOTONIC is one clock for every process
    ms: float

    def __str__(self) -> str:
        return f"processor {self.cpu} stood still {self.ms:.0f} ms"


class StalledAttempt(UserWarning):
    """An attempt failed while the machine stalled, and was made again."""


class HostWatch:
    """The witness's processes and what they saw. `start()` first; `stop()` when done."""

    def __init__(self, threshold_ms: float = STALL_MS) -> None:
        self.threshold_ms = threshold_ms
        self._procs: list[subprocess.Popen[str]] = []
        self._stalls: list[Stall] = []
        self._lock = threading.Lock()
        self.refused = ""  # why the witness could not run, if it could not

    def start(self) -> HostWatch:
        for cpu in sorted(os.sched_getaffinity(0)):
            proc = subprocess.Popen(
                [sys.executable, "-m", __name__, str(cpu), str(self.threshold_ms)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=REPO,
            )
            self._procs.append(proc)
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            if first != "ready":
                self.refused = first or f"the witness for processor {cpu} exited"
                self.stop()
                return self
            threading.Thread(target=self._read, args=(proc,), daemon=True).start()
        return self

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match line.split():
                case ["stall", cpu, began, ms]:
                    with self._lock:
                        self._stalls.append(Stall(int(cpu), float(began), float(ms)))

    def stalls(self, since: float, until: float | None = None) -> list[Stall]:
        """Stalls that overlapped [since, until] (monotonic seconds; until: now).

        A stall is reported when it ends, so one still going on is not seen yet; the
        caller asks after its scenario, when the stall that spoiled it is over."""
        end = time.monotonic() if until is None else until
        with self._lock:
            return [s for s in self._stalls if s.began <= end and s.began + s.ms / 1000 >= since]

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()


def retried_over_stalls(
    watch: HostWatch, scenario: Callable[[int], None], tries: int = 3
) -> list[str]:
    """Run `scenario(attempt)` (1, 2, ...) until it passes, and say which attempts failed
    while the machine stalled. A failure with no stall in its attempt is raised at once, as
    is the last attempt's: a stall excuses an attempt, never the test."""
    excused: list[str] = []
    for attempt in range(1, tries + 1):
        began = time.monotonic()
        try:
            scenario(attempt)
            return excused
        except AssertionError as failure:
            stalls = watch.stalls(began)
            if stalls and attempt < tries:
                excused.append(f"attempt {attempt} failed while {_listed(stalls)}: {failure}")
                # A pass after a stall still shows in the run's summary of warnings.
                warnings.warn(StalledAttempt(excused[-1]), stacklevel=2)
                continue
            for note in excused:
                failure.add_note(f"before this, {note}")
            if stalls:
                failure.add_note(f"in this attempt too: {_listed(stalls)}")
            elif watch.refused:
                failure.add_note(f"(no witness of the machine's stalls: {watch.refused})")
            raise
    raise AssertionError("no attempt was made")  # only with tries < 1


def _listed(stalls: list[Stall]) -> str:
    return ", ".join(str(stall) for stall in stalls)


def _witness(cpu: int, threshold_ms: float) -> None:
    """One processor's witness: report every wake-up later than `threshold_ms`."""
    try:
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(WITNESS_PRIORITY))
    except (OSError, AttributeError) as err:
        print(f"refused real-time priority on processor {cpu}: {err}", flush=True)
        return
    print("ready", flush=True)
    last = time.monotonic()
    while True:
        time.sleep(WAKE_SECONDS)
        now = time.monotonic()
        late_ms = (now - last - WAKE_SECONDS) * 1000
        if late_ms > threshold_ms:
            print(f"stall {cpu} {last + WAKE_SECONDS:.6f} {late_ms:.1f}", flush=True)
        last = now


if __name__ == "__main__":
    _witness(int(sys.argv[1]), float(sys.argv[2]))
