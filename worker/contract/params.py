"""Checking a task's `params` when the sweep file is read, not on a GPU three attempts later.

One rule per parameter name (the names mean the same in every task), and for
a name without a rule, the type of the workload's default value. A rule
returns what is wrong with a value, or None. Light on purpose (standard
library only): the scheduler validates sweep files with it.
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping
from typing import Any

DTYPES = ("float32", "float16", "bfloat16")
MAX_TEMPLATE_CHARS = 10_000

Rule = Callable[[Any], str | None]


def _whole(low: int, high: int, *, optional: bool = False, multiple_of: int = 1) -> Rule:
    def check(value: Any) -> str | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"expected a whole number from {low} to {high:,}{' (or null)' if optional else ''}"
        if value % multiple_of:
            return f"expected a multiple of {multiple_of}"
        return None

    return check


def _number(low: float, high: float) -> Rule:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                or not low <= value <= high:
            return f"expected a number from {low:g} to {high:g}"
        return None

    return check


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _optional(rule: Rule) -> Rule:
    """`rule`, or None (the model's own setting: greedy decoding where no temperature is given)."""
    return lambda value: None if value is None else rule(value)


def _choice(*allowed: str) -> Rule:
    return lambda value: None if value in allowed else f"expected one of {', '.join(allowed)}"


def _dtype(value: Any) -> str | None:
    return None if value is None or value in DTYPES else f"expected one of {', '.join(DTYPES)} (or null: as saved)"


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEMPLATE_CHARS:
        return f"expected text of 1 to {MAX_TEMPLATE_CHARS:,} characters"
    return None


def _size_px(value: Any) -> str | None:
    side = _whole(1, 16_384)
    if value is None or side(value) is None:
        return None
    if isinstance(value, list) and len(value) == 2 and all(side(v) is None for v in value):
        return None
    return "expected null, N or [width, height] in pixels from 1 to 16,384"


RULES: dict[str, Rule] = {
    "dtype": _dtype,
    # fill-mask: predictions returned; generation: sampling's top-k cutoff (null: the model's own)
    "top_k": _optional(_whole(1, 1_000)),
    # Decoding (generation tasks): greedy unless temperature > 0; a temperature below 0 means nothing.
    "temperature": _optional(_number(0, 100)),
    "top_p": _optional(_number(0, 1)),
    "seed": _optional(_whole(0, 2**32 - 1)),
    "num_beams": _optional(_whole(1, 64)),
    "chat_template": _flag,
    "max_new_tokens_off": _optional(_whole(1, 100_000)),
    "reasoning_by": _choice("template", "system", "prefix", "default"),
    "max_new_tokens": _whole(1, 100_000),
    "max_input_words": _whole(1, 1_000_000, optional=True),
    "measure_prefill": _flag,
    "fixed_length": _flag,
    "resize_px": _size_px,
    "num_inference_steps": _whole(1, 10_000),
    "guidance_scale": _optional(_number(0, 1_000)),  # null: the pipeline's own
    "height": _whole(8, 16_384, optional=True, multiple_of=8),
    "width": _whole(8, 16_384, optional=True, multiple_of=8),
    "prompt_template": _text,
    "power_limit_w": _optional(_number(1, 10_000)),  # watts; each GPU's own [min, max] is checked by the worker
}


def _by_default(default: Any) -> Rule | None:
    """A rule from the default's type, for parameters without a rule of their own (None: anything goes)."""
    if isinstance(default, bool):
        return _flag
    if isinstance(default, int):
        return _whole(-(2**31), 2**31 - 1)
    if isinstance(default, float):
        return _number(-1e12, 1e12)
    if isinstance(default, str):
        return _text
    return None


def params_problem(params: Mapping[str, Any], defaults: Mapping[str, Any], where: str = "params") -> str | None:
    """The first problem with sweep `params` for a workload with `defaults`, naming the field, value and limit."""
    for name, value in params.items():
        if name not in defaults:
            return f"{where}: unknown parameter {name!r}; allowed are {', '.join(sorted(defaults))}"
        rule = RULES.get(name) or _by_default(defaults[name])
        problem = rule(value) if rule else None
        if problem:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            return f"{where}.{name}: {problem} (got {shown})"
    return None


# The placeholders a zero-shot prompt template may use, by the input kind of the task's queries.
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "text": frozenset({"text"}), "document": frozenset({"text"}), "prompt": frozenset({"text"}),
    "qa": frozenset({"question", "context"}),
}


def template_problem(template: Any, input_kind: str) -> str | None:
    """Why `template` cannot format a query of `input_kind`, or None if it can."""
    if not isinstance(template, str) or not template.strip():
        return "prompt_template must be a non-empty string"
    allowed = TEMPLATE_FIELDS[input_kind]
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
    except ValueError as error:
        return f"prompt_template is not a format string ({error}); write literal braces as {{{{ }}}}"
    unknown = sorted(used - allowed)
    if unknown:
        return f"prompt_template uses {{{unknown[0]}}}; it may use {', '.join('{' + f + '}' for f in sorted(allowed))}"
    if not used:
        return f"prompt_template must contain {' and '.join('{' + f + '}' for f in sorted(allowed))}"
    return None
