"""Inline SVG charts with log axes: no JavaScript, no fonts or files to fetch, so a report works offline.

Two kinds: a strip chart (one row per category, points on a log x axis, an
optional median tick and min-max whisker per row) and a log-log scatter.
Values that cannot sit on a log axis (zero, negative, missing) are left out
and counted in the caption. A chart is returned as the list of its markup's
parts, joined only once, into the page (a 10,000-model report's charts are 8 MB).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from html import escape as _html_escape
from typing import NamedTuple

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000",
           "#8C564B", "#7F7F7F")
# what html.escape replaces: most texts of a chart (tooltips, labels) hold none, and 10,000 points' tooltips are
# written as they are
_MARKUP_CHARACTERS = re.compile("[&<>'\"]")


def escape(text: str) -> str:
    """html.escape(text), without its five passes over a text that needs none."""
    return _html_escape(text) if _MARKUP_CHARACTERS.search(text) else text


def nothing_to_escape(texts: list[str]) -> bool:
    """Whether no text needs escaping: one search over a chart's labels and tooltips, which seldom hold a markup
    character, in place of one per text (a chart of 10,000 models has 10,000 tooltips)."""
    return not _MARKUP_CHARACTERS.search("".join(texts))


FONT = "font-family:system-ui,-apple-system,'Segoe UI',sans-serif"


class Point(NamedTuple):  # a tuple: a chart of 10,000 models makes 70,000 of them, and a frozen dataclass's
    # __init__ costs three times a tuple's
    value: float | None
    color: str
    tooltip: str
    y: float | None = None  # scatter only


@dataclass(frozen=True)
class Line:
    """A polyline over a scatter chart (a model's energy by batch size, or the Pareto front, dashed and ringed)."""

    points: tuple[tuple[float, float], ...]
    color: str
    dashed: bool = False
    rings: bool = False  # circle each vertex (the front's members)
    tooltip: str = ""


class Row(NamedTuple):  # a tuple, as Point: a task's chart of its 1,000 models makes 1,000
    label: str
    points: Sequence[Point] = ()
    median: float | None = None
    whisker: tuple[float | None, float | None] | None = None


class LogScale:
    """Maps values to pixels on a log10 axis covering whole decades around the data."""

    def __init__(self, values: list[float], start_px: float, end_px: float) -> None:
        lo, hi = min(values), max(values)
        self.lo, self.hi = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        if self.hi == self.lo:
            self.hi += 1
        self.start_px, self.end_px = start_px, end_px
        self._decades, self._px = self.hi - self.lo, end_px - start_px  # per chart, not per point

    def __call__(self, value: float) -> float:
        return self.start_px + (math.log10(value) - self.lo) / self._decades * self._px

    def ticks(self) -> list[float]:
        """Decades; with 2 and 5 between them when the axis spans at most three decades."""
        step = max(1, math.ceil((self.hi - self.lo) / 8))
        decades = [10.0 ** e for e in range(self.lo, self.hi + 1, step)]
        if self.hi - self.lo > 3:
            return decades
        return sorted(decades + [d * m for d in decades[:-1] for m in (2, 5)])


def tick_label(value: float) -> str:
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    if value >= 1e-3:
        return f"{value:g}"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def short_label(label: str, limit: int = 50) -> str:
    """Labels as people read them: without the hub: prefix, long ones cut in the middle."""
    label = label.removeprefix("hub:")
    return label if len(label) <= limit else label[: limit // 2 - 1] + "…" + label[-(limit // 2 - 1):]


def _plottable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def legend_svg(items: list[tuple[str, str]], x: float, y: float) -> str:
    parts = []
    for i, (name, color) in enumerate(items):
        cy = y + i * 18
        parts.append(f'<circle cx="{x + 6}" cy="{cy}" r="5" fill="{color}"/>'
                     f'<text x="{x + 16}" y="{cy + 4}" font-size="12">{escape(name)}</text>')
    return "".join(parts)


def _plot_border_and_legend(left: float, top: float, right: float, bottom: float,
                            legend: list[tuple[str, str]]) -> str:
    """The plot area's border, and the legend to its right when there is one."""
    border = (f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" fill="none" '
              'stroke="#999"/>')
    return border + (legend_svg(list(legend), right + 16, top + 8) if legend else "")


def _frame(width: float, height: float, title: str, body: list[str], caption: str) -> list[str]:
    return [f'<figure class="chart"><svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width:.0f}" '
            f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" style="{FONT}">'
            f'<title>{escape(title)}</title><rect width="100%" height="100%" fill="#ffffff"/>', *body,
            "</svg>" + (f"<figcaption>{escape(caption)}</figcaption>" if caption else "") + "</figure>"]


def _x_axis(scale: LogScale, top: float, bottom: float, label: str, center: float) -> str:
    parts = []
    for tick in scale.ticks():
        x = scale(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" stroke="#e3e3e3"/>'
                     f'<text x="{x:.1f}" y="{bottom + 16:.1f}" font-size="11" text-anchor="middle">'
                     f"{tick_label(tick)}</text>")
    parts.append(f'<text x="{center:.1f}" y="{bottom + 34:.1f}" font-size="12" text-anchor="middle">'
                 f"{escape(label)}</text>")
    return "".join(parts)


def strip_chart(rows: list[Row], *, title: str, axis_label: str, legend: list[tuple[str, str]] = (),
                width: int = 900, label_width: int | None = None, row_height: int = 26) -> list[str]:
    # what each row draws, decided once: a chart of a task's 1,000 models has 1,000 rows
    drawn = [([p for p in r.points if _plottable(p.value)],
              r.whisker if r.whisker and _plottable(r.whisker[0]) and _plottable(r.whisker[1]) else None,
              r.median if _plottable(r.median) else None) for r in rows]
    values = [p.value for points, _, _ in drawn for p in points]
    values += [v for r in rows for v in (r.whisker or ()) if _plottable(v)]
    hidden = sum(len(r.points) for r in rows) - sum(len(points) for points, _, _ in drawn)
    if not values:
        return [f'<p class="empty">{escape(title)}: no positive values to plot.</p>']
    legend_width = 170 if legend else 0
    shorts = [short_label(r.label) for r in rows]
    label_width = label_width or min(380, 16 + 7 * max(map(len, shorts), default=10))
    top, left, right = 34, label_width, width - 20 - legend_width
    bottom = top + row_height * len(rows)
    scale = LogScale(values, left, right)
    body = [f'<text x="8" y="20" font-size="14" font-weight="600">{escape(title)}</text>',
            _x_axis(scale, top, bottom, axis_label, (left + right) / 2)]
    plain = nothing_to_escape([r.label for r in rows] + [p.tooltip for points, _, _ in drawn for p in points])
    for row, short, (points, whisker, median), (cy, label_y, tick_top, tick_bottom) in zip(
            rows, shorts, drawn, _row_ys(top, row_height, len(rows)), strict=True):
        body.append(f'<text x="{left - 8}" y="{label_y}" font-size="12" text-anchor="end">'
                    f"<title>{row.label if plain else escape(row.label)}</title>"
                    f"{short if plain else escape(short)}</text>"
                    f'<line x1="{left}" y1="{cy}" x2="{right}" y2="{cy}" stroke="#f2f2f2"/>')
        if whisker:
            body.append(f'<line x1="{scale(whisker[0]):.1f}" y1="{cy}" x2="{scale(whisker[1]):.1f}" y2="{cy}" '
                        'stroke="#555" stroke-width="1.5"/>')
        for p in points:
            body.append(f'<circle cx="{scale(p.value):.1f}" cy="{cy}" r="5" fill="{p.color}" fill-opacity="0.75" '
                        f'stroke="#fff" stroke-width="0.8"><title>{p.tooltip if plain else escape(p.tooltip)}</title>'
                        "</circle>")
        if median is not None:
            x = f"{scale(median):.1f}"
            body.append(f'<line x1="{x}" y1="{tick_top}" x2="{x}" y2="{tick_bottom}" stroke="#111" '
                        f'stroke-width="2"><title>median {median:.3g}</title></line>')
    body.append(_plot_border_and_legend(left, top, right, bottom, legend))
    caption = f"{hidden} value(s) not shown: zero, negative or missing cannot sit on a log axis." if hidden else ""
    return _frame(width, bottom + 46, title, body, caption)


@lru_cache(maxsize=16)
def _row_ys(top: float, row_height: float, rows: int) -> list[tuple[str, str, str, str]]:
    """Each row's y as a strip chart writes it: the row's centre (its line, whisker and points), its label's
    baseline, its median tick's ends. The same for the charts of each task's 1,000 models: written once."""
    ys = [top + row_height * (i + 0.5) for i in range(rows)]
    return [(f"{y:.1f}", f"{y + 4:.1f}", f"{y - 10:.1f}", f"{y + 10:.1f}") for y in ys]


def scatter_chart(points: list[Point], *, title: str, x_label: str, y_label: str,
                  legend: list[tuple[str, str]] = (), width: int = 900, height: int = 460,
                  lines: list[Line] = ()) -> list[str]:
    shown = [p for p in points if _plottable(p.value) and _plottable(p.y)]
    if not shown:
        return [f'<p class="empty">{escape(title)}: no positive values to plot.</p>']
    legend_width = 190 if legend else 0
    top, left, right, bottom = 34, 70, width - 20 - legend_width, height - 50
    xs = LogScale([p.value for p in shown], left, right)
    ys = LogScale([p.y for p in shown], bottom, top)
    drawn = [(line, [(x, y) for x, y in line.points if _plottable(x) and _plottable(y)]) for line in lines]
    body = [f'<text x="8" y="20" font-size="14" font-weight="600">{escape(title)}</text>',
            _x_axis(xs, top, bottom, x_label, (left + right) / 2)]
    for tick in ys.ticks():
        y = ys(tick)
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e3e3e3"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick_label(tick)}'
                    "</text>")
    body.append(f'<text x="14" y="{(top + bottom) / 2:.1f}" font-size="12" text-anchor="middle" '
                f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})">{escape(y_label)}</text>')
    for line, vertices in drawn:
        if len(vertices) > 1:
            path = " ".join(f"{xs(x):.1f},{ys(y):.1f}" for x, y in vertices)
            dash = ' stroke-dasharray="6 4"' if line.dashed else ""
            body.append(f'<polyline points="{path}" fill="none" stroke="{line.color}" stroke-width="2"{dash}>'
                        f"<title>{escape(line.tooltip)}</title></polyline>")
    plain = nothing_to_escape([p.tooltip for p in shown])
    for p in shown:
        body.append(f'<circle cx="{xs(p.value):.1f}" cy="{ys(p.y):.1f}" r="5" fill="{p.color}" fill-opacity="0.8" '
                    f'stroke="#fff" stroke-width="0.8"><title>{p.tooltip if plain else escape(p.tooltip)}</title>'
                    "</circle>")
    for line, vertices in drawn:
        if line.rings:
            body += [f'<circle cx="{xs(x):.1f}" cy="{ys(y):.1f}" r="9" fill="none" stroke="{line.color}" '
                     f'stroke-width="2" class="front"><title>{escape(line.tooltip)}</title></circle>'
                     for x, y in vertices]
    body.append(_plot_border_and_legend(left, top, right, bottom, legend))
    hidden = len(points) - len(shown)
    caption = f"{hidden} model(s) not shown: zero, negative or missing values cannot sit on a log axis." if hidden \
        else ""
    return _frame(width, height, title, body, caption)
