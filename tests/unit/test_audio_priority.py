"""The threads that move audio ask for real-time priority, and carry on without it if refused.

Each check runs in a thread of its own: the scheduler policy is per thread, and the test
runner's own thread must not be left on the real-time scheduler.
"""

from __future__ import annotations

import logging
import os
import resource
import threading
from collections.abc import Callable
from typing import Any

import pytest

from deskphone.audio import stream
from deskphone.audio.stream import AUDIO_THREAD_PRIORITY, DriftBuffer, favour_this_thread

ALLOWED = os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] >= (
    AUDIO_THREAD_PRIORITY
)
needs_permission = pytest.mark.skipif(
    not ALLOWED, reason="real-time priority needs root or RLIMIT_RTPRIO >= 10 (as the unit sets)"
)


def in_a_thread(work: Callable[[], Any]) -> tuple[Any, int, int]:
    """`work()`'s result, and the thread's scheduler policy and priority after it."""
    seen: list[tuple[Any, int, int]] = []

    def run() -> None:
        result = work()
        seen.append((result, os.sched_getscheduler(0), os.sched_getparam(0).sched_priority))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(5)
    return seen[0]


@pytest.fixture(autouse=True)
def fresh_journal_note(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "_priority_noted", False)


@needs_permission
def test_an_audio_thread_runs_at_real_time_priority(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="deskphone.audio.stream")
    favoured, policy, priority = in_a_thread(favour_this_thread)
    assert favoured
    assert (policy, priority) == (os.SCHED_RR, AUDIO_THREAD_PRIORITY)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER  # only the calling thread
    assert "real-time priority 10" in caplog.text


def test_a_refused_priority_leaves_the_thread_as_it_was(caplog: pytest.LogCaptureFixture) -> None:
    # 100 is above any policy's range: the kernel refuses it even to root.
    favoured, policy, _ = in_a_thread(lambda: favour_this_thread(priority=100))
    assert not favoured
    assert policy == os.SCHED_OTHER
    assert "keep normal priority" in caplog.text
    caplog.clear()
    in_a_thread(lambda: favour_this_thread(priority=100))
    assert "keep normal priority" not in caplog.text  # said once, not per thread


def test_the_main_thread_is_never_favoured() -> None:
    assert not favour_this_thread()  # the event loop's thread
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@needs_permission
def test_a_streams_callback_favours_its_thread_from_its_first_call() -> None:
    callback = stream._Callback(0, DriftBuffer(), None)
    _, policy, priority = in_a_thread(lambda: callback(bytes(160), 80, None, 0))
    assert (policy, priority) == (os.SCHED_RR, AUDIO_THREAD_PRIORITY)
    assert callback.calls == 1
