# SPDX-License-Identifier: GPL-2.0-or-later
"""The tone plans: complete, plausible, true to the national specs, and timed correctly."""

from __future__ import annotations

import pytest

from deskphone.core.tones import (
    Tone,
    ToneName,
    TonePlan,
    ToneSegment,
    UnknownCountryError,
    available_countries,
    canonical_country,
    tone_plan,
)
from deskphone.errors import DeskphoneError

COUNTRIES = available_countries()
ALL_TONES = [(country, name) for country in COUNTRIES for name in ToneName]


def _shape(tone: Tone) -> list[tuple[tuple[float, ...], int, int]]:
    """A tone's cadence as (frequencies, on, off) rows, the way the specs write it."""
    return [(s.frequencies, s.on_ms, s.off_ms) for s in tone.segments]


# --- coverage and plausibility ----------------------------------------------------------------


def test_available_countries_are_sorted_and_cover_the_required_ones() -> None:
    assert sorted(COUNTRIES) == COUNTRIES
    assert {"DE", "JP", "KR", "UK", "US"} <= set(COUNTRIES)
    assert {"AU", "CN", "FR", "IT", "NL"} <= set(COUNTRIES)


@pytest.mark.parametrize(("country", "name"), ALL_TONES)
def test_every_country_has_every_tone(country: str, name: ToneName) -> None:
    tone = tone_plan(country).tone(name)
    assert tone.name is name


@pytest.mark.parametrize(("country", "name"), ALL_TONES)
def test_frequencies_and_cadences_are_plausible(country: str, name: ToneName) -> None:
    tone = tone_plan(country).tone(name)
    for segment in tone.segments:
        assert 1 <= len(segment.frequencies) <= 2
        if name is not ToneName.RING:  # the ringer's pitch is the phone's own choice
            assert all(300 <= f <= 2000 for f in segment.frequencies), segment
        assert segment.on_ms > 0
        assert segment.off_ms >= 0
    assert tone.period_ms > 0
    assert -30.0 <= tone.level_dbm0 <= 0.0


@pytest.mark.parametrize("country", COUNTRIES)
def test_dial_tone_is_steady_except_where_a_nation_breaks_it(country: str) -> None:
    dial = tone_plan(country).tone(ToneName.DIAL)
    assert dial.is_continuous is (country != "IT")
    assert dial.repeat


@pytest.mark.parametrize("country", COUNTRIES)
def test_one_shot_and_repeating_tones(country: str) -> None:
    plan = tone_plan(country)
    once = {ToneName.CONFIRMATION, ToneName.KEY_CLICK}
    for name in ToneName:
        assert plan.tone(name).repeat is (name not in once), name


def test_key_click_is_the_same_everywhere() -> None:
    clicks = {tone_plan(country).tone(ToneName.KEY_CLICK) for country in COUNTRIES}
    assert len(clicks) == 1


@pytest.mark.parametrize("country", COUNTRIES)
def test_error_tone_is_the_rising_special_information_tone(country: str) -> None:
    sit = tone_plan(country).tone(ToneName.ERROR)
    assert [s.frequencies for s in sit.segments] == [(950.0,), (1400.0,), (1800.0,)]
    assert all(s.on_ms == 330 for s in sit.segments)
    assert sit.segments[-1].off_ms == 1000


@pytest.mark.parametrize("country", COUNTRIES)
def test_ringer_keeps_the_national_ringing_cadence(country: str) -> None:
    plan = tone_plan(country)
    ring, ringback = plan.tone(ToneName.RING), plan.tone(ToneName.RINGBACK)
    assert [(s.on_ms, s.off_ms) for s in ring.segments] == [
        (s.on_ms, s.off_ms) for s in ringback.segments
    ]


