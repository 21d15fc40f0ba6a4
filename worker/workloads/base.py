"""The one small protocol every task module implements.

A workload turns a model reference into a ready pipeline once per job
(`load`, measured as phase `load`), then runs batches of queries on it (`run`,
measured as phase `query`). Heavy imports happen inside these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol


def percentile(values: Sequence[float], share: float) -> float | None:
    """The `share` (0-1) quantile of `values`, numpy's default (linear interpolation); None for no values."""
    if len(values) == 0:
        return None
    import numpy as np  # here, not at the top: the light contract code imports this module

    return float(np.quantile(np.asarray(values, dtype=float), share))


@dataclass(frozen=True)
class BatchTiming:
    """Wall time of each batch of a run, measured around the batch, and when its first new token came.

    A query's latency is its batch's time: what a caller waits for its answer.
    """

    batch_s: tuple[float, ...] = ()
    batch_queries: tuple[int, ...] = ()
    first_token_s: tuple[float, ...] = ()  # generation: batch start -> first new token, where observed

    def __add__(self, other: BatchTiming) -> BatchTiming:
        return BatchTiming(self.batch_s + other.batch_s, self.batch_queries + other.batch_queries,
                           self.first_token_s + other.first_token_s)

    def per_query_s(self) -> list[float]:
        return [seconds for seconds, n in zip(self.batch_s, self.batch_queries, strict=True) for _ in range(n)]


@dataclass(frozen=True)
class WorkDone:
    """What one call of `Workload.run` processed (queries, tokens, images, audio), for per-query and per-token
    energy figures. Not a unit: a unit is the run or shard a worker leases (db.queue.leases).

    `input_tokens` may come back as a function: counting means tokenising the
    inputs a second time, which must not happen inside the meter window. The
    executor calls `resolved()` once the window has closed.
    """

    queries: int
    input_tokens: int | Callable[[], int] | None = None  # text tasks
    output_tokens: int | None = None  # generated tokens (generation tasks)
    images: int | None = None  # images read or produced (image tasks)
    audio_s: float | None = None  # seconds of audio read (speech recognition)
    timing: BatchTiming | None = None  # per-batch wall times, for latency and time to first token
    output_lengths: tuple[int, ...] | None = None  # generated tokens per query, where lengths vary (reasoning)
    # queries x max_new_tokens where the length is fixed (min_new_tokens = max_new_tokens); None where it may vary
    expected_output_tokens: int | None = None
    serving: dict | None = None  # a served run's figures (worker.engines.figures); never added across runs

    def resolved(self) -> WorkDone:
        """These units with every deferred count counted."""
        return replace(self, input_tokens=self.input_tokens()) if callable(self.input_tokens) else self

    def __add__(self, other: WorkDone) -> WorkDone:
        """Both together; deferred token counts stay deferred (adding happens inside the meter window)."""
        def plus(a, b):
            return None if a is None and b is None else (a or 0) + (b or 0)

        def both(a, b):  # known for the whole only where known for each part (an empty part is no part)
            if not self.queries or not other.queries:
                return b if not self.queries else a
            return None if a is None or b is None else a + b

        def joined(a, b):
            return a if b is None else b if a is None else a + b

        tokens = self.input_tokens, other.input_tokens
        if any(callable(t) for t in tokens):
            def input_tokens(a=tokens[0], b=tokens[1]):
                return plus(a() if callable(a) else a, b() if callable(b) else b)
        else:
            input_tokens = plus(*tokens)
        return WorkDone(
            self.queries + other.queries,
            input_tokens,
            plus(self.output_tokens, other.output_tokens),
            plus(self.images, other.images),
            plus(self.audio_s, other.audio_s),
            joined(self.timing, other.timing),
            joined(self.output_lengths, other.output_lengths),
            both(self.expected_output_tokens, other.expected_output_tokens),
        )

    @property
    def flags(self) -> tuple[str, ...]:
        """Why these units are not what was asked for: `length-mismatch` when fixed-length generation emitted
        another number of tokens than queries x max_new_tokens (per-token figures would divide by the wrong count)."""
        expected = self.expected_output_tokens
        return ("length-mismatch",) if expected is not None and self.output_tokens != expected else ()

    def latency_figures(self) -> dict[str, float | None]:
        """p50 / p95 time per query, p50 time to first token, p50 / p95 output length: the run's latency columns."""
        per_query = self.timing.per_query_s() if self.timing else []
        first = list(self.timing.first_token_s) if self.timing else []
        lengths = list(self.output_lengths or ())
        return {"latency_p50_s": percentile(per_query, 0.5), "latency_p95_s": percentile(per_query, 0.95),
                "ttft_p50_s": percentile(first, 0.5), "output_tokens_p50": percentile(lengths, 0.5),
                "output_tokens_p95": percentile(lengths, 0.95)}


class Workload(Protocol):
    task: str  # registry key, e.g. "text-classification"
    input_kind: str  # the kind of query it consumes: see worker.contract.catalog.INPUT_KINDS
    default_params: Mapping[str, Any]  # e.g. {"max_new_tokens": 10}; sweep params override

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        """Build the ready-to-call pipeline for model reference `model` on `device`."""

    def run(self, pipeline: Any, queries: Sequence[Any], batch_size: int, params: Mapping[str, Any]) -> WorkDone:
        """Run `queries` through `pipeline` in batches of `batch_size`; return the work done."""
