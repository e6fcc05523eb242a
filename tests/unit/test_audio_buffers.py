"""The drift buffers between the bridge's clock and the sound card's: latency stays bounded.

The two clocks are simulated exactly: a producer writing chunks at one rate and a consumer
reading frames at another, interleaved in time order, for long calls at clock errors a
cheap USB handset (±300 ppm) and a bad one (±2000 ppm) could have, over ten minutes of audio.
"""

from __future__ import annotations

import heapq
import itertools
import struct

import pytest

from deskphone.audio.stream import (
    BAND_MS,
    MARGIN_MS,
    SAG_MS,
    SAMPLE_RATE,
    WINDOW_SECONDS,
    DriftBuffer,
    _Callback,
    ms_to_samples,
)

_RAMP = struct.pack("<65536h", *(i % 32768 for i in range(65536)))


def ramp(start: int, count: int) -> bytes:
    """Samples counting up from `start` (mod 2**15), so order and slips can be read back."""
    first = start % 32768
    return _RAMP[2 * first : 2 * (first + count)]


class SimulatedClocks:
    """A producer writing `chunk`-sample blocks at SAMPLE_RATE*(1+ppm) and a consumer reading
    `frame`-sample blocks at exactly SAMPLE_RATE, interleaved in time order; the buffer reads
    the simulated time."""

    def __init__(self, *, producer_ppm: float, chunk: int, frame: int) -> None:
        self.now = 0.0
        self.buffer = DriftBuffer(clock=lambda: self.now)
        self.chunk, self.frame = chunk, frame
        self._producer_period = chunk / (SAMPLE_RATE * (1 + producer_ppm / 1e6))
        self._consumer_period = frame / SAMPLE_RATE
        self._events: list[tuple[float, int]] = [(0.0, 0), (self._consumer_period * 0.37, 1)]
        self._written = 0
        self.levels: list[int] = []  # samples waiting after each read

    def run(self, seconds: float) -> bytes:
        """Run until `seconds`; return what the consumer got in the last second."""
        tail = bytearray()
        while self._events[0][0] <= seconds:
            self.now, kind = heapq.heappop(self._events)
            if kind == 0:
                self.buffer.write(ramp(self._written, self.chunk))
                self._written += self.chunk
                heapq.heappush(self._events, (self.now + self._producer_period, 0))
            else:
                out = self.buffer.read(self.frame)
                assert len(out) == self.frame * 2
                self.levels.append(self.buffer.level_samples)
                if self.now >= seconds - 1.0:
                    tail += out
                heapq.heappush(self._events, (self.now + self._consumer_period, 1))
        return bytes(tail)


@pytest.mark.parametrize("ppm", [-2000.0, -300.0, 0.0, 2000.0])
@pytest.mark.parametrize(("chunk", "frame"), [(160, 320), (320, 160)])
def test_latency_stays_in_band_over_a_long_call_whatever_the_drift(ppm, chunk, frame) -> None:
    clocks = SimulatedClocks(producer_ppm=ppm, chunk=chunk, frame=frame)
    seconds = 600.0
    tail = clocks.run(seconds)
    stats = clocks.buffer.stats
    # The mean fill sits in its band: half a write and half a read (the sawtooth of two
    # ticking clocks) plus the jitter margin, less at most the sag, plus at most the band,
    # give or take one window's drift.
    target = (chunk + frame) / 2 + ms_to_samples(MARGIN_MS)
    assert stats.target == target
    low, high = target - ms_to_samples(SAG_MS), target + ms_to_samples(BAND_MS)
    assert low - 20 <= stats.level <= high + 40
    # ... and what a read leaves behind never runs out after the start (one window).
    settled = clocks.levels[round(WINDOW_SECONDS * SAMPLE_RATE / frame) :]
    assert min(settled) >= 0 and stats.underruns == 0, f"{stats.underruns} underruns"
    assert max(settled) <= target + ms_to_samples(BAND_MS) + max(chunk, frame)
    assert stats.overflows == 0
    drifted = abs(ppm) * 1e-6 * SAMPLE_RATE * seconds
    slipped = stats.dropped - stats.inserted if ppm > 0 else stats.inserted - stats.dropped
    # Every sample of drift is absorbed by one slip, give or take what settling from the
    # primed level took (a read and the target) and the band's width.
    assert abs(slipped - drifted) <= frame + target + ms_to_samples(BAND_MS + SAG_MS), (
        f"{slipped} slips for {drifted:.0f} samples of drift"
    )
    # What comes out is the input in order: each sample follows the one before, except at
    # a slip (two apart, or the same twice).
    values = struct.unpack(f"<{len(tail) // 2}h", tail)
    steps = {(b - a) % 32768 for a, b in itertools.pairwise(values)}
    assert steps <= {0, 1, 2}, f"unexpected jumps {sorted(steps)[:5]}"


