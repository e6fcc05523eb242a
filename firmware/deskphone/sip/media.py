"""Conference-bridge wiring: the user's audio ends joined to calls and tones.

The PyPI pjsua2 wheel has no sound device, so the bridge is clocked by pjsua's null device, and
only while something needs it (a call or a tone): an idle phone runs no media clock at all.

The audio ends depend on `[audio] backend`:

* "alsa": the handset's sound card. A `SoundPort` (a pjsua2 AudioMediaPort) sits in the bridge;
  on pjmedia's clock thread it takes each 20 ms microphone frame from a `DriftBuffer` that the
  card's PortAudio stream fills, and hands each earpiece frame to another that the card plays
  from (see `deskphone.audio.stream` for how they absorb the two clocks' drift). An optional
  ringer device gets a port and a stream of its own; without one the phone rings through the
  handset at `handset_ring_level`.
* "files": a WAV played as the microphone and the earpiece recorded per session (from the first
  tone or call to the last), so tests and users can hear what the phone heard.
* "null": no audio ends at all.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from deskphone.audio.stream import BufferStats, DriftBuffer, favour_this_thread
from deskphone.core.effects import ToneOutput
from deskphone.core.events import CallId
from deskphone.core.settings import VOLUME_DEFAULT, AudioOutput
from deskphone.core.tones import Tone, ToneSegment

if TYPE_CHECKING:
    from deskphone.audio.devices import SoundDevices
    from deskphone.config import AudioConfig

log = logging.getLogger(__name__)

FULL_SCALE = 32767
DBM0_TO_DBFS = 3.14  # G.711: a 0 dBm0 sine peaks 3.14 dB below digital full scale
SAMPLE_BYTES = 2


DB_PER_VOLUME_STEP = 3.0
CLOCK_LINGER = 2.0  # seconds the bridge runs on after its last tone or call


def volume_gain(level: int) -> float:
    """Linear gain of a volume level: the default level is unity, each step 3 dB, 0 is silent."""
    if level <= 0:
        return 0.0
    return float(10 ** ((level - VOLUME_DEFAULT) * DB_PER_VOLUME_STEP / 20))


def tone_amplitude(level_dbm0: float, gain_db: float = 0.0) -> int:
    """Peak amplitude of one sine component at a level in dBm0, for pjmedia's tone generator."""
    return max(1, round(FULL_SCALE * 10 ** ((level_dbm0 + gain_db - DBM0_TO_DBFS) / 20)))


def tone_desc(segment: ToneSegment, level_dbm0: float) -> pj.ToneDesc:
    """One pjmedia tone burst. An amplitude-modulated segment (Japan's 400 Hz x 16 Hz) is made
    as two components half the modulation apart: their beat swells at the modulation rate."""
    desc = pj.ToneDesc()
    freqs = list(segment.frequencies)
    if segment.modulation_hz:
        half = segment.modulation_hz / 2
        freqs = [freqs[0] - half, freqs[0] + half]
    desc.freq1 = round(freqs[0])
    desc.freq2 = round(freqs[1]) if len(freqs) > 1 else 0
    desc.on_msec = segment.on_ms
    desc.off_msec = segment.off_ms
    desc.volume = tone_amplitude(level_dbm0, segment.gain_db)
    desc.flags = 0
    return desc


# -- frames across the SWIG boundary ---------------------------------------------------------
#
# A MediaFrame's samples live in a std::vector<unsigned char> (SWIG's ByteVector). SWIG's own
# conversions go element by element: bytes(vector) costs ~150-290 us per 640-byte frame and
# ByteVector(bytes) ~10-15 us, on the clock thread, 100 times a second. The vector's storage is
# three pointers (begin, end, capacity end) in every libstdc++ since GCC 3.4 (an ABI promise), so
# ctypes copies the samples in ~1-2 us. A self-test at import checks that layout against SWIG's
# own conversion and falls back to SWIG if it does not hold (another C++ runtime).


class _VectorLayout(ctypes.Structure):
    _fields_ = (("begin", ctypes.c_void_p), ("end", ctypes.c_void_p), ("cap", ctypes.c_void_p))


