"""A real clocked sound card without hardware: a private PulseAudio reached through ALSA.

No ALSA kernel devices exist on the test machines, and ALSA's null/file plugins run without
real-time pacing. PulseAudio's null sinks do run in real time, so this rig starts its own
PulseAudio (foreground, its own unix socket, nothing else loaded) with one null sink per sound
end, and writes an ALSA config that defines PCMs on them through libasound2-plugins' pulse
plugin. The phone opens those PCMs with PyAudio exactly as it opens a USB handset.

- The handset PCM (`HANDSET_PCM`): playback goes to the sink `handset_ear` (the earpiece; the
  test records its `.monitor`), capture comes from `handset_mic.monitor` (the microphone; the
  test plays into the sink `handset_mic`).
- The ringer PCM (`RINGER_PCM`, optional): playback into `ringer`.
- Tap PCMs for the test side (`MIC_FEED_PCM`, `EARPIECE_TAP_PCM`, `RINGER_TAP_PCM`), so a test
  or benchmark can also use PyAudio with sample-exact timing.

`unplug()` removes the handset PCM from the ALSA config and its sinks from PulseAudio (a USB
card vanishing does both: its PCM is gone and its open streams fail); `plug()` brings them back.
The phone's process must see `alsa_config_path` in ALSA_CONFIG_PATH (`environ()`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.rig import RigError, live_peers, signal_group, wait_until

PULSEAUDIO = "pulseaudio"
SYSTEM_ALSA_CONFIG = Path("/usr/share/alsa/alsa.conf")
RATE = 16000

HANDSET_PCM = "rig_handset"
RINGER_PCM = "rig_ringer"
MIC_FEED_PCM = "rig_mic_feed"
EARPIECE_TAP_PCM = "rig_earpiece_tap"
RINGER_TAP_PCM = "rig_ringer_tap"

MIC_SINK = "handset_mic"
EAR_SINK = "handset_ear"
RINGER_SINK = "ringer"


class PulseRig:
    """One private PulseAudio and the ALSA config that reaches it."""

    def __init__(self, workdir: Path, *, ringer: bool = False) -> None:
        self.workdir = Path(workdir) / "pulse"
        self.socket = self.workdir / "native"
        self.alsa_config_path = self.workdir / "asoundrc"
        self.log_path = self.workdir / "pulse.log"
        self.with_ringer = ringer
        self._proc: subprocess.Popen[bytes] | None = None
        self._modules: dict[str, int] = {}
        self._keepers: dict[str, subprocess.Popen[bytes]] = {}
        self.handset_plugged = False

    # -- lifetime ---------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Self:
        if shutil.which(PULSEAUDIO) is None:
            raise RigError("pulseaudio is not installed (apt-get install pulseaudio)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        script = self.workdir / "rig.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
        )
        runtime = self.workdir / "runtime"
        runtime.mkdir(exist_ok=True)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), HOME=str(self.workdir))
        log = open(self.log_path, "ab")  # noqa: SIM115 - the process keeps it
        self._proc = subprocess.Popen(
            [
                PULSEAUDIO,
                "-n",
                "-F",
                str(script),
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--system=false",
                "--use-pid-file=no",
                "--disallow-exit",
                "--disable-shm=yes",
                "--log-target=stderr",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        live_peers.add(self)
        try:
            wait_until(lambda: self._answering(), timeout, "PulseAudio to answer on its socket")
        except RigError as err:
            self.kill()
            raise RigError(f"{err}; log:\n{self.log_tail()}") from None
        self._load(RINGER_SINK) if self.with_ringer else None
        self.plug()
        return self

    def _answering(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise RigError(f"pulseaudio exited with {self._proc.returncode}:\n{self.log_tail()}")
        return self.socket.exists() and self.pactl("info", check=False).returncode == 0

    def stop(self) -> None:
        for sink in list(self._keepers):
            self._unload(sink)
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        live_peers.discard(self)
        self._proc = None

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            signal_group(self._proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(5)
        live_peers.discard(self)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- the handset coming and going -------------------------------------------------------

    def plug(self) -> None:
        """Create the handset's sinks and define its PCM (as plugging the USB handset in)."""
        for sink in (MIC_SINK, EAR_SINK):
            self._load(sink)
        self.handset_plugged = True
        self._write_alsa_config()

    def unplug(self) -> None:
        """Remove the handset's PCM and its sinks (as pulling the USB handset out)."""
        self.handset_plugged = False
        self._write_alsa_config()
        for sink in (MIC_SINK, EAR_SINK):
            self._unload(sink)

    def _load(self, sink: str) -> None:
        """A null sink, and a keeper: silence played into it at 10 ms latency, for ever.

        A null sink with nothing playing renders nothing to its monitor (a recording of it
        would skip the quiet), and without a client asking for low latency it renders in 2 s
        blocks (a new stream would wait up to 2 s to start). A sound card does neither: the
        keeper makes the sink run continuously, in 10 ms periods, as a card would."""
        if sink in self._modules:
            return
        result = self.pactl(
            "load-module",
            "module-null-sink",
            f"sink_name={sink}",
            f"rate={RATE}",
            "channels=1",
            "format=s16le",
        )
        self._modules[sink] = int(result.stdout.strip())
        self._keepers[sink] = subprocess.Popen(
            [
                "pacat",
                "--playback",
                "--raw",
                f"--device={sink}",
                f"--rate={RATE}",
                "--channels=1",
                "--format=s16le",
                "--latency-msec=10",
                f"--server=unix:{self.socket}",
                "/dev/zero",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def _unload(self, sink: str) -> None:
        keeper = self._keepers.pop(sink, None)
        if keeper is not None:
            keeper.kill()
            keeper.wait()
        module = self._modules.pop(sink, None)
        if module is not None:
            self.pactl("unload-module", str(module))

    def _write_alsa_config(self) -> None:
        """Atomically (a rename), as a package manager or an editor saving it would."""
        server = f"unix:{self.socket}"

        def pcm(name: str, direction: str, device: str) -> str:
            return (
                f'pcm.{name} {{\n  type pulse\n  server "{server}"\n  device "{device}"\n'
                f'  hint {{ show on description "rig {direction}" }}\n}}\n'
            )

        parts = [
            pcm(MIC_FEED_PCM, "microphone feed", MIC_SINK),
            pcm(EARPIECE_TAP_PCM, "earpiece tap", f"{EAR_SINK}.monitor"),
        ]
        if self.handset_plugged:
            parts.append(
                f"pcm.{HANDSET_PCM} {{\n  type asym\n"
                f'  playback.pcm {{ type pulse; server "{server}"; device "{EAR_SINK}" }}\n'
                f'  capture.pcm {{ type pulse; server "{server}"; device "{MIC_SINK}.monitor" }}\n'
                f'  hint {{ show on description "rig handset" }}\n}}\n'
            )
        if self.with_ringer:
            parts.append(pcm(RINGER_PCM, "ringer", RINGER_SINK))
            parts.append(pcm(RINGER_TAP_PCM, "ringer tap", f"{RINGER_SINK}.monitor"))
        staged = self.alsa_config_path.with_suffix(".tmp")
        staged.write_text("".join(parts))
        os.replace(staged, self.alsa_config_path)

    # -- for tests --------------------------------------------------------------------------

    def environ(self) -> dict[str, str]:
        """What the phone's process needs in its environment to find these PCMs."""
        return {"ALSA_CONFIG_PATH": f"{SYSTEM_ALSA_CONFIG}:{self.alsa_config_path}"}

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pactl", "--server", f"unix:{self.socket}", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if check and result.returncode != 0:
            raise RigError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def play_into_microphone(self, wav: Path) -> subprocess.Popen[bytes]:
        """Play a WAV into the handset's microphone, from the moment this returns (it waits
        until the player's stream is in the sink); returns the player process.

        A stream joining a null sink shifts what its monitor delivers by a few ms (the sink
        re-renders what it had rendered ahead), which a real microphone never does. Where
        the capture must be the microphone's alone (the benchmark), start the player before
        the phone captures, with silence ahead of the speech."""
        before = self._streams_into(MIC_SINK)
        player = self._tool(
            "pacat", "--playback", f"--device={MIC_SINK}", "--file-format=wav", str(wav)
        )
        try:
            wait_until(
                lambda: self._streams_into(MIC_SINK) > before, 5.0, "the microphone's player"
            )
        except RigError:
            self.finish(player)
            raise
        return player

    def _streams_into(self, sink: str) -> int:
        """How many streams play into `sink` now."""
        sinks = self.pactl("list", "short", "sinks").stdout.splitlines()
        index = next(line.split("\t")[0] for line in sinks if line.split("\t")[1] == sink)
        inputs = self.pactl("list", "short", "sink-inputs").stdout.splitlines()
        return sum(1 for line in inputs if line.split("\t")[1] == index)

    def record(self, sink: str, wav: Path) -> subprocess.Popen[bytes]:
        """Record what a sink (EAR_SINK, RINGER_SINK) plays into a 16 kHz mono WAV, from the
        moment this returns (it waits until samples arrive); stop it with `finish()`."""
        recorder = self._tool(
            "pacat",
            "--record",
            f"--device={sink}.monitor",
            f"--rate={RATE}",
            "--channels=1",
            "--format=s16le",
            "--latency-msec=20",
            "--file-format=wav",
            str(wav),
        )
        try:
            wait_until(
                lambda: wav.exists() and wav.stat().st_size > 44 + RATE // 5,
                5.0,
                f"the recording of {sink} to begin",
            )
        except RigError:
            self.finish(recorder)
            raise
        return recorder

    def _tool(self, *command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*command, f"--server=unix:{self.socket}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    @staticmethod
    def finish(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        """Stop a player or recorder cleanly (pacat completes its WAV header on SIGINT)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()

    def wait_sink_gone(self, sink: str, timeout: float = 5.0) -> None:
        wait_until(
            lambda: sink not in self.pactl("list", "short", "sinks").stdout,
            timeout,
            f"sink {sink} to go",
        )

    def __repr__(self) -> str:
        state = "running" if self._proc is not None and self._proc.poll() is None else "stopped"
        return f"<PulseRig {self.socket} {state}>"


SPEECH_VOICE = "(voice_cmu_us_slt_arctic_hts)"  # festvox-us-slt-hts: HTS, from recorded speech


def speech_wav(path: Path, text: str, rate: int, seconds: float | None = None) -> Path:
    """Speech from festival's HTS voice, converted by sox to 16-bit mono at `rate` (and padded
    or cut to `seconds`): the reference PESQ scores against. An HTS voice is built from
    recorded speech; P.862 scores espeak-ng's formant synthesis a whole MOS point lower through
    the same G.722 call (3.2 against 4.3 between two baresips), which hides what the phone does."""
    for tool in ("text2wave", "sox"):
        if shutil.which(tool) is None:
            raise RigError(f"{tool} is not installed (festival, sox)")
    script = path.with_suffix(".txt")
    script.write_text(text)
    raw = path.with_suffix(".voice.wav")
    subprocess.run(
        ["text2wave", "-eval", SPEECH_VOICE, str(script), "-o", str(raw)],
        check=True,
        capture_output=True,
    )
    effects = ["pad", "0", str(seconds), "trim", "0", str(seconds)] if seconds else []
    # -D: no dither. sox dithers what it resamples with random noise, so each run had its own
    # reference, and a call untouched scored 4.30 in one run and 4.36 in another.
    subprocess.run(
        [
            "sox",
            "-D",
            str(raw),
            "-r",
            str(rate),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
            str(path),
            *effects,
        ],
        check=True,
        capture_output=True,
    )
    raw.unlink()
    script.unlink()
    return path


def wait_for_time(deadline: float) -> None:
    """Sleep until a monotonic deadline (for pacing a test to a call's audio)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
