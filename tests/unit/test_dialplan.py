"""The dial plan decides when a dialled number is complete; these tables are its spec."""

from __future__ import annotations

import pytest

from deskphone.core.dialplan import (
    DEFAULT_DIGIT_MAP,
    DialPlan,
    DigitMap,
    DigitMapError,
    Match,
)

FULL, EXT, PART, NONE = Match.FULL, Match.FULL_EXTENDABLE, Match.PARTIAL, Match.NONE

# A provider's plan: 4-digit extensions, national and international numbers, star codes.
OFFICE = "[2-9]xxx | 0[1-9]x. | 00x. | *xx | 112 | 911"


@pytest.mark.parametrize(
    ("digit_map", "digits", "expected"),
    [
        # Literals and 'x'.
        ("123", "", PART),
        ("123", "1", PART),
        ("123", "12", PART),
        ("123", "123", FULL),
        ("123", "1234", NONE),
        ("123", "124", NONE),
        ("1x3", "193", FULL),
        ("1X3", "193", FULL),
        ("x", "*", NONE),
        ("*#", "*#", FULL),
        # Sets and ranges.
        ("[2-9]", "1", NONE),
        ("[2-9]", "2", FULL),
        ("[2-9]", "9", FULL),
        ("[13-5]", "1", FULL),
        ("[13-5]", "2", NONE),
        ("[13-5]", "4", FULL),
        ("[0-9*#]", "#", FULL),
        ("[0-9*#]", "*", FULL),
        ("[*]", "5", NONE),
        # '.' repeats the element before it zero or more times.
        ("0x.", "0", EXT),
        ("0x.", "0123", EXT),
        ("0x.", "012*", NONE),
        ("0x.#", "0", PART),
        ("0x.#", "0#", FULL),
        ("0x.#", "0123#", FULL),
        ("1[2-3].4", "14", FULL),
        ("1[2-3].4", "12324", FULL),
        ("1[2-3].4", "1232", PART),
        ("x.", "", EXT),
        # Alternatives: the verdicts combine.
        ("12|123", "12", EXT),
        ("12|123", "123", FULL),
        ("12|34", "3", PART),
        ("(12|34)", "34", FULL),
        ("( 1 2 | 3\t4 )", "12", FULL),
    ],
)
def test_digit_map_match(digit_map: str, digits: str, expected: Match) -> None:
    assert DigitMap.parse(digit_map).match(digits) is expected


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("", PART),
        ("2", PART),
        ("234", PART),
        ("2345", FULL),
        ("23456", NONE),
        ("1", PART),  # 112
        ("11", PART),
        ("112", FULL),
        ("113", NONE),
        ("9", PART),
        ("911", EXT),  # also the start of extension 911x
        ("9110", FULL),
        ("0", PART),
        ("01", EXT),
        ("0171234567", EXT),
        ("00", EXT),
        ("0049", EXT),
        ("*", PART),
        ("*72", FULL),
        ("*723", NONE),
        ("#", NONE),
        ("2#", NONE),
    ],
)
def test_realistic_office_map(digits: str, expected: Match) -> None:
    assert DigitMap.parse(OFFICE).match(digits) is expected


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("", PART),
        ("5", EXT),
        ("0049301234", EXT),
        ("*72", EXT),
        ("*72#", NONE),
        ("0301234#", NONE),
        ("#", NONE),
        ("12#3", NONE),
        ("12##", NONE),
    ],
)
def test_default_map_dials_any_digits_on_timeout(digits: str, expected: Match) -> None:
    assert DigitMap.parse(DEFAULT_DIGIT_MAP).match(digits) is expected


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("", 1, "empty digit map"),
        ("   ", 1, "empty digit map"),
        ("12[3", 3, "unbalanced '['"),
        ("12[3|4]", 3, "unbalanced '['"),
        ("[1[2]]", 1, "unbalanced '['"),
        ("12]", 3, "unbalanced ']'"),
        ("(12|3", 1, "unbalanced '('"),
        ("12|3)", 5, "parentheses may only wrap the whole map"),
        ("1(2)", 2, "parentheses may only wrap the whole map"),
        ("|12", 1, "empty alternative"),
        ("12||3", 4, "empty alternative"),
        ("12|", 4, "empty alternative"),
        ("()", 2, "empty alternative"),
        (".12", 1, "'.' with nothing before it"),
        ("1|.2", 3, "'.' with nothing before it"),
        ("1x..", 4, "'.' after '.'"),
        ("[]", 1, "empty set"),
        ("[9-2]", 4, "bad range 9-2"),
        ("[-2]", 2, "bad range"),
        ("[2-]", 2, "bad range"),
        ("[2-", 2, "bad range"),
        ("[*-5]", 2, "bad range"),
        ("[x]", 2, "'x' is not allowed inside [...]"),
        ("12a", 3, "unknown character 'a'"),
        ("1 2 A", 5, "unknown character 'A'"),
        ("0x.T", 4, "timer 'T' is not supported"),
    ],
)
def test_parse_errors_name_position_and_problem(text: str, position: int, problem: str) -> None:
    with pytest.raises(ValueError, match=rf"^position {position}: ") as caught:
        DigitMap.parse(text)
    assert isinstance(caught.value, DigitMapError)
    assert caught.value.position == position
    assert problem in str(caught.value)