def _fast_read(vector: pj.ByteVector) -> bytes:
    layout = _VectorLayout.from_address(int(vector.this))
    if not layout.begin or not layout.end:
        return b""
    return ctypes.string_at(layout.begin, layout.end - layout.begin)


def _fast_write(vector: pj.ByteVector, pcm: bytes) -> None:
    if vector.size() != len(pcm):
        vector.resize(len(pcm))
    ctypes.memmove(_VectorLayout.from_address(int(vector.this)).begin, pcm, len(pcm))


def _swig_read(vector: pj.ByteVector) -> bytes:
    return bytes(vector)


def _swig_write(vector: pj.ByteVector, pcm: bytes) -> None:
    vector.swap(pj.ByteVector(pcm))


def _fast_path_works() -> bool:
    probe = bytes(range(256)) * 3
    try:
        vector = pj.ByteVector(probe)
        if _fast_read(vector) != probe:
            return False
        target = pj.ByteVector()
        _fast_write(target, probe[::-1])
        return _swig_read(target) == probe[::-1]
    except (AttributeError, TypeError, ValueError, OSError):
        return False


if _fast_path_works():
    read_vector, write_vector = _fast_read, _fast_write
else:  # pragma: no cover - only with a C++ runtime of another layout
    log.warning("pjsua2 frames are copied the slow way (std::vector layout not recognised)")
    read_vector, write_vector = _swig_read, _swig_write


# pjmedia's jitter-buffer discard algorithms (pjmedia_jb_discard_algo). pjsua2's MediaConfig
# has the field, but SWIG wraps the enum as an opaque pointer: its getter hands out a copy of
# the int on the heap, its setter copies one back. So the value is written through ctypes into
# the getter's copy, and that copy set. SWIG has no destructor for the type: the copies (four
# bytes each, made at start-up) are disowned, not freed, which also keeps SWIG from warning.
JB_DISCARD_NONE, JB_DISCARD_STATIC, JB_DISCARD_PROGRESSIVE = 0, 1, 2


def _discard_copy(media: pj.MediaConfig) -> tuple[Any, ctypes.c_int]:
    copy = media.jbDiscardAlgo
    copy.disown()
    return copy, ctypes.c_int.from_address(int(copy))


def jitter_discard(media: pj.MediaConfig) -> int:
    """The jitter buffer's discard algorithm a MediaConfig names."""
    return _discard_copy(media)[1].value


def set_jitter_discard(media: pj.MediaConfig, algorithm: int) -> None:
    copy, value = _discard_copy(media)
    value.value = algorithm
    media.jbDiscardAlgo = copy


# G.722 codes 14-bit samples; pjmedia takes 16-bit ones in and out and by default shifts them
# by two bits each way, where baresip (and the spandsp-derived G.722 of Asterisk and FreeSWITCH)
# shift by one. Against those peers the phone then sent at half their level and played them at
# twice theirs (loud far ends near clipping), and its own speech went into the encoder 6 dB
# lower than it needs, closer to G.722's quantisation floor (the microphone's PESQ rose by ~0.2
# at one bit). pjsua2 does not wrap the setter; it is a plain C function in pjsua2's own
# extension module, called through ctypes once the codecs are registered.
# pjmedia's codec shifts by dividing (C division, which rounds toward zero): every sample
# between -1 and 1 becomes 0, and the rest lean toward 0 too, a dead band around silence that
# cost the microphone's speech 0.04 PESQ against spandsp's encoder, at every one of twenty
# places of the speech in a packet (the rig's codecs run directly, tests/rig/g722.py).
# So pjmedia's own shift is 0, and the bridge takes the bit off on the way to a G.722 call (its
# level 0.5 there: pjmedia's bridge scales with an arithmetic shift, which rounds down, as
# spandsp does) and puts it back on the way from it (level 2.0, what the codec did).
G722_PCM_SHIFT = 0
G722_BRIDGE_SHIFT = 1
G722_LEVELS = (2.0**-G722_BRIDGE_SHIFT, 2.0**G722_BRIDGE_SHIFT)  # to the call, from the call


