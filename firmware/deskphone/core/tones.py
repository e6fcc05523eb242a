# SPDX-License-Identifier: GPL-2.0-or-later
"""Call-progress tone plans per country, as data the audio layer renders.

A SIP phone has no exchange in front of it to play dial tone, ringback or busy; it has to make
them itself, and a user abroad or at home expects the tones of their own network. This module
only *describes* those tones (frequencies, cadence, level); the audio layer turns a description
into samples or into pjsua2 ToneGenerator digits. Keeping the description pure lets the tests
check a recorded tone against the same plan the phone played (see `Tone.on_at`).

Where the values come from (cited again next to each country):

* ITU-T E.180 (03/1998) and its Supplement 2, "Various tones used in national networks", as
  transcribed in the ITU Operational Bulletin annex (tones-0203) and in the zone tables of
  Asterisk's ``indications.conf`` and DAHDI's ``zonedata.c``, which both cite it.
* National specifications: BT SIN 350 (UK), the Japanese 事業用電気通信設備規則 別表第5号
  (Japan), ACIF S002:2001 (Australia, via Asterisk), the North American Precise Tone Plan
  (US levels).

Every cadence is a list of segments played in order; a continuous tone is one segment with no
pause that repeats. Levels are per frequency component, in dBm0; only the North American ones
come from a specification, the others are a moderate default the user's volume scales anyway.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from deskphone.errors import DeskphoneError

__all__ = [
    "Tone",
    "ToneName",
    "TonePlan",
    "ToneSegment",
    "UnknownCountryError",
    "available_countries",
    "canonical_country",
    "tone_plan",
]


class ToneName(StrEnum):
    """Every tone the phone can play; a plan must define all of them.

    The values are the lowercase names used in config files and on the control socket.
    """

    DIAL = "dial"
    RINGBACK = "ringback"
    BUSY = "busy"
    CONGESTION = "congestion"
    CALL_WAITING = "call_waiting"
    CONFIRMATION = "confirmation"
    RING = "ring"
    """The ringer for incoming calls: the cadence is national, the pitch is the phone's own."""
    KEY_CLICK = "key_click"
    """Key-press feedback: the same everywhere, it is a property of the phone, not the network."""
    ERROR = "error"
    """The special information tone (SIT) of E.180: 950, 1400, 1800 Hz rising."""


class UnknownCountryError(DeskphoneError, KeyError):
    """No tone plan exists for a country code; the message lists the codes that do exist.

    It is a KeyError so a lookup-style caller can catch it as one, and a DeskphoneError so the
    config checker reports it like every other mistake in the file.
    """

    def __str__(self) -> str:
        # KeyError.__str__ would print the repr of the message, quotes and all.
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ToneSegment:
    """One burst of tone followed by its pause.

    `frequencies` sound together (one or two of them). When `modulation_hz` is set, the burst is
    amplitude-modulated at that rate, as Japan's ringback is (400 Hz modulated by 16 Hz); two
    plain frequencies cannot reproduce that, so the renderer needs to be told. `gain_db` is
    relative to the tone's level, for the few cadences whose bursts differ in loudness.
    """

    frequencies: tuple[float, ...]
    on_ms: int
    off_ms: int = 0
    modulation_hz: float | None = None
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= len(self.frequencies) <= 2:
            raise ValueError(
                f"a tone segment has one or two frequencies, not {len(self.frequencies)}"
            )
        if any(f <= 0 for f in self.frequencies):
            raise ValueError(f"tone frequencies must be positive: {self.frequencies}")
        if self.on_ms <= 0:
            raise ValueError(f"a tone segment must sound for a positive time, not {self.on_ms} ms")
        if self.off_ms < 0:
            raise ValueError(f"a pause cannot be negative: {self.off_ms} ms")
        if self.modulation_hz is not None and self.modulation_hz <= 0:
            raise ValueError(f"modulation rate must be positive: {self.modulation_hz} Hz")

    @property
    def period_ms(self) -> int:
        """The burst and its pause together."""
        return self.on_ms + self.off_ms


