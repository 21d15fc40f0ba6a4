"""The one small protocol every task module implements.

A workload turns a model reference into a ready pipeline once per job
(`load`, measured as phase `load`), then runs batches of queries on it (`run`,
measured as phase `query`). Heavy imports happen inside these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class WorkUnits:
    """What one call of `Workload.run` processed, for per-unit energy figures."""

    queries: int
    input_tokens: int | None = None  # text tasks
    output_tokens: int | None = None  # generated tokens (generation tasks)
    images: int | None = None  # images read or produced (image tasks)

    def __add__(self, other: WorkUnits) -> WorkUnits:
        def plus(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return WorkUnits(
            self.queries + other.queries,
            plus(self.input_tokens, other.input_tokens),
            plus(self.output_tokens, other.output_tokens),
            plus(self.images, other.images),
        )


class Workload(Protocol):
    task: str  # registry key, e.g. "text-classification"
    input_kind: str  # the kind of query it consumes: see worker.datasets.INPUT_KINDS
    default_params: Mapping[str, Any]  # e.g. {"max_new_tokens": 10}; sweep params override

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        """Build the ready-to-call pipeline for model reference `model` on `device`."""

    def run(self, pipeline: Any, queries: Sequence[Any], batch_size: int, params: Mapping[str, Any]) -> WorkUnits:
        """Run `queries` through `pipeline` in batches of `batch_size`; return the work done."""
