"""Conference-bridge wiring: the user's audio ends joined to calls and tones.

The PyPI pjsua2 wheel has no sound device, so the bridge is clocked by pjsua's null device, and
only while something needs it (a call or a tone): an idle phone runs no media clock at all.
Until the handset backend exists, the audio ends are files: a WAV played as the microphone and
the earpiece recorded per session (from the first tone or call to the last), so tests and users
can hear what the phone heard.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pjsua2 as pj

from deskphone.core.effects import ToneOutput
from deskphone.core.events import CallId
from deskphone.core.settings import VOLUME_DEFAULT, AudioOutput
from deskphone.core.tones import Tone, ToneSegment

if TYPE_CHECKING:
    from deskphone.config import AudioConfig

log = logging.getLogger(__name__)

FULL_SCALE = 32767
DBM0_TO_DBFS = 3.14  # G.711: a 0 dBm0 sine peaks 3.14 dB below digital full scale


DB_PER_VOLUME_STEP = 3.0


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


class MediaRouter:
    """Owns every player, recorder and tone generator it creates; `close()` releases them all
    before the stack destroys the library."""

    def __init__(self, endpoint: pj.Endpoint, audio: AudioConfig, clock_rate: int) -> None:
        self._endpoint = endpoint
        self._audio = audio
        self._clock_rate = clock_rate
        self._microphone: pj.AudioMediaPlayer | None = None
        self._earpiece: pj.AudioMediaRecorder | None = None
        self._tones: dict[ToneOutput, pj.ToneGenerator] = {}
        self._calls: dict[CallId, pj.AudioMedia] = {}
        self._muted = False
        self._route = AudioOutput.HANDSET
        self._volumes = {output: VOLUME_DEFAULT for output in AudioOutput}
        self._clock_running = False
        self._sessions = 0
        self.last_recording: Path | None = None

    def start(self) -> None:
        """Open the microphone source; the bridge stays unclocked until needed."""
        self._endpoint.audDevManager().setNoDev()
        if self._audio.backend == "files" and self._audio.microphone_file:
            player = pj.AudioMediaPlayer()
            player.createPlayer(str(self._audio.microphone_file), 0)  # 0: loop
            self._microphone = player

    # -- calls -----------------------------------------------------------------------------

    def connect_call(self, handle: CallId, media: pj.AudioMedia) -> None:
        self._calls[handle] = media
        self._update_clock()
        if self._microphone is not None and not self._muted:
            self._microphone.startTransmit(media)
        if self._earpiece is not None:
            media.startTransmit(self._earpiece)

    def disconnect_call(self, handle: CallId) -> None:
        if self._calls.pop(handle, None) is not None:
            self._update_clock()

    def set_mute(self, muted: bool) -> None:
        self._muted = muted
        if self._microphone is None:
            return
        for media in self._calls.values():
            if muted:
                self._microphone.stopTransmit(media)
            else:
                self._microphone.startTransmit(media)

    def set_volume(self, output: AudioOutput, level: int) -> None:
        self._volumes[output] = level
        self._apply_voice_volume()

    def set_route(self, output: AudioOutput) -> None:
        """The voice path's device. The file backends have one earpiece for both routes; the
        route still picks which volume applies to it."""
        self._route = output
        self._apply_voice_volume()

    def _apply_voice_volume(self) -> None:
        if self._earpiece is not None:
            self._earpiece.adjustRxLevel(volume_gain(self._volumes[self._route]))

    # -- tones -----------------------------------------------------------------------------

    def play_tone(self, tone: Tone, output: ToneOutput) -> None:
        self.stop_tone(output)
        if output is ToneOutput.RINGER:
            return  # the files and null backends have no ringer to sound
        generator = pj.ToneGenerator()
        generator.createToneGenerator(self._clock_rate, 1)
        descs = pj.ToneDescVector()
        for segment in tone.segments:
            descs.append(tone_desc(segment, tone.level_dbm0))
        self._tones[output] = generator
        self._update_clock()
        if self._earpiece is not None:
            generator.startTransmit(self._earpiece)
        generator.play(descs, tone.repeat)

    def stop_tone(self, output: ToneOutput) -> None:
        generator = self._tones.pop(output, None)
        if generator is not None:
            generator.stop()
            self._update_clock()

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Release every pjsua2 object this router made; the library must still be alive."""
        for output in list(self._tones):
            self.stop_tone(output)
        self._calls.clear()
        self._update_clock()
        self._microphone = None

    def _update_clock(self) -> None:
        """Run the bridge (and the earpiece recording) only while a call or tone needs it."""
        needed = bool(self._calls or self._tones)
        if needed and not self._clock_running:
            self._endpoint.audDevManager().setNullDev()
            self._clock_running = True
            self._open_earpiece()
        elif not needed and self._clock_running:
            self._earpiece = None  # destroying the recorder completes the WAV header
            self._endpoint.audDevManager().setNoDev()
            self._clock_running = False

    def _open_earpiece(self) -> None:
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
        self._apply_voice_volume()
