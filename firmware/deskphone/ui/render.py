"""Draw a `Screen` into a 1-bit PIL image the size of the OLED.

Layout, top to bottom: a status bar (icons) or a title bar (inverse video), the lines (each as
tall as its face needs), and the footer pinned to the bottom. Text too wide for its row is cut
with "…", or scrolls when the line says so: the scroll position is a function of how long the
text has been shown, so the same inputs always give the same pixels. A whole-frame shift of a
pixel or two (`shift`) moves static pixels about slowly against OLED burn-in.
"""

from __future__ import annotations

from PIL import Image, ImageDraw

from deskphone.core.events import RegState
from deskphone.ui.fonts import Face, FontChain, chain
from deskphone.ui.screens import Align, Line, Screen, StatusBar

WIDTH, HEIGHT = 128, 64
BAR_HEIGHT = 12  # status bar and title bar
MARGIN = 2
VALUE_GAP = 4
BAR_ROW = 10  # height of a level bar's row

SCROLL_PAUSE = 1.5  # seconds a long name rests at its start before it moves
SCROLL_SPEED = 20  # pixels per second
SCROLL_STEP = 4  # pixels per frame: fewer frames over a slow I2C bus
SCROLL_INTERVAL = SCROLL_STEP / SCROLL_SPEED  # seconds between frames while text scrolls
SCROLL_GAP = 24  # pixels between the end of a scrolling text and its next start


def _icon(rows: str) -> list[tuple[int, int]]:
    """Pixel coordinates of a small icon drawn as rows of '#' and '.'."""
    return [
        (x, y) for y, row in enumerate(rows.split()) for x, cell in enumerate(row) if cell == "#"
    ]


ENVELOPE = _icon("#########  ##.....##  #.#...#.#  #..#.#..#  #...#...#  #.......#  #########")
SIGNAL = _icon("......#  ......#  ....#.#  ....#.#  ..#.#.#  ..#.#.#  #.#.#.#")
SIGNAL_WAIT = _icon(".......  .......  .......  .......  .......  .......  #.#.#.#")
NO_SIGNAL = _icon("#.....#  .#...#.  ..#.#..  ...#...  ..#.#..  .#...#.  #.....#")
DND = _icon("..###..  .#####.  #######  #.....#  #######  .#####.  ..###..")
ICON_GAP = 3


