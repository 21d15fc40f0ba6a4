"""The one small protocol every task module implements.

A workload turns a model reference into a ready pipeline once per job
(`load`, measured as phase `load`), then runs batches of queries on it (`run`,
measured as phase `query`). Heavy imports happen inside these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol


@dataclass(frozen=True)
class WorkUnits:
    """What one call of `Workload.run` processed, for per-unit energy figures.

    `input_tokens` may come back as a function: counting means tokenising the
    inputs a second time, which must not happen inside the meter window. The
    executor calls `resolved()` once the window has closed.
    """

    queries: int
    input_tokens: int | Callable[[], int] | None = None  # text tasks
    output_tokens: int | None = None  # generated tokens (generation tasks)
    images: int | None = None  # images read or produced (image tasks)

    def resolved(self) -> WorkUnits:
        """These units with every deferred count counted."""
        return replace(self, input_tokens=self.input_tokens()) if callable(self.input_tokens) else self

    def __add__(self, other: WorkUnits) -> WorkUnits:
        def plus(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        mine, theirs = self.resolved(), other.resolved()
        return WorkUnits(
            mine.queries + theirs.queries,
            plus(mine.input_tokens, theirs.input_tokens),
            plus(mine.output_tokens, theirs.output_tokens),
            plus(mine.images, theirs.images),
        )


class Workload(Protocol):
    task: str  # registry key, e.g. "text-classification"
    input_kind: str  # the kind of query it consumes: see worker.catalog.INPUT_KINDS
    default_params: Mapping[str, Any]  # e.g. {"max_new_tokens": 10}; sweep params override

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        """Build the ready-to-call pipeline for model reference `model` on `device`."""

    def run(self, pipeline: Any, queries: Sequence[Any], batch_size: int, params: Mapping[str, Any]) -> WorkUnits:
        """Run `queries` through `pipeline` in batches of `batch_size`; return the work done."""
