"""The `reasoning` setting (on / off / low / medium / high) as the chat-template switches models read.

Models that can reason on demand expose it as variables of their chat template,
passed through `tokenizer.apply_chat_template(..., **kwargs)`: `enable_thinking`
(Qwen3, SmolLM3, Hunyuan, EXAONE: on / off), `reasoning_effort` (gpt-oss: low /
medium / high), `thinking` (DeepSeek V3.1: on / off). A level that the model's
template has no switch for is an error naming the model and the levels it does
take: measuring a model with a switch silently ignored would report reasoning
energy for a run that did not reason (or the reverse).

Some models are switched otherwise (AI Energy Score's oct_2025_models.csv): by a
system prompt (Nemotron Super 49B v1.5: `/no_think`; Qwen3 and SmolLM3 read
`/think` and `/no_think` too), or by a prefix of the answer (DeepSeek-R1:
"Prepend input with <think>"). `reasoning_by` picks the way: `template`
(default), `system`, `prefix`, or `default` for a model with one mode (the level
is recorded, nothing is switched: gemma-3-it, Qwen3-Next); `switch_inputs` turns (level, way) into what the
workload puts around each prompt.

Light (standard library only): the scheduler reads templates of tiny:, path: and
locally cached hub: models to refuse a bad sweep before anything is written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from worker.contract.catalog import TINY_CHAT_TEMPLATES

# switch -> the value each level maps to; a level missing from a switch's table is not expressible with it.
SWITCHES: dict[str, dict[str, object]] = {
    "enable_thinking": {"on": True, "off": False},
    "thinking": {"on": True, "off": False},
    "reasoning_effort": {"on": "medium", "low": "low", "medium": "medium", "high": "high"},  # gpt-oss's default
}


class ReasoningSwitchError(ValueError):
    """A reasoning level the model's chat template cannot express; the message names the model."""


def switches_in(template: str) -> list[str]:
    """The switches a chat template reads, in SWITCHES order."""
    return [name for name in SWITCHES if re.search(rf"\b{name}\b", template)]


def template_kwargs(template: str | None, level: str | None, model: str) -> dict[str, object]:
    """apply_chat_template keyword arguments that set `level` for this template; {} for level None (its default)."""
    if level is None:
        return {}
    found = switches_in(template or "")
    if not found:
        raise ReasoningSwitchError(
            f"{model} has no chat-template switch for reasoning ({', '.join(SWITCHES)}), so reasoning: {level} "
            "cannot be set; leave reasoning out to run it as its template does")
    kwargs = {name: SWITCHES[name][level] for name in found if level in SWITCHES[name]}
    if not kwargs:
        takes = sorted({lvl for name in found for lvl in SWITCHES[name]})
        raise ReasoningSwitchError(f"{model}'s chat template switches reasoning with {', '.join(found)}, which "
                                   f"takes {', '.join(takes)}, not {level}")
    return kwargs


def chat_template_of(ref: str) -> str | None:
    """The chat template of a model reference, read from files without loading anything; None if not at hand."""
    kind, _, name = ref.partition(":")
    if kind == "tiny":
        return TINY_CHAT_TEMPLATES.get(name, "")
    if kind == "path":
        return _template_in(Path(name).expanduser())
    if kind == "hub":
        repo, _, _revision = name.partition("@")
        home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"
        snapshots = sorted((home / f"models--{repo.replace('/', '--')}" / "snapshots").glob("*"))
        return _template_in(snapshots[-1]) if snapshots else None
    return None


def _template_in(folder: Path) -> str | None:
    """A folder's chat template: chat_template.jinja, or the tokenizer config's chat_template; None if neither."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return None
    try:
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
    except ValueError:
        return None
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        template = " ".join(t.get("template", "") for t in template if isinstance(t, dict))
    return template if isinstance(template, str) else ""


# reasoning_by -> level -> text. "prefix" off adds nothing: AI Energy Score runs DeepSeek-R1 "off" as its default.
SYSTEM_SWITCH: dict[str, str] = {"on": "/think", "off": "/no_think"}
PREFIX_SWITCH: dict[str, str] = {"on": "<think>\n", "off": ""}


def switch_inputs(template: str | None, level: str | None, by: str, model: str) -> dict[str, object]:
    """What sets `level` the way `by` says: {"template_kwargs": ..., "system": ..., "answer_prefix": ...}."""
    inputs: dict[str, object] = {"template_kwargs": {}, "system": None, "answer_prefix": ""}
    if level is None:
        return inputs
    if by == "template":
        return inputs | {"template_kwargs": template_kwargs(template, level, model)}
    if by == "default":  # a model with one mode (AI Energy Score's "default"): the level is a record, not a switch
        return inputs
    table = SYSTEM_SWITCH if by == "system" else PREFIX_SWITCH
    if level not in table:
        raise ReasoningSwitchError(f"{model}: reasoning_by {by} switches reasoning on or off, not {level}")
    return inputs | ({"system": table[level]} if by == "system" else {"answer_prefix": table[level]})
