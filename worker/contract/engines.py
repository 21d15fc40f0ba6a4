"""Engines a task may be served by, and the serving parameters, checked when the sweep file is read.

Light on purpose (standard library only): the scheduler validates `engine:` blocks and the serving params
with it, without importing the engine modules (worker.engines), which start processes and speak HTTP.

A task's `engine:` names an engine and what it needs:

    engine: {name: vllm, args: {max_num_seqs: 256, enable_prefix_caching: false}}
    engine: {name: openai, base_url: http://127.0.0.1:8000/v1, model: llama-3.1-8b}

`vllm` is started by the worker for each job (its args go on the engine's command line as `--max-num-seqs 256`,
`--no-enable-prefix-caching`); `openai` is a server already running on the worker's node, which the worker only
drives (and whose GPU must be the worker's own: the meter reads only that one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

ENGINE_NAMES = ("vllm", "openai")
STARTED = ("vllm",)  # engines the worker starts itself (the others are already running)
MAX_CONCURRENCY = 100_000
MAX_REQUEST_RATE = 100_000.0
ARG_NAME = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")

# Serving parameters, beside a task's own (text-generation: max_new_tokens, max_input_words, fixed_length):
# the load (one of concurrency or request_rate; both are sweep axes) and the steady-state cut.
SERVING_DEFAULTS: dict[str, Any] = {
    "concurrency": None,  # closed loop: this many requests always in flight (default 1 without request_rate)
    "request_rate": None,  # open loop: Poisson arrivals, requests per second
    "steady_min_s": 30.0,  # a steady part shorter than this is flagged `steady-short` (ML.ENERGY's 30 s)
    "fixed_length": True,  # min_tokens = max_tokens (and ignore_eos where the engine takes it)
    "arrival_seed": 0,  # the open loop's arrival times are drawn from this seed: the same runs on every worker
}
SERVING_AXES = ("concurrency", "request_rate")
ENGINE_TASKS = ("text-generation",)  # tasks whose queries are prompts an OpenAI-compatible endpoint completes


def engine_problem(engine: Any) -> str | None:
    """What is wrong with an `engine:` block, one line naming the field, or None."""
    if not isinstance(engine, Mapping):
        return "expected a mapping such as {name: vllm, args: {max_num_seqs: 256}}"
    name = engine.get("name")
    if name not in ENGINE_NAMES:
        return f"name: expected one of {', '.join(ENGINE_NAMES)}, got {name!r}"
    allowed = {"vllm": {"name", "args", "start_timeout_s"},
               "openai": {"name", "base_url", "model", "api_key_env", "metrics_url"}}[name]
    unknown = sorted(set(engine) - allowed)
    if unknown:
        return f"{unknown[0]}: unknown field for engine {name}; allowed are {', '.join(sorted(allowed))}"
    if name == "openai":
        for field in ("base_url", "model"):
            if not isinstance(engine.get(field), str) or not engine[field]:
                return f"{field}: engine openai needs {field} (the running server's, e.g. http://127.0.0.1:8000/v1)"
        if not re.match(r"^https?://[^\s]+$", engine["base_url"]):
            return f"base_url: expected http(s)://host:port/v1, got {engine['base_url']!r}"
        if "api_key_env" in engine and not (isinstance(engine["api_key_env"], str)
                                            and re.match(r"^[A-Z_][A-Z0-9_]*$", engine["api_key_env"])):
            return "api_key_env: the name of an environment variable holding the key (never the key itself)"
        return None
    args = engine.get("args", {})
    if not isinstance(args, Mapping):
        return "args: expected a mapping of engine options, e.g. {max_num_seqs: 256}"
    for key, value in args.items():
        if not isinstance(key, str) or not ARG_NAME.match(key):
            return f"args.{key}: expected an option name such as max_num_seqs"
        if key in ("model", "port", "host"):
            return f"args.{key}: set by the worker (the job's model, a free local port), not by the sweep"
        if not (value is None or isinstance(value, bool | int | str) or
                (isinstance(value, float) and math.isfinite(value))):
            return f"args.{key}: expected a number, text, true/false or null, got {type(value).__name__}"
    timeout = engine.get("start_timeout_s", 1200)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 86_400:
        return "start_timeout_s: expected seconds from 1 to 86,400"
    return None


def serving_problem(params: Mapping[str, Any]) -> str | None:
    """What is wrong with one cell's serving params (after axes are expanded), or None."""
    concurrency, rate = params.get("concurrency"), params.get("request_rate")
    if concurrency is not None and rate is not None:
        return "give concurrency (closed loop) or request_rate (open loop) for a cell, not both"
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or not 1 <= concurrency <= MAX_CONCURRENCY):
        return f"concurrency: expected a whole number from 1 to {MAX_CONCURRENCY:,}, got {concurrency!r}"
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)
                             or not math.isfinite(rate) or not 0 < rate <= MAX_REQUEST_RATE):
        return f"request_rate: expected requests per second above 0 and up to {MAX_REQUEST_RATE:,.0f}, got {rate!r}"
    steady = params.get("steady_min_s", 30.0)
    if isinstance(steady, bool) or not isinstance(steady, int | float) or not 0 <= steady <= 86_400:
        return f"steady_min_s: expected seconds from 0 to 86,400, got {steady!r}"
    return None


def engine_args_command_line(args: Mapping[str, Any]) -> list[str]:
    """`{max_num_seqs: 256, enable_prefix_caching: false, enforce_eager: true}` -> vLLM-style options:
    `--max-num-seqs 256 --no-enable-prefix-caching --enforce-eager` (null: the bare flag is left out)."""
    line: list[str] = []
    for key, value in args.items():
        option = "--" + key.replace("_", "-")
        if value is True:
            line.append(option)
        elif value is False:
            line.append("--no-" + key.replace("_", "-"))
        elif value is not None:
            line += [option, str(value)]
    return line
