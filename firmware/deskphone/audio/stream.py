"""Sound-card streams and the drift-safe buffers that join them to the conference bridge.

Two clocks meet here: pjsua's conference bridge ticks on the system clock (its null device),
the sound card on its own crystal. They never agree exactly (a USB handset is off by up to a
few hundred ppm), so a plain FIFO between them would slowly fill (latency grows without end) or
run dry (a click every few seconds). `DriftBuffer` keeps the FIFO's mean level inside a small
band by slipping single samples: when the level leaves the band it drops (or repeats) one
sample per read until it is back in the middle. One sample in 80 or 320 is inaudible in
speech, and one per read corrects up to 1/frame of clock error (3125 ppm for the bridge's
20 ms reads), far beyond any real crystal. Nothing is resampled, so the work per frame is a few
slices of a bytearray: Python on the audio path only copies frames.

The streams are PortAudio callback streams (PyAudio) opened only while the bridge runs, so an
idle phone holds no sound device open and runs no audio thread. The threads that move audio (the
streams' callbacks, and pjmedia's clock thread through the bridge's sound port) put themselves on
the real-time scheduler when the system lets them (`favour_this_thread`): a busy CPU then delays
them less, which is what an underrun is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deskphone.errors import HardwareError

if TYPE_CHECKING:
    import pyaudio

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # wideband end to end (G.722), the bridge's own rate
SAMPLE_BYTES = 2  # signed 16-bit, mono
PERIOD_FRAMES = 80  # 5 ms per sound-card callback: short, so little waits in the buffers
WINDOW_SECONDS = 0.5  # the level is judged over this long
MARGIN_MS = 4.0  # kept in hand at the emptiest phase, for the callbacks' jitter ...
MARGIN_STEP_MS = 4.0  # ... grown by this after each underrun (a loaded machine) ...
MARGIN_MAX_MS = 40.0  # ... up to this ...
MARGIN_RELAX_SECONDS = 30.0  # ... and shrunk by a step after this long without one
BAND_MS = 4.0  # how far above its target the level may wander before samples are slipped
# ... and how far below: a sound server's capture steps by 2-3 ms when a stream joins its sink
# and often steps back; at the worst phase half the margin is still in hand.
SAG_MS = 2.0
RESYNC_MS = 4.0  # further above the band for two windows (a start, a stall): skip back
CAPACITY_MS = 200.0  # beyond this the oldest audio is thrown away (a consumer that stopped)
IDLE_SECONDS = 0.1  # a consumer that read nothing for this long starts afresh


# SCHED_RR priority of the audio threads: above every ordinary thread, below the kernel's
# interrupt threads (50). Unprivileged, a thread may take it only up to RLIMIT_RTPRIO: the
# systemd unit grants exactly this (LimitRTPRIO=10).
AUDIO_THREAD_PRIORITY = 10
_priority_noted = False  # the journal hears once per process how it went


def favour_this_thread(priority: int = AUDIO_THREAD_PRIORITY) -> bool:
    """Put the calling thread on the real-time round-robin scheduler at `priority`; False
    (and normal priority kept) where the system does not allow it. The threads so favoured
    only copy frames and block: they cannot starve the rest. The first outcome is logged.
    Never the main thread, whatever calls from it: that is the event loop's, and what it runs
    is not bounded."""
    global _priority_noted
    if threading.current_thread() is threading.main_thread():
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(priority))
    except (OSError, AttributeError) as err:  # AttributeError: a system without the call
        if not _priority_noted:
            _priority_noted = True
            log.warning(
                "audio threads keep normal priority (real-time priority %d refused: %s); "
                "underruns are likelier on a busy CPU",
                priority,
                getattr(err, "strerror", None) or err,
            )
        return False
    if not _priority_noted:
        _priority_noted = True
        log.info("audio threads run at real-time priority %d", priority)
    return True


def ms_to_samples(ms: float, rate: int = SAMPLE_RATE) -> int:
    return round(ms * rate / 1000)


class AudioStreamError(HardwareError):
    """A sound device could not be opened or failed while streaming."""


@dataclass(frozen=True, slots=True)
class BufferStats:
    """How a `DriftBuffer` has fared: what tests and benchmarks read to see drift absorbed."""

    level: float  # the fill averaged over the last full window's time, in samples
    target: float  # the fill the buffer steers to, in samples
    highest_level: float  # the largest window level since the start (after settling)
    dropped: int  # samples slipped out (the producer ran fast)
    inserted: int  # samples repeated (the producer ran slow)
    underruns: int  # reads that found too little and were padded with silence
    overflows: int  # samples thrown away because nobody read them

    @property
    def level_ms(self) -> float:
        return self.level * 1000 / SAMPLE_RATE


class DriftBuffer:
    """A FIFO of 16-bit mono samples between two clocks, with bounded latency.

    Thread-safe: one producer (`write`, any chunk size) and one consumer (`read`, any count)
    on different threads; the consumer always gets exactly what it asks for.

    What it steers is the fill averaged over time (not sampled at reads or writes): that mean
    does not depend on how the producer's and consumer's ticks happen to be phased, it moves
    only with drift, so the slow phase sweep two clocks make cannot surprise it. The target is
    half a write plus half a read (the sawtooth both make) plus a margin for jitter that grows
    after each underrun: then, at the worst phase, a read still leaves the margin behind. The
    level may sag a little below the target (half the margin is then still in hand) and rise a
    band above it before samples are slipped.
    """

    def __init__(
        self,
        *,
        margin: int = ms_to_samples(MARGIN_MS),
        band: int = ms_to_samples(BAND_MS),
        sag: int = ms_to_samples(SAG_MS),
        capacity: int = ms_to_samples(CAPACITY_MS),
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._data = bytearray()
        self._lock = threading.Lock()
        self._initial_margin = margin
        self._margin = margin
        self._band = band
        self._sag = sag
        self._capacity = capacity * SAMPLE_BYTES
        self._window = window
        self._largest_write = 0
        self._primed = False
        self._last_read = -float("inf")
        self._largest_read = 0
        self._reads = 0
        self._windows = 0
        self._area = 0.0  # fill integrated over time, this window
        self._window_start = 0.0
        self._changed = 0.0  # when the fill last changed
        self._level = 0.0
        self._target_level = 0.0
        self._highest = 0.0
        self._slip = 0  # +1: drop a sample per read, -1: repeat one, 0: neither
        self._slips_left = 0  # ... this many more times
        self._skip = 0  # samples to skip at once at the next read
        self._was_far_too_much = False
        self._calm_since = 0.0  # when the margin last changed
        self._dropped = 0
        self._inserted = 0
        self._underruns = 0
        self._overflows = 0

    def write(self, pcm: bytes) -> None:
        with self._lock:
            self._integrate()
            self._data += pcm
            self._largest_write = max(self._largest_write, len(pcm) // SAMPLE_BYTES)
            excess = len(self._data) - self._capacity
            if excess > 0:
                excess += excess % SAMPLE_BYTES
                del self._data[:excess]
                self._overflows += excess // SAMPLE_BYTES

    def _integrate(self) -> None:
        now = self._clock()
        self._area += (now - self._changed) * len(self._data)
        self._changed = now

    def _target(self) -> float:
        return (self._largest_write + self._largest_read) / 2 + self._margin

    def read(self, samples: int) -> bytes:
        """`samples` samples; silence until primed, padded with silence on an underrun."""
        want = samples * SAMPLE_BYTES
        with self._lock:
            data = self._data
            self._largest_read = max(self._largest_read, samples)
            now = self._clock()
            # Nobody read for a while (the first read, or the bridge skipping a source no
            # call listens to): what piled up meanwhile is stale, start from the newest.
            idle = now - self._last_read > IDLE_SECONDS
            self._last_read = now
            if idle:
                self._primed = False
            if not self._primed:
                # Gather the larger of a read and a write, half the smaller, and the margin:
                # priming may come just after a write, and then the reads until the next
                # one take a whole write (a read and half a write, as it was, ran dry 15 ms
                # into every earpiece session and left the margin a step larger for the
                # first half-minute of the call). The surplus at other phases is slipped
                # away within a second. Anything older is dropped now: after an underrun the
                # late producer catches up in a burst (pjmedia's clock ticks the missed
                # frames at once), and played, that backlog would only be skipped a second
                # later, a second gap in the speech.
                larger, smaller = sorted((samples, self._largest_write), reverse=True)
                prime = (larger + smaller // 2 + self._margin) * SAMPLE_BYTES
                if len(data) < prime:
                    return bytes(want)
                stale = len(data) - prime
                del data[:stale]
                self._dropped += stale // SAMPLE_BYTES
                self._primed = True
                self._reads = self._windows = 0
                self._area = 0.0
                self._window_start = self._changed = self._clock()
            self._integrate()
            self._observe()
            if self._skip:
                skip = min(self._skip, max(0, len(data) // SAMPLE_BYTES - samples))
                del data[: skip * SAMPLE_BYTES]
                self._dropped += skip
                self._skip = 0
            take = want + self._slip * SAMPLE_BYTES
            if len(data) < take:
                # Ran dry: pad, keep a larger margin, and gather a cushion again.
                out = bytes(data) + bytes(want - len(data))
                data.clear()
                self._underruns += 1
                self._margin = min(
                    ms_to_samples(MARGIN_MAX_MS), self._margin + ms_to_samples(MARGIN_STEP_MS)
                )
                self._calm_since = self._changed
                self._primed = False
                self._slip = 0
                return out[:want]
            out = bytes(data[:take])
            del data[:take]
            slip = self._slip
            if slip > 0:
                self._dropped += 1
            elif slip < 0:
                self._inserted += 1
            if slip:
                self._slips_left -= 1
                if self._slips_left <= 0:
                    self._slip = 0
        if slip > 0:
            return out[:want]
        if slip < 0:
            return out + out[-SAMPLE_BYTES:]
        return out

    def _observe(self) -> None:
        """At the end of each window, compare the mean fill with the target and choose the
        slip for the next window."""
        self._reads += 1
        elapsed = self._changed - self._window_start
        if elapsed < self._window:
            return
        level = self._area / elapsed / SAMPLE_BYTES
        target = self._target()
        if self._windows:  # the first window holds the priming
            self._highest = max(self._highest, level)
        self._windows += 1
        self._level, self._target_level = level, target
        # Slip only to bring the level back into its band, and then exactly the samples
        # that bring it just inside (counted down per read). Slipping on to the next
        # window's look overshot by up to a window of slips (50 samples); going to the
        # band's middle made every brush with an edge a 2 ms jump (a level 1 sample under
        # its band slipped 33). The band reaches `sag` below the target: the rig's sound
        # server stepped the microphone's level 2-3 ms down when the speech began, often to
        # step back later, and each step slipped back and forth was a time warp in speech.
        low, high = target - self._sag, target + self._band
        inside = self._band / 8  # how far past the edge a correction goes
        if level < low:
            self._slip, self._slips_left = -1, round(low + inside - level)
        elif level > high:
            self._slip, self._slips_left = 1, round(level - (high - inside))
        far_too_much = level > high + ms_to_samples(RESYNC_MS)
        if far_too_much and self._was_far_too_much:
            # Far too much for a whole second (a device that started late, or stalled and
            # then delivered its backlog): one skip back to the target is a smaller harm
            # than seconds of slipping a sample in every read. One high window alone may
            # be a burst that drains by itself.
            self._skip = round(level - target - self._band / 2)
            self._slip = 0
            far_too_much = False
        self._was_far_too_much = far_too_much
        if self._margin > self._initial_margin and (
            self._changed - self._calm_since > MARGIN_RELAX_SECONDS
        ):
            self._margin -= ms_to_samples(MARGIN_STEP_MS)
            self._calm_since = self._changed
        self._reads = 0
        self._area = 0.0
        self._window_start = self._changed

    @property
    def level_samples(self) -> int:
        """Samples waiting now."""
        return len(self._data) // SAMPLE_BYTES

    def clear(self) -> None:
        """Empty, for a new session (its figures and the margin learnt start afresh too)."""
        with self._lock:
            self._data.clear()
            self._primed = False
            self._slip = self._skip = 0
            self._was_far_too_much = False
            self._reads = 0
            self._area = 0.0
            self._margin = self._initial_margin
            self._largest_write = self._largest_read = 0
            self._highest = self._level = self._target_level = 0.0
            self._dropped = self._inserted = self._underruns = self._overflows = 0

    @property
    def stats(self) -> BufferStats:
        with self._lock:
            return BufferStats(
                self._level,
                self._target_level,
                self._highest,
                self._dropped,
                self._inserted,
                self._underruns,
                self._overflows,
            )


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where one sound-card stream goes: PortAudio device indices for either direction."""

    label: str
    input_index: int | None
    output_index: int | None


