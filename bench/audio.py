"""Handset audio: the latency the phone adds each way, and speech quality on a bad network.

    python -m bench.audio [--runs N] [--quick]      (or as part of `python -m bench`)

Everything runs in a network namespace of its own (tests/rig/impair.py), on its loopback: the
phone as a daemon (`deskphone run`, alsa backend) on the rig's PulseAudio handset, Kamailio,
baresip far ends, and iptables/NFQUEUE rules that impair only their RTP.

Latency (PCMU, clean network). The benchmark plays a click into the handset's microphone and
records the earpiece through PortAudio streams of its own, whose timestamps say when a sample
entered or left the sound device; a packet socket on the loopback timestamps every RTP packet
(kernel time). Microphone -> wire is the click's age when its packet leaves, less the wait for
the rest of its 20 ms packet (which any 20 ms phone has); wire -> earpiece is the click's time
at the earpiece less the time its packet arrived (and its place in the packet).

Quality (G.722). Speech both ways through the phone, then the same speech between two
baresips over the same impaired path in the same run: PESQ P.862.2 (wideband) of what each end
heard, clean, and at 0, 3 and 10 % loss with 40 +- 10 ms jitter. The n-th call of each
meets the same network, packet for packet (tests/rig/impair.py: the losses and delays are drawn
from the call's number), and each baresip sends its speech in the packets that carried the
phone's (found in the far end's recording), so the same losses take the same moments of speech
and the two are compared on equal terms. The microphone's player starts before the call: a
stream joining the rig's sink mid-call would shift the phone's capture, as no real microphone
does. Last, the phone's SIP stack alone: the phone (files backend, no sound card) sends the
speech WAV itself on a clean path, against baresip sending the same WAV. What the handset's
path costs the microphone is the difference from the clean row; the rest is the codec's, which
the last rows measure with no call at all: the two G.722 codecs (pjmedia's, the phone's;
spandsp's, baresip's) run directly on the same speech (tests/rig/g722.py).

Beside each row, a second peer: baresip on the phone's own handset (the rig's sound card through
ALSA, as a hand-wired baresip desk phone would be), making the same calls after the phone's,
over the same path: its latency each way (the same clicks) and its scores. Baresip's side of
the targets stays the two baresips with WAVs; this one shows what the sound card's path costs
each of the two, and what latency baresip's quality takes.

With each call's two scores, the figures file keeps what the phone's journal said of that call
(`call_journal`): how often its jitter buffer ran dry and what it dropped, what each drift buffer
slipped, and how many of the sound card's callbacks PortAudio flagged. A low score then shows
its cause: a late packet, a slip, or a stall of the rig's sound server. Beside them, the longest
time the machine itself stood still during each call, the phone's and baresip's
(tests/rig/host.py, from 20 ms; 0 when none, absent when the witness may not run): a stall that
spoils one call of a pair and not the other shows there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Figure, markdown_table, summary
from tests.harness import phone_config_text
from tests.rig import g722, wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED, Baresip
from tests.rig.host import HostWatch
from tests.rig.impair import Impairment, in_new_namespace, inside_namespace
from tests.rig.kamailio import Kamailio
from tests.rig.pulse import (
    EAR_SINK,
    EARPIECE_TAP_PCM,
    HANDSET_PCM,
    MIC_FEED_PCM,
    PulseRig,
    speech_wav,
)
from tests.rig.quality import pesq_mos
from tests.rig.signals import read_wav, to_pcm16, write_wav

RATE = 16000
SETTLE = 2.0  # seconds after the answer before speech: the buffers settle
STALL_MS = 20.0  # the machine standing still this long is named beside a call's scores
SPEECH_SECONDS = 8.0
MIC_LEAD = SETTLE + 1.0  # the microphone's silence before its speech, the call set up within
FAR_TEXT = (
    "The quick brown fox jumps over the lazy dog. A large fawn jumped quickly over white "
    "zinc boxes."
)
NEAR_TEXT = (
    "Every good boy deserves fudge. She sells sea shells by the sea shore, and the shells "
    "she sells are sea shells."
)
CONDITIONS: tuple[tuple[str, float, float], ...] = (
    ("clean", 0.0, 0.0),  # (name, loss, jitter on): no impairment at all
    ("0 % loss", 0.0, 1.0),
    ("3 % loss", 0.03, 1.0),
    ("10 % loss", 0.10, 1.0),
)
DELAY_MS, JITTER_MS = 40.0, 10.0
SIDES = (("far end -> earpiece", "earpiece"), ("microphone -> far end", "microphone"))
CLICK_EVERY = 1.0  # seconds between clicks
CLICKS = 8
LATENCY_TARGET_MS = 60.0
PESQ_WB_TARGET = 4.0
# Where each baresip sends RTP from: the callee, the baresip caller (WAV in and out),
# baresip on the handset, the clicker (latency).
FAR_RTP, REFERENCE_RTP = range(10000, 11000), range(11000, 12000)
HANDSET_RTP, CLICKER_RTP = range(12000, 13000), range(13000, 14000)
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35


# -- the phone as a daemon ---------------------------------------------------------------


class PhoneDaemon:
    """`deskphone run` on the rig's handset, driven over its control socket."""

    def __init__(
        self, workdir: Path, kamailio: Kamailio, env: dict[str, str], microphone: Path | None = None
    ) -> None:
        """With `microphone`, no handset: the files backend sends that WAV in each call."""
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "deskphone.toml"
        audio: dict[str, Any] = (
            {"audio_backend": "files", "microphone": microphone}
            if microphone is not None
            else {"audio_backend": "alsa", "audio_extra": f'handset_device = "{HANDSET_PCM}"'}
        )
        config.write_text(
            phone_config_text(
                kamailio.port,
                "1001",
                kamailio.users["1001"],
                workdir=workdir,
                codecs=("G722", "PCMU"),
                **audio,
            ).replace('log_level = "debug"', 'log_level = "info"')
        )
        self.socket = workdir / "control.sock"
        self.journal = workdir / "deskphone.log"
        self.log = open(self.journal, "wb")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deskphone", "run", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        wait_until(lambda: self.socket.exists(), 15, "the phone's control socket")
        wait_until(
            lambda: self.status()["registrations"][0]["state"] == "registered",
            15,
            "the phone to register",
        )

    def control(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-m", "deskphone", *args, "--socket", str(self.socket), "--json"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return json.loads(out.stdout) if out.stdout.strip().startswith("{") else {}

    def status(self) -> dict[str, Any]:
        return self.control("status")

    def call(self, target: str) -> None:
        self.control("dial", target)
        wait_until(
            lambda: (call := self.status().get("call")) is not None and call["connected"],
            10,
            f"the call to {target}",
        )

    def hang_up(self) -> None:
        self.control("hangup")

    def wait_idle(self) -> None:
        wait_until(lambda: self.status()["state"] in ("idle", "ended"), 5, "the phone to hang up")

    def journal_size(self) -> int:
        return self.journal.stat().st_size

    def journal_since(self, offset: int) -> list[str]:
        """The journal's lines written since `offset` (a `journal_size()`)."""
        with open(self.journal, "rb") as journal:
            journal.seek(offset)
            return journal.read().decode(errors="replace").splitlines()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class BaresipHandset:
    """baresip on the same handset (the rig's sound card, through ALSA), driven as the phone
    is: the peer for what the phone's own sound path costs (what a hand-wired baresip desk
    phone would do on this machine)."""

    def __init__(self, ua: Baresip, registrar: Kamailio) -> None:
        self.ua = ua
        self._registrar = registrar
        self._closed = 0

    def call(self, target: str) -> None:
        self._closed = len(self.ua.events())
        self.ua.dial(self._registrar.aor(target))
        self.ua.wait_event(CALL_ESTABLISHED, since=self._closed)

    def hang_up(self) -> None:
        self.ua.hangup()

    def wait_idle(self) -> None:
        self.ua.wait_event(CALL_CLOSED, since=self._closed)


Handset = PhoneDaemon | BaresipHandset


def call_journal(lines: list[str]) -> dict[str, int]:
    """What the phone's journal says of one call's audio, as numbers: the jitter buffer's
    ("ran dry", "dropped", ...), the sound card's flagged callbacks ("xruns") and each drift
    buffer's ("earpiece inserted", "microphone dropped", ...). A call's PESQ alone does not
    say why it is low; these tell a late packet from a slip or a stall of the sound server."""
    figures: dict[str, int] = {}
    for line in lines:
        _, found, rest = line.partition("audio received in the call: ")
        if found:
            for item in rest.split(", "):
                name, _, value = item.rpartition(" ")
                if value.isdigit():
                    figures[name] = int(value)
            continue
        _, found, rest = line.partition("sound streams closed: ")
        if found:
            figures["xruns"] = int(rest.split(", ")[1].split()[0])
            continue
        _, found, rest = line.partition("sound session over: ")
        if found and "(" in rest:
            buffer, _, stats = rest.partition(" ")
            for item in stats[stats.index("(") + 1 : stats.rindex(")")].split(", "):
                name, _, value = item.partition("=")
                if name in ("dropped", "inserted", "underruns", "overflows"):
                    figures[f"{buffer} {name}"] = int(value)
    return figures


# -- RTP on the wire ---------------------------------------------------------------------


@dataclass(frozen=True)
class RtpPacket:
    time: float  # monotonic, from the kernel's timestamp
    source_port: int
    dest_port: int
    payload_type: int
    samples: np.ndarray  # decoded (PCMU) or empty


def _ulaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa << 3) + 0x84) << exponent
    linear = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return (linear / 32768.0).astype(np.float32)


