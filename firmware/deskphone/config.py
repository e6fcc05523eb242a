"""The phone's one config file: TOML read into frozen dataclasses, checked strictly.

As in Klipper, an unknown key is an error: a typo must not silently do nothing. Every problem in
the file is reported at once, each with its dotted key and its line, so one edit fixes them all.
Keys name array entries from 0, as TOML tools do: ``account[0].expiry`` is the first
``[[account]]``, ``audio.codecs[2]`` the third codec.

The schema is the dataclasses themselves: each field is annotated `Annotated[type, Setting(...)]`
(limits, choices, a one-line doc) and each section of `Config` carries a `Section`, so adding a
key is one line, and `describe_schema()` documents what the reader enforces from the same source.

Config is data: nothing here starts hardware or network. The only I/O is reading the file and
the password files it names.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import difflib
import hmac
import ipaddress
import math
import re
import shlex
import textwrap
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from deskphone.core.dialplan import (
    DEFAULT_DIGIT_MAP,
    DEFAULT_EMERGENCY_NUMBERS,
    DEFAULT_INTER_DIGIT_TIMEOUT,
    DialPlan,
    DigitMap,
)
from deskphone.errors import ConfigError, ConfigProblem

DEFAULT_CONFIG_PATH = Path("/etc/deskphone/deskphone.toml")

_T = TypeVar("_T")

#: Codecs the SIP stack can offer, spelled as pjsua2 names them.
CODECS = ("G722", "PCMA", "PCMU", "speex", "GSM", "iLBC")

MAX_ACCOUNTS = 8

#: Where battery readings can come from (see deskphone.hw.power).
POWER_SOURCES = ("none", "sysfs", "x728", "x1200", "waveshare", "pisugar3", "sim")


class Secret:
    """A password that prints as ``********`` in reprs, f-strings, logs and error messages.

    Only `reveal()` gives the value, so the one place that needs it (the SIP stack's digest
    credentials) says so in the code, and no careless log line can leak it.
    """

    __slots__ = ("_value",)
    MASK = "********"

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The password itself: pass it to the SIP stack, never to a log or a screen."""
        return self._value

    def __repr__(self) -> str:
        return self.MASK

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return self.MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class SipServer:
    """A registrar or proxy address, with host and port apart so the SIP layer need not re-parse.

    `port` None means the transport's default (5060, or 5061 for TLS).
    """

    host: str
    port: int | None = None
    scheme: str = "sip"

    FORM: ClassVar[str] = "sip:host[:port], sips:host[:port] or host[:port]"

    @classmethod
    def parse(cls, text: str) -> SipServer:
        """Read "sip:host[:port]", "sips:host[:port]" or "host[:port]"; ValueError says why not."""
        rest = text.strip()
        scheme = "sip"
        for prefix in ("sips:", "sip:"):
            if rest.lower().startswith(prefix):
                scheme, rest = prefix[:-1], rest[len(prefix) :]
                break
        if "@" in rest:
            raise ValueError("a server address has no user part: the user goes in 'user'")
        if ";" in rest or "?" in rest:
            raise ValueError("URI parameters are not supported (set 'transport' instead)")
        if rest.startswith("["):  # IPv6 literal: [2001:db8::1]:5060
            host, bracket, port_part = rest[1:].partition("]")
            if not bracket or not re.fullmatch(r"[0-9A-Fa-f:.]+", host) or ":" not in host:
                raise ValueError(f"{text!r} has a malformed IPv6 address; expected {cls.FORM}")
            if port_part and not port_part.startswith(":"):
                raise ValueError(f"unexpected {port_part!r} after the address")
            port_text = port_part[1:] if port_part else None
        else:
            host, colon, after = rest.partition(":")
            port_text = after if colon else None
            if not host:
                raise ValueError(f"the host is empty; expected {cls.FORM}")
            if not re.fullmatch(r"[A-Za-z0-9._-]+", host):
                raise ValueError(f"{host!r} is not a host name or IP address; expected {cls.FORM}")
        port = None
        if port_text is not None:
            if not re.fullmatch(r"[0-9]{1,5}", port_text) or not 1 <= int(port_text) <= 65535:
                raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
            port = int(port_text)
        return cls(host, port, scheme)

    @property
    def uri(self) -> str:
        """The address as a SIP URI, the form pjsua2 wants."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}:{host}{port}"

    def __str__(self) -> str:
        return self.uri


# --- validators: str -> value, raising ValueError with a message a person can act on ----------


def _sip_user(text: str) -> str:
    """The user part of sip:user@host; the characters that would break the URI are refused."""
    if re.search(r"[\s@:]", text):
        raise ValueError(
            f"{text!r} must not contain spaces, '@' or ':' (it is the USER of sip:USER@host)"
        )
    return text


def _tone_country(text: str) -> str:
    """A country with a tone plan, stored in the tone module's spelling ("gb" -> "UK")."""
    # Imported on use: the tone tables are only needed when a country is actually checked.
    from deskphone.core.tones import UnknownCountryError, canonical_country

    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise ValueError(f"{text!r} is not a two-letter country code such as 'US'")
    try:
        return canonical_country(text)
    except UnknownCountryError as err:
        raise ValueError(str(err)) from None