@dataclass(frozen=True)
class Tone:
    """A cadence pattern, played once or repeated for as long as the phone wants it.

    A continuous tone is one segment with `off_ms == 0` and `repeat=True`; its `on_ms` is then
    just the length of one loop of the renderer and carries no meaning of its own.
    """

    name: ToneName
    segments: tuple[ToneSegment, ...]
    repeat: bool
    level_dbm0: float

    def __post_init__(self) -> None:
        if not self.segments:
            raise ValueError(f"tone {self.name} has no segments")

    @property
    def period_ms(self) -> int:
        """One cadence cycle; for a tone played once, its whole length."""
        return sum(segment.period_ms for segment in self.segments)

    @property
    def is_continuous(self) -> bool:
        """True when the tone never pauses, so a renderer may loop any slice of it."""
        return (
            self.repeat
            and all(segment.off_ms == 0 for segment in self.segments)
            and len({segment.frequencies for segment in self.segments}) == 1
        )

    @property
    def frequencies(self) -> tuple[float, ...]:
        """Every frequency the tone uses, ascending: what a detector should listen for."""
        return tuple(sorted({f for segment in self.segments for f in segment.frequencies}))

    def segment_at(self, t_ms: int) -> ToneSegment | None:
        """The segment sounding `t_ms` after the tone started, or None during a pause.

        Bursts are half-open intervals: at the exact end of a burst the pause has begun. A tone
        played once is silent for ever after its last pause.
        """
        if t_ms < 0:
            raise ValueError(f"time must not be negative: {t_ms} ms")
        period = self.period_ms
        if t_ms >= period:
            if not self.repeat:
                return None
            t_ms %= period
        for segment in self.segments:
            if t_ms < segment.on_ms:
                return segment
            t_ms -= segment.period_ms
            if t_ms < 0:
                return None
        return None  # unreachable: t_ms < period was established above

    def on_at(self, t_ms: int) -> tuple[float, ...]:
        """The frequencies sounding `t_ms` after the tone started; empty while silent.

        Tests use this to check a recorded tone's cadence against the plan the phone played.
        """
        segment = self.segment_at(t_ms)
        return segment.frequencies if segment is not None else ()


@dataclass(frozen=True)
class TonePlan:
    """All the tones of one country, complete: the phone never falls back to another plan."""

    country: str
    tones: Mapping[ToneName, Tone] = field(repr=False)

    def __post_init__(self) -> None:
        missing = [name.value for name in ToneName if name not in self.tones]
        if missing:
            raise ValueError(f"tone plan {self.country} lacks {', '.join(missing)}")
        wrong = [f"{key}->{tone.name}" for key, tone in self.tones.items() if key != tone.name]
        if wrong:
            raise ValueError(f"tone plan {self.country} files tones under the wrong name: {wrong}")
        # Plans are shared module-wide; a read-only view keeps one caller from changing
        # another's tones.
        object.__setattr__(self, "tones", MappingProxyType(dict(self.tones)))

    def tone(self, name: ToneName | str) -> Tone:
        """The tone called `name` (a ToneName or its lowercase value, e.g. "busy")."""
        try:
            key = ToneName(name.lower() if isinstance(name, str) else name)
        except ValueError:
            known = ", ".join(n.value for n in ToneName)
            raise KeyError(f"no tone called {name!r}; tones are: {known}") from None
        return self.tones[key]


# --- building blocks -------------------------------------------------------------------------
# Each country below is a few lines of data; these helpers hold the shapes they share.

Freqs = tuple[float, ...]

_LEVEL = -13.0
"""Default level per component (dBm0) where we have no national figure: moderate, and the
same as North American dial tone, so tones of different plans sound equally loud."""

_RINGER_FREQUENCIES: Freqs = (1000.0, 1250.0)
"""The ringer's own pitch: a major third, pleasant and clear of the speech band's low end.
Networks only dictate the ringing *cadence*, which each plan supplies."""

