"""A job served by an engine: start it (the job's `load` window), measure units against it, stop it.

The executor (worker.process.executor) calls `start` where it would load a pipeline, `measure` where it would
run a unit's queries, and `ServedModel.stop` where it would unload. The engine is the worker's child
(worker.engines.process): it is stopped with the job, when the worker stops, and by its guard when the worker
dies.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from worker.engines.base import Endpoint, Engine
from worker.engines.process import EngineError, EngineProcess, free_port

log = logging.getLogger(__name__)
CHECK_TIMEOUT_S = 30.0  # an already-running server must answer its model list within this


@dataclass
class ServedModel:
    engine: Engine
    spec: dict[str, Any]
    endpoint: Endpoint
    process: EngineProcess | None = None
    start_command: list[str] | None = None
    version: str | None = None
    revision: str | None = None  # the Hub commit served (`hub:` models), recorded as in-process loads record it
    restarts: int = 0
    quantization: dict[str, Any] = field(default_factory=dict)  # the checkpoint's method and bits, read by the engine
    key: tuple[str, str] = ("", "")  # (model, engine spec): a later job with the same key may use this engine
    _restart: Any = field(default=None, repr=False)

    @property
    def wattsweep_provenance(self) -> dict[str, Any]:
        """What the job records: the Hub commit, the engine, its version, its full command line (or endpoint),
        its log."""
        return {"revision": self.revision, "engine": self.engine.name, "engine_version": self.version,
                "engine_args": self.start_command or {k: v for k, v in self.spec.items() if k != "api_key_env"},
                "engine_log": str(self.process.log_path) if self.process else None,
                "quantization_method": self.quantization.get("method"),
                "quantization_bits": self.quantization.get("bits")}

    def alive(self) -> bool:
        return self.process is None or self.process.alive()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            log.info("engine %s stopped (log %s)", self.engine.name, self.process.log_path)


def served_key(model_ref: str, params: dict[str, Any]) -> tuple[str, str]:
    return model_ref, json.dumps(params["engine"], sort_keys=True)


def log_dir() -> Path:
    from db.settings import get_settings

    configured = get_settings().engine_log_dir
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "wattsweep-engines"


class ModelLocation(NamedTuple):
    model: str  # what the engine's `--model` gets: a folder, or a Hub id
    options: list[str]  # further options (`--revision COMMIT`)
    revision: str | None  # the Hub commit served; None for `path:` and `tiny:` models


def model_location(model_ref: str, task: str) -> ModelLocation:
    """Where the engine reads the model: a folder (`path:`, a `tiny:` model saved once to a temp folder, or the
    cached snapshot of a `hub:` commit), or, online, a Hub id pinned to the commit its revision resolves to now
    (the engine downloads that commit; HF_HUB_OFFLINE and HF_HOME are inherited). Either way a `hub:` model is
    served at one commit, resolved as in-process loads resolve it (worker.models.hub), and that commit is
    recorded; a model the cache lacks offline fails with the fix (ModelLoadError)."""
    from worker.contract.refs import check_data_path, parse_model_ref

    ref = parse_model_ref(model_ref)
    if ref.kind == "path":
        return ModelLocation(str(check_data_path(ref.name, "model folder")), [], None)
    if ref.kind == "hub":
        from worker.errors import ModelLoadError
        from worker.models.hub import HubModelError, resolve_model

        try:
            resolved = resolve_model(ref.name, ref.revision)
        except HubModelError as error:
            raise ModelLoadError(str(error)) from None
        if resolved.where == ref.name:  # online: the engine downloads exactly the commit
            return ModelLocation(ref.name, ["--revision", resolved.revision], resolved.revision)
        return ModelLocation(resolved.where, [], resolved.revision)  # the commit's cached snapshot folder
    folder = Path(tempfile.gettempdir()) / "wattsweep-tiny" / f"{ref.name}-{task}"
    if not (folder / "config.json").exists():
        from worker.models.tiny import build_tiny

        scratch = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
        build_tiny(ref.name, task).save_pretrained(scratch)
        try:
            scratch.rename(folder)  # whole or not at all: another worker may be saving the same model
        except OSError:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    return ModelLocation(str(folder), [], None)


def start(model_ref: str, task: str, device: str, params: dict[str, Any], *, job_id: int, gpus: int = 1
          ) -> ServedModel:
    """The job's engine, healthy (started here), or checked to answer (already running); EngineError otherwise.
    `gpus`: the worker's GPUs (a group), which the engine spans (vLLM: its tensor parallel size)."""
    from worker.engines import get_engine

    spec = dict(params["engine"])
    engine = get_engine(spec["name"])
    if engine.name == "openai":
        served = ServedModel(engine, spec, engine.endpoint(spec), key=served_key(model_ref, params))
        _check_answers(served.endpoint)
        return served
    location = model_location(model_ref, task)
    port = free_port()
    command = [*engine.command(Path(location.model), port, spec.get("args") or {}, gpus=gpus), *location.options]
    from worker.models.quantization import describe, saved_quantization

    served = ServedModel(engine, spec, engine.endpoint(spec, port=port), start_command=command,
                         revision=location.revision, key=served_key(model_ref, params),
                         quantization=describe(saved_quantization(location.model)))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    process = EngineProcess(command, log_path=log_dir() / f"job{job_id}-{engine.name}-{stamp}-{os.getpid()}.log",
                            env={**os.environ, **engine.environment(device)})
    served.process = process
    _start(served, float(spec.get("start_timeout_s", 1200)))
    return served


def restart(served: ServedModel) -> None:
    """Start a dead engine again on the same port and log (a unit it died in has failed; the next one needs it)."""
    served.restarts += 1
    with open(served.process.log_path, "ab") as handle:
        handle.write(f"--- wattsweep: engine restarted (restart {served.restarts}) ---\n".encode())
    _start(served, float(served.spec.get("start_timeout_s", 1200)))


def _start(served: ServedModel, timeout_s: float) -> None:
    import httpx

    process = served.process
    process.start()
    try:
        process.wait_healthy(lambda: httpx.get(served.endpoint.health_url, timeout=2.0).status_code == 200,
                             timeout_s)
    except BaseException:
        process.stop()
        raise
    served.version = _version(served.endpoint)


def _version(endpoint: Endpoint) -> str | None:
    import httpx

    root = endpoint.base_url.removesuffix("/v1")
    try:
        response = httpx.get(f"{root}/version", timeout=5.0)
        return str(response.json().get("version")) if response.status_code == 200 else None
    except Exception:
        return None


def _check_answers(endpoint: Endpoint) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    try:
        response = httpx.get(f"{endpoint.base_url}/models", timeout=CHECK_TIMEOUT_S, headers=headers)
    except httpx.HTTPError as error:
        raise EngineError(f"the server at {endpoint.base_url} does not answer: {error}") from None
    if response.status_code != 200:
        raise EngineError(f"the server at {endpoint.base_url} answered HTTP {response.status_code} to /models")
