"""One unit (a run, or a shard) measured against a served model: warm-up at the cell's load, the metered run,
the steady part cut from it, and the units and serving figures the store writes."""

from __future__ import annotations

import logging
from typing import Any

from worker.engines.figures import serving_figures
from worker.engines.lateness import FLAG as LATE
from worker.engines.load import drive
from worker.engines.process import EngineError, log_tail
from worker.engines.served import ServedModel, restart
from worker.engines.steady import steady_energy, steady_part
from worker.workloads._shared import cut_words
from worker.workloads.base import BatchTiming, WorkDone

log = logging.getLogger(__name__)
MAX_RESTARTS = 2  # per job: an engine that keeps dying fails its units instead
LAST_LINES = 5


def load_settings(params: dict[str, Any]) -> dict[str, Any]:
    concurrency, rate = params.get("concurrency"), params.get("request_rate")
    if concurrency is None and rate is None:
        concurrency = 1
    return dict(max_tokens=int(params["max_new_tokens"]), fixed_length=bool(params.get("fixed_length", True)),
                concurrency=concurrency, request_rate=rate, seed=int(params.get("arrival_seed") or 0))


def measure(served: ServedModel, meter: Any, prompts: list[str], warmup: list[str], params: dict[str, Any]):
    """(the run window's reading, its WorkDone with `serving` figures); EngineError when the engine fails.

    `prompts` and `warmup` are the dataset's queries, cut to `max_input_words` here as text-generation cuts them."""
    if not served.alive():
        if served.restarts >= MAX_RESTARTS:
            raise served.process.failure(f"died, and was restarted {served.restarts} times already")
        log.warning("engine %s is not running: restarting it for this unit", served.engine.name)
        restart(served)
    load = load_settings(params)
    prompts, warmup = (cut_words(list(texts), params.get("max_input_words")) for texts in (prompts, warmup))
    gpu = meter.device_state if getattr(meter, "gpu", None) else None
    if warmup:
        _check(served, drive(served.endpoint, warmup, **load), "warm-up")
    with meter.window("query") as window:
        run = drive(served.endpoint, prompts, gpu_energy_mj=(lambda: gpu().energy_mj) if gpu else None, **load)
    _check(served, run, "run")
    steady = steady_part(run, concurrency=load["concurrency"], steady_min_s=float(params.get("steady_min_s", 30.0)))
    energy = steady_energy(window.reading, steady, run.samples) if steady.start is not None else None
    figures = serving_figures(run, steady, energy, endpoint=served.endpoint, concurrency=load["concurrency"],
                              request_rate=load["request_rate"])
    done = [r for r in run.records if r.error is None]
    # the window's latency columns are the same read times: none where the client read late (worker.engines.lateness)
    timing = None if LATE in (figures["flags"] or "").split(",") else \
        BatchTiming(tuple(r.e2e_s for r in done), tuple(1 for _ in done),
                    tuple(r.ttft_s for r in done if r.ttft_s is not None))
    expected = len(done) * load["max_tokens"] if load["fixed_length"] else None
    units = WorkDone(len(done), input_tokens=figures["input_tokens"], output_tokens=figures["output_tokens"],
                      timing=timing, expected_output_tokens=expected, serving=figures)
    return window.reading, units


def _check(served: ServedModel, run, what: str) -> None:
    """A run with failed requests fails its unit: with the engine's last log lines when the engine died."""
    errors = run.errors
    if not errors:
        return
    if not served.alive():
        tail = " | ".join(log_tail(served.process.log_path, LAST_LINES))
        raise EngineError(f"engine died during the {what}: {tail} [log: {served.process.log_path}]")
    raise EngineError(f"{len(errors)} of {len(run.records)} requests failed during the {what}; first: {errors[0]}")