class SoundStreams:
    """The PortAudio streams of one session: the handset's (one per direction) and, if there
    is one, the ringer's (output only).

    Callbacks run on PortAudio's threads and do nothing but hand samples to and from the
    buffers. `healthy` tells when a device stopped delivering (unplugged mid-call).
    """

    def __init__(
        self,
        portaudio: pyaudio.PyAudio,
        module: Any,
        quiet: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._portaudio = portaudio
        self._pa = module  # the pyaudio module, imported once by the device layer
        self._quiet = quiet  # hides ALSA's and PortAudio's chatter on stderr while opening
        self._streams: list[Any] = []
        self._callbacks: list[_Callback] = []

    def open(
        self,
        target: StreamTarget,
        *,
        capture_into: DriftBuffer | None,
        play_from: DriftBuffer | None,
    ) -> None:
        """Start streams on `target` that record into `capture_into` and play what
        `play_from` gives; either may be None (or the device may lack that direction).
        Raises `AudioStreamError` with PortAudio's reason.

        Each direction gets a stream of its own, not one duplex stream: PortAudio's ALSA
        duplex loop waits for both directions together, so a late capture period held the
        playback back too (an underrun in the earpiece), and it ends the whole stream when
        the playback side cannot tell its delay for a moment, as ALSA's pulse plugin does
        after an underrun. Apart, a hiccup in one direction stays in that direction."""
        keep_going = self._pa.paContinue
        wanted = []
        if capture_into is not None and target.input_index is not None:
            wanted.append((target.input_index, _Callback(keep_going, capture_into, None)))
        if play_from is not None and target.output_index is not None:
            wanted.append((target.output_index, _Callback(keep_going, None, play_from)))
        opened = len(self._streams)
        try:
            for index, callback in wanted:
                self._open_one(target, index, callback)
        except AudioStreamError:
            self._close_from(opened)  # not half a device
            raise

    def _open_one(self, target: StreamTarget, index: int, callback: _Callback) -> None:
        pa = self._pa
        record = callback.records
        try:
            with self._quiet():
                stream = self._portaudio.open(
                    rate=SAMPLE_RATE,
                    channels=1,
                    format=pa.paInt16,
                    input=record,
                    output=not record,
                    input_device_index=index if record else None,
                    output_device_index=None if record else index,
                    frames_per_buffer=PERIOD_FRAMES,
                    stream_callback=callback,
                )
        except (OSError, ValueError) as err:
            raise AudioStreamError(f"cannot open {target.label}: {_reason(err)}") from err
        self._streams.append(stream)
        self._callbacks.append(callback)

    @property
    def healthy(self) -> bool:
        """False once any stream stopped by itself (its device failed or went away)."""
        return all(stream.is_active() for stream in self._streams)

    @property
    def xruns(self) -> int:
        """Callbacks that came with an overflow or underflow flag, all streams together."""
        return sum(callback.xruns for callback in self._callbacks)

    @property
    def calls(self) -> int:
        return sum(callback.calls for callback in self._callbacks)

    def latencies(self) -> list[tuple[float, float]]:
        """(input, output) latency PortAudio reports for each stream, in seconds."""
        return [(s.get_input_latency(), s.get_output_latency()) for s in self._streams]

    def close(self) -> None:
        self._close_from(0)

    def _close_from(self, first: int) -> None:
        streams, self._streams = self._streams[first:], self._streams[:first]
        del self._callbacks[first:]
        for stream in streams:
            try:
                stream.stop_stream()
            except OSError as err:
                log.debug("stopping a failed stream: %s", _reason(err))
            stream.close()


class _Callback:
    """The PortAudio callback: copy the captured samples in and the samples to play out, and
    count calls and xruns (the status flags PortAudio sets on an overflow or underflow)."""

    def __init__(
        self, keep_going: int, capture_into: DriftBuffer | None, play_from: DriftBuffer | None
    ) -> None:
        self._keep_going = keep_going
        self._capture_into = capture_into
        self._play_from = play_from
        self.calls = 0
        self.xruns = 0

    @property
    def records(self) -> bool:
        return self._capture_into is not None

    def __call__(
        self, data: bytes | None, frames: int, _time: Any, status: int
    ) -> tuple[bytes | None, int]:
        if not self.calls:
            favour_this_thread()  # the stream's own thread, on its first callback
        self.calls += 1
        if status:
            self.xruns += 1
        if data and self._capture_into is not None:
            self._capture_into.write(data)
        play_from = self._play_from
        return (play_from.read(frames) if play_from is not None else None), self._keep_going


def _reason(err: BaseException) -> str:
    """PortAudio's errors arrive as OSError(code, text); keep the text."""
    if isinstance(err, OSError) and len(err.args) >= 2:
        return str(err.args[1])
    return str(err)