def _ip_address(text: str) -> str:
    """An IP address literal in its normal spelling, or "" for every address."""
    if not text:
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address such as '192.0.2.10'") from None


def _digit_map(text: str) -> DigitMap:
    """A parsed digit map; its error already names the position."""
    try:
        return DigitMap.parse(text)
    except ValueError as err:
        raise ValueError(f"not a valid digit map: {err}") from None


def _digits(text: str) -> str:
    """A number made of digits only, as emergency numbers are."""
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError(f"{text!r} is not a number made of digits 0-9")
    return text


def _read_secret_file(path: Path) -> Secret:
    """The first line of `path`, stripped: the password, kept out of the config file itself."""
    try:
        with path.open(encoding="utf-8") as file:
            first = file.readline().strip()
    except OSError as err:
        raise ValueError(f"cannot read {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not UTF-8 text") from None
    if not first:
        raise ValueError(f"{str(path)!r} is empty: its first line must be the password")
    return Secret(first)


# --- the schema, declared on the dataclasses ---------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """How one key is read, checked and documented: `Annotated[type, Setting(...)]` on a field.

    `min`/`max` bound numbers, the length of strings and the number of entries of lists.
    `convert` turns a checked string (or each list entry) into the stored value, raising
    ValueError. A field without a default is a required key. Relative paths are resolved
    against the config file's directory.
    """

    doc: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    convert: Callable[[str], Any] | None = None
    form: str | None = None  # how a converted string is written, for describe_schema()
    unique: bool = False
    hex: bool = False
    secret: bool = False  # never quote the value in a message
    default_doc: str | None = None  # a default that depends on other keys, in words


@dataclass(frozen=True)
class Section:
    """A table of the file (``[key]``), or with `many` an array of tables (``[[key]]``)."""

    key: str
    doc: str
    many: int = 0  # the most entries an array of tables may have; 0 for a single table


Problems = Iterator[tuple[str, str]]


class _Settled:
    """Base of the section dataclasses: the rules that join several keys of one section."""

    @classmethod
    def settle(cls, values: dict[str, Any]) -> Problems:
        """Complete `values` and yield (key, problem) for each rule broken.

        `values` holds the keys that were valid, with defaults filled in; it runs before the
        dataclass is built, so each rule checks that the keys it needs are there.
        """
        return iter(())


DEFAULT_STATE_DIR = Path("/var/lib/deskphone")
_DEFAULT_MAP = DigitMap(DEFAULT_DIGIT_MAP)


@dataclass(frozen=True)
class PhoneConfig(_Settled):
    """[phone]"""

    name: Annotated[str, Setting("shown on the idle screen", min=1, max=64)] = "deskphone"
    country: Annotated[
        str,
        Setting(
            "whose call-progress tones to play (dial tone, ringback, busy)",
            convert=_tone_country,
            form="two-letter country code",
        ),
    ] = "US"
    log_level: Annotated[
        str,
        Setting(
            "least severe journal messages kept", choices=("debug", "info", "warning", "error")
        ),
    ] = "info"
    state_dir: Annotated[Path, Setting("where the call log and state live")] = DEFAULT_STATE_DIR
    sip_port: Annotated[int, Setting("local SIP port; 0 picks any free port", min=0, max=65535)] = (
        5060
    )
    bind_address: Annotated[
        str,
        Setting(
            "local address to listen on; empty listens on all",
            convert=_ip_address,
            form="IP address or empty",
        ),
    ] = ""
    call_waiting: Annotated[
        bool, Setting("let a second caller knock during a call (off: they hear busy)")
    ] = True
    ended_display_seconds: Annotated[
        float, Setting("how long an ended call's reason stays on the screen", min=0.5, max=30)
    ] = 3.0


@dataclass(frozen=True)
class AccountConfig(_Settled):
    """[[account]]"""

    registrar: Annotated[
        SipServer,
        Setting("the registrar to register with", convert=SipServer.parse, form=SipServer.FORM),
    ]
    user: Annotated[
        str,
        Setting(
            "the USER of sip:USER@host",
            min=1,
            convert=_sip_user,
            form="non-empty string without spaces, '@' or ':'",
        ),
    ]
    auth_user: Annotated[
        str, Setting("user name for digest authentication", min=1, default_doc="same as user")
    ] = ""
    password: Annotated[
        Secret | None,
        Setting("password for digest authentication", min=1, convert=Secret, secret=True),
    ] = None
    password_file: Annotated[
        Path | None, Setting("file whose first line is the password, instead of password")
    ] = None
    display_name: Annotated[str, Setting("the name callees see", max=64)] = ""
    label: Annotated[
        str, Setting("the account's name on the screen", min=1, max=32, default_doc="same as user")
    ] = ""
    transport: Annotated[str, Setting("SIP transport", choices=("udp", "tcp", "tls"))] = "udp"
    outbound_proxy: Annotated[
        SipServer | None,
        Setting(
            "send every request through this proxy", convert=SipServer.parse, form=SipServer.FORM
        ),
    ] = None
    expiry: Annotated[
        int, Setting("registration lifetime asked for, in seconds", min=10, max=86400)
    ] = 300
    register_retry_min: Annotated[
        float,
        Setting("first wait before retrying a failed registration, seconds", min=0.5, max=600),
    ] = 2.0
    register_retry_max: Annotated[
        float,
        Setting("the longest wait between retries (the wait doubles), seconds", min=1, max=3600),
    ] = 300.0
    dtmf: Annotated[
        str, Setting("how key presses in a call are sent", choices=("rfc4733", "sip-info"))
    ] = "rfc4733"
    enabled: Annotated[bool, Setting("register and use this account")] = True
    voicemail: Annotated[
        str, Setting("number or SIP URI the voicemail key calls; empty: none", max=128)
    ] = ""
    mwi: Annotated[bool, Setting("subscribe to message-waiting notices (RFC 3842)")] = True

    def __post_init__(self) -> None:
        # Derived defaults live here so an AccountConfig built in code gets them too.
        for name in ("auth_user", "label"):
            if not getattr(self, name):
                object.__setattr__(self, name, self.user)

    @property
    def registrar_scheme(self) -> str:
        """ "sip" or "sips"; shorthand for the SIP layer."""
        return self.registrar.scheme

    @property
    def registrar_host(self) -> str:
        """The registrar's host (an IPv6 address without brackets)."""
        return self.registrar.host

    @property
    def registrar_port(self) -> int | None:
        """The registrar's port, or None for the transport's default."""
        return self.registrar.port

    @property
    def address(self) -> str:
        """user@host[:port], how the phone names the account in messages."""
        port = f":{self.registrar.port}" if self.registrar.port is not None else ""
        return f"{self.user}@{self.registrar.host}{port}"

    @classmethod
    def settle(cls, values: dict[str, Any]) -> Problems:
        path = values.get("password_file")
        if path is not None:
            if values.get("password") is not None:
                yield "password_file", "set either password or password_file, not both"
            else:
                try:
                    values["password"] = _read_secret_file(path)
                except ValueError as err:
                    yield "password_file", str(err)
        low, high = values.get("register_retry_min"), values.get("register_retry_max")
        if low is not None and high is not None and low > high:
            yield "register_retry_min", f"{low:g} exceeds register_retry_max ({high:g})"
        registrar = values.get("registrar")
        if (
            registrar is not None
            and registrar.scheme == "sips"
            and values.get("transport") != "tls"
        ):
            yield "transport", 'a sips: registrar needs transport = "tls"'


