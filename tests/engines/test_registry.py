"""The engine registry agrees with the light contract the scheduler validates sweeps against."""

from __future__ import annotations

from pathlib import Path

from worker.contract.engines import ENGINE_NAMES, STARTED
from worker.engines import ENGINES


def test_the_registry_and_the_contract_name_the_same_engines():
    assert set(ENGINES) == set(ENGINE_NAMES)
    started = {name for name, engine in ENGINES.items() if engine.command(Path("/m"), 1, {}) is not None}
    assert started == set(STARTED)


def test_vllm_serves_the_jobs_model_on_the_given_port_with_the_sweeps_args(monkeypatch):
    from db.settings import get_settings

    monkeypatch.setenv("WATTSWEEP_VLLM_COMMAND", "/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server")
    get_settings.cache_clear()
    try:
        command = ENGINES["vllm"].command(Path("/models/m"), 8123, {"max_num_seqs": 4, "enforce_eager": True})
    finally:
        get_settings.cache_clear()
    assert command[:3] == ["/opt/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    assert command[command.index("--model") + 1] == "/models/m" and command[command.index("--port") + 1] == "8123"
    assert command[-3:] == ["--max-num-seqs", "4", "--enforce-eager"]
    endpoint = ENGINES["vllm"].endpoint({}, port=8123)
    assert (endpoint.base_url, endpoint.health_url) == ("http://127.0.0.1:8123/v1", "http://127.0.0.1:8123/health")


def test_openai_endpoint_reads_its_key_from_the_named_variable(monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret")
    endpoint = ENGINES["openai"].endpoint({"name": "openai", "base_url": "http://h:1/v1/", "model": "m",
                                           "api_key_env": "MY_KEY"})
    assert (endpoint.base_url, endpoint.model, endpoint.api_key) == ("http://h:1/v1", "m", "secret")
    assert "secret" not in repr(endpoint)


def test_vllm_spans_the_workers_group_unless_the_sweep_sets_a_parallel_size():
    def options(args, gpus):
        command = ENGINES["vllm"].command(Path("/models/m"), 8123, args, gpus=gpus)
        return command[command.index("--disable-uvicorn-access-log") + 1:]

    assert options({}, 1) == []  # one GPU: vLLM's own default
    assert options({}, 4) == ["--tensor-parallel-size", "4"]
    # expert parallelism is vLLM's own switch, passed through beside the group's tensor parallelism
    assert options({"enable_expert_parallel": True}, 8) == ["--enable-expert-parallel", "--tensor-parallel-size", "8"]
    assert options({"tensor_parallel_size": 2, "pipeline_parallel_size": 2}, 4) == [
        "--tensor-parallel-size", "2", "--pipeline-parallel-size", "2"]
    assert options({"pipeline_parallel_size": 4}, 4) == ["--pipeline-parallel-size", "4"]
