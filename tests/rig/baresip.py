"""baresip as an independent far end: another phone the tests call, or that calls ours.

Headless, one config dir per instance (`baresip -f DIR`), bound to 127.0.0.1 only. Its microphone
is a WAV (aufile), its speaker a dummy (aubridge), and the sndfile module records what it sent and
received, so a test can check that a tone crossed the call in both directions. It is driven over
ctrl_tcp (netstring-framed JSON): commands get responses, and a reader thread keeps every event.

Checked on baresip 1.0.0:
- DTMF: digits arriving as RFC 4733 telephone-event (always offered in its SDP) and as SIP INFO
  `application/dtmf-relay` (`Signal=D`) both raise a `CALL_DTMF_START` event whose `param` is the
  digit; RFC 4733 also raises `CALL_DTMF_END`, INFO does not. `received_dtmf()` reads the events
  (the log line `call: received DTMF` is printed only with -v). `sndcode D` sends RFC 4733.
- Events: outgoing call CALL_LOCAL_SDP, CALL_RINGING, CALL_ESTABLISHED, CALL_RTPESTAB,
  CALL_CLOSED; an auto-answered incoming call has no CALL_INCOMING (manual answermode has);
  REGISTER_OK / REGISTER_FAIL. CALL_CLOSED's param is "404 Not Found" style for a failed call,
  "Connection reset by peer" when the other side hung up.
- A wrong password: libre answers every fresh 401 nonce again, so a registrar that re-challenges
  gets a REGISTER storm; our Kamailio answers bad credentials with 403 instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, Self

from tests.rig import RigError, live_peers, module_dir, signal_group, wait_until
from tests.rig.ports import HOST, free_port, port_is_free
from tests.rig.signals import wav_format, write_tone_wav

if TYPE_CHECKING:
    from tests.rig.kamailio import Kamailio

BARESIP = "baresip"
RTP_PORTS = range(10000, 20000)  # where a far end sends its RTP from, unless told otherwise
MODULE_DIRS = ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules")

# Codec module -> codec names it provides (as written in SDP / `audio_codecs`).
CODEC_MODULES: dict[str, tuple[str, ...]] = {
    "g722": ("G722",),
    "g711": ("PCMU", "PCMA"),
    "opus": ("opus",),
}
_CODEC_TO_MODULE = {name.lower(): mod for mod, names in CODEC_MODULES.items() for name in names}
DEFAULT_CODECS: tuple[str, ...] = ("g722", "g711")
# An account's audio_codecs entry without a rate means 8000 Hz: G.722 is registered at 16000.
_ACCOUNT_SPELLING = {"g722": "G722/16000/1"}

# Call events as ctrl_tcp reports them (`type` of an event dict).
CALL_INCOMING = "CALL_INCOMING"
CALL_RINGING = "CALL_RINGING"
CALL_PROGRESS = "CALL_PROGRESS"
CALL_ESTABLISHED = "CALL_ESTABLISHED"
CALL_CLOSED = "CALL_CLOSED"
CALL_DTMF_START = "CALL_DTMF_START"
CALL_DTMF_END = "CALL_DTMF_END"
REGISTER_OK = "REGISTER_OK"
REGISTER_FAIL = "REGISTER_FAIL"

_SILENCE_RATE = 8000
_SILENCE_SECONDS = 600


class _PortInUseError(RigError):
    """Another process took one of our ports between free_port() and baresip's bind."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def silence_wav() -> Path:
    """A long silent WAV shared by all instances of this machine (aufile does not loop)."""
    path = (
        Path(tempfile.gettempdir())
        / f"deskphone-rig-silence-{_SILENCE_RATE}-{_SILENCE_SECONDS}.wav"
    )
    if not path.exists():
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        write_tone_wav(tmp, [], _SILENCE_SECONDS, rate=_SILENCE_RATE)
        os.replace(tmp, path)
    return path