@dataclass(frozen=True)
class AudioConfig(_Settled):
    """[audio]"""

    codecs: Annotated[
        tuple[str, ...],
        Setting("codecs offered, preferred first", min=1, choices=CODECS, unique=True),
    ] = ("G722", "PCMA", "PCMU")
    backend: Annotated[
        str,
        Setting(
            "where call audio goes: alsa (the handset's sound card), files (WAVs) or null",
            choices=("alsa", "files", "null"),
        ),
    ] = "files"
    microphone_file: Annotated[
        Path | None,
        Setting("WAV file the files backend plays as the microphone, from its start at each call"),
    ] = None
    recordings_dir: Annotated[
        Path | None,
        Setting("directory where the files backend records what the earpiece hears, per call"),
    ] = None
    handset_device: Annotated[
        str,
        Setting(
            "alsa backend: the handset's ALSA card ID or name, or an ALSA PCM name (a part of "
            "it is enough, any case; never a card number, which changes between boots)",
            max=128,
        ),
    ] = ""
    ringer_device: Annotated[
        str,
        Setting("alsa backend: a separate ringer/loudspeaker device, named the same way", max=128),
    ] = ""
    handset_ring_level: Annotated[
        int,
        Setting(
            "alsa backend: ring volume through the handset without a ringer_device", min=0, max=10
        ),
    ] = 8

    @classmethod
    def settle(cls, values: dict[str, Any]) -> Problems:
        if values.get("backend") == "alsa" and not values.get("handset_device"):
            yield "handset_device", 'backend "alsa" needs handset_device (see deskphone audio list)'


@dataclass(frozen=True)
class DialplanConfig(_Settled):
    """[dialplan]"""

    digit_map: Annotated[
        DigitMap,
        Setting(
            "when a dialled number is complete (see deskphone.core.dialplan)",
            convert=_digit_map,
            form="MGCP digit map",
        ),
    ] = _DEFAULT_MAP
    inter_digit_timeout: Annotated[
        float, Setting("seconds to wait for another digit", min=1, max=30)
    ] = DEFAULT_INTER_DIGIT_TIMEOUT
    emergency_numbers: Annotated[
        tuple[str, ...],
        Setting(
            "always dialable, whatever the digit map says",
            min=1,
            convert=_digits,
            form="digit strings",
            unique=True,
        ),
    ] = DEFAULT_EMERGENCY_NUMBERS

    def to_dialplan(self) -> DialPlan:
        """The dial plan the phone core works with."""
        return DialPlan(self.digit_map, self.emergency_numbers, self.inter_digit_timeout)