def set_g722_pcm_shift(shift: int) -> bool:
    """Set pjmedia's G.722 level shift for calls from now on; False (and a warning) if it
    cannot be, and pjmedia's own two bits stay."""
    try:
        library = ctypes.CDLL(pj._pjsua2.__file__)  # the loaded module: dlopen gives it back
        setter = library.pjmedia_codec_g722_set_pcm_shift
    except (OSError, AttributeError) as err:  # pragma: no cover - another pjsua2 build
        log.warning("G.722 keeps pjmedia's level: %s", err)
        return False
    setter.argtypes = (ctypes.c_uint,)
    setter.restype = ctypes.c_int
    status = setter(shift)
    if status != 0:  # pragma: no cover - pjmedia refuses only a shift it cannot apply
        log.warning("G.722 keeps pjmedia's level: pjmedia status %d", status)
        return False
    return True


class SoundPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A sound device's end in the bridge. Its callbacks run on pjmedia's clock thread and only
    copy a frame between the bridge and a `DriftBuffer`."""

    def __init__(self, microphone: DriftBuffer | None, speaker: DriftBuffer) -> None:
        super().__init__()
        self._microphone = microphone
        self._speaker = speaker
        self._failed = False
        self._clock_thread: int | None = None  # the bridge's clock thread, once favoured

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:
        """The bridge wants the next microphone frame."""
        try:
            if self._clock_thread != threading.get_ident():
                # Each session's bridge ticks on a clock thread of its own: favour it once.
                self._clock_thread = threading.get_ident()
                favour_this_thread()
            if self._microphone is None:
                frame.type = pj.PJMEDIA_FRAME_TYPE_NONE
                frame.size = 0
                return
            samples = frame.size // SAMPLE_BYTES
            write_vector(frame.buf, self._microphone.read(samples))
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
        except Exception:  # an exception must not reach pjmedia's clock thread
            self._note_failure()

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:
        """The bridge hands over the next earpiece frame (silence when nothing plays)."""
        try:
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO and frame.size:
                self._speaker.write(read_vector(frame.buf)[: frame.size])
            else:
                self._speaker.write(bytes(frame.size))
        except Exception:  # an exception must not reach pjmedia's clock thread
            self._note_failure()

    def _note_failure(self) -> None:
        if not self._failed:
            self._failed = True
            log.exception("sound port %s failed; its audio stops", self)


def _pcm_format(clock_rate: int, frame_ms: int) -> pj.MediaFormatAudio:
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, clock_rate, 1, frame_ms * 1000, 16)
    return fmt


class MediaRouter:
    """Owns every player, recorder, port and tone generator it creates; `close()` releases them
    all before the stack destroys the library."""

    def __init__(
        self,
        endpoint: pj.Endpoint,
        audio: AudioConfig,
        clock_rate: int,
        *,
        sound: SoundDevices | None = None,
        frame_ms: int = 20,
        schedule: Callable[[float, Callable[[], None]], asyncio.TimerHandle] | None = None,
    ) -> None:
        if audio.backend == "alsa" and sound is None:
            raise ValueError("[audio] backend 'alsa' needs the sound devices (none were given)")
        self._endpoint = endpoint
        self._audio = audio
        self._clock_rate = clock_rate
        self._frame_ms = frame_ms
        self._sound = sound if audio.backend == "alsa" else None
        self._microphone: pj.AudioMedia | None = None  # the source calls hear
        self._earpiece: pj.AudioMedia | None = None  # the handset's sink (files: the recorder)
        self._ringer: pj.AudioMedia | None = None  # a separate ringer device's sink, if any
        self._buffers: tuple[DriftBuffer, DriftBuffer, DriftBuffer | None] | None = None
        self._tones: dict[ToneOutput, pj.ToneGenerator] = {}
        self._tone_sinks: dict[ToneOutput, pj.AudioMedia] = {}
        self._calls: dict[CallId, pj.AudioMedia] = {}
        self._call_sinks: dict[CallId, pj.AudioMedia] = {}
        self._muted = False
        self._g722_levels = G722_LEVELS  # a G.722 call's levels, to it and from it
        self._route = AudioOutput.HANDSET
        self._volumes = {output: VOLUME_DEFAULT for output in AudioOutput}
        self._clock_running = False
        self._schedule = schedule  # the loop's call_later; without it the clock stops at once
        self._clock_stop: asyncio.TimerHandle | None = None
        # The sound buffers' figures when the last call or tone ended: the journal's account
        # of a session leaves out the linger (no call reads the microphone then, and once the
        # bridge stops the earpiece gets nothing until its stream closes).
        self._figures_in_use: dict[str, BufferStats] = {}
        self._sessions = 0
        self.last_recording: Path | None = None

    def start(self) -> None:
        """Make the microphone source (and the sound ports); the bridge stays unclocked."""
        self._endpoint.audDevManager().setNoDev()
        self._conceal_losses()
        if not set_g722_pcm_shift(G722_PCM_SHIFT):
            self._g722_levels = (1.0, 1.0)  # pjmedia shifts by its own two bits: add none
        if self._audio.backend == "files" and self._audio.microphone_file:
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(self._audio.microphone_file), 0)  # 0: loop
            self._microphone = player
        elif self._sound is not None:
            fmt = _pcm_format(self._clock_rate, self._frame_ms)
            mic, ear = DriftBuffer(), DriftBuffer()
            handset = SoundPort(mic, ear)
            handset.createPort("handset", fmt)
            self._microphone = self._earpiece = handset
            ring = None
            if self._audio.ringer_device:
                ring = DriftBuffer()
                ringer = SoundPort(None, ring)
                ringer.createPort("ringer", fmt)
                self._ringer = ringer
            self._buffers = (mic, ear, ring)
        self._apply_mute()

    def _conceal_losses(self) -> None:
        """Packet-loss concealment on for every codec, so a lost packet is filled from the
        speech around it rather than heard as a gap. It is pjmedia's default; set here so a
        pjproject built with other defaults (the Pi's) behaves the same."""
        for info in self._endpoint.codecEnum2():
            codec = str(info.codecId)
            try:
                param = self._endpoint.codecGetParam(codec)
                param.setting.plc = True
                self._endpoint.codecSetParam(codec, param)
            except pj.Error as err:
                log.debug("codec %s keeps its loss concealment setting: %s", codec, err.reason)

    # -- calls -----------------------------------------------------------------------------

    def connect_call(self, handle: CallId, media: pj.AudioMedia, codec: str = "") -> None:
        """Join a call's audio (again, after a re-INVITE: its stream may be a new one, with
        another `codec`, pjsua's name for it)."""
        self._unwire(handle, {media.getPortId()})
        self._calls[handle] = media
        to_call, from_call = self._g722_levels if codec.upper() == "G722" else (1.0, 1.0)
        media.adjustRxLevel(to_call)  # pjsua2 names a port's levels from the port's side
        media.adjustTxLevel(from_call)
        self._update_clock()
        if self._microphone is not None:
            self._microphone.startTransmit(media)
        self._join_voice(handle)

    def join_calls(self, first: CallId, second: CallId) -> None:
        """Three-way conference: each call hears the other as well as the user. A call whose
        audio is not up yet is joined when the core asks again, once it is."""
        one, other = self._calls.get(first), self._calls.get(second)
        if one is not None and other is not None:
            one.startTransmit(other)
            other.startTransmit(one)

    def disconnect_call(self, handle: CallId, live_slots: Collection[int]) -> None:
        """Cut a call's audio; `live_slots` are the bridge slots its audio holds now."""
        if self._unwire(handle, live_slots):
            self._update_clock()

    def _unwire(self, handle: CallId, live_slots: Collection[int]) -> bool:
        """Undo a call's connections; False if it had none. A port that is no longer among
        the call's `live_slots` left the bridge with its connections (a re-INVITE made the
        stream anew, or the call ended), and its slot may already be another call's: it is
        forgotten, never disconnected, or that other call would lose its sound."""
        media = self._calls.pop(handle, None)
        if media is None:
            return False
        sink = self._call_sinks.pop(handle, None)
        if media.getPortId() not in live_slots:
            return True
        if sink is not None:
            _quietly(media.stopTransmit, sink)
        if self._microphone is not None:
            _quietly(self._microphone.stopTransmit, media)
        return True

    def set_mute(self, muted: bool) -> None:
        """Mute at the microphone's own port (its level to the bridge 0): every call, and
        any joined later, hears silence, and no call's port is touched, so a stream that a
        re-INVITE is remaking on the SIP thread meanwhile cannot be reached half-made."""
        self._muted = muted
        self._apply_mute()

    def _apply_mute(self) -> None:
        if self._microphone is not None:
            self._microphone.adjustTxLevel(0.0 if self._muted else 1.0)

    def set_volume(self, output: AudioOutput, level: int) -> None:
        self._volumes[output] = level
        self._apply_levels()

    def set_route(self, output: AudioOutput) -> None:
        """The voice path's device: the speaker route uses the ringer device (the phone's
        loudspeaker) when there is one, else the handset's; either way it has its own volume."""
        self._route = output
        for handle in list(self._call_sinks):
            self._join_voice(handle)
        if ToneOutput.VOICE in self._tones:
            self._join_tone(ToneOutput.VOICE)
        self._apply_levels()

    def _voice_sink(self) -> pj.AudioMedia | None:
        if self._route is AudioOutput.SPEAKER and self._ringer_present:
            return self._ringer
        return self._earpiece

    def _ring_sink(self) -> pj.AudioMedia | None:
        if self._sound is None:
            return None  # the files and null backends have no ringer to sound
        return self._ringer if self._ringer_present else self._earpiece

    @property
    def _ringer_present(self) -> bool:
        return (
            self._ringer is not None and self._sound is not None and self._sound.ringer is not None
        )

    def _join_voice(self, handle: CallId) -> None:
        """Connect a call's audio to the voice sink of the current route (once)."""
        media = self._calls[handle]
        sink = self._voice_sink()
        old = self._call_sinks.get(handle)
        if old is sink:
            return
        if old is not None:
            _quietly(media.stopTransmit, old)
            del self._call_sinks[handle]
        if sink is not None:
            media.startTransmit(sink)
            self._call_sinks[handle] = sink

    def _apply_levels(self) -> None:
        """Each sink's level: the ring level while it rings, else the volume of its use."""
        ringing = self._tone_sinks.get(ToneOutput.RINGER)
        voice = self._voice_sink()
        for sink in [s for s in (self._earpiece, self._ringer) if s is not None]:
            if ringing is sink:
                if sink is self._ringer:
                    level = self._volumes[AudioOutput.RINGER]
                else:
                    level = self._audio.handset_ring_level
            elif sink is voice:
                level = self._volumes[self._route]
            else:
                level = self._volumes[AudioOutput.HANDSET]
            sink.adjustRxLevel(volume_gain(level))

    # -- tones -----------------------------------------------------------------------------

    def play_tone(self, tone: Tone, output: ToneOutput) -> None:
        self.stop_tone(output)
        if output is ToneOutput.RINGER and self._ring_sink() is None:
            return
        generator = pj.ToneGenerator()
        generator.createToneGenerator(self._clock_rate, 1)
        descs = pj.ToneDescVector()
        for segment in tone.segments:
            descs.append(tone_desc(segment, tone.level_dbm0))
        self._tones[output] = generator
        self._update_clock()
        if output not in self._tones:
            return  # the sound device failed to open: nothing to play on
        self._join_tone(output)
        generator.play(descs, tone.repeat)

    def _join_tone(self, output: ToneOutput) -> None:
        generator = self._tones[output]
        sink = self._ring_sink() if output is ToneOutput.RINGER else self._voice_sink()
        old = self._tone_sinks.pop(output, None)
        if old is not None and old is not sink:
            _quietly(generator.stopTransmit, old)
        if sink is not None:
            if old is not sink:
                generator.startTransmit(sink)
            self._tone_sinks[output] = sink
        self._apply_levels()

    def stop_tone(self, output: ToneOutput) -> None:
        generator = self._tones.pop(output, None)
        if generator is not None:
            generator.stop()
            self._tone_sinks.pop(output, None)
            self._apply_levels()
            self._update_clock()

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Release every pjsua2 object this router made; the library must still be alive."""
        self._schedule = None  # stop now, not after the linger...
        if self._clock_stop is not None:  # ...and never after the library is gone
            self._clock_stop.cancel()
            self._clock_stop = None
        for output in list(self._tones):
            self.stop_tone(output)
        for handle in list(self._calls):
            # Forgotten, not disconnected: the calls have ended or are about to end with the
            # library, and an ended call's slot may be another port's by now.
            self.disconnect_call(handle, live_slots=())
        self._update_clock()
        self._microphone = self._earpiece = self._ringer = None

    def _update_clock(self) -> None:
        """Run the bridge (and the sound streams or earpiece recording) only while a call or
        tone needs it, and for CLOCK_LINGER after: starting and stopping it costs tens of ms
        (a thread, and with a handset its PortAudio streams), which dialling, a click per digit,
        or ringback handing over to the call's audio would otherwise pay each time."""
        needed = bool(self._calls or self._tones)
        if needed and self._clock_stop is not None:
            self._clock_stop.cancel()
            self._clock_stop = None
            self._figures_in_use = {}
        if not needed and self._clock_running and self._schedule is not None:
            if self._clock_stop is None:
                self._figures_in_use = self.buffer_stats
                self._clock_stop = self._schedule(CLOCK_LINGER, self._linger_over)
            return
        if needed and not self._clock_running:
            if not self._open_ends():
                self._tones.clear()
                self._tone_sinks.clear()
                return
            self._endpoint.audDevManager().setNullDev()
            self._clock_running = True
            self._apply_levels()
        elif not needed and self._clock_running:
            figures, self._figures_in_use = self._figures_in_use or self.buffer_stats, {}
            self._endpoint.audDevManager().setNoDev()
            self._clock_running = False
            self._close_ends(figures)

    def _linger_over(self) -> None:
        self._clock_stop = None
        self._schedule, schedule = None, self._schedule
        try:
            self._update_clock()
        finally:
            self._schedule = schedule

    def _open_ends(self) -> bool:
        """Open what the bridge will talk to: False if the sound device could not be opened
        (the device layer has told the core the handset is missing)."""
        if self._sound is not None and self._buffers is not None:
            mic, ear, ring = self._buffers
            for buffer in (mic, ear, ring):
                if buffer is not None:
                    buffer.clear()
            return self._sound.open_session(mic, ear, ring if self._ringer is not None else None)
        if isinstance(self._microphone, pj.AudioMediaPlayer):
            # Each session hears the microphone file from its start, as each records its own
            # earpiece file: what a call sends does not depend on the calls before it.
            try:
                self._microphone.setPos(0)
            except pj.Error as err:  # pragma: no cover - a seek in an open WAV does not fail
                log.warning("the microphone file plays on from where it was: %s", err.reason)
        self._open_recording()
        return True

    def _close_ends(self, figures: dict[str, BufferStats]) -> None:
        """Close what `_open_ends` opened; `figures` are the sound buffers' for the journal."""
        if self._sound is not None:
            self._sound.close_session()
            for name, stats in figures.items():
                log.info("sound session over: %s %s", name, stats)
        elif self._audio.backend == "files":
            self._earpiece = None  # destroying the recorder completes the WAV header

    @property
    def buffer_stats(self) -> dict[str, BufferStats]:
        """How the sound buffers fare (alsa backend): for tests, benchmarks and `status`."""
        if self._buffers is None:
            return {}
        names = ("microphone", "earpiece", "ringer")
        return {n: b.stats for n, b in zip(names, self._buffers, strict=True) if b is not None}

    def _open_recording(self) -> None:
        directory = self._audio.recordings_dir
        if self._audio.backend != "files" or directory is None:
            return
        self._sessions += 1
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(directory) / f"earpiece-{stamp}-{self._sessions:04d}.wav"
        recorder = pj.AudioMediaRecorder()
        try:
            Path(directory).mkdir(parents=True, exist_ok=True)
            recorder.createRecorder(str(path))
        except (OSError, pj.Error) as err:
            log.error("cannot record the earpiece to %s: %s", path, getattr(err, "reason", err))
            return
        self._earpiece = recorder
        self.last_recording = path


def _quietly(stop: object, sink: pj.AudioMedia) -> None:
    """Undo a connection that may already be gone with its port (a call that ended)."""
    try:
        stop(sink)  # type: ignore[operator]
    except pj.Error as err:
        log.debug("media: %s", err.reason)
