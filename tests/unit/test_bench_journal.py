"""The audio benchmark reads each call's figures back from the phone's journal.

The lines are made the way the phone writes them (its BufferStats, the call's report keys), so
a change of wording in the firmware that the benchmark would no longer read fails here.
"""

from __future__ import annotations

from bench.audio import call_journal, per_call
from deskphone.audio.stream import BufferStats

REPORT = {
    "packets": 623,
    "lost": 0,
    "jitter_ms": 7,
    "jitter_max_ms": 9,
    "buffer_ms": 38,
    "buffer_max_ms": 60,
    "ran_dry": 3,
    "dropped": 6,
}


def journal_lines() -> list[str]:
    """One call's lines as the daemon's journal has them (with a line the reader must skip)."""
    report = ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in REPORT.items())
    mic = BufferStats(262.3, 264.0, 301.6, 296, 0, 0, 0)
    ear = BufferStats(233.3, 264.0, 968.9, 990, 78, 1, 0)
    return [
        "INFO deskphone.app: call out-4 connected",
        f"INFO deskphone.sip.call: audio received in the call: {report}",
        "INFO deskphone.audio.devices: sound streams closed: 5762 callbacks, "
        "1 flagged an underrun or overflow",
        f"INFO deskphone.sip.media: sound session over: microphone {mic}",
        f"INFO deskphone.sip.media: sound session over: earpiece {ear}",
    ]


def test_a_calls_journal_becomes_numbers() -> None:
    figures = call_journal(journal_lines())
    assert figures["ran dry"] == 3
    assert figures["dropped"] == 6
    assert figures["buffer max ms"] == 60
    assert figures["xruns"] == 1
    assert figures["earpiece dropped"] == 990
    assert figures["earpiece inserted"] == 78
    assert figures["earpiece underruns"] == 1
    assert figures["microphone dropped"] == 296
    assert "microphone level" not in figures  # levels are not counts


def test_each_direction_keeps_its_own_path() -> None:
    journal = call_journal(journal_lines()) | {"stall ms": 0, "baresip stall ms": 120}
    ear = per_call([2.4], [4.35], [journal], "earpiece")[0]
    mic = per_call([4.2], [4.27], [journal], "microphone")[0]
    assert (ear["deskphone"], ear["baresip"]) == (2.4, 4.35)
    assert ear["ran dry"] == 3 and ear["earpiece inserted"] == 78 and ear["xruns"] == 1
    assert not any(name.startswith("microphone") for name in ear)
    assert mic["microphone dropped"] == 296 and mic["xruns"] == 1
    for call in (ear, mic):  # the machine's stalls spoil either direction
        assert (call["stall ms"], call["baresip stall ms"]) == (0, 120)
    assert "ran dry" not in mic and not any(name.startswith("earpiece") for name in mic)


def test_a_call_without_a_journal_keeps_its_scores() -> None:
    assert per_call([3.1], [3.0], [], "earpiece") == [{"deskphone": 3.1, "baresip": 3.0}]