@dataclass(frozen=True)
class HardwareConfig(_Settled):
    """[hardware]"""

    kit: Annotated[
        str,
        Setting("real pins or the simulator; auto picks pi on a Pi", choices=("auto", "pi", "sim")),
    ] = "auto"
    profile: Annotated[
        str, Setting("pin profile: a name from hardware/ or the path of a TOML file", min=1)
    ] = "reference"


@dataclass(frozen=True)
class DisplayConfig(_Settled):
    """[display]"""

    driver: Annotated[
        str,
        Setting(
            "OLED controller chip; profile: as the hardware profile says",
            choices=("profile", "ssd1306", "sh1106", "ssd1309"),
        ),
    ] = "profile"
    interface: Annotated[
        str,
        Setting(
            "how the display is wired; profile: as the hardware profile says",
            choices=("profile", "i2c", "spi"),
        ),
    ] = "profile"
    i2c_address: Annotated[
        int, Setting("I2C address of the display", min=0x03, max=0x77, hex=True)
    ] = 0x3C
    i2c_bus: Annotated[int, Setting("I2C bus number (/dev/i2c-N)", min=0, max=10)] = 1
    rotate: Annotated[int, Setting("quarter turns clockwise", min=0, max=3)] = 0
    contrast: Annotated[int, Setting("display contrast", min=0, max=255)] = 255
    dim_after: Annotated[
        float, Setting("idle seconds before the display dims; 0 never dims", min=0, max=3600)
    ] = 30.0
    dim_after_on_battery: Annotated[
        float, Setting("the same while on battery; 0 never dims", min=0, max=3600)
    ] = 10.0
    dim_contrast: Annotated[int, Setting("contrast while dimmed", min=0, max=255)] = 16
    pixel_shift_minutes: Annotated[
        float,
        Setting("minutes between 1-pixel moves of the picture (burn-in); 0 never", min=0, max=60),
    ] = 3.0


@dataclass(frozen=True)
class PowerConfig(_Settled):
    """[power]"""

    source: Annotated[
        str,
        Setting(
            "where battery readings come from: sysfs (/sys/class/power_supply), the Geekworm "
            "x728 or x1200, the waveshare UPS HAT, pisugar3, or sim (simulated)",
            choices=POWER_SOURCES,
        ),
    ] = "none"
    low_percent: Annotated[
        int, Setting("battery charge that shows a low-battery warning", min=1, max=100)
    ] = 20
    critical_percent: Annotated[
        int, Setting("battery charge at which the phone shuts down cleanly", min=0, max=100)
    ] = 5
    hysteresis_percent: Annotated[
        int,
        Setting(
            "how far the charge must climb back before the low warning can sound again",
            min=1,
            max=20,
        ),
    ] = 3
    grace_seconds: Annotated[
        float,
        Setting(
            "how long a call may go on once the battery is critical (emergency calls are "
            "never cut)",
            min=0,
            max=3600,
        ),
    ] = 120.0
    poweroff_command: Annotated[
        str, Setting("run to power the machine off when the battery is spent", min=1)
    ] = "systemctl poweroff"
    poll_seconds: Annotated[
        float, Setting("how often the gauge is read on mains, seconds", min=5, max=3600)
    ] = 60.0
    poll_seconds_on_battery: Annotated[
        float, Setting("how often the gauge is read on battery, seconds", min=1, max=600)
    ] = 10.0
    i2c_bus: Annotated[int, Setting("I2C bus of the UPS board (/dev/i2c-N)", min=0, max=10)] = 1
    i2c_address: Annotated[
        int,
        Setting(
            "I2C address of the UPS board; 0: its usual one (0x36, 0x42, 0x57)",
            min=0,
            max=0x77,
            hex=True,
        ),
    ] = 0
    battery_cells: Annotated[
        int,
        Setting("cells in series (waveshare); 0: 2 at address 0x42, 1 at 0x43", min=0, max=4),
    ] = 0
    power_loss_pin: Annotated[
        int,
        Setting(
            "GPIO of a power-loss signal; -1: the board's own (GPIO6 on x728 and x1200)",
            min=-1,
            max=27,
        ),
    ] = -1
    power_loss_active_high: Annotated[
        bool, Setting("a power_loss_pin of your own reads high when mains is lost")
    ] = True
    sysfs_battery: Annotated[
        str, Setting("which battery in /sys/class/power_supply; empty: the first one", max=64)
    ] = ""

    @classmethod
    def settle(cls, values: dict[str, Any]) -> Problems:
        low, critical = values.get("low_percent"), values.get("critical_percent")
        if low is not None and critical is not None and critical >= low:
            yield "critical_percent", f"{critical} must be below low_percent ({low})"
        command = values.get("poweroff_command")
        if command is not None:
            try:
                if not shlex.split(command):
                    yield "poweroff_command", "must name a command"
            except ValueError as err:
                yield "poweroff_command", f"cannot be split into words: {err}"