ULAW = _ulaw_table()


class RtpSniffer(threading.Thread):
    """Every RTP packet leaving a socket on this namespace's loopback, kernel-timestamped."""

    def __init__(self) -> None:
        super().__init__(name="rtp-sniffer", daemon=True)
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self._sock.bind(("lo", 0))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.settimeout(0.2)
        self._done = threading.Event()
        self._offset = time.time() - time.monotonic()
        self.packets: list[RtpPacket] = []

    def run(self) -> None:
        while not self._done.is_set():
            try:
                data, ancillary, _flags, address = self._sock.recvmsg(65535, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] != PACKET_OUTGOING or len(data) < 14 + 20 + 8 + 12:
                continue
            stamp = time.time()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    stamp = seconds + nanoseconds / 1e9
            packet = self._parse(data, stamp - self._offset)
            if packet is not None:
                self.packets.append(packet)

    @staticmethod
    def _parse(frame: bytes, when: float) -> RtpPacket | None:
        ip = frame[14:]
        if ip[0] >> 4 != 4 or ip[9] != 17:
            return None
        header = (ip[0] & 0x0F) * 4
        source, dest = struct.unpack("!HH", ip[header : header + 4])
        rtp = ip[header + 8 :]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            return None
        payload_type = rtp[1] & 0x7F
        body = rtp[12 + 4 * (rtp[0] & 0x0F) :]
        samples = ULAW[np.frombuffer(body, dtype=np.uint8)] if payload_type == 0 else np.empty(0)
        return RtpPacket(when, source, dest, payload_type, samples)

    def stop(self) -> None:
        self._done.set()
        self.join(2)
        self._sock.close()


