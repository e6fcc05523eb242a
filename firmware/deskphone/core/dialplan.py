"""Digit maps and the dial plan: has the user dialled enough to place the call?

A desk phone has no reliable "send" key, so after every key press it must decide whether to dial
now, wait for the inter-digit timer, wait for more digits or give up. Desk phones and their
provisioning systems describe that decision with MGCP digit maps (RFC 3435, section 2.1.5), so we
accept the same notation and a user can paste the map their provider publishes.

The subset we accept:

* alternatives separated by ``|``, the whole map optionally wrapped in ``( )``;
* ``0``-``9``, ``*`` and ``#`` match themselves; ``x`` (or ``X``) matches any digit 0-9;
* ``[...]`` matches one of a set: digits, ``*``, ``#`` and ranges such as ``2-9``
  (``[2-9]``, ``[0-9*#]``, ``[13-5]``);
* ``.`` means zero or more of the element before it (``0x.`` is ``0`` then any number of digits);
* whitespace is ignored anywhere.

Not supported: the timer letter ``T`` (our inter-digit timeout is a setting of its own) and the
DTMF letters ``A``-``D`` (a desk phone keypad has no such keys).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

#: The keys a phone keypad can dial.
DIALABLE = frozenset("0123456789*#")

#: Any non-empty run of digits and ``*`` is dialled when the inter-digit timer runs out. ``#`` is
#: not part of any number in this plan: the phone treats it as the "dial now" key. A plan whose
#: patterns end in ``#`` (feature codes such as ``*72#``) keeps the ``#`` in those numbers.
DEFAULT_DIGIT_MAP = "[0-9*][0-9*]."

#: Dialable whatever the digit map says: the EU / GSM and the North American numbers.
DEFAULT_EMERGENCY_NUMBERS: tuple[str, ...] = ("112", "911")

#: Seconds without a key press after which a complete but extendable number is dialled.
DEFAULT_INTER_DIGIT_TIMEOUT = 4.0

_DIGITS = frozenset("0123456789")


class Match(enum.Enum):
    """What the digits dialled so far mean for the phone."""

    #: A pattern matches and no longer string could match any pattern: dial at once.
    FULL = "full"
    #: A pattern matches but more digits could match too: dial when the inter-digit timer expires.
    FULL_EXTENDABLE = "full-extendable"
    #: The digits begin some pattern: wait for more.
    PARTIAL = "partial"
    #: No pattern can ever match, whatever follows: the number is not in the dial plan.
    NONE = "none"

    @classmethod
    def of(cls, matched: bool, extendable: bool) -> Match:
        """The verdict from its two facts; combining maps is then an `or` of each fact."""
        if matched:
            return cls.FULL_EXTENDABLE if extendable else cls.FULL
        return cls.PARTIAL if extendable else cls.NONE

    @property
    def matched(self) -> bool:
        """The digits so far form a number that may be dialled."""
        return self in (Match.FULL, Match.FULL_EXTENDABLE)

    @property
    def extendable(self) -> bool:
        """Another key press could still lead to a match."""
        return self in (Match.FULL_EXTENDABLE, Match.PARTIAL)


class DigitMapError(ValueError):
    """A digit map that cannot be parsed; `position` (1-based) points at the culprit."""

    def __init__(self, position: int, problem: str) -> None:
        self.position = position
        self.problem = problem
        super().__init__(f"position {position}: {problem}")


@dataclass(frozen=True)
class _Element:
    """One position of a pattern: the keys it accepts, and whether `.` repeats it."""

    keys: frozenset[str]
    repeat: bool = False


_Pattern = tuple[_Element, ...]


def _parse(text: str) -> tuple[_Pattern, ...]:
    """Parse a digit map into patterns, raising DigitMapError at the first problem."""
    # (1-based position, character) with whitespace dropped: positions still point into `text`.
    chars = [(pos, ch) for pos, ch in enumerate(text, 1) if not ch.isspace()]
    if not chars:
        raise DigitMapError(1, "empty digit map")
    end = len(text) + 1
    if chars[0][1] == "(":
        if chars[-1][1] != ")":
            raise DigitMapError(chars[0][0], "unbalanced '(': the map has no closing ')'")
        end = chars[-1][0]
        chars = chars[1:-1]

    patterns: list[_Pattern] = []
    current: list[_Element] = []
    i = 0
    while i < len(chars):
        pos, ch = chars[i]
        i += 1
        if ch == "|":
            if not current:
                raise DigitMapError(pos, "empty alternative before '|'")
            patterns.append(tuple(current))
            current = []
        elif ch == ".":
            if not current:
                raise DigitMapError(pos, "'.' with nothing before it to repeat")
            if current[-1].repeat:
                raise DigitMapError(pos, "'.' after '.': it must follow a key, 'x' or [...]")
            current[-1] = _Element(current[-1].keys, repeat=True)
        elif ch == "[":
            keys, i = _parse_set(chars, i, pos)
            current.append(_Element(keys))
        elif ch in "xX":
            current.append(_Element(_DIGITS))
        elif ch in DIALABLE:
            current.append(_Element(frozenset(ch)))
        else:
            raise DigitMapError(pos, _unexpected(ch))
    if not current:
        raise DigitMapError(end, "empty alternative at the end of the map")
    patterns.append(tuple(current))
    return tuple(patterns)


def _parse_set(chars: list[tuple[int, str]], i: int, opened_at: int) -> tuple[frozenset[str], int]:
    """Parse the inside of ``[...]`` from index `i`; return its keys and the index after ``]``."""
    keys: set[str] = set()
    while i < len(chars):
        pos, ch = chars[i]
        i += 1
        if ch == "]":
            if not keys:
                raise DigitMapError(opened_at, "empty set '[]'")
            return frozenset(keys), i
        if ch == "-":
            raise DigitMapError(pos, "bad range: '-' needs a digit before it")
        if ch in "[|()":
            raise DigitMapError(opened_at, f"unbalanced '[': found {ch!r} before ']'")
        if ch in ".xX":
            raise DigitMapError(pos, f"{ch!r} is not allowed inside [...]")
        if ch not in DIALABLE:
            raise DigitMapError(pos, _unexpected(ch))
        if i < len(chars) and chars[i][1] == "-":
            high_pos = chars[i + 1][0] if i + 1 < len(chars) else chars[i][0]
            high = chars[i + 1][1] if i + 1 < len(chars) else ""
            if ch not in _DIGITS or high not in _DIGITS:
                raise DigitMapError(pos, f"bad range {ch}-{high}: ranges join two digits")
            if high < ch:
                raise DigitMapError(high_pos, f"bad range {ch}-{high}: {high} is below {ch}")
            keys.update(str(d) for d in range(int(ch), int(high) + 1))
            i += 2
        else:
            keys.add(ch)
    raise DigitMapError(opened_at, "unbalanced '[': no closing ']'")


def _unexpected(ch: str) -> str:
    """Say why a character is not allowed, pointing at what to write instead when we know."""
    if ch == "]":
        return "unbalanced ']': no '[' before it"
    if ch in "()":
        return f"{ch!r} out of place: parentheses may only wrap the whole map"
    if ch in "tT":
        return "the timer 'T' is not supported: set the inter-digit timeout instead"
    return f"unknown character {ch!r}"


def _run(pattern: _Pattern, digits: str) -> set[int]:
    """Simulate the pattern as an NFA; a state is the index of the next element to match."""
    states = _closure(pattern, {0})
    for key in digits:
        moved = set()
        for state in states:
            if state < len(pattern) and key in pattern[state].keys:
                moved.add(state if pattern[state].repeat else state + 1)
        if not moved:
            return moved
        states = _closure(pattern, moved)
    return states


def _closure(pattern: _Pattern, states: set[int]) -> set[int]:
    """Add the states reachable by letting repeated elements match nothing."""
    reached = set(states)
    for state in states:
        while state < len(pattern) and pattern[state].repeat:
            state += 1
            reached.add(state)
    return reached


@dataclass(frozen=True)
class DigitMap:
    """A parsed digit map; constructing one from bad text raises DigitMapError (a ValueError)."""

    text: str
    _patterns: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", _parse(self.text))

    @classmethod
    def parse(cls, text: str) -> DigitMap:
        """Parse `text`, raising ValueError naming the position and the problem."""
        return cls(text)

    def match(self, digits: str) -> Match:
        """How `digits` (keys dialled so far) stand against every pattern of the map."""
        matched = extendable = False
        for pattern in self._patterns:
            states = _run(pattern, digits)
            matched = matched or len(pattern) in states
            extendable = extendable or any(state < len(pattern) for state in states)
        return Match.of(matched, extendable)

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class DialPlan:
    """The digit map plus what no map may take away: the emergency numbers.

    The emergency numbers join the map as extra alternatives, so they are always dialable (a
    user's map, or a provider's, cannot lock out 112) and their prefixes always wait for more.
    """

    digit_map: DigitMap = field(default_factory=lambda: DigitMap(DEFAULT_DIGIT_MAP))
    emergency_numbers: tuple[str, ...] = DEFAULT_EMERGENCY_NUMBERS
    inter_digit_timeout: float = DEFAULT_INTER_DIGIT_TIMEOUT
    _emergency_map: DigitMap = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        numbers = tuple(self.emergency_numbers)
        if not numbers:
            raise ValueError("a dial plan needs at least one emergency number")
        for number in numbers:
            if not number or not set(number) <= DIALABLE:
                raise ValueError(f"emergency number {number!r} is not a string of keypad keys")
        if not (math.isfinite(self.inter_digit_timeout) and self.inter_digit_timeout > 0):
            raise ValueError(f"inter-digit timeout must be positive: {self.inter_digit_timeout}")
        object.__setattr__(self, "emergency_numbers", numbers)
        # Keypad keys are literals in digit-map syntax, so the numbers form a map of their own.
        object.__setattr__(self, "_emergency_map", DigitMap("|".join(numbers)))

    def match(self, digits: str) -> Match:
        """Like DigitMap.match, with every emergency number an alternative of the map."""
        ours = self.digit_map.match(digits)
        emergency = self._emergency_map.match(digits)
        return Match.of(ours.matched or emergency.matched, ours.extendable or emergency.extendable)

    def is_emergency(self, number: str) -> bool:
        """Whether `number` is exactly an emergency number, which the phone gives priority."""
        return number in self.emergency_numbers