@dataclass(frozen=True)
class ControlConfig(_Settled):
    """[control]"""

    enabled: Annotated[bool, Setting("listen for commands on a unix socket")] = True
    socket: Annotated[
        Path | None,
        Setting(
            "the control socket (run as a user: $XDG_RUNTIME_DIR/deskphone/control.sock)",
            default_doc="/run/deskphone/control.sock",
        ),
    ] = None
    group: Annotated[
        str,
        Setting(
            "group allowed to use the socket (mode 0660)",
            max=32,
            default_doc="the daemon's own group",
        ),
    ] = ""


@dataclass(frozen=True)
class Config:
    """Everything the phone is told by its config file."""

    phone: Annotated[PhoneConfig, Section("phone", "the phone as a whole")] = field(
        default_factory=PhoneConfig
    )
    accounts: Annotated[
        tuple[AccountConfig, ...],
        Section(
            "account", "SIP accounts; the first enabled one places outgoing calls", MAX_ACCOUNTS
        ),
    ] = ()
    audio: Annotated[AudioConfig, Section("audio", "call audio")] = field(
        default_factory=AudioConfig
    )
    dialplan: Annotated[DialplanConfig, Section("dialplan", "when to dial what was keyed")] = field(
        default_factory=DialplanConfig
    )
    hardware: Annotated[HardwareConfig, Section("hardware", "which hardware to drive")] = field(
        default_factory=HardwareConfig
    )
    display: Annotated[DisplayConfig, Section("display", "the OLED display")] = field(
        default_factory=DisplayConfig
    )
    power: Annotated[PowerConfig, Section("power", "battery and UPS")] = field(
        default_factory=PowerConfig
    )
    control: Annotated[
        ControlConfig, Section("control", "the control socket (deskphone status, dial, ...)")
    ] = field(default_factory=ControlConfig)
    source: str = "<defaults>"

    @property
    def default_account(self) -> AccountConfig | None:
        """The account outgoing calls use unless told otherwise: the first enabled one."""
        return next((account for account in self.accounts if account.enabled), None)


