"""The handset and ringer sound devices: found by name, watched for hot-plug, opened on demand.

Card numbers change between boots (and when a second USB device is plugged in first), so the
config names a device by its ALSA card ID or name, or by the name of an ALSA PCM defined in the
ALSA config (any of them as a case-insensitive substring): "C-Media", "Device", "handset".

PortAudio (through PyAudio) only sees the devices that existed when it was initialised, so it
is initialised again whenever something changes. Changes are noticed without polling: inotify
on /dev/snd (a USB card coming or going adds or removes its nodes there) and on the ALSA config
files (a PCM defined or removed). While the handset is missing, the phone also looks again
after 2, 4, 8, ... 60 s, because a device can exist yet fail to open (a sound server that is
down); that retry runs only while the handset is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import enum
import errno
import logging
import os
import re
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deskphone.audio.stream import (
    PERIOD_FRAMES,
    SAMPLE_RATE,
    AudioStreamError,
    DriftBuffer,
    SoundStreams,
    StreamTarget,
)
from deskphone.core.events import AudioDeviceChanged, Event
from deskphone.errors import HardwareError

if TYPE_CHECKING:
    from deskphone.config import AudioConfig

log = logging.getLogger(__name__)

CARDS_FILE = Path("/proc/asound/cards")
DEV_SND = Path("/dev/snd")
DEFAULT_ALSA_CONFIGS = (Path("/etc/asound.conf"), Path("~/.asoundrc"))
SETTLE_SECONDS = 0.3  # hot-plug events come in bursts; look once they have settled
RETRY_MIN_SECONDS = 2.0
RETRY_MAX_SECONDS = 60.0
WATCHDOG_SECONDS = 1.0  # how often an open session checks that its streams still run
# The callbacks of the sound card and of the bridge's clock need the GIL every 10-20 ms; by
# default a thread waiting for it may wait 5 ms per switch, and a busy thread on a loaded
# machine made PortAudio's callback late by up to 90 ms. While a session runs, the waiting
# thread gets it within 1 ms (measured: worst gap 91 ms -> 28 ms).
SESSION_SWITCH_INTERVAL = 0.001
# Hardware devices through ALSA's plug layer: a USB handset that only does 48 kHz still gives
# the bridge 16 kHz. And never let PortAudio's JACK backend try to start a JACK server.
PORTAUDIO_ENV = {"PA_ALSA_PLUGHW": "1", "JACK_NO_START_SERVER": "1"}


# -- what is there ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoundCard:
    """A kernel sound card as /proc/asound/cards lists it."""

    number: int
    id: str
    name: str
    long_name: str


_CARD_LINE = re.compile(r"^\s*(\d+)\s+\[(.+?)\s*\]:\s*(\S+)\s+-\s+(.*?)\s*$")


def parse_cards(text: str) -> list[SoundCard]:
    """The cards in /proc/asound/cards: a header line per card, then its long name."""
    cards: list[SoundCard] = []
    lines = text.splitlines()
    for position, line in enumerate(lines):
        match = _CARD_LINE.match(line)
        if match is None:
            continue
        following = lines[position + 1].strip() if position + 1 < len(lines) else ""
        number, card_id, _driver, name = match.groups()
        cards.append(SoundCard(int(number), card_id, name, following))
    return cards


def read_cards(path: Path = CARDS_FILE) -> list[SoundCard]:
    try:
        return parse_cards(path.read_text(errors="replace"))
    except OSError:
        return []  # no ALSA in this kernel: only PCMs from the config can match


@dataclass(frozen=True, slots=True)
class PortAudioDevice:
    index: int
    name: str
    inputs: int
    outputs: int


@dataclass(frozen=True, slots=True)
class FoundDevice:
    """A configured device resolved to what PortAudio can open right now."""

    label: str  # the name people know it by (card name or PCM name)
    input_index: int | None
    output_index: int | None
    card: SoundCard | None

    @property
    def target(self) -> StreamTarget:
        return StreamTarget(self.label, self.input_index, self.output_index)


def match_device(
    wanted: str, devices: Iterable[PortAudioDevice], cards: Iterable[SoundCard]
) -> FoundDevice | None:
    """The device `wanted` names: a kernel card whose ID, name or long name contains it (its
    first PCM), else a PortAudio device (an ALSA PCM) whose name contains it. Case does not
    matter; an exact name wins over a substring."""
    key = wanted.strip().casefold()
    if not key:
        return None
    devices = list(devices)
    for card in _best(key, cards, lambda c: (c.id, c.name, c.long_name)):
        on_card = [d for d in devices if f"(hw:{card.number}," in d.name]
        if on_card:
            return _resolved(card.name, on_card, card)
    for device in _best(key, devices, lambda d: (d.name,)):
        return _resolved(device.name, [device], None)
    return None


def _best(key: str, items: Iterable[Any], names: Callable[[Any], tuple[str, ...]]) -> list[Any]:
    """Items with a name equal to `key` first, then those with a name containing it."""
    exact, partial = [], []
    for item in items:
        folded = [n.casefold() for n in names(item)]
        if key in folded:
            exact.append(item)
        elif any(key in n for n in folded):
            partial.append(item)
    return exact + partial


def _resolved(label: str, candidates: list[PortAudioDevice], card: SoundCard | None) -> FoundDevice:
    inputs = [d.index for d in candidates if d.inputs > 0]
    outputs = [d.index for d in candidates if d.outputs > 0]
    return FoundDevice(label, inputs[0] if inputs else None, outputs[0] if outputs else None, card)


# -- PortAudio, quietly -----------------------------------------------------------------------

_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """ALSA, JACK and PortAudio print their probing to stderr; none of it helps a user (the
    failure that matters comes back as an error we report)."""
    with _stderr_lock:
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class PortAudioHost:
    """PortAudio's lifetime: initialised afresh to look or to stream (it only sees the devices
    that existed when it was initialised), terminated in between: an initialised PortAudio holds
    ~11 MB (measured) that an idle phone does not need.

    Thread-safe: a scan may run in an executor while the loop wants to open streams.
    """

    def __init__(self) -> None:
        for name, value in PORTAUDIO_ENV.items():
            os.environ.setdefault(name, value)
        try:
            import pyaudio  # only here: the daemon loads PortAudio when a backend needs it
        except ImportError as err:
            raise HardwareError(
                "the alsa audio backend needs PyAudio (apt install portaudio19-dev, then "
                f"pip install PyAudio): {err}"
            ) from err
        self.module: Any = pyaudio
        self._portaudio: Any = None
        self.lock = threading.RLock()

    def refresh(self) -> list[PortAudioDevice]:
        """Initialise PortAudio afresh and list its devices."""
        with self.lock:
            self.close()
            with _stderr_silenced():
                self._portaudio = self.module.PyAudio()
            return self.devices()

    def devices(self) -> list[PortAudioDevice]:
        with self.lock:
            portaudio = self._portaudio
            if portaudio is None:
                return []
            found = []
            for index in range(portaudio.get_device_count()):
                info = portaudio.get_device_info_by_index(index)
                found.append(
                    PortAudioDevice(
                        index,
                        str(info["name"]),
                        int(info["maxInputChannels"]),
                        int(info["maxOutputChannels"]),
                    )
                )
            return found

    def streams(self) -> SoundStreams:
        with self.lock:
            if self._portaudio is None:
                self.refresh()
            return SoundStreams(self._portaudio, self.module, _stderr_silenced)

    def try_open(self, device: FoundDevice) -> str:
        """Open and close `device` once; '' if it works, else why not."""
        streams = self.streams()
        try:
            streams.open(device.target, capture_into=DriftBuffer(), play_from=DriftBuffer())
        except AudioStreamError as err:
            return str(err)
        finally:
            streams.close()
        return ""

    def close(self) -> None:
        with self.lock:
            if self._portaudio is not None:
                self._portaudio.terminate()
                self._portaudio = None


# -- hot-plug ---------------------------------------------------------------------------------

_IN_MODIFY = 0x002
_IN_CLOSE_WRITE = 0x008
_IN_MOVED_FROM = 0x040
_IN_MOVED_TO = 0x080
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_WATCH_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
_EVENT_HEADER = struct.Struct("iIII")


def alsa_config_files(environ: dict[str, str] | os._Environ[str] = os.environ) -> list[Path]:
    """The ALSA config files a PCM can be defined in: ALSA_CONFIG_PATH's list when it is set,
    else the system file and the user's ~/.asoundrc."""
    configured = environ.get("ALSA_CONFIG_PATH", "")
    if configured:
        return [Path(p) for p in configured.split(":") if p]
    return [p.expanduser() for p in DEFAULT_ALSA_CONFIGS]