def test_digit_map_is_a_value() -> None:
    assert DigitMap.parse("12|3") == DigitMap("12|3")
    assert str(DigitMap("12|3")) == "12|3"


@pytest.mark.parametrize(
    ("digits", "expected"),
    [
        ("1", PART),
        ("11", PART),
        ("112", FULL),
        ("911", FULL),
        ("9", PART),
        ("999", NONE),
        ("0", EXT),
        ("0123", EXT),
    ],
)
def test_emergency_numbers_are_dialable_whatever_the_map_says(digits: str, expected: Match) -> None:
    plan = DialPlan(DigitMap("0x."))
    assert plan.digit_map.match("112") is NONE  # the map alone rejects it
    assert plan.match(digits) is expected


def test_emergency_number_extended_by_the_map_or_a_longer_one_waits_for_the_timer() -> None:
    plan = DialPlan(DigitMap("[2-9]xxx"), emergency_numbers=("11", "112", "999"))
    assert plan.match("11") is EXT
    assert plan.match("112") is FULL
    assert plan.match("999") is EXT  # extension 9990 could follow
    assert plan.match("9990") is FULL


def test_default_dial_plan() -> None:
    plan = DialPlan()
    assert plan.digit_map == DigitMap(DEFAULT_DIGIT_MAP)
    assert plan.emergency_numbers == ("112", "911")
    assert plan.inter_digit_timeout == 4.0
    assert plan.match("112") is EXT
    assert plan.match("#") is NONE


@pytest.mark.parametrize(
    ("number", "expected"),
    [("112", True), ("911", True), ("11", False), ("1120", False), ("112#", False)],
)
def test_is_emergency(number: str, expected: bool) -> None:
    assert DialPlan().is_emergency(number) is expected


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"emergency_numbers": ()}, "at least one emergency number"),
        ({"emergency_numbers": ("112", "")}, "not a string of keypad keys"),
        ({"emergency_numbers": ("1x2",)}, "not a string of keypad keys"),
        ({"inter_digit_timeout": 0}, "must be positive"),
        ({"inter_digit_timeout": float("nan")}, "must be positive"),
    ],
)
def test_dial_plan_rejects_bad_values(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        DialPlan(**kwargs)  # type: ignore[arg-type]


def test_dial_plan_stores_numbers_as_a_tuple() -> None:
    plan = DialPlan(emergency_numbers=["112"])  # type: ignore[arg-type]
    assert plan.emergency_numbers == ("112",)


@pytest.mark.parametrize(
    ("match", "matched", "extendable"),
    [(FULL, True, False), (EXT, True, True), (PART, False, True), (NONE, False, False)],
)
def test_match_facts_round_trip(match: Match, matched: bool, extendable: bool) -> None:
    assert (match.matched, match.extendable) == (matched, extendable)
    assert Match.of(matched, extendable) is match
