"""The audio benchmark reads each call's figures back from the phone's journal.

The lines are made the way the phone writes them (its BufferStats, the call's report keys), so
a change of wording in the firmware that the benchmark would no longer read fails here.
"""

from __future__ import annotations

from bench.audio import call_journal, figures, per_call
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


def test_baresip_on_the_handset_stands_beside_the_phone_without_a_target() -> None:
    """Each PESQ row has a twin with baresip on the handset as the peer, and no target; the
    targets stay with the two baresips that talk WAV to file."""
    scores = {
        "phone heard": [4.1, 4.3, 2.9],
        "phone sent": [4.2, 4.2, 4.2],
        "baresip heard": [4.36, 4.36, 4.36],
        "baresip sent": [4.27, 4.27, 4.27],
        "handset baresip heard": [4.35, 4.35, 4.35],
        "handset baresip sent": [4.25, 4.26, 4.27],
    }
    journal = {"ran dry": 1, "stall ms": 0, "baresip stall ms": 3, "handset baresip stall ms": 25}
    results = {
        "latency": {"microphone": [12.0, 14.0], "earpiece": [40.0, 44.0]},
        "handset baresip latency": {"microphone": [17.0], "earpiece": [180.0, 190.0]},
        "pesq": {"0 % loss": scores},
        "journal": {"0 % loss": [journal] * 3},
    }
    rows = {row.name: row for row in figures(results)}
    both = rows["audio: added latency, both ways"]
    assert both.deskphone["median"] == 13.0 + 42.0 and both.met is True
    assert both.baresip is not None and both.baresip["median"] == 17.0 + 185.0
    ours = rows["audio: PESQ WB far end -> earpiece, 0 % loss"]
    twin = rows["audio: PESQ WB far end -> earpiece, 0 % loss, baresip on the handset"]
    assert ours.deskphone == twin.deskphone and ours.deskphone["median"] == 4.1
    assert ours.baresip is not None and ours.baresip["median"] == 4.36
    assert twin.baresip is not None and twin.baresip["values"] == [4.35, 4.35, 4.35]
    assert (ours.target, ours.met) == (">= baresip", False)
    assert (twin.target, twin.met) == ("", None)
    # Each row's calls carry the machine's stalls during its own peer's calls.
    assert twin.extra["calls"][0]["handset baresip stall ms"] == 25
    assert "baresip stall ms" not in twin.extra["calls"][0]
    assert ours.extra["calls"][0]["baresip stall ms"] == 3
    mic_twin = rows["audio: PESQ WB microphone -> far end, 0 % loss, baresip on the handset"]
    assert mic_twin.baresip is not None and mic_twin.baresip["median"] == 4.26


def test_without_baresip_on_the_handset_the_rows_are_as_before() -> None:
    sides = ("phone heard", "phone sent", "baresip heard", "baresip sent")
    results = {
        "latency": {"microphone": [12.0], "earpiece": [40.0]},
        "pesq": {"clean": {key: [4.3] for key in sides}},
    }
    rows = figures(results)
    assert not any("baresip on the handset" in row.name for row in rows)
    assert all(row.baresip is None for row in rows if "latency" in row.name)
