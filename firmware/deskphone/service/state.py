"""The state directory (/var/lib/deskphone): the call history and the settings a user changes on
the phone, kept across restarts and power cuts.

Two small JSON files, each replaced whole:

    settings.json   {"version": 1, "settings": {"ringer_volume": 6, "dnd": false, ...}}
    history.json    {"version": 1, "calls": [newest first, at most HISTORY_LENGTH]}

Every write is atomic: the new content goes to a temporary file in the same directory, is
fsynced, renamed over the old file, and the directory is fsynced, so whatever moment the power
goes (or the daemon is killed), the file holds the old content or the new, never a mix.

The event loop never touches the disk after start-up: saves hand a snapshot to one writer thread,
which keeps only the newest snapshot of each file (a burst of volume presses costs one write).
A write that fails (disk full, read-only, no permission) is reported through `report` (the
display and the journal say so) and retried with a capped backoff; calls go on regardless.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deskphone.core.history import HistoryEntry
from deskphone.core.phone import HISTORY_LENGTH
from deskphone.core.settings import Settings
from deskphone.service.logs import fields

log = logging.getLogger(__name__)

VERSION = 1
SETTINGS_FILE = "settings.json"
HISTORY_FILE = "history.json"
RETRY_FIRST = 5.0  # seconds before a failed write is tried again
RETRY_MAX = 300.0


@dataclass
class SavedState:
    """What `load()` found: the user's settings, the call log (newest first), and what could
    not be read back, each a sentence for the journal and the display."""

    settings: Settings = field(default_factory=Settings)
    history: list[HistoryEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_problem(directory: Path, err: OSError) -> str:
    """What a failed write means for the user, in words."""
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        why = f"{directory} is full"
    elif err.errno == errno.EROFS:
        why = f"{directory} is read-only"
    elif err.errno in (errno.EACCES, errno.EPERM):
        why = f"no permission to write {directory}"
    elif err.errno in (errno.ENOTDIR, errno.EEXIST):
        why = f"{directory} is not a directory"
    else:
        why = f"{directory}: {err.strerror or err}"
    return f"call log and settings not saved: {why}"


class StateStore:
    """Reads the state once at start; afterwards saves it from a writer thread."""

    def __init__(self, directory: Path, report: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self._report = report or (lambda message: None)
        self._history: deque[HistoryEntry] = deque(maxlen=HISTORY_LENGTH)
        self._pending: dict[str, bytes] = {}
        self._writing = 0  # files taken by the writer, not yet on disk
        self._attempts = 0  # batches the writer has tried
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._failing = ""  # the current write problem, "" while writes succeed
        self.writes = 0  # files written (benchmarks and tests)

    # -- start-up (the only reads, before the loop serves anything) ------------------------

    def load(self) -> SavedState:
        """The saved settings and call log; damaged files are set aside and named."""
        state = SavedState()
        data = self._read(SETTINGS_FILE, state.problems)
        if data is not None:
            settings, dropped = Settings.from_dict(_table(data.get("settings")))
            state.settings = settings
            if dropped:
                log.warning("%s: ignored settings %s", SETTINGS_FILE, ", ".join(sorted(dropped)))
        data = self._read(HISTORY_FILE, state.problems)
        if data is not None:
            calls = data.get("calls")
            for item in calls if isinstance(calls, list) else []:
                try:
                    state.history.append(HistoryEntry.from_dict(_table(item)))
                except ValueError as err:
                    log.warning("%s: skipped an entry: %s", HISTORY_FILE, err)
            del state.history[HISTORY_LENGTH:]
        self._history.extend(state.history)
        if state.problems:
            self._failing = state.problems[0]  # shown until a fresh state is saved
        return state

    def _read(self, name: str, problems: list[str]) -> dict[str, Any] | None:
        path = self.directory / name
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            problems.append(f"cannot read {path}: {err.strerror or err}")
            return None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            problems.append(self._set_aside(path, str(err)))
            return None
        return data

    def _set_aside(self, path: Path, why: str) -> str:
        """Keep a damaged file for a person to look at, out of the way of the next save."""
        aside = path.with_name(f"{path.name}.bad")
        try:
            os.replace(path, aside)
        except OSError:
            return f"{path} is damaged ({why}); starting from defaults"
        return f"{path} was damaged ({why}); kept as {aside.name}, starting from defaults"

    # -- saving (loop thread) --------------------------------------------------------------

    def save_settings(self, settings: Settings) -> None:
        self._queue(SETTINGS_FILE, {"version": VERSION, "settings": settings.to_dict()})

    def log_call(self, entry: HistoryEntry) -> None:
        self._history.appendleft(entry)
        calls = [item.to_dict() for item in self._history]
        self._queue(HISTORY_FILE, {"version": VERSION, "calls": calls})

    def _queue(self, name: str, content: dict[str, Any]) -> None:
        data = (json.dumps(content, indent=1, sort_keys=True) + "\n").encode()
        with self._condition:
            self._pending[name] = data
            self._condition.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="state-writer", daemon=True)
            self._thread.start()

    @property
    def saved(self) -> bool:
        """Everything handed in so far is on disk."""
        with self._condition:
            return not self._pending and not self._writing

    @property
    def problem(self) -> str:
        return self._failing

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (blocking: call from an executor) until everything is on disk; False if not."""
        deadline = time.monotonic() + timeout
        with self._condition:
            attempts = self._attempts
            self._condition.notify_all()  # a writer waiting to retry tries again now
            while self._pending or self._writing:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                if self._failing and self._attempts > attempts and not self._writing:
                    return False  # it was tried again and failed again
                self._condition.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush, then stop the writer. True when everything reached the disk."""
        done = self.flush(timeout)
        with self._condition:
            self._closing = True
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        return done

    # -- the writer thread -----------------------------------------------------------------

    def _run(self) -> None:
        retry_in = RETRY_FIRST
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, {}
                self._writing = len(batch)
                self._attempts += 1
            failed = self._write_all(batch.items())
            with self._condition:
                self._writing = 0
                for name, data in failed:
                    self._pending.setdefault(name, data)  # a newer snapshot wins
                self._condition.notify_all()
                if failed and not self._closing:
                    self._condition.wait(retry_in)  # or sooner, when something new comes
                    retry_in = min(RETRY_MAX, retry_in * 2)
                elif failed:
                    return
                else:
                    retry_in = RETRY_FIRST

    def _write_all(self, batch: Iterable[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        failed = []
        for name, data in batch:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                write_atomically(self.directory / name, data)
                self.writes += 1
            except OSError as err:
                failed.append((name, data))
                self._failed(name, err)
        if not failed and self._failing:
            self._failing = ""
            log.info("state saved again in %s", self.directory, extra=fields("state_saved"))
            self._report("")
        return failed

    def _failed(self, name: str, err: OSError) -> None:
        message = write_problem(self.directory, err)
        if message == self._failing:
            return
        self._failing = message
        log.error(
            "%s (%s)",
            message,
            name,
            extra=fields(
                "state_write_failed",
                state_file=str(self.directory / name),
                errno=err.errno,
                error=err.strerror,
            ),
        )
        self._report(message)


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
