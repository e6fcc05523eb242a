"""Draw a `Screen` into a 1-bit PIL image the size of the OLED."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from deskphone.ui.screens import Screen

WIDTH, HEIGHT = 128, 64
LINE_HEIGHT = 12


def render(screen: Screen, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    """A title bar in inverse video, then the lines; text past the edge is clipped."""
    image = Image.new("1", size, 0)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.rectangle((0, 0, size[0] - 1, LINE_HEIGHT - 1), fill=1)
    draw.text((2, 0), screen.title, font=font, fill=0)
    for index, line in enumerate(screen.lines):
        draw.text((2, LINE_HEIGHT * (index + 1) + 1), line, font=font, fill=1)
    return image