_RINGER_LEVEL = -10.0
_KEY_CLICK = ((1200.0,), 30)  # frequency, burst length in ms
_KEY_CLICK_LEVEL = -20.0

_SIT_FREQUENCIES: tuple[float, float, float] = (950.0, 1400.0, 1800.0)
_SIT_BURST_MS = 330
_SIT_SILENCE_MS = 1000


def _cadence(
    name: ToneName,
    freqs: Freqs,
    *on_off_ms: int,
    level: float = _LEVEL,
    repeat: bool = True,
    modulation_hz: float | None = None,
) -> Tone:
    """A tone whose bursts all share `freqs`; `on_off_ms` alternates burst, pause, burst, ...

    An odd count means the last burst has no pause; a single value is a continuous tone.
    """
    if not on_off_ms:
        raise ValueError(f"tone {name} needs at least one duration")
    pairs = list(on_off_ms) + ([0] if len(on_off_ms) % 2 else [])
    segments = tuple(
        ToneSegment(freqs, on, off, modulation_hz=modulation_hz)
        for on, off in zip(pairs[::2], pairs[1::2], strict=True)
    )
    return Tone(name, segments, repeat=repeat, level_dbm0=level)


def _continuous(name: ToneName, freqs: Freqs, level: float = _LEVEL) -> Tone:
    """A tone that sounds without a break until stopped (dial tone in most plans)."""
    return _cadence(name, freqs, 1000, level=level)


def _confirmation(freqs: Freqs, level: float = _LEVEL) -> Tone:
    """Three short bursts, once: the feature-confirmation pattern of the North American plan
    (Telcordia; Android's TONE_SUP_CONFIRM plays the same), in the national frequencies where
    a network defines no confirmation tone of its own."""
    return _cadence(
        ToneName.CONFIRMATION, freqs, 100, 100, 100, 100, 100, 100, level=level, repeat=False
    )


def _sit(gap_ms: int = 0) -> Tone:
    """The E.180 special information tone: three rising 330 ms bursts, then 1 s of silence.

    E.180 allows up to 30 ms of silence between the bursts; BT SIN 350 uses 15 ms.
    """
    *rising, last = _SIT_FREQUENCIES
    segments = (
        *(ToneSegment((f,), _SIT_BURST_MS, gap_ms) for f in rising),
        ToneSegment((last,), _SIT_BURST_MS, _SIT_SILENCE_MS),
    )
    return Tone(ToneName.ERROR, segments, repeat=True, level_dbm0=_LEVEL)


def _ring(*cadence_ms: int) -> Tone:
    """The ringer for incoming calls: the national ringing cadence in the ringer's pitch."""
    return _cadence(ToneName.RING, _RINGER_FREQUENCIES, *cadence_ms, level=_RINGER_LEVEL)


def _key_click() -> Tone:
    """A short tick: feedback that a key registered, quieter than any network tone."""
    freqs, on_ms = _KEY_CLICK
    return _cadence(ToneName.KEY_CLICK, freqs, on_ms, level=_KEY_CLICK_LEVEL, repeat=False)


def _plan(country: str, tones: Iterable[Tone]) -> TonePlan:
    """Adds the tones every plan shares (key click) and files the rest under their names."""
    by_name = {tone.name: tone for tone in tones}
    by_name.setdefault(ToneName.KEY_CLICK, _key_click())
    return TonePlan(country, by_name)


# --- national plans --------------------------------------------------------------------------


def _north_american(
    country: str, *, ringback: tuple[int, int], congestion: tuple[int, int]
) -> TonePlan:
    """The Precise Tone Plan, shared by the US and (with other timings) South Korea.

    Levels per component are the Precise Tone Plan's: dial -13, ringback -19, busy and
    reorder -24 dBm0. The ringer rings in step with the ringback cadence.
    """
    return _plan(
        country,
        [
            _continuous(ToneName.DIAL, (350.0, 440.0), level=-13.0),
            _cadence(ToneName.RINGBACK, (440.0, 480.0), *ringback, level=-19.0),
            _cadence(ToneName.BUSY, (480.0, 620.0), 500, 500, level=-24.0),
            _cadence(ToneName.CONGESTION, (480.0, 620.0), *congestion, level=-24.0),
            # 440 Hz for 0.3 s, repeated every 10 s (ANSI/IS-95 as listed by Android and Tizen;
            # Asterisk's zone table agrees).
            _cadence(ToneName.CALL_WAITING, (440.0,), 300, 9700, level=-13.0),
            _confirmation((350.0, 440.0), level=-13.0),
            _ring(*ringback),
            _sit(),
        ],
    )


