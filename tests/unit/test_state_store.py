"""The state directory (service/state.py) on a real filesystem: what is saved comes back, a
damaged file is set aside, a failed write is reported and retried. Killing the daemon during
writes is tests/integration/test_state_crash.py; a full and a read-only disk are in
tests/integration/test_control.py."""

from __future__ import annotations

import errno
import json
import threading
from pathlib import Path

from deskphone.core.history import EndReason, HistoryEntry
from deskphone.core.phone import HISTORY_LENGTH
from deskphone.core.settings import Settings
from deskphone.service.state import (
    HISTORY_FILE,
    SETTINGS_FILE,
    StateStore,
    write_atomically,
    write_problem,
)


def entry(number: str, started: float = 1.7e9) -> HistoryEntry:
    return HistoryEntry("out", number, "", started, 12.5, EndReason.HUNG_UP, 0)


class Reports:
    """Collects what the store reports, from its writer thread."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.changed = threading.Event()

    def __call__(self, message: str) -> None:
        self.messages.append(message)
        self.changed.set()


def test_settings_and_call_log_come_back_after_a_restart(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load().history == []
    settings = Settings(ringer_volume=2, ring_pattern="soft", dnd=True)
    store.save_settings(Settings(ringer_volume=9))
    store.save_settings(settings)  # the newest snapshot wins
    for number in ("1002", "1003", "112"):
        store.log_call(entry(number))
    assert store.close()
    assert store.saved
    loaded = StateStore(tmp_path / "state").load()
    assert loaded.settings == settings
    assert [e.number for e in loaded.history] == ["112", "1003", "1002"]  # newest first
    assert loaded.problems == []
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [HISTORY_FILE, SETTINGS_FILE]


def test_the_call_log_keeps_the_newest_entries(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for index in range(HISTORY_LENGTH + 5):
        store.log_call(entry(str(index)))
    assert store.close()
    history = StateStore(tmp_path).load().history
    assert len(history) == HISTORY_LENGTH and history[0].number == str(HISTORY_LENGTH + 4)


def test_a_damaged_file_is_set_aside_and_named(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text('{"version": 1, "settings": {"ringer_vol')
    good = entry("1002").to_dict()
    calls = [good, {"direction": "sideways"}, good]
    (tmp_path / HISTORY_FILE).write_text(json.dumps({"version": 1, "calls": calls}))
    loaded = StateStore(tmp_path).load()
    assert loaded.settings == Settings()
    (problem,) = loaded.problems
    assert "settings.json was damaged" in problem and "kept as settings.json.bad" in problem
    assert (tmp_path / "settings.json.bad").exists() and not (tmp_path / SETTINGS_FILE).exists()
    assert [e.number for e in loaded.history] == ["1002", "1002"]  # the bad entry is skipped


def test_a_damaged_file_stays_reported_until_a_fresh_state_is_saved(tmp_path: Path) -> None:
    (tmp_path / SETTINGS_FILE).write_text("{")
    reports = Reports()
    store = StateStore(tmp_path, report=reports)
    assert store.load().problems and store.problem.startswith(f"{tmp_path / SETTINGS_FILE} was")
    store.save_settings(Settings(dnd=True))
    assert reports.changed.wait(5) and reports.messages == [""]
    assert store.close() and store.problem == ""


def test_unknown_or_invalid_settings_keep_the_rest(tmp_path: Path) -> None:
    data = {"version": 2, "settings": {"ringer_volume": 3, "handset_volume": 99, "new_knob": 1}}
    (tmp_path / SETTINGS_FILE).write_text(json.dumps(data))
    loaded = StateStore(tmp_path).load()
    assert loaded.settings == Settings(ringer_volume=3)
    assert loaded.problems == []


def test_a_failed_write_is_reported_retried_and_cleared(tmp_path: Path) -> None:
    blocked = tmp_path / "state"
    blocked.write_text("a file where the directory should be")
    reports = Reports()
    store = StateStore(blocked, report=reports)
    store.save_settings(Settings(ringer_volume=1))
    assert reports.changed.wait(5)
    assert reports.messages == [f"call log and settings not saved: {blocked} is not a directory"]
    assert not store.flush(timeout=5)  # tried again, failed again: no long wait
    assert not store.saved
    reports.changed.clear()
    blocked.unlink()  # someone fixed the disk
    store.save_settings(Settings(ringer_volume=4))
    assert reports.changed.wait(5)
    assert reports.messages[-1] == ""
    assert store.close()
    assert StateStore(blocked).load().settings.ringer_volume == 4


def test_write_problems_say_what_to_fix() -> None:
    directory = Path("/var/lib/deskphone")
    full = write_problem(directory, OSError(errno.ENOSPC, "No space left on device"))
    assert full == "call log and settings not saved: /var/lib/deskphone is full"
    assert write_problem(directory, OSError(errno.EROFS, "")).endswith("is read-only")
    assert "no permission to write" in write_problem(directory, OSError(errno.EACCES, ""))


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    write_atomically(path, b"old")
    write_atomically(path, b"new")
    assert path.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert path.stat().st_mode & 0o777 == 0o640 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
