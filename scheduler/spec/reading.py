"""From a sweep file to a checked `SweepSpec`, or one line saying what is wrong.

`load_sweep(path)` reads the file within limits that keep reading cheap
whatever it holds (size, nesting, values after YAML aliases), parses the
YAML, validates it against the schema (scheduler.spec.schema) and checks it
against this machine's files: references to files lie under the data roots,
the chat templates of models run at a `reasoning` level have its switch, and
`model_gpus: auto` can size each model it names (scheduler.spec.gpus).
Every problem is a `SpecError` with one line naming the field, the value and
what is allowed, never a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError

from scheduler.spec import strict_yaml
from scheduler.spec.schema import SweepSpec

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_NODES = 200_000  # values after YAML aliases are expanded (a "billion laughs" file stops here)


class SpecError(ValueError):
    """A sweep file that cannot be used; the message is one line for the user."""


def parse_sweep(data: Any, source: str = "sweep", *, data_roots: Sequence[Path] | None = None,
                size_models: bool = True) -> SweepSpec:
    """A validated spec, checked against this machine's files too. `data_roots`: folders that `path:`, `file:`
    and local `hf:` references must lie under (None: not checked here; `load_sweep` passes the configured ones).
    `size_models`: `model_gpus: auto` must be able to size each model it names (False: `pull`, which fetches
    them)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping with name, carbon and tasks, got {type(data).__name__}")
    problem = _shape_problem(data)
    if problem:
        raise SpecError(f"{source}: {problem}")
    try:
        spec = SweepSpec.model_validate(data, context={"data_roots": data_roots})
    except ValidationError as error:
        raise SpecError(f"{source}: {_first_problem(error)}") from None
    problem = chat_template_problem(spec)
    if problem:
        raise SpecError(f"{source}: {problem}")
    if spec.model_gpus and size_models:  # `auto` reads the weights' size on this machine (scheduler.spec.gpus)
        from scheduler.spec.gpus import gpus_problem

        if problem := gpus_problem(spec):
            raise SpecError(f"{source}: {problem}")
    return spec


def chat_template_problem(spec: SweepSpec) -> str | None:
    """Why a task-specific model cannot be run at a `reasoning` level the sweep asks for, or None.

    Each level must map to a switch in the model's chat template. The template is read from files where it can
    be without a GPU stack or network (tiny: families, path: folders, hub: models in the local HF cache), which is
    why this is not a validator of the pure schema; a hub: model not in the cache is checked by the worker when it
    loads (its job fails naming the model).
    """
    from worker.contract.reasoning_switch import ReasoningSwitchError, chat_template_of, switch_inputs

    for task, task_spec in spec.tasks.items():
        for i, ref in enumerate(task_spec.models):
            levels = spec.model_params.get(ref, {}).get("reasoning", task_spec.params.get("reasoning"))
            if levels is None:
                continue
            by = spec.model_params.get(ref, {}).get("reasoning_by") or task_spec.params.get("reasoning_by", "template")
            template = chat_template_of(ref)
            if template is None and by == "template":
                continue
            for level in levels if isinstance(levels, list) else [levels]:
                try:
                    switch_inputs(template, level, by, ref)
                except ReasoningSwitchError as error:
                    return f"tasks.{task}.models.{i}: {error}"
    return None


def load_sweep(path: str | Path, *, data_roots: Sequence[Path] | None = None, size_models: bool = True) -> SweepSpec:
    """Read and validate a sweep file; references to files must lie under `data_roots` (default: configured)."""
    from worker.contract.refs import data_roots as configured_roots

    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SpecError(f"{path}: cannot read sweep file ({error.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"{path}: larger than {MAX_FILE_BYTES // 1024 // 1024} MiB; a sweep file is a few KiB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SpecError(f"{path}: not UTF-8 text: byte 0x{raw[error.start]:02x} at line {line} "
                        "(save the file as UTF-8)") from None
    try:
        data = strict_yaml.load(text)
    except ConstructorError as error:  # a duplicate key, a base-60 number (strict_yaml), an unknown tag
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise SpecError(f"{path}: {where}: {error.problem}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        raise SpecError(f"{path}: YAML syntax error at {where}: {error.problem}") from None
    except yaml.YAMLError as error:  # the reader's errors: a control character, say
        raise SpecError(f"{path}: not a YAML file: {_one_line(error)}") from None
    except (ValueError, OverflowError) as error:  # a value YAML cannot build: a 30 February, say
        raise SpecError(f"{path}: a value YAML cannot read: {_one_line(error)}") from None
    except RecursionError:
        raise SpecError(f"{path}: nested deeper than YAML can read; a sweep file nests {MAX_DEPTH} levels at most") \
            from None
    return parse_sweep(data, str(path), data_roots=configured_roots() if data_roots is None else data_roots,
                       size_models=size_models)


def _shape_problem(data: Any) -> str | None:
    """Too deep or too big (after aliases), checked before pydantic walks it."""
    budget, stack = MAX_NODES, [(data, 0)]
    while stack:
        value, depth = stack.pop()
        budget -= 1
        if budget < 0:
            return f"more than {MAX_NODES:,} values (after YAML aliases are expanded)"
        if depth > MAX_DEPTH:
            return f"nested deeper than {MAX_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
            stack.extend((k, depth + 1) for k in value if not isinstance(k, str | int | float | bool))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:200]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text):,} characters)"


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "missing":
        return f"{where}: missing required field"
    if problem["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if problem["type"] == "string_pattern_mismatch" and "x00" in str(problem.get("ctx", {}).get("pattern", "")):
        message = "contains a control character"
    if message.startswith("tasks.") or message.startswith(f"{where}.") or not where:
        return message
    return f"{where}: {message} (got {_shown(problem.get('input'))})"
