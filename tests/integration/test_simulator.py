"""`deskphone sim` in a real terminal (tmux), driven as a person would: keys typed with
send-keys, the OLED read back pixel by pixel from capture-pane, against Kamailio and baresip."""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from deskphone.hw.terminal import decode_picture
from deskphone.ui.fonts import Face
from deskphone.ui.render import render
from deskphone.ui.screens import Line, Screen
from tests.harness import phone_config_text
from tests.rig import RigError, wait_until
from tests.rig.baresip import CALL_CLOSED, CALL_ESTABLISHED

pytestmark = [pytest.mark.integration, pytest.mark.quiet]

COLUMNS, ROWS = 160, 50  # wide enough for the 1x2-pixel block picture
EXITED = "simulator exited with status "


class TmuxSim:
    """`deskphone sim` in a tmux server of its own (never the user's), sized like a terminal."""

    def __init__(self, workdir: Path, *args: str) -> None:
        if shutil.which("tmux") is None:
            pytest.fail("tmux is not installed (./bootstrap.sh test installs it)")
        self.socket = f"deskphone-test-{uuid.uuid4().hex[:8]}"
        self.workdir = workdir
        command = [sys.executable, "-m", "deskphone", "sim", *args]
        home = workdir / "home"
        home.mkdir(parents=True, exist_ok=True)
        # The pane outlives the simulator, so its last picture and exit status stay readable.
        shell = (
            f"HOME={home} {shlex.join(command)} 2>{workdir / 'sim.log'}; echo {EXITED}$?; sleep 600"
        )
        self._tmux("new-session", "-d", "-s", "sim", "-x", str(COLUMNS), "-y", str(ROWS), shell)

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise RigError(f"tmux {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "sim", *keys)

    def capture(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "sim")

    def caption(self) -> str:
        return next(
            (line for line in self.capture().splitlines() if line.startswith("screen:")), ""
        )

    def wait_caption(self, text: str, timeout: float = 10.0) -> str:
        try:
            return wait_until(lambda: text in (c := self.caption()) and c, timeout, repr(text))
        except RigError as err:
            log = (self.workdir / "sim.log").read_text(errors="replace")[-2000:]
            raise AssertionError(f"{err}; the terminal shows:\n{self.capture()}\n{log}") from None

    def wait_picture(self, matches: Callable[[Image.Image], bool], what: str) -> Image.Image:
        def picture() -> Image.Image | None:
            try:
                image = decode_picture(self.capture())
            except ValueError:
                return None
            return image if matches(image) else None

        try:
            return wait_until(picture, 10.0, what)
        except RigError as err:
            raise AssertionError(f"{err}; the terminal shows:\n{self.capture()}") from None

    def exit_status(self) -> int | None:
        """The simulator's exit status once it has exited, else None."""
        for line in self.capture().splitlines():
            if line.startswith(EXITED):
                return int(line.removeprefix(EXITED))
        return None

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def sim_factory(tmp_path: Path) -> Iterator[Callable[..., TmuxSim]]:
    made: list[TmuxSim] = []

    def factory(*args: str) -> TmuxSim:
        made.append(TmuxSim(tmp_path, *args))
        return made[-1]

    yield factory
    for sim in made:
        if sim.exit_status() is None:
            sim.send("q")
            with contextlib.suppress(RigError):
                wait_until(lambda s=sim: s.exit_status() is not None, 10, "the simulator to quit")
        sim.close()


def same_region(image: Image.Image, expected: Image.Image, box: tuple[int, int, int, int]) -> bool:
    difference = ImageChops.difference(
        image.crop(box).convert("L"), expected.crop(box).convert("L")
    )
    return difference.getbbox() is None


def test_simulator_dials_baresip_through_kamailio_and_shows_the_call_connected(
    kamailio, baresip_factory, sim_factory, tmp_path
) -> None:
    far = baresip_factory("1002")
    config = tmp_path / "sim.toml"
    config.write_text(
        phone_config_text(
            kamailio.port,
            "1001",
            kamailio.users["1001"],
            workdir=tmp_path,
            extra="[display]\npixel_shift_minutes = 0\n",
        )
    )
    sim = sim_factory("--config", str(config))
    sim.wait_caption("1001: registered", 15)
    sim.send("h")
    sim.wait_caption("dial")
    sim.send("1", "0", "0", "2", "#")
    caption = sim.wait_caption("in call", 15)
    assert "1002" in caption
    far.wait_event(CALL_ESTABLISHED)
    # The OLED's own pixels, read back from the terminal: the title bar says "in call" and the
    # first row names the far end, exactly as the renderer draws them.
    expected = render(Screen("call", "in call", (Line("1002", Face.NAME),)))
    sim.wait_picture(
        lambda image: same_region(image, expected, (0, 0, 64, 29)), "the in-call picture"
    )
    assert "line LED ●" in sim.capture()
    sim.send("h")
    sim.wait_caption("call ended")
    far.wait_event(CALL_CLOSED)
    sim.send("q")
    wait_until(lambda: sim.exit_status() is not None, 10, "the simulator to quit on q")
    assert sim.exit_status() == 0


def test_simulator_without_an_account_starts_says_how_to_add_one_and_runs_the_menu(
    sim_factory,
) -> None:
    sim = sim_factory()
    caption = sim.wait_caption("no account configured")
    text = sim.capture()
    assert "add an [[account]] to ~/.config/deskphone/deskphone.toml" in text
    assert "audio: " in text  # the audio in use, or why there is none
    assert "add an [[account]]" in caption
    sim.send("Tab")  # the menu key
    sim.wait_caption("Menu 1/4")
    sim.send("Down", "Down", "Enter")  # Settings
    sim.wait_caption("Settings 1/6")
    sim.send("Down", "Down", "Enter")  # Ringer volume
    caption = sim.wait_caption("Ringer volume | ")
    # The level is whatever the phone's saved settings say; step away from it and back.
    level = int(caption.split(" | ")[1])
    step, back = ("-", "Up") if level > 0 else ("+", "Down")
    sim.send(step)  # the volume keys work inside the menu too
    sim.wait_caption(f"Ringer volume | {level - 1 if step == '-' else level + 1} |")
    sim.send(back)  # and so do up and down on the level's page
    sim.wait_caption(f"Ringer volume | {level} |")
    sim.send("Escape", "Escape", "Escape")
    sim.wait_caption("no account configured")
