"""What the report's sections share: number formatting, the kinds of table cell, and the Jinja2 templates
(below every section module).

The markup lives in `templates/`, rendered with autoescape: sections hand the
templates plain text and numbers, and every string is escaped on the way out.
A cell that needs markup says which kind it is (`Estimated`, `WithCode`,
`Stars`) and the template draws it; only our own markup (charts, tables) enters as such, a `Block`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import chain, groupby
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from jinja2 import Environment


def fmt(value: Any, digits: int = 3) -> str:
    """A figure as plain text (the template escapes it): 3 significant digits, thousands grouped, – for none.
    Plain floats take the first branch with a constant format (a 10,000-model report formats 300,000 figures)."""
    if type(value) is float and digits == 3:
        if value == 0:
            return "0"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    if type(value) is int:
        return f"{value:,}"
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
    return str(value)


# The kinds of cell that need markup. Tuples: a 10,000-model sweep's tables make 30,000 of them, and a frozen
# dataclass's __init__ costs several times a tuple's.
class Estimated(NamedTuple):
    """A cell shown in the estimate colour: a component that was estimated, not measured."""

    text: str
    kind: str = "estimated"


class WithCode(NamedTuple):
    """Text followed by an identifier in <code> (a model and its cell key); `code` None: the text alone."""

    text: str
    code: str | None
    kind: str = "with_code"


class Code(NamedTuple):
    text: str
    kind: str = "code"


class Stars(NamedTuple):
    """An AI Energy Score rating, 0-5 stars; None: unrated."""

    stars: int | None
    kind: str = "stars"


@dataclass(frozen=True)
class Table:
    """Header texts, rows of cells (str or one of the cell kinds above), and the indexes of numeric columns."""

    headers: list[str]
    rows: list[list[Any]]
    numeric: frozenset[int] = frozenset()


def cells_by_other_axes(models: list[dict[str, Any]], axis: str) -> list[tuple[tuple[str, str, str], list[dict]]]:
    """Model-summary rows grouped by (task, model, the cell's other axis values), in that order: the cells of one
    curve along `axis` (batch_size, power_limit_w)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for m in models:
        rest = " ".join(part for part in (m.get("cell_key") or "").split() if not part.startswith(f"{axis}="))
        groups.setdefault((m["task"], m["model"], rest), []).append(m)
    return sorted(groups.items())


def table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> Table:
    return Table(headers, rows, frozenset(numeric))


# The blocks of the page that render_template is rendering (None: no render under way).
_page_blocks: ContextVar[list[list[str]] | None] = ContextVar("page_blocks", default=None)
_BLOCK_MARKER = re.compile("<!--block ([0-9]+)-->")


class Block:
    """Markup that a template only passes through: a chart or a table. A 10,000-model sweep's are 20 MB, and Jinja
    copies such markup at every step (each {{ }} twice, as escape makes a new Markup; each macro's output once
    more), which took longer than drawing it. So while render_template renders a page, the template writes a marker
    in its place (an HTML comment, which no escaped text can hold) and the markup is put in when the page is joined:
    copied once. Anywhere else a Block is its markup, like a Markup."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[str]) -> None:
        self.parts = parts  # our own markup, every text in it escaped; joined only once, into the page

    def __str__(self) -> str:
        return "".join(self.parts)

    def __html__(self) -> str:
        blocks = _page_blocks.get()
        if blocks is None:
            return str(self)
        blocks.append(self.parts)
        return f"<!--block {len(blocks) - 1}-->"


def svg(parts: list[str]) -> Block:
    """A chart from scheduler.report.charts (its markup in parts): our own code builds it and escapes every text
    in it."""
    return Block(parts)


# what markupsafe.escape replaces: a text without any of them (most cells: figures) is written as it is
_MARKUP_CHARACTERS = re.compile("[&<>'\"]")


def table_html(t: Table) -> Block:
    """A table's markup (templates/parts.html.j2 `table`): drawn here, not by a macro per cell, which took 9 s for
    a 10,000-model sweep's 300,000 cells; every text is escaped as autoescape would.

    The cells are checked a column at a time and each row is written by one %-format called from map, so that a
    column of figures costs one join and one search, not a Python step per cell (rows of equal length are taken
    together: the columns of a run of them are zip(*rows))."""
    from markupsafe import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in t.headers)
    lines = [f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>\n']
    width = max([len(t.headers), *map(len, t.rows)])
    opens = ['<td class="n">' if i in t.numeric else "<td>" for i in range(width)]
    for n, rows in groupby(t.rows, key=len):
        row_format = "<tr>" + "".join(f"{open_}%s</td>" for open_ in opens[:n]) + "</tr>\n"  # % beats str.format
        rows = list(rows)
        columns = [_column_html(column, escape) for column in zip(*rows, strict=True)]
        lines += map(row_format.__mod__, zip(*columns, strict=True)) if columns else ["<tr></tr>\n"] * len(rows)
    lines.append("</tbody></table></div>")
    return Block(lines)


def _column_html(cells: tuple[Any, ...], escape) -> Sequence[str]:
    """One column's cells as markup: as they are where all are texts without markup characters, else each escaped
    or drawn by its kind."""
    search = _MARKUP_CHARACTERS.search
    try:
        if not search("".join(cells)):
            return cells
    except TypeError:  # a cell of a kind (Estimated, Stars, ...), which join refuses: drawn one by one below
        pass
    return [c if type(c) is str and not search(c) else _cell_html(c, escape) for c in cells]


def _text(text: Any, escape) -> str:
    """A text escaped as autoescape would (markupsafe.escape), as str; most have nothing to escape."""
    return str(escape(text)) if type(text) is not str or _MARKUP_CHARACTERS.search(text) else text


def _cell_html(c: Any, escape) -> str:
    """One cell's markup by its kind (the cases of templates/parts.html.j2 `cell`), as str (escaped texts in it)."""
    if isinstance(c, str):
        return str(escape(c))
    return _kind_html(c, escape)


@lru_cache(maxsize=1024)  # cells of a kind repeat down a column (Estimated("ram"), Stars(5)): each drawn once
def _kind_html(c: Estimated | Code | WithCode | Stars, escape) -> str:
    if c.kind == "estimated":
        return f'<span class="est">{_text(c.text, escape)}</span>'
    if c.kind == "code":
        return f"<code>{_text(c.text, escape)}</code>"
    if c.kind == "with_code":
        return _text(c.text, escape) + ("" if c.code is None else f" <code>{_text(c.code, escape)}</code>")
    if c.kind == "stars":
        if c.stars is None:
            return '<span class="note">unrated (size unknown)</span>'
        return (f'<span class="stars" title="{c.stars} of 5 stars">{"★" * c.stars}'
                f'<span class="off">{"★" * (5 - c.stars)}</span></span>')
    return ""


@cache
def environment() -> Environment:
    """The report's Jinja2 environment: templates shipped in the package, autoescape on, undefined names fail."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("scheduler.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.globals["table_html"] = table_html
    return env


def render_template(name: str, **context: Any) -> str:
    """The page, its blocks (charts, tables) put in where the template marked them."""
    blocks: list[list[str]] = []
    token = _page_blocks.set(blocks)
    try:
        page = environment().get_template(name).render(**context)
    finally:
        _page_blocks.reset(token)
    pieces = _BLOCK_MARKER.split(page)  # the page's texts, each block's index between two
    return "".join(chain.from_iterable(blocks[int(piece)] if i % 2 else (piece,) for i, piece in enumerate(pieces)))
