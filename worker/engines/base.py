"""The one small protocol every engine module implements, and what a running engine is reached through.

An engine module says how to start the engine (`command`; None for a server that is already running), where
its OpenAI-compatible API, health check and Prometheus metrics are, what its load and latency metrics are
called, and which fixed-length fields its completions take. Adding SGLang or llama.cpp's server is one file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class MetricNames:
    """The engine's Prometheus names (without the `_bucket`/`_sum`/`_count` suffixes of histograms); None: absent."""

    running: str | None = None  # requests being decoded now (gauge)
    waiting: str | None = None  # requests queued (gauge)
    preemptions: str | None = None  # counter
    kv_cache_usage: tuple[str, ...] = ()  # gauge, 0-1; the first name the engine exposes is read
    ttft: tuple[str, ...] = ()  # histograms: the first name the engine exposes is read
    itl: tuple[str, ...] = ()
    e2e: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """A serving engine as the load generator reaches it."""

    base_url: str  # http://127.0.0.1:PORT/v1
    model: str  # the `model` field of requests
    health_url: str | None = None
    metrics_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    metrics: MetricNames = MetricNames()
    # min_tokens / ignore_eos: OpenAI's API has neither; vLLM and SGLang take both
    fixed_length_fields: tuple[str, ...] = ("min_tokens", "ignore_eos")


class Engine(Protocol):
    name: str
    metrics: MetricNames

    def command(self, model_dir: Path, port: int, args: Mapping[str, Any], *, gpus: int = 1) -> list[str] | None:
        """The command line that serves `model_dir` on 127.0.0.1:`port` over the worker's `gpus` (all visible to
        the engine through the inherited pinning); None: the engine is not started here."""

    def endpoint(self, spec: Mapping[str, Any], *, port: int | None = None, served: str | None = None) -> Endpoint:
        """Where the engine answers: on `port` as `served` (started here), or as `spec` says (already running)."""

    def environment(self, device: str) -> dict[str, str]:
        """Variables the engine process needs beside the worker's own (the worker's GPU pinning is inherited)."""