def _us() -> TonePlan:
    # Precise Tone Plan: dial 350+440 continuous, ringback 440+480 2 s on 4 s off, busy
    # 480+620 0.5/0.5, reorder 480+620 0.25/0.25. Asterisk indications.conf, DAHDI
    # zonedata.c and Android's ToneGenerator (ANSI) all agree.
    return _north_american("US", ringback=(2000, 4000), congestion=(250, 250))


def _kr() -> TonePlan:
    # South Korea uses the North American frequencies with a 1 s on / 2 s off ringback
    # (Korean and Japanese Wikipedia, "통화연결음" / "呼出音"); busy 480+620 0.5/0.5 is also
    # listed for South Korea in the international busy-signal table at gato.intaa.net.
    # Congestion is 0.3 s on / 0.2 s off as E.180 Supplement 2 gives it; we found no second
    # source for it, nor a Korean call-waiting tone, so call waiting is the North American one.
    return _north_american("KR", ringback=(1000, 2000), congestion=(300, 200))


def _uk() -> TonePlan:
    # BT SIN 350, cross-checked with the University of York tone page (which quotes BT and
    # BS 6305). Dial tone is 350+450 Hz: Asterisk's and DAHDI's UK zones say 350+440 while
    # citing SIN 350, but SIN 350 and the York page both give 350+450; 350+440 is the North
    # American pair, so we take it as a slip in those tables.
    return _plan(
        "UK",
        [
            _continuous(ToneName.DIAL, (350.0, 450.0)),
            _cadence(ToneName.RINGBACK, (400.0, 450.0), 400, 200, 400, 2000),
            _cadence(ToneName.BUSY, (400.0,), 375, 375),
            # Equipment engaged tone: 400 on, 350 off, 225 on, 525 off; the 225 ms burst is 6 dB
            # louder than the 400 ms one (BS 6305, per the York page).
            Tone(
                ToneName.CONGESTION,
                (
                    ToneSegment((400.0,), 400, 350, gain_db=-6.0),
                    ToneSegment((400.0,), 225, 525),
                ),
                repeat=True,
                level_dbm0=_LEVEL,
            ),
            # SIN 350 call waiting: a 0.1 s burst every ~4 s (Asterisk/DAHDI UK zone). A Zyxel
            # gateway's UK table pauses 3 s instead; we follow the zone tables that cite SIN 350.
            _cadence(ToneName.CALL_WAITING, (400.0,), 100, 4000),
            # SIN 350 names 1400 Hz for confirming service requests (Asterisk's UK "confirm").
            _confirmation((1400.0,)),
            _ring(400, 200, 400, 2000),
            _sit(gap_ms=15),
        ],
    )


def _cept(
    country: str,
    *,
    freq: float = 425.0,
    dial: tuple[int, ...] = (1000,),
    ringback: tuple[int, int],
    busy: tuple[int, int],
    congestion: tuple[int, int],
    call_waiting: tuple[int, ...],
) -> TonePlan:
    """A single-frequency plan in the CEPT/ETSI style (425 Hz in most of Europe).

    These plans differ only in frequency and timings, so they share one shape; the ringer
    follows the national ringback cadence, as exchanges ring the bell in step with it.
    """
    freqs = (freq,)
    return _plan(
        country,
        [
            _cadence(ToneName.DIAL, freqs, *dial),
            _cadence(ToneName.RINGBACK, freqs, *ringback),
            _cadence(ToneName.BUSY, freqs, *busy),
            _cadence(ToneName.CONGESTION, freqs, *congestion),
            _cadence(ToneName.CALL_WAITING, freqs, *call_waiting),
            _confirmation(freqs),
            _ring(*ringback),
            _sit(),
        ],
    )