def _annotated(cls: type, kind: type[_T]) -> Iterator[tuple[dataclasses.Field[Any], _T, Any]]:
    """Each field of `cls` annotated with a `kind` object: (field, that object, the bare type)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is Annotated:
            bare, *extras = typing.get_args(hint)
            for extra in extras:
                if isinstance(extra, kind):
                    yield f, extra, bare


def _sections() -> Iterator[tuple[str, Section, type]]:
    """(Config field name, Section, the section's dataclass) in file order."""
    for f, spec, hint in _annotated(Config, Section):
        yield f.name, spec, _shape(hint)[0]


def _settings(cls: type) -> Iterator[tuple[dataclasses.Field[Any], Setting, Any]]:
    """Each field of a section with its Setting and bare type hint."""
    return _annotated(cls, Setting)


def _shape(hint: Any) -> tuple[Any, bool]:
    """(the value's base type, whether it is a list) from a hint like `tuple[str, ...] | None`."""
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    return hint, False


# --- finding the line of a key -------------------------------------------------------------

Key = tuple[str | int, ...]


def _dotted(path: Key) -> str:
    """("account", 0, "expiry") -> "account[0].expiry"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


class _Locator:
    """Finds the line where a key, table or array entry is written.

    tomllib gives values, not positions, so this scans the text again. It only ever sees text
    that tomllib accepted, so it can be simple; still, a bug here must cost a line number, never
    the config, so a scan that trips over something stops and keeps what it found.
    """

    _BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

    def __init__(self, text: str) -> None:
        self._text = text
        self._i = 0
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines: dict[Key, int] = {}
        self._current: dict[Key, int] = {}  # array of tables -> index of its latest entry
        with contextlib.suppress(IndexError, ValueError):
            self._document()

    def line(self, path: Key) -> int | None:
        """The line of `path`, else of the nearest enclosing table or key that is written."""
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None

    def _line_at(self, index: int) -> int:
        return bisect.bisect_left(self._newlines, index) + 1

    def _record(self, path: Key, index: int) -> None:
        self._lines.setdefault(path, self._line_at(index))

    def _peek(self) -> str:
        return self._text[self._i]

    def _skip(self, blank: str = " \t") -> None:
        """Skip `blank` characters; with newlines in `blank`, comments too."""
        text = self._text
        while self._i < len(text):
            ch = text[self._i]
            if ch in blank:
                self._i += 1
            elif ch == "#" and "\n" in blank:
                end = text.find("\n", self._i)
                self._i = len(text) if end < 0 else end
            else:
                return

    def _document(self) -> None:
        table: Key = ()
        while True:
            self._skip(" \t\r\n")
            if self._i >= len(self._text):
                return
            if self._peek() == "[":
                table = self._header()
            else:
                self._pair(table)

    def _header(self) -> Key:
        start = self._i
        many = self._text.startswith("[[", self._i)
        self._i += 2 if many else 1
        parts = self._key()
        self._skip()
        self._i += 2 if many else 1
        if many:
            path = (*self._resolve(parts[:-1]), parts[-1])
            index = self._current[path] = self._current.get(path, -1) + 1
            path += (index,)
        else:
            path = self._resolve(parts)
        self._record(path, start)
        return path

    def _resolve(self, parts: tuple[str, ...]) -> Key:
        """Put in the index of each array of tables on the way: [account.sub] after the second
        [[account]] is ("account", 1, "sub")."""
        path: Key = ()
        for part in parts:
            path += (part,)
            if path in self._current:
                path += (self._current[path],)
        return path

    def _pair(self, table: Key) -> None:
        start = self._i
        path = table
        for part in self._key():
            path += (part,)
            self._record(path, start)
        self._skip()
        if self._peek() != "=":
            raise ValueError("expected '='")
        self._i += 1
        self._skip()
        self._value(path)

    def _key(self) -> tuple[str, ...]:
        parts = []
        while True:
            self._skip()
            if self._peek() in "\"'":
                start = self._i + 1
                self._string()
                parts.append(self._text[start : self._i - 1])
            else:
                match = self._BARE_KEY.match(self._text, self._i)
                if not match:
                    raise ValueError("expected a key")
                parts.append(match.group())
                self._i = match.end()
            self._skip()
            if self._i < len(self._text) and self._peek() == ".":
                self._i += 1
            else:
                return tuple(parts)

    def _value(self, path: Key) -> None:
        ch = self._peek()
        if ch in "\"'":
            self._string()
        elif ch == "[":
            self._array(path)
        elif ch == "{":
            self._inline_table(path)
        else:  # number, boolean or date: runs to a separator
            start = self._i
            while self._i < len(self._text) and self._peek() not in ",]}#\n":
                self._i += 1
            if self._i == start:
                raise ValueError("expected a value")

    def _string(self) -> None:
        text = self._text
        quote = text[self._i]
        delimiter = quote * 3 if text.startswith(quote * 3, self._i) else quote
        self._i += len(delimiter)
        while not text.startswith(delimiter, self._i):
            self._i += 2 if quote == '"' and text[self._i] == "\\" else 1
            if self._i >= len(text):
                raise ValueError("unterminated string")
        self._i += len(delimiter)
        # A multi-line string may end with up to two more quotes: """a""""" is 'a""'.
        while len(delimiter) == 3 and self._i < len(text) and text[self._i] == quote:
            self._i += 1

    def _array(self, path: Key) -> None:
        self._i += 1
        index = 0
        while True:
            self._skip(" \t\r\n")
            if self._peek() == "]":
                self._i += 1
                return
            self._record((*path, index), self._i)
            self._value((*path, index))
            self._skip(" \t\r\n")
            if self._peek() == ",":
                self._i += 1
            elif self._peek() != "]":
                raise ValueError("expected ',' or ']'")
            index += 1

    def _inline_table(self, path: Key) -> None:
        self._i += 1
        while True:
            self._skip(" \t\r\n")
            if self._peek() == "}":
                self._i += 1
                return
            self._pair(path)
            self._skip(" \t\r\n")
            if self._peek() == ",":
                self._i += 1


# --- reading and checking -----------------------------------------------------------------


class _InvalidValueError(Exception):
    """A value broke a rule; the message says which, for the problem list."""


_INVALID = object()


def _toml_type(value: object) -> str:
    """The TOML name of a parsed value's type, as the user wrote it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _got(value: object, secret: bool) -> str:
    """ "got a string ("300")": what was found instead, quoted unless secret or too big."""
    shown = _literal(value)
    if secret or isinstance(value, (list, dict)) or len(shown) > 40:
        return f"got {_toml_type(value)}"
    return f"got {_toml_type(value)} ({shown})"


def _number(value: float, hex_: bool = False) -> str:
    return f"0x{int(value):02X}" if hex_ else f"{value:g}"


def _span(s: Setting) -> str:
    """The limits of `s` in words: "10 to 86400", "at least 1", "at most 64"."""
    low = None if s.min is None else _number(s.min, s.hex)
    high = None if s.max is None else _number(s.max, s.hex)
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _check_limits(s: Setting, amount: float, unit: str = "") -> None:
    """Raise _InvalidValueError if `amount` (a number, length or count) is out of its limits."""
    if (s.min is not None and amount < s.min) or (s.max is not None and amount > s.max):
        if not unit:
            raise _InvalidValueError(f"must be {_span(s)}, not {_number(amount, s.hex)}")
        if amount == 0 and s.min == 1:
            raise _InvalidValueError("must not be empty")
        raise _InvalidValueError(f"must have {_span(s)} {unit}, not {amount:g}")


def _suggest(word: str, known: Iterable[str]) -> str:
    """ " (did you mean 'expiry'?)" for a near miss, else nothing."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Reader:
    """Turns tomllib's dict into a Config, collecting every problem on the way."""

    def __init__(self, text: str, base_dir: Path) -> None:
        self.problems: list[ConfigProblem] = []
        self._locator = _Locator(text)
        self._base_dir = base_dir

    def report(self, path: Key, message: str) -> None:
        self.problems.append(ConfigProblem(_dotted(path), message, self._locator.line(path)))

    def config(self, data: dict[str, Any], source: str) -> Config | None:
        sections = {spec.key: (name, spec, cls) for name, spec, cls in _sections()}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in sections:
                self.report((key,), f"unknown section {key!r}{_suggest(key, sections)}")
                continue
            name, spec, cls = sections[key]
            section = self._section_or_array(spec, cls, value)
            if section is not _INVALID:
                values[name] = section
        if self.problems:
            return None
        return Config(**values, source=source)

    def _section_or_array(self, spec: Section, cls: type, value: Any) -> Any:
        path: Key = (spec.key,)
        if not spec.many:
            if not isinstance(value, dict):
                self.report(path, f"expected a table [{spec.key}], {_got(value, True)}")
                return _INVALID
            return self._section(cls, value, path)
        if not isinstance(value, list):
            hint = (
                f"write [[{spec.key}]], not [{spec.key}]"
                if isinstance(value, dict)
                else _got(value, True)
            )
            self.report(path, f"expected an array of tables: {hint}")
            return _INVALID
        if len(value) > spec.many:
            self.report(
                (*path, spec.many),
                f"at most {spec.many} [[{spec.key}]] tables are allowed, not {len(value)}",
            )
        entries = []
        for index, entry in enumerate(value):
            if isinstance(entry, dict):
                entries.append(self._section(cls, entry, (*path, index)))
            else:
                self.report((*path, index), f"expected a table, {_got(entry, True)}")
                entries.append(_INVALID)
        if cls is AccountConfig:
            self._check_duplicate_accounts(path, entries)
        return tuple(entries) if _INVALID not in entries else _INVALID

    def _check_duplicate_accounts(self, path: Key, accounts: list[Any]) -> None:
        """Two entries for one user@registrar would register the same binding twice."""
        seen: dict[tuple[str, str, int | None], int] = {}
        for index, account in enumerate(accounts):
            if account is _INVALID:
                continue
            identity = (account.user, account.registrar.host.lower(), account.registrar.port)
            if identity in seen:
                self.report(
                    (*path, index),
                    f"same user and registrar ({account.address}) as "
                    f"{_dotted((*path, seen[identity]))}",
                )
            seen.setdefault(identity, index)

    def _section(self, cls: type, table: dict[str, Any], path: Key) -> Any:
        before = len(self.problems)
        known = {f.name: (f, s, hint) for f, s, hint in _settings(cls)}
        for key in table:
            if key not in known:
                self.report((*path, key), f"unknown key {key!r}{_suggest(key, known)}")
        values: dict[str, Any] = {}
        for name, (f, s, hint) in known.items():
            if name in table:
                value = self._setting(s, hint, table[name], (*path, name))
                if value is not _INVALID:
                    values[name] = value
            elif f.default is not dataclasses.MISSING:
                values[name] = f.default
            else:
                self.report((*path, name), "missing: this key is required")
        for name, message in cls.settle(values):  # type: ignore[attr-defined]
            self.report((*path, name), message)
        if len(self.problems) > before:
            return _INVALID
        return cls(**values)

    def _setting(self, s: Setting, hint: Any, value: Any, path: Key) -> Any:
        base, is_list = _shape(hint)
        try:
            if not is_list:
                return self._scalar(s, base, value)
            if not isinstance(value, list):
                raise _InvalidValueError(f"expected an array, {_got(value, s.secret)}")
            _check_limits(s, len(value), "entries")
        except _InvalidValueError as err:
            self.report(path, str(err))
            return _INVALID
        entries: list[Any] = []
        for index, entry in enumerate(value):
            try:
                entry = self._scalar(dataclasses.replace(s, min=None, max=None), base, entry)
                if s.unique and entry in entries:
                    raise _InvalidValueError(f"{_literal(entry)} is listed twice")
            except _InvalidValueError as err:
                self.report((*path, index), str(err))
                entry = _INVALID
            entries.append(entry)
        return _INVALID if _INVALID in entries else tuple(entries)

    def _scalar(self, s: Setting, base: Any, value: Any) -> Any:
        """Check one value against its type and Setting; return what the dataclass holds."""
        if base is bool:
            if not isinstance(value, bool):
                raise _InvalidValueError(
                    f"expected a boolean (true or false), {_got(value, s.secret)}"
                )
            return value
        if base is int or base is float:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (base is int and isinstance(value, float))
            ):
                kind = "an integer" if base is int else "a number"
                raise _InvalidValueError(f"expected {kind}, {_got(value, s.secret)}")
            if base is float:
                value = float(value)
                if not math.isfinite(value):
                    raise _InvalidValueError(f"must be a finite number, not {value}")
            _check_limits(s, value)
            return value
        if not isinstance(value, str):
            raise _InvalidValueError(f"expected a string, {_got(value, s.secret)}")
        _check_limits(s, len(value), "characters")
        if s.choices:
            canonical = {choice.lower(): choice for choice in s.choices}
            if value.lower() not in canonical:
                options = ", ".join(repr(choice) for choice in s.choices)
                raise _InvalidValueError(
                    f"must be one of {options}, not {value!r}{_suggest(value, s.choices)}"
                )
            value = canonical[value.lower()]
        if s.convert is not None:
            try:
                return s.convert(value)
            except ValueError as err:
                raise _InvalidValueError(str(err)) from None
        if base is Path:
            if not value:
                raise _InvalidValueError("must not be empty")
            return self._base_dir / value
        return value