def render(
    screen: Screen,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    *,
    shift: tuple[int, int] = (0, 0),
    scroll_time: float = 0.0,
) -> Image.Image:
    """The screen's pixels; `scroll_time` is how long its scrolling text has been shown."""
    image = Image.new("1", size, 0)
    draw = ImageDraw.Draw(image)
    width, height = size
    top = 0
    if screen.status is not None:
        _status_bar(draw, screen.status, width)
        top = BAR_HEIGHT
    elif screen.title or screen.title_right:
        _title_bar(draw, screen.title, screen.title_right, width)
        top = BAR_HEIGHT + 1
    bottom = height
    if screen.footer is not None and (screen.footer.text or screen.footer.inverse):
        footer_height = _row_height(screen.footer)
        bottom = height - footer_height
        _line(image, draw, screen.footer, bottom, footer_height, width, scroll_time)
    rows = _layout(screen.lines, width)
    used = sum(row_height for _, row_height in rows)
    y = top + max(0, (bottom - top - used) // 2) if screen.centered else top
    for line, row_height in rows:
        if y + row_height > bottom + 2:  # a descender may touch the footer; a row may not
            break
        _line(image, draw, line, y, row_height, width, scroll_time)
        y += row_height
    if shift != (0, 0):
        shifted = Image.new("1", size, 0)
        shifted.paste(image, shift)
        return shifted
    return image


def scrolls(screen: Screen, width: int = WIDTH) -> bool:
    """True when some text of the screen is too long for its row and scrolls: the display
    then needs a new frame every `SCROLL_INTERVAL`."""
    lines = [*screen.lines, *([screen.footer] if screen.footer else [])]
    return any(
        line.scroll and chain(line.face).width(line.text) > _text_room(line, width)
        for line in lines
    )


def _layout(lines: tuple[Line, ...], width: int) -> list[tuple[Line, int]]:
    """Each line with its row height; a wrapped line becomes several rows."""
    rows: list[tuple[Line, int]] = []
    for line in lines:
        if line.wrap and line.text:
            fonts = chain(line.face)
            for part in fonts.wrap(line.text, width - 2 * MARGIN):
                rows.append((_replace_text(line, part), fonts.line_height(part)))
        else:
            rows.append((line, _row_height(line)))
    return rows


def _replace_text(line: Line, text: str) -> Line:
    return Line(text, line.face, line.align, inverse=line.inverse)


def _row_height(line: Line) -> int:
    if line.bar is not None:
        return BAR_ROW
    return chain(line.face).line_height(line.text)


def _text_room(line: Line, width: int) -> int:
    room = width - 2 * MARGIN
    if line.value:
        room -= chain(Face.SMALL).width(line.value) + VALUE_GAP
    return room


def _line(
    image: Image.Image,
    draw: ImageDraw.ImageDraw,
    line: Line,
    y: int,
    height: int,
    width: int,
    scroll_time: float,
) -> None:
    ink = 0 if line.inverse else 1
    if line.inverse:
        draw.rectangle((0, y, width - 1, y + height - 1), fill=1)
    if line.bar is not None:
        _level_bar(draw, line.bar, y, width)
        return
    if line.value:
        small = chain(Face.SMALL)
        value_x = width - MARGIN - small.width(line.value)
        small.draw(draw, (value_x, y + (height - BAR_HEIGHT) // 2), line.value, ink)
    fonts = chain(line.face)
    room = _text_room(line, width)
    text_width = fonts.width(line.text)
    if text_width > room and line.scroll:
        _scrolling(image, fonts, line.text, text_width, (MARGIN, y, room, height), ink, scroll_time)
        return
    text = fonts.ellipsize(line.text, room, keep_end=line.keep_end)
    text_width = fonts.width(text)
    if line.align is Align.CENTER:
        x = MARGIN + (room - text_width) // 2
    elif line.align is Align.RIGHT:
        x = MARGIN + room - text_width
    else:
        x = MARGIN
    fonts.draw(draw, (x, y), text, ink)


def scroll_offset(text_width: int, elapsed: float) -> int:
    """How far a scrolling text has moved after `elapsed` seconds: it rests, then moves in
    whole steps until it has come round to its start, and rests again."""
    span = text_width + SCROLL_GAP
    cycle = SCROLL_PAUSE + span / SCROLL_SPEED
    moved = max(0.0, elapsed % cycle - SCROLL_PAUSE) * SCROLL_SPEED
    return min(span, int(moved // SCROLL_STEP) * SCROLL_STEP) % span


def _scrolling(
    image: Image.Image,
    fonts: FontChain,
    text: str,
    text_width: int,
    box: tuple[int, int, int, int],
    ink: int,
    elapsed: float,
) -> None:
    """Draw text moving left inside `box` (x, y, width, height), clipped to it."""
    x, y, room, height = box
    strip = image.crop((x, y, x + room, y + height))
    strip_draw = ImageDraw.Draw(strip)
    offset = scroll_offset(text_width, elapsed)
    for start in (-offset, -offset + text_width + SCROLL_GAP):
        if start < room:
            fonts.draw(strip_draw, (start, 0), text, ink)
    image.paste(strip, (x, y))


def _title_bar(draw: ImageDraw.ImageDraw, title: str, right: str, width: int) -> None:
    small = chain(Face.SMALL)
    draw.rectangle((0, 0, width - 1, BAR_HEIGHT - 1), fill=1)
    right_width = small.width(right) if right else 0
    if right:
        small.draw(draw, (width - MARGIN - right_width, 0), right, 0)
    room = width - 2 * MARGIN - (right_width + VALUE_GAP if right else 0)
    small.draw(draw, (MARGIN, 0), small.ellipsize(title, room), 0)


def _status_bar(draw: ImageDraw.ImageDraw, status: StatusBar, width: int) -> None:
    """Label on the left; clock, then icons from the right: battery, line, voicemail, DND."""
    small = chain(Face.SMALL)
    x = width - MARGIN
    if status.battery is not None:
        x = _battery(draw, x, status.battery, status.charging, status.battery_low)
    icon = {
        RegState.REGISTERED: SIGNAL,
        RegState.REGISTERING: SIGNAL_WAIT,
        RegState.DISABLED: None,
        None: None,
    }.get(status.registered, NO_SIGNAL)
    for shown, pixels in ((True, icon), (status.messages, ENVELOPE), (status.dnd, DND)):
        if shown and pixels:
            x = _draw_icon(draw, pixels, x, 2)
    if status.clock:
        clock_width = small.width(status.clock)
        x -= clock_width
        small.draw(draw, (x, 0), status.clock, 1)
        x -= ICON_GAP
    small.draw(draw, (MARGIN, 0), small.ellipsize(status.label, x - MARGIN - ICON_GAP), 1)
    draw.line((0, BAR_HEIGHT - 1, width - 1, BAR_HEIGHT - 1), fill=1)


def _draw_icon(draw: ImageDraw.ImageDraw, pixels: list[tuple[int, int]], right: int, y: int) -> int:
    """Draw an icon ending at x = `right`; return where the next one to its left ends."""
    icon_width = max(px for px, _ in pixels) + 1
    left = right - icon_width
    draw.point([(left + px, y + py) for px, py in pixels], fill=1)
    return left - ICON_GAP


def _battery(draw: ImageDraw.ImageDraw, right: int, percent: int, charging: bool, low: bool) -> int:
    """A battery outline filled to its charge; a '+' inside while charging, '!' when low."""
    left = right - 13
    draw.rectangle((left, 2, right - 2, 8), outline=1)
    draw.rectangle((right - 1, 4, right - 1, 6), fill=1)
    fill = round(max(0, min(100, percent)) / 100 * 9)
    if fill:
        draw.rectangle((left + 1, 3, left + fill, 7), fill=1)
    mark = "+" if charging else "!" if low else ""
    if mark:
        small = chain(Face.SMALL)
        small.draw(draw, (left - small.width(mark) - 1, 0), mark, 1)
        left -= small.width(mark) + 1
    return left - ICON_GAP


def _level_bar(draw: ImageDraw.ImageDraw, bar: tuple[int, int], y: int, width: int) -> None:
    level, maximum = bar
    left, right = MARGIN + 8, width - MARGIN - 8
    draw.rectangle((left, y + 1, right, y + BAR_ROW - 2), outline=1)
    if maximum > 0 and level > 0:
        filled = left + round((right - left) * min(level, maximum) / maximum)
        draw.rectangle((left, y + 1, filled, y + BAR_ROW - 2), fill=1)