def _codec_plan(codecs: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """(modules to load, codec names for the account's audio_codecs; empty = no restriction)."""
    if codecs is None:
        return list(DEFAULT_CODECS), []
    modules: list[str] = []
    names: list[str] = []
    for item in codecs:
        key = item.lower().removesuffix(".so")
        if key in CODEC_MODULES and item != item.upper():  # "g722" the module, "G722" the codec
            module = key
        elif key in _CODEC_TO_MODULE:
            module = _CODEC_TO_MODULE[key]
            names.append(_ACCOUNT_SPELLING.get(key, item))
        else:
            raise ValueError(
                f"unknown codec {item!r}: use a module ({', '.join(CODEC_MODULES)})"
                f" or a codec name ({', '.join(n for ns in CODEC_MODULES.values() for n in ns)})"
            )
        if module not in modules:
            modules.append(module)
    if not modules:
        raise ValueError("codecs must name at least one codec")
    return modules, names


def _wav_finished(path: Path) -> bool:
    """True once a WAV's RIFF size field counts the data written (0 while still recording)."""
    with path.open("rb") as wav:
        header = wav.read(8)
    return len(header) == 8 and int.from_bytes(header[4:8], "little") > 36


class Baresip:
    """One baresip user agent on 127.0.0.1, registered (or not) with a Kamailio.

    - `registrar`: a Kamailio, or (host, port); the AOR is sip:USER@HOST:PORT.
    - `audio_source`: a 16-bit mono WAV (any rate) played as its microphone; it does not loop,
      so make it longer than the call. None: silence.
    - `sound_device`: an ALSA PCM (alsa module) for its microphone and speaker instead of the
      WAV and the dummy, as baresip on a desk phone's handset; its process must find the PCM
      (ALSA_CONFIG_PATH in this process's environment, which it inherits).
    - `record`: sndfile writes `dump-YYYY-MM-DD-hh-mm-ss-enc.wav` (what it sent, before
      encoding) and `...-dec.wav` (what it received, after decoding) per call, at the codec's
      rate (16 kHz G722, 8 kHz G711). Names have one-second resolution: a second call within
      the same second overwrites the first one's files.
    - `codecs`: module names ("g722", "g711", "opus") load only those modules, offering every
      codec they provide; codec names ("G722", "PCMU", "PCMA") load their modules and offer
      exactly those, in that order (account `audio_codecs`). None: G722, PCMU, PCMA.
      telephone-event is always offered.
    - `register=False` never REGISTERs (call it at `contact_uri`); `regint` is its REGISTER
      interval (it refreshes at ~90% of it).
    - `extra_config` lines are appended to its config, `account_params` to its account line;
      `rtp_ports` is where its RTP is sent from (benchmarks tell the phones apart by it).
    """

    def __init__(
        self,
        workdir: Path,
        user: str,
        password: str,
        registrar: Kamailio | tuple[str, int],
        *,
        auto_answer: bool = True,
        audio_source: Path | None = None,
        sound_device: str | None = None,
        record: bool = True,
        codecs: Sequence[str] | None = None,
        transport: str = "udp",
        register: bool = True,
        regint: int = 60,
        sip_port: int | None = None,
        ctrl_port: int | None = None,
        extra_config: Iterable[str] = (),
        rtp_ports: range = RTP_PORTS,
        account_params: str = "",
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {transport!r}")
        self.user = user
        self.password = password
        if isinstance(registrar, tuple):
            self.registrar_host, self.registrar_port = registrar
        else:
            self.registrar_host, self.registrar_port = registrar.host, registrar.port
        self.auto_answer = auto_answer
        if audio_source is not None and sound_device is not None:
            raise ValueError("a WAV or a sound device for its microphone, not both")
        self.audio_source = Path(audio_source) if audio_source is not None else None
        self.sound_device = sound_device
        self.record = record
        self.codec_modules, self.codec_names = _codec_plan(codecs)
        self.transport = transport
        self.register = register
        self.regint = regint
        self.host = HOST
        self._auto_ports = sip_port is None and ctrl_port is None
        self.sip_port = sip_port if sip_port is not None else free_port()
        self.ctrl_port = ctrl_port if ctrl_port is not None else free_port()
        self.workdir = Path(workdir) / f"baresip-{user}-{self.sip_port}"
        self.config_dir = self.workdir / "config"
        self.recordings_dir = self.workdir / "recordings"
        self.log_path = self.workdir / "baresip.log"
        self._extra_config = list(extra_config)
        self.rtp_ports = rtp_ports
        self._account_params = account_params
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None
        self._log_offset = 0
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()
        self._events: list[dict[str, Any]] = []
        self._responses: dict[str, dict[str, Any]] = {}
        self._send_lock = threading.Lock()
        self._token = 0
        self._write_config()

    # ----------------------------------------------------------------- addresses

    @property
    def sip_uri(self) -> str:
        """Its address of record on the registrar: what other phones dial."""
        return f"sip:{self.user}@{self.registrar_host}:{self.registrar_port}"

    @property
    def contact_uri(self) -> str:
        """Its own SIP socket, for calling it directly without the registrar."""
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{self.user}@{self.host}:{self.sip_port}{suffix}"

    # ----------------------------------------------------------------- config

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        if self.sound_device is not None:
            # At the codec's rate, mono: the device is opened as the call needs it.
            sound = [
                f"audio_player alsa,{self.sound_device}",
                f"audio_source alsa,{self.sound_device}",
                "audio_alert aubridge,rig-alert",
                "ausrc_channels 1",
                "auplay_channels 1",
            ]
            sound_modules = ["alsa", "aubridge"]
        else:
            source = self.audio_source if self.audio_source is not None else silence_wav()
            try:
                rate, channels, bits = wav_format(source)
            except (OSError, ValueError) as e:
                raise RigError(f"audio_source {source}: {e}") from e
            if channels != 1 or bits != 16:
                raise RigError(f"audio_source {source} must be 16-bit mono (aufile needs S16LE)")
            sound = [
                "audio_player aubridge,rig-speaker",
                "audio_alert aubridge,rig-alert",
                f"audio_source aufile,{source}",
                f"ausrc_srate {rate}",
                "ausrc_channels 1",
            ]
            sound_modules = ["aufile", "aubridge"]
        lines = [
            "poll_method epoll",
            f"sip_listen {self.host}:{self.sip_port}",
            "call_local_timeout 120",
            "call_max_calls 4",
            *sound,
            f"rtp_ports {self.rtp_ports.start}-{self.rtp_ports.stop - 1}",
            "rtcp_mux no",
            f"net_interface {self.host}",
            # Never reach a real DNS server; every URI the rig uses is numeric anyway.
            f"dns_server {self.host}:53",
            f"module_path {module_dir(MODULE_DIRS, 'g711.so', 'baresip')}",
            *(f"module {m}.so" for m in self.codec_modules),
            *(f"module {m}.so" for m in sound_modules),
        ]
        if self.record:
            lines += ["module sndfile.so", f"snd_path {self.recordings_dir}"]
        lines += [
            "module_tmp account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen {self.host}:{self.ctrl_port}",
            "ringback_disabled yes",
            "menu_bell no",
            "statmode_default off",
            *self._extra_config,
        ]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        aor = f"sip:{self.user}@{self.registrar_host}:{self.registrar_port}"
        if self.transport == "tcp":
            aor += ";transport=tcp"
        params = [f"auth_pass={self.password}"]
        params.append("answermode=auto" if self.auto_answer else "answermode=manual")
        params.append(f"regint={self.regint if self.register else 0}")
        if self.codec_names:
            params.append("audio_codecs=" + ",".join(self.codec_names))
        if self._account_params:
            params.append(self._account_params.lstrip(";"))
        (self.config_dir / "accounts").write_text(f"<{aor}>;" + ";".join(params) + "\n")
        (self.config_dir / "contacts").write_text("")

    # ----------------------------------------------------------------- process control

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0, wait_registered: bool | None = None) -> Self:
        """Start, connect ctrl_tcp and (by default when `register`) wait for a 200 to REGISTER.

        Ports picked automatically are picked again if another process took one first."""
        if self.running:
            raise RigError(f"baresip {self.user} is already running")
        if shutil.which(BARESIP) is None:
            raise RigError("baresip is not installed (apt-get install baresip-core)")
        deadline = time.monotonic() + timeout
        attempts = 3 if self._auto_ports else 1
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(deadline)
                break
            except _PortInUseError:
                self.kill()
                if attempt == attempts:
                    raise
                self.sip_port, self.ctrl_port = free_port(), free_port()
                self._write_config()
        try:
            if wait_registered if wait_registered is not None else self.register:
                self.wait_registered(max(0.1, deadline - time.monotonic()))
        except BaseException:
            self.kill()
            raise
        return self

    def _start_once(self, deadline: float) -> None:
        if not (port_is_free(self.sip_port) and port_is_free(self.ctrl_port)):
            raise _PortInUseError(f"port {self.sip_port} or {self.ctrl_port} is taken")
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _close_io
        log.write(
            f"==== rig: starting baresip {self.user} on {self.host}:{self.sip_port}\n".encode()
        )
        log.flush()
        self._log_file = log
        self._log_offset = log.tell()
        self._events.clear()
        # stdbuf: baresip prints with stdio, which a file would otherwise fully buffer.
        cmd = ["stdbuf", "-oL", "-eL", BARESIP, "-f", str(self.config_dir)]
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        live_peers.add(self)
        try:
            self._connect_ctrl(deadline)
            # Make sure the ctrl port is really baresip's (not another program's that won a race).
            self.command("reginfo", timeout=max(0.5, deadline - time.monotonic()))
        except RigError:
            if "Address already in use" in self.log_text():
                raise _PortInUseError(self.log_text()) from None
            self.kill()
            raise

    def _fail(self, what: str) -> RigError:
        return RigError(
            f"baresip {self.user} (sip {self.sip_port}, ctrl {self.ctrl_port}): {what};"
            f" log {self.log_path}:\n{_tail(self.log_path)}"
        )

    def _connect_ctrl(self, deadline: float) -> None:
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise self._fail("exited while starting")
            if "ctrl_tcp: failed to listen" in self.log_text():
                raise self._fail("ctrl_tcp could not listen")
            try:
                sock = socket.create_connection((self.host, self.ctrl_port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise self._fail("ctrl_tcp did not accept connections in time") from None
                time.sleep(0.02)
        sock.settimeout(None)
        self._sock = sock
        self._reader = threading.Thread(
            target=self._read_loop, args=(sock,), name=f"baresip-{self.user}-ctrl", daemon=True
        )
        self._reader.start()

    def log_text(self) -> str:
        """This run's part of the log (from the last start)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def registration_state(self) -> str | None:
        """ "ok", "failed" or None (nothing yet), from the last REGISTER result in the log."""
        state = None
        for m in re.finditer(r"\{\d+/\w+/v4\} (\d{3}) ", self.log_text()):
            state = "ok" if m.group(1).startswith("2") else "failed"
        if re.search(r"reg: \S+: (?:\d{3} |.*(?:failed|error))", self.log_text(), re.IGNORECASE):
            state = "failed"
        return state

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Wait for a successful REGISTER; RigError at once if the registrar refused it."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.registration_state()
            if state == "ok":
                return
            if state == "failed":
                raise self._fail("registration refused")
            if not self.running:
                raise self._fail("exited before registering")
            if time.monotonic() > deadline:
                raise self._fail(f"not registered within {timeout}s")
            time.sleep(0.02)

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM: baresip hangs up and un-REGISTERs (milliseconds on loopback). If it is still
        waiting after a second (the registrar is gone), SIGTERM again; SIGKILL after `timeout`."""
        if self._proc is None:
            return
        deadline = time.monotonic() + timeout
        for wait in (1.0, None):
            if self._proc.poll() is not None:
                break
            self._signal(signal.SIGTERM)
            left = max(0.05, deadline - time.monotonic())
            try:
                self._proc.wait(min(wait, left) if wait is not None else left)
            except subprocess.TimeoutExpired:
                continue
        if self._proc.poll() is None:
            self.kill()
        self._close_io()

    def kill(self) -> None:
        """SIGKILL: gone without un-REGISTER or BYE."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(5)
        self._close_io()

    def _signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        signal_group(self._proc, sig)

    def _close_io(self) -> None:
        live_peers.discard(self)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(2)
            self._reader = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Self:
        return self.start() if not self.running else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ----------------------------------------------------------------- ctrl_tcp

    def _read_loop(self, sock: socket.socket) -> None:
        buf = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                colon = buf.find(b":")
                if colon < 0:
                    break
                try:
                    length = int(buf[:colon])
                except ValueError:
                    return  # not a netstring stream any more; give up
                end = colon + 1 + length
                if len(buf) < end + 1:
                    break
                payload, buf = buf[colon + 1 : end], buf[end + 1 :]
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._cond:
            if message.get("event"):
                message["_time"] = time.monotonic()
                self._events.append(message)
            elif message.get("response"):
                self._responses[str(message.get("token", ""))] = message
            self._cond.notify_all()

    def command(self, name: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        """Run a baresip command (as typed after '/' in its UI) and return its response dict
        (`ok`, `data`)."""
        if self._sock is None:
            raise self._fail(f"command {name!r}: not started")
        with self._send_lock:
            self._token += 1
            token = f"rig{self._token}"
        body = json.dumps({"command": name, "params": params, "token": token}).encode()
        frame = str(len(body)).encode() + b":" + body + b","
        with self._send_lock:
            self._sock.sendall(frame)
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"no response to command {name!r} within {timeout}s")
                self._cond.wait(left)
            return self._responses.pop(token)

    def _checked(self, name: str, params: str = "") -> dict[str, Any]:
        response = self.command(name, params)
        if not response.get("ok"):
            raise self._fail(f"command {name} {params!r} failed: {response.get('data')!r}")
        return response

    def dial(self, uri: str) -> dict[str, Any]:
        """Start an outgoing call."""
        return self._checked("dial", uri)

    def answer(self) -> dict[str, Any]:
        """Answer the current incoming call (when auto_answer is off)."""
        return self._checked("accept")

    def hangup(self) -> dict[str, Any]:
        """Hang up the current call (or reject the incoming one)."""
        return self._checked("hangup")

    def send_dtmf(self, digits: str, gap: float = 0.25) -> None:
        """Send digits in the current call (RFC 4733 telephone-event), one per `gap` seconds."""
        for digit in digits:
            self._checked("sndcode", digit)
            time.sleep(gap)

    # ----------------------------------------------------------------- events

    def events(self, type: str | None = None) -> list[dict[str, Any]]:
        """Events received so far (optionally only of one `type`), oldest first."""
        with self._cond:
            return [e for e in self._events if type is None or e.get("type") == type]

    def wait_event(
        self,
        type: str,
        timeout: float = 10.0,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        since: int = 0,
    ) -> dict[str, Any]:
        """First event of `type` (matching `predicate`, at index ≥ `since`), waiting for it."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._events[since:]:
                    if event.get("type") == type and (predicate is None or predicate(event)):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e.get("type") for e in self._events]
                    raise self._fail(f"no {type} event within {timeout}s (events: {seen})")
                self._cond.wait(left)

    def received_dtmf(self) -> str:
        """Digits received in calls so far (RFC 4733 or SIP INFO), in order."""
        return "".join(str(e.get("param", "")) for e in self.events(CALL_DTMF_START))

    def wait_dtmf(self, digits: str, timeout: float = 5.0) -> str:
        """Wait until received_dtmf() ends with `digits`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.received_dtmf().endswith(digits):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._fail(f"DTMF {digits!r} not received; got {self.received_dtmf()!r}")
                self._cond.wait(left)
        return self.received_dtmf()

    # ----------------------------------------------------------------- recordings

    def recordings(self) -> list[Path]:
        """sndfile's WAVs, oldest first: dump-<time>-enc.wav (sent), dump-<time>-dec.wav
        (received)."""
        return sorted(self.recordings_dir.glob("dump-*.wav"), key=lambda p: p.stat().st_mtime)

    def _last(self, suffix: str, timeout: float = 5.0) -> Path:
        """The newest recording once sndfile has finished it: it closes the file (and writes
        the header's sizes) a moment after the call's CALL_CLOSED event."""
        found = [p for p in self.recordings() if p.name.endswith(suffix)]
        if not found:
            raise self._fail(f"no *{suffix} recording in {self.recordings_dir}")
        path = found[-1]
        wait_until(lambda: _wav_finished(path), timeout, f"baresip to finish {path.name}")
        return path

    def last_received_wav(self) -> Path:
        """What it heard in the last call."""
        return self._last("-dec.wav")

    def last_sent_wav(self) -> Path:
        """What it sent in the last call."""
        return self._last("-enc.wav")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Baresip {self.user} sip={self.sip_port} ctrl={self.ctrl_port} {state}>"