def _literal(value: object) -> str:
    """`value` as it would be written in the TOML file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


# --- the public API -----------------------------------------------------------------------

_TOML_POSITION = re.compile(r" \(at line (\d+), column (\d+)\)$")
_TOML_AT_END = " (at end of document)"


def _syntax_problem(err: tomllib.TOMLDecodeError, text: str) -> ConfigProblem:
    """tomllib's message, with its position moved into the problem's line."""
    message = str(err)
    line = None
    found = _TOML_POSITION.search(message)
    if found:
        line = int(found[1])
        message = f"{message[: found.start()]} (column {found[2]})"
    elif message.endswith(_TOML_AT_END):
        line = text.count("\n") + 1
        message = f"{message[: -len(_TOML_AT_END)]} at the end of the file"
    return ConfigProblem("", f"TOML syntax error: {message}", line)


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None) -> Config:
    """Read a config from TOML text; raises ConfigError listing every problem found.

    Relative paths in the file are resolved against `base_dir`: by default the directory of
    `source` when it is a file name, else the current directory.
    """
    if base_dir is None:
        base_dir = Path.cwd() if source.startswith("<") else Path(source).absolute().parent
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(source, [_syntax_problem(err, text)]) from err
    reader = _Reader(text, base_dir)
    config = reader.config(data, source)
    if config is None or reader.problems:
        problems = sorted(reader.problems, key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(source, problems)
    return config


def load_config(path: Path) -> Config:
    """Read the config file at `path`; raises ConfigError if it is unreadable or invalid."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        problem = f"cannot read the config file: {err.strerror or err}"
        raise ConfigError(source, [ConfigProblem("", problem)]) from err
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM some Windows editors write
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(source, [ConfigProblem("", "not UTF-8 text", line)]) from err
    return parse_config(text, source, path.absolute().parent)