class HotplugWatch:
    """inotify on /dev/snd and the ALSA config files; calls `changed()` on the loop.

    The watches are on directories (a file may be replaced by a rename, /dev/snd may not exist
    until the first card appears), filtered to the names that matter.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, changed: Callable[[], None], files: list[Path]
    ) -> None:
        self._loop = loop
        self._changed = changed
        self._fd = -1
        self._dirs: dict[int, tuple[Path, set[str] | None]] = {}
        self._files = files

    def start(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._libc = libc
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            log.warning("no hot-plug watch (inotify: %s); replug needs a restart", os.strerror(err))
            return
        self._fd = fd
        # Directory -> the names in it that matter (None: all). /dev/snd itself appears with
        # the first card, so /dev is watched for it.
        wanted: dict[Path, set[str] | None] = {DEV_SND.parent: {DEV_SND.name}}
        if DEV_SND.is_dir():
            wanted[DEV_SND] = None
        for path in self._files:
            names = wanted.setdefault(path.parent, set())
            if names is not None:
                names.add(path.name)
        for directory, names in wanted.items():
            handle = libc.inotify_add_watch(fd, os.fsencode(directory), _WATCH_MASK)
            if handle >= 0:
                self._dirs[handle] = (directory, names)
        self._loop.add_reader(fd, self._read)

    def _read(self) -> None:
        relevant = False
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError as err:
                if err.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset + _EVENT_HEADER.size <= len(chunk):
                handle, _mask, _cookie, length = _EVENT_HEADER.unpack_from(chunk, offset)
                start = offset + _EVENT_HEADER.size
                name = chunk[start : start + length].rstrip(b"\0").decode(errors="replace")
                offset = start + length
                directory, names = self._dirs.get(handle, (None, set()))
                if directory is not None and (names is None or name in names):
                    relevant = True
        if relevant:
            self._changed()

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1


# -- the devices the phone uses ---------------------------------------------------------------


class Presence(enum.Enum):
    UNKNOWN = "unknown"
    PRESENT = "present"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Scan:
    """What one look found: the handset (or why not) and the ringer, if configured."""

    handset: FoundDevice | None
    ringer: FoundDevice | None
    problem: str  # why the handset cannot be used; '' when it can


class SoundDevices:
    """Finds the handset and the optional ringer, tells the core when the handset comes and
    goes (`AudioDeviceChanged`), and opens their streams for the media bridge.

    Runs on the loop; scans (which initialise PortAudio, ~0.1-0.3 s) run in an executor.
    """

    def __init__(
        self,
        config: AudioConfig,
        loop: asyncio.AbstractEventLoop,
        post: Callable[[Event], None],
        host: PortAudioHost | None = None,
    ) -> None:
        self._config = config
        self._loop = loop
        self._post = post
        self._host = host or PortAudioHost()
        self._watch = HotplugWatch(loop, self._on_hotplug, alsa_config_files())
        self.handset: FoundDevice | None = None  # as the last scan found it
        self.ringer: FoundDevice | None = None
        self.presence = Presence.UNKNOWN
        self._streams: SoundStreams | None = None
        self._switch_interval = sys.getswitchinterval()
        self._settle: asyncio.TimerHandle | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = RETRY_MIN_SECONDS
        self._watchdog: asyncio.TimerHandle | None = None
        self._scanning: asyncio.Future[Scan] | None = None
        self._rescan = False
        self._closed = False

    # -- lifetime ---------------------------------------------------------------------------

    def start(self) -> None:
        """Look for the devices once (blocking: the first dial tone needs the answer) and start
        watching for changes."""
        self._apply(self._scan())
        self._watch.start()

    def close(self) -> None:
        self._closed = True
        for handle in (self._settle, self._retry, self._watchdog):
            if handle is not None:
                handle.cancel()
        self._watch.close()
        self.close_session()
        self._host.close()

    # -- sessions (the media bridge's streams) ------------------------------------------------

    def open_session(
        self, mic: DriftBuffer, earpiece: DriftBuffer, ringer: DriftBuffer | None
    ) -> bool:
        """Start the handset's streams (and the ringer's, when given and present).
        False, with the handset reported missing, if the handset cannot be opened."""
        if self.handset is None:
            return False
        with self._host.lock:
            # PortAudio afresh, and the names resolved again: indices change with the devices.
            devices, cards = self._host.refresh(), read_cards()
            handset = match_device(self._config.handset_device, devices, cards)
            if handset is None:
                self._host.close()
                self._lost("unplugged")
                return False
            self.handset = handset
            if self.ringer is not None:
                self.ringer = match_device(self._config.ringer_device, devices, cards)
            streams = self._host.streams()
            try:
                streams.open(handset.target, capture_into=mic, play_from=earpiece)
            except AudioStreamError as err:
                streams.close()
                self._host.close()
                self._lost(str(err))
                return False
            if ringer is not None and self.ringer is not None:
                try:
                    streams.open(self.ringer.target, capture_into=None, play_from=ringer)
                except AudioStreamError as err:
                    log.error("ringer: %s; ringing through the handset", err)
                    self.ringer = None  # until a scan finds it working again
                    self._schedule_scan(SETTLE_SECONDS)
        self._streams = streams
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SESSION_SWITCH_INTERVAL))
        self._watchdog = self._loop.call_later(WATCHDOG_SECONDS, self._watch_session)
        log.debug("sound streams open (%d ms periods)", PERIOD_FRAMES * 1000 // SAMPLE_RATE)
        return True

    def close_session(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        streams, self._streams = self._streams, None
        if streams is not None:
            # What the card went through, for the journal: an underrun is a gap in the
            # earpiece (an overflow one in the microphone) that no buffer of ours reports.
            # Info, not a warning: a clean test call counted 3, so a few flags mean little.
            calls, xruns = streams.calls, streams.xruns
            with self._host.lock:
                streams.close()
                self._host.close()
            sys.setswitchinterval(self._switch_interval)
            log.info(
                "sound streams closed: %d callbacks, %d flagged an underrun or overflow",
                calls,
                xruns,
            )
        if (self._rescan or self.presence is Presence.MISSING) and not self._closed:
            # Changes seen during the session, or a handset lost in it: look now.
            self._rescan = False
            self._schedule_scan(SETTLE_SECONDS)

    @property
    def session_open(self) -> bool:
        return self._streams is not None

    def _watch_session(self) -> None:
        """A stream that stopped by itself means its device failed or went away."""
        self._watchdog = None
        streams = self._streams
        if streams is None:
            return
        if not streams.healthy:
            self._lost("the sound device stopped (unplugged?)")
            return
        self._watchdog = self._loop.call_later(WATCHDOG_SECONDS, self._watch_session)

    # -- finding ----------------------------------------------------------------------------

    def _on_hotplug(self) -> None:
        log.debug("sound devices changed")
        self._schedule_scan(SETTLE_SECONDS)

    def _schedule_scan(self, delay: float) -> None:
        if self._settle is not None:
            self._settle.cancel()
        self._settle = self._loop.call_later(delay, self._begin_scan)

    def _begin_scan(self) -> None:
        self._settle = None
        if self._closed:
            return
        if self._streams is not None:
            # PortAudio cannot be re-initialised under open streams: check the handset's card
            # is still there now, look at everything else once the session closes.
            card = self.handset.card if self.handset is not None else None
            if card is not None and card.id not in {c.id for c in read_cards()}:
                self._lost("unplugged")
            elif not self._streams.healthy:
                self._lost("the sound device stopped (unplugged?)")
            else:
                self._rescan = True
            return
        if self._scanning is not None:
            self._rescan = True
            return
        self._scanning = self._loop.run_in_executor(None, self._scan)
        self._scanning.add_done_callback(self._scanned)

    def _scanned(self, future: asyncio.Future[Scan]) -> None:
        self._scanning = None
        if self._closed:
            return
        try:
            scan = future.result()
        except Exception:  # a scan must never take the phone down
            log.exception("looking for sound devices failed")
            scan = Scan(None, None, "could not look for sound devices")
        if self._streams is None:
            self._apply(scan)
        if self._rescan and self._streams is None:
            self._rescan = False
            self._schedule_scan(0.0)

    def _scan(self) -> Scan:
        """Initialise PortAudio afresh and resolve the configured names (any thread)."""
        config = self._config
        with self._host.lock:
            devices = self._host.refresh()
            cards = read_cards()
            handset = match_device(config.handset_device, devices, cards)
            ringer = (
                match_device(config.ringer_device, devices, cards) if config.ringer_device else None
            )
            if handset is None or handset.input_index is None or handset.output_index is None:
                self._host.close()
                if handset is None:
                    return Scan(None, ringer, f"{config.handset_device!r} not found")
                half = "microphone" if handset.input_index is None else "earpiece"
                return Scan(None, ringer, f"{handset.label} has no {half}")
            problem = self._host.try_open(handset)
            self._host.close()
            return Scan(None if problem else handset, ringer, problem)

    def _apply(self, scan: Scan) -> None:
        if self._config.ringer_device and (scan.ringer is None) != (self.ringer is None):
            if scan.ringer is None:
                log.warning(
                    "ringer %r not found: ringing through the handset", self._config.ringer_device
                )
            else:
                log.info("ringer: %s", scan.ringer.label)
        self.ringer = scan.ringer
        if scan.handset is not None:
            self.handset = scan.handset
            self._retry_delay = RETRY_MIN_SECONDS
            if self._retry is not None:
                self._retry.cancel()
                self._retry = None
            if self.presence is not Presence.PRESENT:
                self.presence = Presence.PRESENT
                log.info("handset: %s", scan.handset.label)
                self._post(AudioDeviceChanged(True, scan.handset.label))
            return
        self._lost(scan.problem)

    def _lost(self, reason: str) -> None:
        """The handset is unusable: tell the core once, and look again with backoff."""
        name = self.handset.label if self.handset is not None else self._config.handset_device
        self.handset = None
        if self.presence is not Presence.MISSING:
            self.presence = Presence.MISSING
            log.error("handset %s: %s", name, reason)
            self._post(AudioDeviceChanged(False, name, reason))
        if self._retry is None and not self._closed:
            self._retry = self._loop.call_later(self._retry_delay, self._retry_scan)
            self._retry_delay = min(RETRY_MAX_SECONDS, self._retry_delay * 2)

    def _retry_scan(self) -> None:
        self._retry = None
        if self.presence is Presence.MISSING and self._streams is None:
            self._schedule_scan(0.0)


# -- `deskphone audio list` -------------------------------------------------------------------


def describe_devices(handset: str = "", ringer: str = "") -> str:
    """What `deskphone audio list` prints: the kernel cards, the devices PortAudio can open,
    and which of them the configured names pick."""
    host = PortAudioHost()
    try:
        devices = host.refresh()
    finally:
        host.close()
    cards = read_cards()
    lines = ["sound cards (match by ID or name, never by number):"]
    lines += [f"  {c.number}: [{c.id}] {c.name} - {c.long_name}" for c in cards] or ["  none"]
    lines.append("devices PortAudio can open (directions: in/out channels):")
    lines += [f"  {d.name} ({d.inputs} in, {d.outputs} out)" for d in devices] or ["  none"]
    for role, wanted in (("handset", handset), ("ringer", ringer)):
        if not wanted:
            continue
        found = match_device(wanted, devices, cards)
        picked = found.label if found is not None else "nothing: not found"
        lines.append(f"{role} {wanted!r} -> {picked}")
    return "\n".join(lines)