# --- known values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "name", "expected"),
    [
        ("US", ToneName.DIAL, [((350.0, 440.0), 1000, 0)]),
        ("US", ToneName.RINGBACK, [((440.0, 480.0), 2000, 4000)]),
        ("US", ToneName.BUSY, [((480.0, 620.0), 500, 500)]),
        ("US", ToneName.CONGESTION, [((480.0, 620.0), 250, 250)]),
        ("US", ToneName.CALL_WAITING, [((440.0,), 300, 9700)]),
        ("US", ToneName.CONFIRMATION, [((350.0, 440.0), 100, 100)] * 3),
        ("UK", ToneName.DIAL, [((350.0, 450.0), 1000, 0)]),
        ("UK", ToneName.RINGBACK, [((400.0, 450.0), 400, 200), ((400.0, 450.0), 400, 2000)]),
        ("UK", ToneName.BUSY, [((400.0,), 375, 375)]),
        ("UK", ToneName.CONGESTION, [((400.0,), 400, 350), ((400.0,), 225, 525)]),
        ("DE", ToneName.DIAL, [((425.0,), 1000, 0)]),
        ("DE", ToneName.RINGBACK, [((425.0,), 1000, 4000)]),
        ("DE", ToneName.BUSY, [((425.0,), 480, 480)]),
        ("DE", ToneName.CONGESTION, [((425.0,), 240, 240)]),
        ("JP", ToneName.DIAL, [((400.0,), 1000, 0)]),
        ("JP", ToneName.RINGBACK, [((400.0,), 1000, 2000)]),
        ("JP", ToneName.BUSY, [((400.0,), 500, 500)]),
        ("KR", ToneName.DIAL, [((350.0, 440.0), 1000, 0)]),
        ("KR", ToneName.RINGBACK, [((440.0, 480.0), 1000, 2000)]),
        ("KR", ToneName.BUSY, [((480.0, 620.0), 500, 500)]),
        ("KR", ToneName.CONGESTION, [((480.0, 620.0), 300, 200)]),
        ("FR", ToneName.RINGBACK, [((440.0,), 1500, 3500)]),
        ("IT", ToneName.DIAL, [((425.0,), 200, 200), ((425.0,), 600, 1000)]),
        ("CN", ToneName.CONGESTION, [((450.0,), 700, 700)]),
        ("AU", ToneName.RINGBACK, [((413.0, 438.0), 400, 200), ((413.0, 438.0), 400, 2000)]),
    ],
)
def test_known_values(country: str, name: ToneName, expected: list[object]) -> None:
    assert _shape(tone_plan(country).tone(name)) == expected


def test_japanese_ringback_is_modulated_at_16_hz() -> None:
    ringback = tone_plan("JP").tone(ToneName.RINGBACK)
    assert [s.modulation_hz for s in ringback.segments] == [16.0]
    assert tone_plan("JP").tone(ToneName.DIAL).segments[0].modulation_hz is None


def test_uk_equipment_engaged_tone_has_a_louder_second_burst() -> None:
    first, second = tone_plan("UK").tone(ToneName.CONGESTION).segments
    assert second.gain_db - first.gain_db == 6.0


def test_north_american_levels_follow_the_precise_tone_plan() -> None:
    plan = tone_plan("US")
    assert plan.tone(ToneName.DIAL).level_dbm0 == -13.0
    assert plan.tone(ToneName.RINGBACK).level_dbm0 == -19.0
    assert plan.tone(ToneName.BUSY).level_dbm0 == -24.0


# --- cadence timing -----------------------------------------------------------------------


def test_on_at_follows_the_us_ringback_cadence_across_boundaries() -> None:
    ringback = tone_plan("US").tone(ToneName.RINGBACK)
    assert ringback.period_ms == 6000
    assert ringback.on_at(0) == (440.0, 480.0)
    assert ringback.on_at(1999) == (440.0, 480.0)
    assert ringback.on_at(2000) == ()  # a burst ends exactly at on_ms
    assert ringback.on_at(5999) == ()
    assert ringback.on_at(6000) == (440.0, 480.0)  # repeats
    assert ringback.on_at(6000 * 100 + 2500) == ()


def test_on_at_walks_a_multi_segment_cadence() -> None:
    ringback = tone_plan("UK").tone(ToneName.RINGBACK)
    assert ringback.period_ms == 3000
    timeline = {
        0: True,
        399: True,
        400: False,
        599: False,
        600: True,
        999: True,
        1000: False,
        2999: False,
        3000: True,
        3600: True,
    }
    for t_ms, sounding in timeline.items():
        assert bool(ringback.on_at(t_ms)) is sounding, t_ms


