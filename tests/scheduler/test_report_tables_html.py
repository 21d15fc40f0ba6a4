"""html_parts.table_html draws a report table as the Jinja macros did (a call per cell was 9 s for a 10,000-model
sweep): the same markup for every kind of cell, texts escaped, markup in names shown as text."""

from __future__ import annotations

from jinja2 import Environment, StrictUndefined

from scheduler.report.html_parts import Code, Estimated, Stars, Table, WithCode, environment, table_html

# templates/parts.html.j2 before table_html: a loop over the cells, a macro call each
MACROS = """{% macro stars(n) -%}
{% if n is none %}<span class="note">unrated (size unknown)</span>{% else -%}
<span class="stars" title="{{ n }} of 5 stars">{{ "★" * n }}<span class="off">{{ "★" * (5 - n) }}</span></span>
{%- endif %}
{%- endmacro %}

{% macro cell(c) -%}
{% if c is string %}{{ c }}
{%- elif c.kind == "estimated" %}<span class="est">{{ c.text }}</span>
{%- elif c.kind == "code" %}<code>{{ c.text }}</code>
{%- elif c.kind == "with_code" %}{{ c.text }}{% if c.code is not none %} <code>{{ c.code }}</code>{% endif %}
{%- elif c.kind == "stars" %}{{ stars(c.stars) }}
{%- endif %}
{%- endmacro %}

{% macro table(t) -%}
<div class="wrap"><table><thead><tr>{% for h in t.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead><tbody>
{% for row in t.rows %}
<tr>{% for c in row %}<td{% if loop.index0 in t.numeric %} class="n"{% endif %}>{{ cell(c) }}</td>{% endfor %}</tr>
{% endfor %}
</tbody></table></div>
{%- endmacro %}"""


def test_table_html_is_the_macros_markup():
    table = Table(["model <b>", "kWh & more", "stars"], [
        ["hub:org/<em>m</em>", Estimated("0.5 'e'"), Stars(3)],
        [WithCode("hub:a", "batch_size=<u>1</u>"), WithCode('say "hi"', None), Stars(None)],
        [Code("x<y"), "1,000", Stars(5)],
        [Stars(0), "–", ""],
    ], numeric=frozenset({1}))
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    expected = str(env.from_string(MACROS).module.table(table))
    assert str(table_html(table)) == expected
    assert "<code>batch_size=&lt;u&gt;1&lt;/u&gt;</code>" in expected and "&lt;em&gt;" in expected
    shipped = environment().from_string('{% from "parts.html.j2" import table %}{{ table(t) }}').render(t=table)
    assert shipped == expected


def test_rows_of_other_lengths_and_none_are_the_macros_markup():
    """table_html takes runs of rows of one length together (their columns): rows of other lengths between them,
    rows without cells, a table without rows and columns that need escaping all come out as the macros drew them."""
    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    for table in [
        Table(["a", "b", "c"], [["1", "2", "3"], ["4", "<5>", Estimated("6")], ["7"], [], [], ["8", "9", "10", "11"],
                                ["a & b", Stars(2), Code("c")]], numeric=frozenset({1, 3})),
        Table(["a"], [], numeric=frozenset({0})),
        Table([], [[]]),
    ]:
        assert str(table_html(table)) == str(env.from_string(MACROS).module.table(table))
