"""The simulator's front end: the computer's keyboard presses keys on the simulated keypad
(so the real scanning code runs) and the display's screens are drawn in the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Callable
from typing import TextIO

from deskphone.hw.kits import Kit
from deskphone.ui.screens import Screen

TAP_SECONDS = 0.08  # how long a typed key stays "pressed" on the simulated keypad
HOOK_KEY = "h"
QUIT_KEYS = ("q", "\x03", "\x04")  # q, Ctrl-C, Ctrl-D
# Letters for function keys, where the profile's keypad has that key.
FUNCTION_LETTERS = {"s": "speaker", "o": "hold", "r": "redial", "m": "mute", "d": "dnd"}
HELP = "keys: 0-9 * # dial | h hook | s speaker | o hold | r redial | m mute | q quit"


class TerminalFrontEnd:
    def __init__(
        self,
        kit: Kit,
        loop: asyncio.AbstractEventLoop,
        on_quit: Callable[[], None],
        *,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ) -> None:
        if kit.matrix is None:
            raise ValueError("the terminal front end needs the simulated kit")
        self._kit = kit
        self._matrix = kit.matrix
        self._loop = loop
        self._on_quit = on_quit
        self._stdin = stdin
        self._stdout = stdout
        self._saved_tty: list | None = None
        self._off_hook = False
        self._keys = set(self._matrix.keys)

    def start(self) -> None:
        self._kit.display.observers.append(self.draw)
        if self._kit.display.screen is not None:
            self.draw(self._kit.display.screen)
        if self._stdin.isatty():
            fd = self._stdin.fileno()
            self._saved_tty = termios.tcgetattr(fd)
            tty.setcbreak(fd)
            self._loop.add_reader(fd, self._on_input)
        else:
            self._print("(no terminal on stdin: the keyboard is not connected)")

    def close(self) -> None:
        if self._saved_tty is not None:
            fd = self._stdin.fileno()
            self._loop.remove_reader(fd)
            termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None

    def draw(self, screen: Screen) -> None:
        width = 24
        rows = [f"+{'-' * width}+", f"|{screen.title[:width]:<{width}}|", f"|{'-' * width}|"]
        rows += [f"|{line[:width]:<{width}}|" for line in screen.lines]
        rows += [f"+{'-' * width}+", HELP]
        self._print("\n".join(rows))

    def _on_input(self) -> None:
        char = os.read(self._stdin.fileno(), 1).decode(errors="replace")
        if char in QUIT_KEYS:
            self._on_quit()
        elif char == HOOK_KEY:
            self._off_hook = not self._off_hook
            self._matrix.set_hook(self._off_hook)
        else:
            key = FUNCTION_LETTERS.get(char.lower(), char)
            if key in self._keys:
                self._matrix.press(key)
                self._loop.call_later(TAP_SECONDS, self._matrix.release, key)

    def _print(self, text: str) -> None:
        with contextlib.suppress(OSError):
            self._stdout.write(text + "\n")
            self._stdout.flush()