def test_on_at_reports_which_frequency_of_a_sequence_sounds() -> None:
    sit = tone_plan("UK").tone(ToneName.ERROR)  # 330 on, 15 off, per burst
    assert sit.on_at(0) == (950.0,)
    assert sit.on_at(330) == ()
    assert sit.on_at(345) == (1400.0,)
    assert sit.on_at(690) == (1800.0,)
    assert sit.on_at(sit.period_ms) == (950.0,)


def test_continuous_tone_never_falls_silent() -> None:
    dial = tone_plan("DE").tone(ToneName.DIAL)
    assert all(dial.on_at(t) == (425.0,) for t in (0, 999, 1000, 1001, 3_600_000))


def test_one_shot_tone_stays_silent_after_its_end() -> None:
    confirmation = tone_plan("US").tone(ToneName.CONFIRMATION)
    assert confirmation.period_ms == 600
    assert confirmation.on_at(0) == (350.0, 440.0)
    assert confirmation.on_at(100) == ()
    assert confirmation.on_at(400) == (350.0, 440.0)
    assert confirmation.on_at(600) == ()
    assert confirmation.on_at(10_000) == ()


def test_on_at_rejects_negative_time() -> None:
    with pytest.raises(ValueError, match="negative"):
        tone_plan("US").tone(ToneName.BUSY).on_at(-1)


def test_frequencies_lists_every_component_once() -> None:
    assert tone_plan("US").tone(ToneName.BUSY).frequencies == (480.0, 620.0)
    assert tone_plan("FR").tone(ToneName.ERROR).frequencies == (950.0, 1400.0, 1800.0)


# --- lookups --------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["uk", "UK", "Uk", " gb ", "GB", "gb"])
def test_country_lookup_ignores_case_and_knows_gb_is_uk(spelling: str) -> None:
    assert tone_plan(spelling) is tone_plan("UK")
    assert canonical_country(spelling) == "UK"


def test_gb_is_an_alias_not_a_listed_country() -> None:
    assert "GB" not in COUNTRIES


def test_unknown_country_names_the_known_ones() -> None:
    with pytest.raises(KeyError) as caught:
        tone_plan("XX")
    assert isinstance(caught.value, UnknownCountryError)
    assert isinstance(caught.value, DeskphoneError)
    message = str(caught.value)
    assert "'XX'" in message
    assert ", ".join(COUNTRIES) in message


def test_tone_lookup_accepts_the_lowercase_name() -> None:
    plan = tone_plan("DE")
    assert plan.tone("busy") is plan.tone(ToneName.BUSY)
    assert plan.tone("CALL_WAITING") is plan.tone(ToneName.CALL_WAITING)
    with pytest.raises(KeyError, match="dial"):
        plan.tone("howler")


def test_plans_cannot_be_changed_by_a_caller() -> None:
    plan = tone_plan("US")
    with pytest.raises(TypeError):
        plan.tones[ToneName.BUSY] = plan.tone(ToneName.DIAL)  # type: ignore[index]


# --- the types guard their own invariants ---------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"frequencies": (), "on_ms": 100}, "one or two"),
        ({"frequencies": (1.0, 2.0, 3.0), "on_ms": 100}, "one or two"),
        ({"frequencies": (-425.0,), "on_ms": 100}, "positive"),
        ({"frequencies": (425.0,), "on_ms": 0}, "positive time"),
        ({"frequencies": (425.0,), "on_ms": 100, "off_ms": -1}, "negative"),
        ({"frequencies": (425.0,), "on_ms": 100, "modulation_hz": 0.0}, "modulation"),
    ],
)
def test_segment_rejects_nonsense(kwargs: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ToneSegment(**kwargs)  # type: ignore[arg-type]


def test_plan_must_be_complete() -> None:
    dial = tone_plan("DE").tone(ToneName.DIAL)
    with pytest.raises(ValueError, match="lacks"):
        TonePlan("XX", {ToneName.DIAL: dial})


def test_tone_needs_segments() -> None:
    with pytest.raises(ValueError, match="no segments"):
        Tone(ToneName.DIAL, (), repeat=True, level_dbm0=-13.0)