def _de() -> TonePlan:
    # E.180 Supplement 2, Germany: busy tone I 0.48/0.48, congestion tone I 0.24/0.24,
    # ringing tone I 1.0/4.0, call waiting tone I 0.2 on 0.2 off 0.2 on 5.0 off. The
    # supplement also lists 0.5/0.5 busy and 0.2/0.2 congestion (variant II); we take
    # variant I, which Asterisk and DAHDI use too.
    return _cept(
        "DE",
        ringback=(1000, 4000),
        busy=(480, 480),
        congestion=(240, 240),
        call_waiting=(200, 200, 200, 5000),
    )


def _fr() -> TonePlan:
    # France keeps 440 Hz instead of the ETSI 425 Hz (E.180 Supplement 2 via Asterisk/DAHDI):
    # ringback 1.5/3.5, busy 0.5/0.5, call waiting 0.3 s every 10 s. The supplement gives no
    # congestion tone; Asterisk uses 440 Hz 0.25/0.25 and so do we.
    return _cept(
        "FR",
        freq=440.0,
        ringback=(1500, 3500),
        busy=(500, 500),
        congestion=(250, 250),
        call_waiting=(300, 10000),
    )


def _it() -> TonePlan:
    # Italy's dial tone is not continuous: 0.2 on 0.2 off 0.6 on 1.0 off (E.180 Supplement 2
    # via Asterisk/DAHDI, both citing the ITU list); ringback 1/4, busy 0.5/0.5, congestion
    # 0.2/0.2, call waiting 0.4 on 0.1 off 0.25 on 0.1 off 0.15 on 14 off.
    return _cept(
        "IT",
        dial=(200, 200, 600, 1000),
        ringback=(1000, 4000),
        busy=(500, 500),
        congestion=(200, 200),
        call_waiting=(400, 100, 250, 100, 150, 14000),
    )


def _nl() -> TonePlan:
    # E.180 Supplement 2 via Asterisk/DAHDI: ringback 1/4, busy 0.5/0.5, congestion
    # 0.25/0.25, call waiting 0.5 s every 10 s. Older exchanges used 450 Hz; 425 Hz is the
    # current ETSI value.
    return _cept(
        "NL",
        ringback=(1000, 4000),
        busy=(500, 500),
        congestion=(250, 250),
        call_waiting=(500, 9500),
    )


def _cn() -> TonePlan:
    # China uses 450 Hz (E.180 Supplement 2 via Asterisk): ringback 1/4, busy 0.35/0.35,
    # congestion 0.7/0.7 (slower than busy, unlike most plans), call waiting 0.4 on 4 off.
    return _cept(
        "CN",
        freq=450.0,
        ringback=(1000, 4000),
        busy=(350, 350),
        congestion=(700, 700),
        call_waiting=(400, 4000),
    )


def _jp() -> TonePlan:
    # Japanese 事業用電気通信設備規則 別表第5号: dial tone 400 Hz continuous; ringback 400 Hz
    # modulated by a signal of 15 to 20 Hz. The ringback cadence, 1 s on 2 s off, is from
    # Asterisk's JP zone and the Japanese/Korean Wikipedia articles on ringback; busy 400 Hz
    # 0.5/0.5 from Asterisk and DAHDI. We modulate at 16 Hz, inside the legal range and the
    # rate Asterisk's JP zone uses. Japan has no separate congestion tone: the network plays
    # busy tone (Asterisk's JP zone does the same). Call waiting is 400 Hz x 16 Hz for 0.5 s
    # every 8.5 s per Asterisk's JP zone (written there as "400+16"); no second source found.
    modulated = 16.0
    return _plan(
        "JP",
        [
            _continuous(ToneName.DIAL, (400.0,)),
            _cadence(ToneName.RINGBACK, (400.0,), 1000, 2000, modulation_hz=modulated),
            _cadence(ToneName.BUSY, (400.0,), 500, 500),
            _cadence(ToneName.CONGESTION, (400.0,), 500, 500),
            _cadence(ToneName.CALL_WAITING, (400.0,), 500, 8000, modulation_hz=modulated),
            _confirmation((400.0,)),
            _ring(1000, 2000),
            _sit(),
        ],
    )


