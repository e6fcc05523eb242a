"""The simulator's front end: the computer's keyboard presses keys on the simulated keypad (so
the real scanning code runs) and the OLED's pixels are drawn in the terminal.

The picture is exact, one character per 1x2 pixels ("▀", "▄", "█", " ") when the terminal is
at least 130 columns wide, else one braille character per 2x4 pixels, so it fits 80x24 too.
Either way `decode_picture` reads the pixels back from the text (tmux capture-pane), which is
how the simulator's test checks what the OLED shows. Under the picture: the screen in words,
the LEDs, the display's brightness, the audio in use and the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import termios
import tty
from collections import deque
from collections.abc import Callable, Sequence
from typing import TextIO

from PIL import Image

from deskphone.hw.keypad import HOLD_TIME
from deskphone.hw.kits import Kit
from deskphone.ui.screens import Screen

TAP_SECONDS = 0.08  # how long a typed key stays "pressed" on the simulated keypad
TAP_GAP = 0.05  # between two queued taps: longer than the debounce, as a finger would be
HOLD_SECONDS = HOLD_TIME + 0.15  # a key held long enough for its long press
HOOK_KEY = "h"
QUIT_KEYS = ("q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
# Keyboard -> keypad key names, where the profile's keypad has that key.
KEY_LETTERS = {
    "s": "speaker",
    "o": "hold",
    "r": "redial",
    "m": "mute",
    "d": "dnd",
    "v": "voicemail",
    "t": "transfer",
    "+": "vol_up",
    "=": "vol_up",
    "-": "vol_down",
    "\t": "menu",
    "\r": "ok",
    "\n": "ok",
    "\x7f": "back",
    "\x08": "back",
    "\x1b": "back",
}
ESCAPES = {"\x1b[A": "up", "\x1b[B": "down", "\x1bOA": "up", "\x1bOB": "down"}
HELP = (
    "keys: 0-9 * # dial | h hook | s speaker | o hold | t transfer | r redial | m mute | q quit",
    "      +/- volume | d dnd | v voicemail | Tab menu | arrows up/down | Enter OK | Esc back",
)
TOP, BOTTOM, SIDE = "┌┐", "└┘", "│"
BLOCKS = {(0, 0): " ", (1, 0): "▀", (0, 1): "▄", (1, 1): "█"}
BRAILLE_BASE = 0x2800
# Braille dot bits by (x, y) inside a 2x4 cell.
BRAILLE_DOTS = {
    (0, 0): 0x01,
    (0, 1): 0x02,
    (0, 2): 0x04,
    (1, 0): 0x08,
    (1, 1): 0x10,
    (1, 2): 0x20,
    (0, 3): 0x40,
    (1, 3): 0x80,
}
LIGHTS = {"off": "○", "on": "●", "blinking": "◐"}


def draw_picture(image: Image.Image, *, braille: bool) -> list[str]:
    """The image as framed lines of text, exactly: blocks (1x2 pixels) or braille (2x4)."""
    pixels = image.convert("1").load()
    width, height = image.size
    assert pixels is not None

    def lit(x: int, y: int) -> int:
        return 1 if x < width and y < height and pixels[x, y] else 0

    rows = []
    if braille:
        for y in range(0, height, 4):
            rows.append(
                "".join(
                    chr(
                        BRAILLE_BASE
                        + sum(bit for (dx, dy), bit in BRAILLE_DOTS.items() if lit(x + dx, y + dy))
                    )
                    for x in range(0, width, 2)
                )
            )
    else:
        for y in range(0, height, 2):
            rows.append("".join(BLOCKS[lit(x, y), lit(x, y + 1)] for x in range(width)))
    inner = len(rows[0])
    return [
        TOP[0] + "─" * inner + TOP[1],
        *(SIDE + row + SIDE for row in rows),
        BOTTOM[0] + "─" * inner + BOTTOM[1],
    ]


def decode_picture(text: str, size: tuple[int, int] = (128, 64)) -> Image.Image:
    """The pixels of a picture drawn by `draw_picture`, read back from a terminal's text;
    `ValueError` when the text holds none."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(TOP[0]))
    except StopIteration:
        raise ValueError("no display picture in this text") from None
    rows = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith(BOTTOM[0]):
            break
        rows.append(stripped[1:-1])
    image = Image.new("1", size, 0)
    pixels = image.load()
    assert pixels is not None
    braille = bool(rows) and any(BRAILLE_BASE <= ord(c) < BRAILLE_BASE + 256 for c in rows[0])
    cell_width, cell_height = (2, 4) if braille else (1, 2)
    for row_index, row in enumerate(rows):
        for column, char in enumerate(row):
            if braille:
                bits = ord(char) - BRAILLE_BASE if char != " " else 0
                dots = [xy for xy, bit in BRAILLE_DOTS.items() if bits & bit]
            else:
                top, bottom = next((k for k, v in BLOCKS.items() if v == char), (0, 0))
                dots = [(0, 0)] * top + [(0, 1)] * bottom
            for dx, dy in dots:
                x, y = column * cell_width + dx, row_index * cell_height + dy
                if x < size[0] and y < size[1]:
                    pixels[x, y] = 1
    return image


