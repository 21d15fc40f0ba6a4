"""vLLM's OpenAI-compatible server, started by the worker for each job on the worker's own GPU.

The command is `WATTSWEEP_VLLM_COMMAND` (default `python -m vllm.entrypoints.openai.api_server`), so that vLLM
can live in its own virtual environment or container: it pins its own torch and transformers. The job's engine
args follow it as options (`max_num_seqs: 256` -> `--max-num-seqs 256`, `enable_prefix_caching: false` ->
`--no-enable-prefix-caching`). The worker's GPU pinning (CUDA_VISIBLE_DEVICES) is inherited, so the engine runs
on the devices the meter reads. On a worker holding a group of GPUs the engine spans the group:
`--tensor-parallel-size` is the group's size unless the engine args set a parallel size themselves
(tensor_parallel_size, pipeline_parallel_size or data_parallel_size: their product must then be the group's size).
Expert parallelism for mixture-of-experts models is vLLM's own switch, passed through like any engine arg
(`enable_expert_parallel: true`: the experts are spread over the tensor-parallel ranks).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.contract.engines import engine_args_command_line
from worker.engines.base import Endpoint, MetricNames

SERVED_NAME = "wattsweep-model"  # the `model` name requests use, whatever the folder is called
PARALLEL_ARGS = ("tensor_parallel_size", "pipeline_parallel_size", "data_parallel_size")  # set: the sweep decided


class VLLM:
    name = "vllm"
    metrics = MetricNames(
        running="vllm:num_requests_running",
        waiting="vllm:num_requests_waiting",
        preemptions="vllm:num_preemptions",
        kv_cache_usage=("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        ttft=("vllm:time_to_first_token_seconds",),
        itl=("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        e2e=("vllm:e2e_request_latency_seconds",),
    )

    def command(self, model_dir: Path, port: int, args: Mapping[str, Any], *, gpus: int = 1) -> list[str]:
        from db.settings import get_settings

        if gpus > 1 and not any(args.get(name) for name in PARALLEL_ARGS):
            args = {**args, "tensor_parallel_size": gpus}

        return [*shlex.split(get_settings().vllm_command), "--model", str(model_dir),
                "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
                "--disable-uvicorn-access-log", *engine_args_command_line(args)]

    def endpoint(self, spec: Mapping[str, Any], *, port: int | None = None, served: str | None = None) -> Endpoint:
        root = f"http://127.0.0.1:{port}"
        return Endpoint(base_url=f"{root}/v1", model=served or SERVED_NAME, health_url=f"{root}/health",
                        metrics_url=f"{root}/metrics", metrics=self.metrics)

    def environment(self, device: str) -> dict[str, str]:
        # vLLM's CPU build sizes its KV cache from this (GiB); unset it takes a share of RAM a CI machine lacks.
        return {"VLLM_CPU_KVCACHE_SPACE": "1"} if device == "cpu" else {}


ENGINE = VLLM()