def test_the_card_callbacks_copy_frames_and_count_those_flagged_with_an_xrun() -> None:
    """What the journal's "sound streams closed" line counts: PortAudio flags a callback
    after the card under- or overflowed (paInputOverflow 2, paOutputUnderflow 4)."""
    captured, to_play = DriftBuffer(margin=0), DriftBuffer(margin=0)
    microphone, earpiece = _Callback(0, captured, None), _Callback(0, None, to_play)
    assert microphone(ramp(1, 80), 80, None, 0) == (None, 0)
    assert microphone(ramp(81, 80), 80, None, 2) == (None, 0)
    assert captured.level_samples == 160 and (microphone.calls, microphone.xruns) == (2, 1)
    to_play.write(ramp(1, 400))
    to_play.write(ramp(401, 400))
    played = [earpiece(None, 80, None, status)[0] for status in (0, 4, 4)]
    # Primed with a write, half a read: the newest 440 of the 800 are played, in order.
    assert played == [ramp(361, 80), ramp(441, 80), ramp(521, 80)]
    assert (earpiece.calls, earpiece.xruns) == (3, 2)


def test_it_gives_silence_until_primed_then_the_newest_samples_in_order() -> None:
    buffer = DriftBuffer(margin=0)
    buffer.write(ramp(1, 100))
    # It waits for a read plus half the largest write (the worst phase): 160 + 100 / 2.
    assert buffer.read(160) == bytes(320)
    buffer.write(ramp(101, 100))
    buffer.write(ramp(201, 100))
    # Primed with 300 waiting, 90 more than it needs (160 + 100 / 2): the oldest 90 go, so
    # the level starts at its target rather than above it.
    assert buffer.read(160) == ramp(91, 160)
    assert buffer.stats.dropped == 90
    buffer.write(ramp(301, 200))
    assert buffer.read(160) == ramp(251, 160)


def test_primed_just_after_a_write_it_lasts_until_the_next_write() -> None:
    """The earpiece: the bridge writes 20 ms at once, the card reads 5 ms at a time. Priming
    may come right after a write; every read until the next write must still find enough."""
    buffer = DriftBuffer(margin=0)
    buffer.write(ramp(1, 320))
    assert buffer.read(80) == bytes(160), "a write plus half a read (360) is not there yet"
    buffer.write(ramp(321, 320))
    # Primed with the newest 360: the four reads of one write period all find theirs.
    assert [buffer.read(80) for _ in range(4)] == [ramp(281 + 80 * k, 80) for k in range(4)]
    assert buffer.stats.underruns == 0
    buffer.write(ramp(641, 320))
    assert buffer.read(80) == ramp(601, 80)


def test_an_underrun_pads_with_silence_and_keeps_a_larger_margin_after() -> None:
    buffer = DriftBuffer(margin=0)
    buffer.write(ramp(1, 320))
    buffer.write(ramp(321, 320))
    assert [buffer.read(80) for _ in range(4)] == [ramp(281 + 80 * k, 80) for k in range(4)]
    # The next write is late: 40 samples are left for a read of 80.
    assert buffer.read(80) == ramp(601, 40) + bytes(80)
    assert buffer.stats.underruns == 1
    buffer.write(ramp(641, 320))  # a write and half a read (360) were enough before
    assert buffer.read(80) == bytes(160), "after an underrun it should keep more in hand"
    # The late producer catches up in a burst: only the newest 320 + 40 + 64 (the margin
    # grown by 4 ms) are kept, so the level is back near its target at once.
    buffer.write(ramp(961, 320))
    assert buffer.read(80) == ramp(1281 - 424, 80)


def test_a_consumer_that_stops_cannot_make_it_grow_without_bound() -> None:
    buffer = DriftBuffer(capacity=1000)
    for start in range(0, 10_000, 320):
        buffer.write(ramp(start, 320))
    assert buffer.level_samples <= 1000
    assert buffer.stats.overflows == 10_240 - buffer.level_samples


def test_a_consumer_back_from_a_pause_gets_the_newest_samples_not_stale_ones() -> None:
    """The bridge reads the microphone only while a call listens to it: what the card
    captured meanwhile (a dial tone's worth) must not be heard late, 200 ms behind."""
    now = [0.0]
    buffer = DriftBuffer(margin=0, clock=lambda: now[0])
    for start in range(0, 3200, 160):  # 200 ms captured, nobody reading
        buffer.write(ramp(start, 160))
        now[0] += 0.01
    # Primed from the newest: a read of 320 plus half a write, no more.
    assert buffer.read(320) == ramp(3200 - 320 - 80, 320)
    assert buffer.level_samples == 80
    assert buffer.stats.dropped == 3200 - 400


def test_a_step_in_the_fill_is_slipped_back_only_to_just_inside_the_band() -> None:
    """A sound server's capture can step by a few ms when a stream joins its sink: the
    buffer slips back to just inside its band, not on to its middle, which would be a jump
    of its own (a time warp, in speech)."""
    clocks = SimulatedClocks(producer_ppm=0.0, chunk=80, frame=320)
    clocks.run(5.0)
    settled = clocks.buffer.stats
    assert settled.underruns == 0
    clocks.buffer.read(100)  # the fill steps 100 samples down, for good
    clocks.run(10.0)
    after = clocks.buffer.stats
    band, low = ms_to_samples(BAND_MS), after.target - ms_to_samples(SAG_MS)
    assert after.underruns == 0
    # Just inside: the slips still under way when a window is judged carry it a little
    # past the edge, but short of the target (it went to the band's middle before, and a
    # bit beyond), and no more were repeated than the step took.
    assert low <= after.level < after.target, (
        f"level {after.level:.1f} for a band of {low}-{after.target + band}"
    )
    assert after.inserted - settled.inserted <= 100