def far_end_port(port: int) -> bool:
    """The clicker's: the far end of the latency calls."""
    return port in CLICKER_RTP


# -- the benchmark's own ends of the handset ----------------------------------------------


class HandsetProbe:
    """PortAudio streams of the benchmark: clicks into the handset's microphone at known
    times, and the earpiece recorded with the time of each sample."""

    def __init__(self) -> None:
        import pyaudio

        self._pa = pyaudio.PyAudio()
        names = {
            self._pa.get_device_info_by_index(i)["name"]: i
            for i in range(self._pa.get_device_count())
        }
        self._offsets: list[float] = []
        self.click_times: list[float] = []  # monotonic time each click entered the device
        self.earpiece: list[tuple[float, bytes]] = []  # (monotonic time of first sample, pcm)
        self._frames_played = 0
        self._click = (0.6 * np.sin(2 * np.pi * 1000 * np.arange(32) / RATE) * 32767).astype("<i2")
        self._playing = False
        self._continue = pyaudio.paContinue
        self._out = self._pa.open(
            rate=RATE,
            channels=1,
            format=pyaudio.paInt16,
            output=True,
            output_device_index=names[MIC_FEED_PCM],
            frames_per_buffer=160,
            stream_callback=self._play,
        )
        self._in = self._pa.open(
            rate=RATE,
            channels=1,
            format=pyaudio.paInt16,
            input=True,
            input_device_index=names[EARPIECE_TAP_PCM],
            frames_per_buffer=160,
            stream_callback=self._record,
        )

    def _to_monotonic(self, info: dict[str, float], stream_time: float) -> float:
        self._offsets.append(time.monotonic() - info["current_time"])
        offsets = self._offsets[-200:]
        return stream_time + sorted(offsets)[len(offsets) // 2]

    def _play(self, _data: Any, frames: int, info: dict[str, float], _status: int) -> Any:
        out = np.zeros(frames, dtype="<i2")
        period = int(CLICK_EVERY * RATE)
        start = self._frames_played
        if self._playing:
            first = -start % period
            for offset in range(first, frames, period):
                end = min(frames, offset + len(self._click))
                out[offset:end] = self._click[: end - offset]
                when = info["output_buffer_dac_time"] + offset / RATE
                self.click_times.append(self._to_monotonic(info, when))
        self._frames_played += frames
        return out.tobytes(), self._continue

    def _record(self, data: bytes, frames: int, info: dict[str, float], _status: int) -> Any:
        self.earpiece.append((self._to_monotonic(info, info["input_buffer_adc_time"]), data))
        return None, self._continue

    def start_clicks(self) -> None:
        self._frames_played = 0
        self._playing = True

    def stop_clicks(self) -> None:
        self._playing = False

    def close(self) -> None:
        for stream in (self._out, self._in):
            stream.close()
        self._pa.terminate()


def onset(samples: np.ndarray, threshold: float = 0.2) -> int | None:
    hits = np.flatnonzero(np.abs(samples) >= threshold)
    return int(hits[0]) if len(hits) else None


def microphone_latencies(clicks: list[float], packets: list[RtpPacket]) -> list[float]:
    """For each click: its packet's departure less the click's entry, less the packet wait."""
    outgoing = [p for p in packets if p.payload_type == 0 and far_end_port(p.dest_port)]
    found = []
    for click in clicks:
        for packet in outgoing:
            if packet.time < click:
                continue
            index = onset(packet.samples)
            if index is not None:
                wait = (len(packet.samples) - index) / 8000
                found.append((packet.time - click - wait) * 1000)
                break
            if packet.time > click + 0.5:
                break
    return found


def earpiece_latencies(
    packets: list[RtpPacket], earpiece: list[tuple[float, bytes]]
) -> list[float]:
    """For each click the far end sent: when the earpiece played it, less its packet's
    arrival and its place in the packet."""
    incoming = [p for p in packets if p.payload_type == 0 and far_end_port(p.source_port)]
    heard = []
    for when, pcm in earpiece:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
        index = onset(samples, 0.1)
        if index is not None:
            heard.append(when + index / RATE)
    found = []
    last_sent = -1.0
    for packet in incoming:
        index = onset(packet.samples)
        if index is None or packet.time - last_sent < 0.5:
            continue
        last_sent = packet.time
        ideal = packet.time + index / 8000
        after = [t for t in heard if ideal - 0.005 <= t <= ideal + 0.5]
        if after:
            found.append((after[0] - ideal) * 1000)
    return found


def clicks_wav(path: Path, rate: int = 8000) -> Path:
    out = np.zeros(int(rate * (SETTLE + CLICKS * CLICK_EVERY + 5)), dtype=np.float32)
    burst = 0.6 * np.sin(2 * np.pi * 1000 * np.arange(rate // 500) / rate)
    for k in range(CLICKS + 4):
        start = int((SETTLE + 0.5 + k * CLICK_EVERY) * rate)
        out[start : start + len(burst)] = burst
    return write_wav(path, out, rate)


def speech_begins(recording: np.ndarray, rate: int, speech: np.ndarray) -> float:
    """How far into `recording` (at `rate`, the speech's own) `speech` begins, in seconds:
    the peak of their cross-correlation, which loss and concealment leave in place."""
    if rate != RATE:
        raise ValueError(f"a recording at {rate} Hz, not {RATE}")
    size = 1 << (len(recording) + len(speech)).bit_length()
    spectrum = np.fft.rfft(recording, size) * np.conj(np.fft.rfft(speech, size))
    correlation = np.fft.irfft(spectrum, size)[: len(recording)]
    return int(np.argmax(correlation)) / rate


def padded(path: Path, speech: np.ndarray, rate: int, lead: float) -> Path:
    silence = np.zeros(int(lead * rate), dtype=np.float32)
    return write_wav(path, np.concatenate([silence, speech, silence, silence]), rate)


# -- the runs ----------------------------------------------------------------------------


def measure(workdir: Path, runs: int) -> dict[str, Any]:
    """Inside the namespace: every figure, as plain data."""
    results: dict[str, Any] = {"latency": {}, "pesq": {}}
    far_speech, _ = read_wav(speech_wav(workdir / "far.wav", FAR_TEXT, RATE, SPEECH_SECONDS))
    near_speech, _ = read_wav(speech_wav(workdir / "near.wav", NEAR_TEXT, RATE, SPEECH_SECONDS))
    with PulseRig(workdir) as pulse, Kamailio(workdir / "kamailio") as kamailio:
        os.environ.update(pulse.environ())
        env = dict(os.environ)
        far_wav = padded(workdir / "far-call.wav", far_speech, RATE, SETTLE)
        near_wav = padded(workdir / "near-call.wav", near_speech, RATE, SETTLE)
        mic_wav = padded(workdir / "mic.wav", near_speech, RATE, MIC_LEAD)
        far = Baresip(workdir, "1002", kamailio.users["1002"], kamailio, audio_source=far_wav,
                      codecs=["G722"], rtp_ports=FAR_RTP)  # fmt: skip
        reference = Baresip(workdir, "1003", kamailio.users["1003"], kamailio,
                            audio_source=near_wav, codecs=["G722"],
                            rtp_ports=REFERENCE_RTP)  # fmt: skip
        clicks = clicks_wav(workdir / "clicks.wav")
        clicker = Baresip(workdir, "1004", kamailio.users["1004"], kamailio,
                          audio_source=clicks, codecs=["PCMU"],
                          rtp_ports=CLICKER_RTP)  # fmt: skip
        on_handset = Baresip(workdir, "1005", kamailio.users["1005"], kamailio,
                             sound_device=HANDSET_PCM, codecs=["G722", "PCMU"],
                             rtp_ports=HANDSET_RTP)  # fmt: skip
        handset_baresip = BaresipHandset(on_handset, kamailio)
        impairment = Impairment(far_end=FAR_RTP).start()
        watch = HostWatch(threshold_ms=STALL_MS).start()
        pairs = PairedCalls(pulse, far, reference, handset_baresip, mic_wav, near_wav,
                            near_speech, workdir, watch)  # fmt: skip
        phone: PhoneDaemon | None = None
        try:
            for ua in (far, reference, clicker, on_handset):
                ua.start()
            phone = PhoneDaemon(workdir / "phone", kamailio, env)
            results["latency"] = latency_runs(phone, runs)
            results["handset baresip latency"] = latency_runs(handset_baresip, runs)
            results["journal"] = {}
            for name, loss, jitter in CONDITIONS:
                scores: dict[str, list[float]] = {}
                journals: list[dict[str, int]] = []
                for seed in range(runs):
                    # The phone's call and baresip's meet the same losses and delays.
                    network = partial(
                        impairment.set, loss, DELAY_MS * jitter, JITTER_MS * jitter, seed
                    )
                    calls, journal = pairs.run(phone, network)
                    journals.append(journal)
                    for who, (samples, rate) in calls.items():
                        speech = far_speech if who.endswith("heard") else near_speech
                        score = pesq_mos(speech, RATE, samples, rate, "wb")
                        scores.setdefault(who, []).append(score)
                results["pesq"][name] = scores
                results["journal"][name] = journals
                print(f"bench.audio: {name}: {json.dumps(scores)}", file=sys.stderr)
                print(f"bench.audio: {name}, journal: {json.dumps(journals)}", file=sys.stderr)
            phone.stop()
            phone = PhoneDaemon(workdir / "phone-files", kamailio, env, microphone=mic_wav)
            alone: dict[str, list[float]] = {"phone sent": [], "baresip sent": []}
            for _ in range(runs):
                calls, _ = pairs.run(phone, impairment.set, on_handset=False)  # a clean path
                for who, scores_of in alone.items():
                    samples, rate = calls[who]
                    scores_of.append(pesq_mos(near_speech, RATE, samples, rate, "wb"))
            results["stack alone"] = alone
            print(f"bench.audio: stack alone: {json.dumps(alone)}", file=sys.stderr)
            results["codec alone"] = codec_alone(far_speech, near_speech)
            codecs = json.dumps(results["codec alone"])
            print(f"bench.audio: codec alone: {codecs}", file=sys.stderr)
        finally:
            impairment.close()
            watch.stop()
            if phone is not None:
                phone.stop()
            for ua in (far, reference, clicker, on_handset):
                ua.stop()
    return results


CODEC_OFFSETS = range(0, 320, 32)  # samples: where the speech begins in its first packet


def codec_alone(far_speech: np.ndarray, near_speech: np.ndarray) -> dict[str, dict[str, list]]:
    """The two G.722 codecs on the benchmark's speech, with no call (tests/rig/g722.py): at
    the earpiece, baresip's packets decoded by the phone's decoder and by baresip's; at the
    microphone, the speech coded by the phone's encoder and by baresip's, both decoded by
    baresip's, as the far end does. The speech starts after the calls' silence, at each of
    `CODEC_OFFSETS` into a packet: PESQ moves with where the codec's noise falls, and the
    spread shows by how much."""
    rows: dict[str, dict[str, list]] = {
        side: {"phone": [], "baresip": []} for side in ("earpiece", "microphone")
    }
    for offset in CODEC_OFFSETS:
        for side, speech in (("earpiece", far_speech), ("microphone", near_speech)):
            silence = np.zeros(int(SETTLE * RATE) + offset, dtype=np.float32)
            played = np.concatenate([silence, speech, silence])
            pcm = to_pcm16(played[: len(played) // g722.FRAME * g722.FRAME])
            if side == "earpiece":
                packets = g722.spandsp_encode(pcm)
                ours, theirs = g722.pjmedia_decode(packets), g722.spandsp_decode(packets)
            else:
                ours = g722.spandsp_decode(g722.pjmedia_encode(pcm))
                theirs = g722.spandsp_decode(g722.spandsp_encode(pcm))
            for who, heard in (("phone", ours), ("baresip", theirs)):
                rows[side][who].append(pesq_mos(speech, RATE, heard / 32768, RATE, "wb"))
    return rows


def latency_runs(handset: Handset, runs: int) -> dict[str, list[float]]:
    """Calls from `handset` to the clicker (1004): each click's latency, each way."""
    microphone: list[float] = []
    earpiece: list[float] = []
    probe = HandsetProbe()
    try:
        for _ in range(runs):
            sniffer = RtpSniffer()
            sniffer.start()
            handset.call("1004")
            time.sleep(SETTLE)
            probe.earpiece.clear()
            probe.click_times.clear()
            probe.start_clicks()
            time.sleep(CLICKS * CLICK_EVERY)
            probe.stop_clicks()
            handset.hang_up()
            handset.wait_idle()
            sniffer.stop()
            microphone += microphone_latencies(probe.click_times, sniffer.packets)
            earpiece += earpiece_latencies(sniffer.packets, probe.earpiece)
            time.sleep(1.5)
    finally:
        probe.close()
    return {"microphone": microphone, "earpiece": earpiece}


@dataclass(frozen=True)
class PairedCalls:
    """The phone's call to `far`, then baresip's (`reference`, WAV in and out) over the same
    path, then baresip's on the phone's handset (`on_handset`)."""

    pulse: PulseRig
    far: Baresip
    reference: Baresip
    on_handset: BaresipHandset
    mic_wav: Path  # the speech, as the microphone plays it
    near_wav: Path  # the reference's speech, placed anew for each pair
    near_speech: np.ndarray
    workdir: Path
    watch: HostWatch

    def run(
        self, phone: PhoneDaemon, network: Callable[[], None], *, on_handset: bool = True
    ) -> tuple[dict[str, tuple[np.ndarray, int]], dict[str, int]]:
        """`network()` sets the path before each call. What each end heard and the far end
        got ("phone heard", "phone sent", "baresip heard", "baresip sent", and with
        `on_handset` "handset baresip heard", "handset baresip sent"), and what the
        phone's journal said of its call (`call_journal`)."""
        spans: dict[str, tuple[float, float]] = {}
        network()
        journal_from = phone.journal_size()
        began = time.monotonic()
        heard, sent = handset_call(phone, self.pulse, self.far, self.mic_wav, self.workdir)
        spans["stall ms"] = (began, time.monotonic())
        # Baresip's speech goes out in the packets that carried the phone's: the n-th packet
        # lost in both calls takes the same moment of speech. (At 10 % loss with jitter the far
        # end's own jitter buffer shifts its recording by a few packets before the speech, and
        # the match is only that close.) The far end heard it G.722's delay after it went
        # out; baresip's speech leaves that much sooner, so the two encoders meet the speech
        # at the same place in a packet (PESQ moves by up to 0.03 with that place).
        lead = speech_begins(sent[0], sent[1], self.near_speech) - g722.DELAY / RATE
        padded(self.near_wav, self.near_speech, RATE, lead)
        network()
        began = time.monotonic()
        reference_heard, reference_sent = reference_call(self.reference, self.far, lead)
        spans["baresip stall ms"] = (began, time.monotonic())
        calls = {
            "phone heard": heard,
            "phone sent": sent,
            "baresip heard": reference_heard,
            "baresip sent": reference_sent,
        }
        if on_handset:
            # Its microphone's speech starts as the phone's did: the player's lead.
            network()
            began = time.monotonic()
            calls["handset baresip heard"], calls["handset baresip sent"] = handset_call(
                self.on_handset, self.pulse, self.far, self.mic_wav, self.workdir
            )
            spans["handset baresip stall ms"] = (began, time.monotonic())
        # The sound session's figures come when the bridge stops, 2 s after the phone's call:
        # long before the reference call is over.
        journal = call_journal(phone.journal_since(journal_from))
        if not self.watch.refused:
            for name, (start, end) in spans.items():
                journal[name] = round(max((s.ms for s in self.watch.stalls(start, end)), default=0))
        return calls, journal


def handset_call(
    handset: Handset, pulse: PulseRig, far: Baresip, mic_wav: Path, workdir: Path
) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
    """A call to `far` from the phone on the rig's handset (ours, or baresip there); (what the
    earpiece heard, what the far end got)."""
    recording = workdir / f"earpiece-{time.monotonic_ns()}.wav"
    recorder = pulse.record(EAR_SINK, recording)
    closed = len(far.events())
    microphone = pulse.play_into_microphone(mic_wav)  # before the call: see its docstring
    started = time.monotonic()
    handset.call("1002")
    time.sleep(max(0.0, started + MIC_LEAD + SPEECH_SECONDS + 1.5 - time.monotonic()))
    handset.hang_up()
    far.wait_event(CALL_CLOSED, since=closed)
    PulseRig.finish(microphone)
    PulseRig.finish(recorder)
    handset.wait_idle()
    time.sleep(1.2)  # baresip names its recordings by the second
    return read_wav(recording), read_wav(far.last_received_wav())


def reference_call(
    caller: Baresip, far: Baresip, lead: float
) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
    """The same call between two baresips, the caller's speech `lead` seconds into its WAV:
    (what the caller heard, what the far end got)."""
    closed = len(far.events())
    caller.dial(far.sip_uri)
    far.wait_event(CALL_ESTABLISHED, since=closed)
    time.sleep(max(SETTLE, lead) + SPEECH_SECONDS + 1.5)
    caller.hangup()
    far.wait_event(CALL_CLOSED, since=closed)
    time.sleep(1.2)
    return read_wav(caller.last_received_wav()), read_wav(far.last_received_wav())


# -- figures -----------------------------------------------------------------------------


def figures(results: dict[str, Any]) -> list[Figure]:
    rows = []
    ours, theirs = results["latency"], results.get("handset baresip latency")
    for name, side in (("microphone -> wire", "microphone"), ("wire -> earpiece", "earpiece")):
        rows.append(
            Figure(
                f"audio: added latency, {name}",
                "ms",
                summary(ours[side], "ms"),
                summary(theirs[side], "ms") if theirs and theirs[side] else None,
                note="baresip: the same calls from baresip on the same handset" if theirs else "",
            )
        )
    total = both_ways(ours)
    if total is not None:
        row = Figure("audio: added latency, both ways", "ms", total, both_ways(theirs))
        row.target = f"<= {LATENCY_TARGET_MS:g} ms"
        row.met = total["median"] <= LATENCY_TARGET_MS
        rows.append(row)
    for condition, scores in results["pesq"].items():
        journals = results.get("journal", {}).get(condition, [])
        for what, side in SIDES:
            verb = "heard" if side == "earpiece" else "sent"
            ours_key = f"phone {verb}"
            for peer, suffix in (("baresip", ""), ("handset baresip", ", baresip on the handset")):
                theirs_key = f"{peer} {verb}"
                if theirs_key not in scores:
                    continue
                row = Figure(
                    f"audio: PESQ WB {what}, {condition}{suffix}",
                    "MOS",
                    summary(scores[ours_key], "MOS"),
                    summary(scores[theirs_key], "MOS"),
                )
                # The targets: a score on a clean call, baresip's (WAV in and out) at every
                # loss level (0 % is jitter alone); baresip's clean score is shown beside the
                # phone's all the same. Baresip on the handset meets the same sound card as
                # the phone: beside it, what the card's path costs each; no target.
                if not suffix and condition == "clean":
                    row.target = f">= {PESQ_WB_TARGET:g}"
                    row.met = row.deskphone["median"] >= PESQ_WB_TARGET
                elif not suffix:
                    row.target = ">= baresip"
                    row.met = row.baresip is not None and (
                        row.deskphone["median"] >= row.baresip["median"]
                    )
                row.extra["calls"] = per_call(
                    scores[ours_key], scores[theirs_key], journals, side, f"{peer} stall ms"
                )
                rows.append(row)
    for what, side in SIDES:
        codecs = results.get("codec alone", {}).get(side)
        if codecs:
            rows.append(
                Figure(
                    f"audio: PESQ WB {what}, the G.722 codecs alone (no call)",
                    "MOS",
                    summary(codecs["phone"], "MOS"),
                    summary(codecs["baresip"], "MOS"),
                    note="pjmedia's codec (the phone's), spandsp's (baresip's): the same speech",
                )
            )
    alone = results.get("stack alone")
    if alone:
        rows.append(
            Figure(
                "audio: PESQ WB microphone -> far end, clean, the SIP stack alone (WAV in)",
                "MOS",
                summary(alone["phone sent"], "MOS"),
                summary(alone["baresip sent"], "MOS"),
            )
        )
    return rows


def both_ways(latency: dict[str, list[float]] | None) -> dict[str, Any] | None:
    """The two directions' median latencies added up, as a one-value summary; None without
    figures for both."""
    if not latency or not latency["microphone"] or not latency["earpiece"]:
        return None
    return summary([float(np.median(latency["microphone"]) + np.median(latency["earpiece"]))], "ms")


def per_call(
    ours: list[float],
    theirs: list[float],
    journals: list[dict[str, int]],
    side: str,
    peer_stall: str = "baresip stall ms",
) -> list[dict[str, Any]]:
    """Each call's pair of scores, with what the phone's journal said of the direction's own
    path: the jitter buffer's figures for the earpiece (it plays what the network brought),
    the microphone buffer's for the microphone; the sound card's flagged callbacks and the
    machine's stalls for both (during the phone's call and during the peer's, `peer_stall`)."""
    calls = []
    for index, (score, reference) in enumerate(zip(ours, theirs, strict=True)):
        journal = journals[index] if index < len(journals) else {}
        kept = {
            name: value
            for name, value in journal.items()
            if name.startswith(side)
            or name in ("xruns", "stall ms", peer_stall)
            or (side == "earpiece" and name in ("ran dry", "dropped", "buffer max ms"))
        }
        calls.append({"deskphone": score, "baresip": reference, **kept})
    return calls


def run(runs: int, workdir: Path, quick: bool = False) -> list[Figure]:
    """For `python -m bench`: measure in a fresh namespace, return the figures."""
    out = workdir / "audio-results.json"
    argv = [sys.executable, "-m", "bench.audio", "--inside", "--runs", str(1 if quick else runs),
            "--workdir", str(workdir / "audio"), "--out", str(out)]  # fmt: skip
    code = in_new_namespace(argv)
    if code != 0 or not out.exists():
        raise RuntimeError(f"bench.audio failed in its namespace (exit {code})")
    return figures(json.loads(out.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audio", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        if not inside_namespace():
            print("bench.audio: --inside only in the benchmark's namespace", file=sys.stderr)
            return 2
        args.workdir.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(measure(args.workdir, args.runs)))
        return 0
    with tempfile.TemporaryDirectory(prefix="deskphone-bench-audio-") as tmp:
        rows = run(args.runs, Path(tmp), args.quick)
    from bench.common import write_results

    print(markdown_table(rows))
    path = write_results("audio", {row.name: row.__dict__ for row in rows})
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