def default_config() -> Config:
    """The config of a phone with no file: no accounts, every key at its default."""
    return Config()


def _describe_string(s: Setting) -> str:
    if s.min == 1 and s.max is None:
        return "non-empty string"
    if s.min is None and s.max is None:
        return "string"
    return f"string of {_span(s)} characters"


def _describe_type(s: Setting, hint: Any) -> str:
    """The kind of value a key takes, with its limits, in words."""
    base, is_list = _shape(hint)
    if s.choices:
        kind = ("names from " if is_list else "one of ") + ", ".join(s.choices)
    elif s.form:
        kind = s.form
    elif base is bool:
        kind = "true or false"
    elif base is int or base is float:
        kind = f"{'integer' if base is int else 'number'}, {_span(s)}"
    elif base is Path:
        kind = "path"
    else:
        kind = "strings" if is_list else _describe_string(s)
    if is_list:
        rules = [rule for rule, on in (("non-empty", s.min), ("no repeats", s.unique)) if on]
        kind = f"list of {kind}" + (f" ({', '.join(rules)})" if rules else "")
    if s.secret:
        kind += ", never shown"
    return kind


def describe_schema() -> str:
    """Every section and key with its type, limits, default and doc, for check-config --explain."""
    out = [
        "The config file is TOML. Every key is optional unless marked required; relative paths",
        "are relative to the config file's directory.",
        "",
    ]
    for _, spec, cls in _sections():
        header = f"[[{spec.key}]]" if spec.many else f"[{spec.key}]"
        count = f" (0 to {spec.many} of them)" if spec.many else ""
        out.append(f"{header}  {spec.doc}{count}")
        for f, s, hint in _settings(cls):
            if f.default is dataclasses.MISSING:
                head = f"{f.name}  (required)"
            elif s.default_doc:
                head = f"{f.name}  (default: {s.default_doc})"
            elif f.default is None:
                head = f"{f.name}  (optional)"
            else:
                default = _number(f.default, True) if s.hex else _literal(f.default)
                head = f"{f.name} = {default}"
            out.append(f"  {head}")
            text = f"{_describe_type(s, hint)}: {s.doc}"
            out.append(textwrap.fill(text, 100, initial_indent=" " * 6, subsequent_indent=" " * 8))
        out.append("")
    return "\n".join(out)
