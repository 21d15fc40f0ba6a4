"""An energy label for one model on one task, as AI Energy Score's label shows it: the model, its energy per
1,000 queries, the task, the date, the hardware, the stars, and the reference set the stars came from.

One layout (a list of shapes in label pixels) is drawn twice: as SVG text and
as a PNG with Pillow, so the two files show the same thing. Pure apart from
Pillow; nothing is fetched (Pillow's bundled font).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 420, 600
GREEN, GOLD, GREY, INK, PAPER = "#1b7d3a", "#f2b200", "#d4d4d4", "#1d1d1d", "#ffffff"
STAR_Y, STAR_R, STAR_GAP = 250, 30, 74  # star centres: x = 62 + i * STAR_GAP


@dataclass(frozen=True)
class LabelData:
    model: str
    task: str
    wh_per_1k: float | None
    stars: int | None
    energy_label: str  # which energy the figure and stars are
    date: str
    hardware: str
    reference: str
    size_class: str | None = None
    protocol: str = ""  # how it was measured: the sweep, and whether it followed AI Energy Score's protocol
    unrated: str | None = None  # why there are no stars (e.g. no GPU energy measured on a CPU run)


def star_points(cx: float, cy: float, outer: float, inner_share: float = 0.45) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else outer * inner_share
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def star_centre(index: int) -> tuple[float, float]:
    return 62 + index * STAR_GAP, STAR_Y


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def layout(data: LabelData) -> list[tuple]:
    """Shapes in drawing order: ("rect", x, y, w, h, fill), ("text", x, y, text, size, fill, bold, anchor),
    ("polygon", points, fill)."""
    energy = f"{data.wh_per_1k:.3g}" if data.wh_per_1k is not None else "–"
    shapes: list[tuple] = [
        ("rect", 0, 0, WIDTH, HEIGHT, PAPER),
        ("rect", 0, 0, WIDTH, 64, GREEN),
        ("text", 20, 40, "ENERGY LABEL · AI Energy Score rule", 18, PAPER, True, "start"),
        ("text", 20, 104, _fit(data.model.removeprefix("hub:"), 36), 22, INK, True, "start"),
        ("text", 20, 136, f"task: {data.task}" + (f" (class {data.size_class})" if data.size_class else ""), 15,
         INK, False, "start"),
        ("rect", 20, 160, WIDTH - 40, 2, GREY),
    ]
    for i in range(5):
        filled = data.stars is not None and i < data.stars
        shapes.append(("polygon", star_points(*star_centre(i), STAR_R), GOLD if filled else GREY))
    stars = f"{data.stars} of 5 stars" if data.stars is not None else _fit(f"not rated: {data.unrated or 'unknown'}",
                                                                            60)
    shapes += [
        ("text", WIDTH / 2, 310, stars, 15, INK, False, "middle"),
        ("text", WIDTH / 2, 380, energy, 44, INK, True, "middle"),
        ("text", WIDTH / 2, 410, "Wh per 1,000 queries", 16, INK, False, "middle"),
        ("text", WIDTH / 2, 432, _fit(data.energy_label, 52), 12, INK, False, "middle"),
        ("rect", 20, 452, WIDTH - 40, 2, GREY),
        ("text", 20, 482, _fit(f"hardware: {data.hardware}", 50), 13, INK, False, "start"),
        ("text", 20, 506, f"date: {data.date}", 13, INK, False, "start"),
        ("text", 20, 530, _fit(f"rated against: {data.reference}", 60), 12, INK, False, "start"),
        ("text", 20, 554, _fit(f"protocol: {data.protocol}", 60), 12, INK, False, "start"),
        ("text", 20, 576, "measured with wattsweep (CodeCarbon)", 11, "#555555", False, "start"),
    ]
    return shapes


def to_svg(data: LabelData) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" role="img">'
             f"<title>{escape(f'{data.model}: {data.task}, {data.stars} stars')}</title>"]
    for shape in layout(data):
        if shape[0] == "rect":
            _, x, y, w, h, fill = shape
            parts.append(f'<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}"/>')
        elif shape[0] == "polygon":
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in shape[1])
            parts.append(f'<polygon points="{points}" fill="{shape[2]}" class="star"/>')
        else:
            _, x, y, text, size, fill, bold, anchor = shape
            weight = ' font-weight="700"' if bold else ""
            parts.append(f'<text x="{x}" y="{y}" font-size="{size}" fill="{fill}"{weight} '
                         f'text-anchor="{anchor}">{escape(text)}</text>')
    return "".join(parts) + "</svg>\n"


def to_png(data: LabelData, path: str) -> None:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    for shape in layout(data):
        if shape[0] == "rect":
            _, x, y, w, h, fill = shape
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=fill)
        elif shape[0] == "polygon":
            draw.polygon(shape[1], fill=shape[2])
        else:
            _, x, y, text, size, fill, bold, anchor = shape
            font = ImageFont.load_default(size=size)
            # SVG places text by its baseline; Pillow's "ls"/"ms" anchors do the same.
            draw.text((x, y), text, fill=fill, font=font, anchor="ms" if anchor == "middle" else "ls",
                      stroke_width=1 if bold and size >= 18 else 0, stroke_fill=fill)
    image.save(path, format="PNG")