class TerminalFrontEnd:
    def __init__(
        self,
        kit: Kit,
        loop: asyncio.AbstractEventLoop,
        on_quit: Callable[[], None],
        *,
        notes: Sequence[str] = (),
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ) -> None:
        if kit.matrix is None:
            raise ValueError("the terminal front end needs the simulated kit")
        self._kit = kit
        self._matrix = kit.matrix
        self._loop = loop
        self._on_quit = on_quit
        self._notes = list(notes)
        self._stdin = stdin
        self._stdout = stdout
        self._saved_tty: list | None = None
        self._off_hook = False
        self._keys = set(self._matrix.keys)
        self._held_for = {alias: key for key, alias in kit.profile.keypad.long_press}
        self._message = ""  # the last key problem ("no transfer key on this build")
        self._last_text = ""
        self._interactive = stdout.isatty()
        self._taps: deque[tuple[str, float]] = deque()

    def start(self) -> None:
        self._kit.display.observers.append(self.draw)
        if self._interactive:
            self._write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
        if self._stdin.isatty():
            fd = self._stdin.fileno()
            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._loop.add_reader(fd, self._on_input)
        else:
            self._notes.append("(no terminal on stdin: the keyboard is not connected)")
        if self._kit.display.screen is not None:
            self.draw(self._kit.display.screen)

    def close(self) -> None:
        if self._saved_tty is not None:
            fd = self._stdin.fileno()
            self._loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None
        if self._interactive:
            self._write("\x1b[?25h\n")

    def draw(self, screen: Screen) -> None:
        caption = "screen: " + " | ".join(line for line in screen.text().splitlines() if line)
        if not self._interactive:
            if caption != self._last_text:  # a pipe or a log gets the words, once each
                self._last_text = caption
                self._write(caption + "\n")
            return
        image = self._kit.display.image
        columns = self._columns()
        picture = draw_picture(image, braille=columns < 130) if image is not None else []
        lines = [*picture, caption, self._status_line(), *self._notes]
        if self._message:
            lines.append(self._message)
        lines += HELP
        self._write("\x1b[H" + "".join(line + "\x1b[K\n" for line in lines) + "\x1b[J")

    def _columns(self) -> int:
        """The terminal's width as the terminal says (not $COLUMNS, which may be stale)."""
        try:
            return os.get_terminal_size(self._stdout.fileno()).columns
        except (OSError, ValueError):
            return shutil.get_terminal_size((80, 24)).columns

    def _status_line(self) -> str:
        parts = []
        leds = self._kit.leds
        if leds is not None:
            parts += [f"{name} LED {LIGHTS[light.value]}" for name, light in leds.lights.items()]
        parts.append("display dimmed" if self._kit.display.dimmed else "display bright")
        parts.append("handset lifted" if self._off_hook else "handset down")
        return " | ".join(parts)

    def _on_input(self) -> None:
        data = os.read(self._stdin.fileno(), 32).decode(errors="replace")
        for key in parse_keys(data):
            self._key(key)

    def _key(self, char: str) -> None:
        if char in QUIT_KEYS:
            self._on_quit()
            return
        if char == HOOK_KEY:
            self._off_hook = not self._off_hook
            self._matrix.set_hook(self._off_hook)
            return
        key = ESCAPES.get(char) or KEY_LETTERS.get(char.lower(), char)
        self._message = ""
        if key in self._keys:
            self._tap(key, TAP_SECONDS)
        elif key in self._held_for:
            self._tap(self._held_for[key], HOLD_SECONDS)  # e.g. menu: hold * on a minimal build
        elif len(key) > 1 or char.isprintable():
            self._message = f"no {key!r} key on this build (profile {self._kit.profile.name})"
            if self._kit.display.screen is not None:
                self.draw(self._kit.display.screen)

    def _tap(self, key: str, seconds: float) -> None:
        """Press and release a key; keys typed faster than a finger (a paste, tmux send-keys)
        queue up, so each is a press of its own."""
        self._taps.append((key, seconds))
        if len(self._taps) == 1:
            self._next_tap()

    def _next_tap(self) -> None:
        if self._taps:
            key, seconds = self._taps[0]
            self._matrix.press(key)
            self._loop.call_later(seconds, self._release, key)

    def _release(self, key: str) -> None:
        self._matrix.release(key)
        self._taps.popleft()
        self._loop.call_later(TAP_GAP, self._next_tap)

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self._stdout.write(text)
            self._stdout.flush()


def parse_keys(data: str) -> list[str]:
    """Split what the terminal sent into keys: arrow escape sequences, or single characters."""
    keys = []
    index = 0
    while index < len(data):
        sequence = next((s for s in ESCAPES if data.startswith(s, index)), None)
        if sequence is not None:
            keys.append(sequence)
            index += len(sequence)
        else:
            keys.append(data[index])
            index += 1
    return keys
