"""Any OpenAI-compatible server that is already running on the worker's node (SGLang, TGI, llama.cpp, vLLM...).

The worker does not start or stop it: it drives it and meters its own pinned GPU, so the server must run on that
GPU (the README says so). The load is the client's in-flight count (no engine metrics are assumed); when the
sweep names the server's `metrics_url` and the server is vLLM-like, its gauges are read too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.engines.base import Endpoint, MetricNames
from worker.engines.vllm import VLLM


class OpenAICompatible:
    name = "openai"
    metrics = MetricNames()

    def command(self, model_dir: Path, port: int, args: Mapping[str, Any], *, gpus: int = 1) -> None:
        return None

    def endpoint(self, spec: Mapping[str, Any], *, port: int | None = None, served: str | None = None) -> Endpoint:
        base = str(spec["base_url"]).rstrip("/")
        key = os.environ.get(spec["api_key_env"]) if spec.get("api_key_env") else None
        metrics_url = spec.get("metrics_url")
        return Endpoint(base_url=base, model=str(spec["model"]), health_url=None, metrics_url=metrics_url,
                        api_key=key, metrics=VLLM.metrics if metrics_url else self.metrics)

    def environment(self, device: str) -> dict[str, str]:
        return {}


ENGINE = OpenAICompatible()