def _au() -> TonePlan:
    # ACIF S002:2001 as transcribed in Asterisk's AU zone. Dial and ringback are 425 Hz
    # modulated at 25 Hz, which the zone (and we) write as the equivalent pair 413+438 Hz:
    # two tones 25 Hz apart beat at 25 Hz around 425 Hz. Busy 425 Hz 0.375/0.375. Congestion
    # has busy's cadence with every other burst 10 dB quieter. Call waiting 0.2 on 0.2 off
    # 0.2 on 4.4 off (Asterisk; DAHDI's copy has a 0.1 s first burst).
    dual = (413.0, 438.0)
    return _plan(
        "AU",
        [
            _continuous(ToneName.DIAL, dual),
            _cadence(ToneName.RINGBACK, dual, 400, 200, 400, 2000),
            _cadence(ToneName.BUSY, (425.0,), 375, 375),
            Tone(
                ToneName.CONGESTION,
                (
                    ToneSegment((425.0,), 375, 375),
                    ToneSegment((425.0,), 375, 375, gain_db=-10.0),
                ),
                repeat=True,
                level_dbm0=_LEVEL,
            ),
            _cadence(ToneName.CALL_WAITING, (425.0,), 200, 200, 200, 4400),
            _confirmation((425.0,)),
            _ring(400, 200, 400, 2000),
            _sit(),
        ],
    )


_PLANS: dict[str, TonePlan] = {
    plan.country: plan
    for plan in (_au(), _cn(), _de(), _fr(), _it(), _jp(), _kr(), _nl(), _uk(), _us())
}

_ALIASES: dict[str, str] = {
    "GB": "UK",  # ISO 3166 says GB; people and BT say UK.
}


# --- public lookups --------------------------------------------------------------------------


def available_countries() -> list[str]:
    """The country codes with a tone plan, sorted; aliases such as "GB" are not listed."""
    return sorted(_PLANS)


def canonical_country(country: str) -> str:
    """The plan code for `country`, ignoring case and surrounding blanks ("gb" -> "UK").

    The config checker uses this to accept every spelling `tone_plan` accepts.
    """
    code = country.strip().upper()
    code = _ALIASES.get(code, code)
    if code not in _PLANS:
        known = ", ".join(available_countries())
        raise UnknownCountryError(
            f"no call-progress tone plan for country {country!r}; known countries: {known}"
            f" (GB is accepted for UK)"
        )
    return code


#: The ring the user picks changes the ringer's voice; the cadence stays the country's.
RING_VOICES: Mapping[str, tuple[float, ...]] = MappingProxyType(
    {
        "classic": _RINGER_FREQUENCIES,
        "soft": (440.0, 554.0),  # a major third low in the range: gentle in a quiet office
        "bright": (1400.0, 1750.0),  # high and sharp, heard across a workshop
        "chirp": (2000.0,),  # one high pitch, like an electronic bird-call ringer
    }
)


def ring_tone(ring: Tone, voice: str) -> Tone:
    """The national ring cadence sounded in the chosen voice (see `RING_VOICES`)."""
    frequencies = RING_VOICES[voice]
    return dataclasses.replace(
        ring,
        segments=tuple(
            dataclasses.replace(segment, frequencies=frequencies) for segment in ring.segments
        ),
    )


def tone_plan(country: str) -> TonePlan:
    """The tone plan of `country` (case-insensitive; "GB" means "UK").

    Raises UnknownCountryError, a KeyError, naming the known countries when there is none.
    """
    return _PLANS[canonical_country(country)]
