"""Fonts for a 1-bit 128x64 display, with fallback so a name in any script is drawn.

The main face is DejaVu Sans (Debian's `fonts-dejavu-core`, on every Raspberry Pi OS image):
hinted, it stays legible at 10 px without anti-aliasing and covers Latin with every accent,
Greek and Cyrillic. What it lacks (Hangul, kana, Han, ...) comes from GNU Unifont
(`fonts-unifont`), a bitmap font drawn for exactly 16 px, so CJK glyphs are pixel-exact;
Noto Sans CJK (`fonts-noto-cjk`) is used after it when installed. Each character takes the
first font of the chain that has it, so one line may mix faces; a line's height grows to the
tallest face it uses.

No font file is bundled: all three are Debian packages (`bootstrap.sh` installs the first two),
and each is free to use (DejaVu: Bitstream Vera licence; Unifont: GPL-2+ with the font
exception, or OFL-1.1; Noto: OFL-1.1). Without them the phone still runs, on Pillow's built-in
font, and says once in the journal which package would draw the missing characters.
"""

from __future__ import annotations

import enum
import logging
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import ImageDraw, ImageFont

log = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
ENV_FONT_DIR = "DESKPHONE_FONT_DIR"  # searched first: fonts for a build without Debian's
DEJAVU = "truetype/dejavu/DejaVuSans.ttf"
DEJAVU_BOLD = "truetype/dejavu/DejaVuSans-Bold.ttf"
UNIFONT = "opentype/unifont/unifont.otf"
NOTO_CJK = "opentype/noto/NotoSansCJK-Regular.ttc"
UNIFONT_SIZE = 16  # Unifont's glyphs are drawn for 16 px; any other size blurs them
NOTDEF_PROBE = "\uffff"  # a noncharacter: every font draws its "missing glyph" box for it

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


class Face(enum.Enum):
    """The text sizes the screens use; each has its own chain of fonts."""

    SMALL = "small"  # status, details, hints
    NAME = "name"  # names, reasons, menu items
    BIG = "big"  # the clock, the call timer, dialled digits


# (main file, pixel size, minimum line height in pixels, baseline from the line's top)
_FACES = {
    Face.SMALL: (DEJAVU, 10, 12, 10),
    Face.NAME: (DEJAVU, 13, 16, 13),
    Face.BIG: (DEJAVU_BOLD, 20, 22, 20),
}


def find_font(relative: str) -> Path | None:
    """A font file by its path under a fonts directory, or None if it is not installed."""
    dirs = [Path(os.environ[ENV_FONT_DIR])] if os.environ.get(ENV_FONT_DIR) else []
    for directory in (*dirs, *FONT_DIRS):
        for candidate in (directory / relative, directory / Path(relative).name):
            if candidate.is_file():
                return candidate
    return None


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive characters drawn with one font."""

    text: str
    font: Font
    width: float


class FontChain:
    """A main font and its fallbacks; measures and draws text choosing a font per character."""

    def __init__(self, fonts: list[Font], line_height: int, baseline: int) -> None:
        self.fonts = fonts
        self._line_height = line_height
        self.baseline = baseline
        self._has: list[dict[str, bool]] = [{} for _ in fonts]
        self._notdef = [_mask_key(font, NOTDEF_PROBE) for font in fonts]

    def runs(self, text: str) -> Iterator[Run]:
        """Split text into runs of one font each (combining marks stay with their base)."""
        text = unicodedata.normalize("NFC", text)
        current: Font | None = None
        start = 0
        for index, char in enumerate(text):
            font = current if current and unicodedata.combining(char) else self._font_for(char)
            if font is not current:
                if current is not None and index > start:
                    yield self._run(text[start:index], current)
                current, start = font, index
        if current is not None and start < len(text):
            yield self._run(text[start:], current)

    def width(self, text: str) -> int:
        return round(sum(run.width for run in self.runs(text)))

    def line_height(self, text: str) -> int:
        """The height a line of this text needs: more where a fallback face is taller."""
        height = self._line_height
        for run in self.runs(text):
            if run.font is not self.fonts[0]:
                ascent, descent = _metrics(run.font)
                height = max(height, ascent + descent)
        return height

    def draw(
        self, draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: int
    ) -> None:
        """Draw text with its top-left corner at `xy` (the baseline sits at `self.baseline`,
        lowered for a taller fallback so every face shares one baseline)."""
        x, top = xy
        baseline = top + self.baseline + self._extra_ascent(text)
        for run in self.runs(text):
            draw.text((x, baseline), run.text, font=run.font, fill=fill, anchor="ls")
            x += run.width

    def fits(self, text: str, width: int) -> bool:
        return self.width(text) <= width

    def ellipsize(self, text: str, width: int, *, keep_end: bool = False) -> str:
        """The text cut with "…" to fit `width`; `keep_end` keeps the end (dialled digits)."""
        if self.fits(text, width):
            return text
        for cut in range(1, len(text)):
            candidate = "…" + text[cut:] if keep_end else text[: len(text) - cut] + "…"
            if self.fits(candidate, width):
                return candidate
        return "…"

    def wrap(self, text: str, width: int) -> list[str]:
        """Words into lines no wider than `width` (a word longer than a line is cut)."""
        lines: list[str] = []
        current = ""
        for word in text.split():
            candidate = f"{current} {word}".strip()
            if self.fits(candidate, width) or not current:
                current = candidate
            else:
                lines.append(current)
                current = word
        if current:
            lines.append(current)
        return [self.ellipsize(line, width) for line in lines]

    # -- internals ---------------------------------------------------------------------------

    def _extra_ascent(self, text: str) -> int:
        extra = 0
        for run in self.runs(text):
            if run.font is not self.fonts[0]:
                ascent, _ = _metrics(run.font)
                extra = max(extra, ascent - self.baseline)
        return extra

    def _font_for(self, char: str) -> Font:
        for index, font in enumerate(self.fonts):
            known = self._has[index].get(char)
            if known is None:
                known = char.isspace() or _mask_key(font, char) != self._notdef[index]
                self._has[index][char] = known
            if known:
                return font
        return self.fonts[-1]

    @staticmethod
    def _run(text: str, font: Font) -> Run:
        return Run(text, font, font.getlength(text))


def _mask_key(font: Font, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text, mode="1")
    return mask.size, bytes(mask)


@cache
def _metrics(font: Font) -> tuple[int, int]:
    if isinstance(font, ImageFont.FreeTypeFont):
        return font.getmetrics()
    return 11, 0


@cache
def chain(face: Face) -> FontChain:
    """The font chain of a face, loaded once per process."""
    main_file, size, line_height, baseline = _FACES[face]
    fonts: list[Font] = []
    main = find_font(main_file)
    if main is not None:
        fonts.append(ImageFont.truetype(str(main), size))
    else:
        log.warning(
            "font %s not found (Debian package fonts-dejavu-core); using Pillow's built-in font",
            Path(main_file).name,
        )
        fonts.append(ImageFont.load_default(size))
    unifont = find_font(UNIFONT)
    if unifont is not None:
        fonts.append(ImageFont.truetype(str(unifont), UNIFONT_SIZE))
    noto = find_font(NOTO_CJK)
    if noto is not None:
        fonts.append(ImageFont.truetype(str(noto), UNIFONT_SIZE - 2))
    if unifont is None and noto is None:
        _warn_no_fallback()
    return FontChain(fonts, line_height, baseline)


@cache
def _warn_no_fallback() -> None:
    log.warning(
        "no fallback font for Hangul, kana and Han: install fonts-unifont (or fonts-noto-cjk) "
        "or such names show as boxes"
    )
