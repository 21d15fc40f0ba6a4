"""Loading on a group of GPUs, failing fast where a model cannot fit, and quantized weights loaded as deployed.

A device map over several GPUs needs several GPUs (bench/gpu_check.py checks it on a machine that has them);
here the loader is shown to ask for the group's devices and memory, and the fit check and quantization refusals
are run for real, through the executor, with a faked free-memory source.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Job
from db.session import session_factory
from scheduler.plan.submit import create_sweep
from scheduler.spec.reading import parse_sweep
from worker.contract.weights import checkpoint_bytes
from worker.errors import CannotLoadHere
from worker.models.loading import load_for_task
from worker.models.placement import Placement, check_fits, placed
from worker.models.quantization import describe
from worker.models.tiny import build_tiny
from worker.process.executor import execute_job
from worker.process.runtime import WorkerRuntime

GIB = 2**30


class Captured(Exception):
    """Raised by a stand-in from_pretrained once it has seen its options: nothing is loaded."""


def capture_from_pretrained(monkeypatch, owner) -> dict:
    seen: dict = {}

    def from_pretrained(where, **options):
        seen.update(options)
        raise Captured

    monkeypatch.setattr(owner, "from_pretrained", from_pretrained)
    return seen


def test_a_group_loads_with_device_map_auto_and_each_gpus_free_memory(tmp_path, monkeypatch):
    import transformers

    build_tiny("llama", "text-generation").save_pretrained(tmp_path)
    seen = capture_from_pretrained(monkeypatch, transformers.AutoModelForCausalLM)
    group = Placement("cuda:0", 2, lambda: [70 * GIB, 75 * GIB])
    with placed(group), pytest.raises(Captured):
        load_for_task(f"path:{tmp_path}", "text-generation", "cuda:0")
    assert seen["device_map"] == "auto" and seen["max_memory"] == {0: 70 * GIB, 1: 75 * GIB}
    with placed(Placement("cuda:0", 1, lambda: [70 * GIB])), pytest.raises(Captured):
        load_for_task(f"path:{tmp_path}", "text-generation", "cuda:0")
    assert seen["device_map"] == {"": "cuda:0"}  # one GPU: straight onto it, not through host RAM
    seen.clear()
    with pytest.raises(Captured):
        load_for_task(f"path:{tmp_path}", "text-generation", "cpu")
    assert "device_map" not in seen and "max_memory" not in seen


def test_a_pipeline_is_balanced_over_a_group(tmp_path, monkeypatch):
    import diffusers

    build_tiny("stable-diffusion", "text-to-image").save_pretrained(tmp_path)
    seen = capture_from_pretrained(monkeypatch, diffusers.AutoPipelineForText2Image)
    with placed(Placement("cuda:0", 4, lambda: [GIB] * 4)), pytest.raises(Captured):
        load_for_task(f"path:{tmp_path}", "text-to-image", "cuda:0")
    assert seen["device_map"] == "balanced" and seen["max_memory"] == {0: GIB, 1: GIB, 2: GIB, 3: GIB}


def test_the_runtime_places_models_on_its_whole_group():
    runtime = WorkerRuntime(worker_id="g@h", device="cuda:0", hardware_class="h100", sessions=None, gpu_ids=[4, 5, 6])
    placement = runtime.placement()
    assert (placement.device, placement.gpus, placement.spans_gpus) == ("cuda:0", 3, True)


def test_the_fit_check_names_both_sizes_on_one_line():
    with pytest.raises(CannotLoadHere) as raised:
        check_fits(470 * 10**9, Placement("cuda:0", 1, lambda: [79 * 10**9]))
    assert str(raised.value).startswith("the weights need 470 GB, this worker's 1 GPU has 79 GB free")
    with pytest.raises(CannotLoadHere, match="its 8 GPUs have|8 GPUs have 632 GB free"):
        check_fits(700 * 10**9, Placement("cuda:0", 8, lambda: [79 * 10**9] * 8))
    check_fits(500 * 10**9, Placement("cuda:0", 8, lambda: [79 * 10**9] * 8))  # fits: no error
    check_fits(10**15, Placement("cpu"))  # a CPU worker: nothing to compare with


def _save_tensors(path: Path, n_floats: int) -> None:
    import torch
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"w": torch.zeros(n_floats, dtype=torch.float32)}, str(path))


def test_checkpoint_bytes_counts_what_a_load_reads(tmp_path):
    sharded = tmp_path / "sharded"  # index + shards, and a consolidated copy the loaders never read
    _save_tensors(sharded / "model-00001-of-00002.safetensors", 100)
    _save_tensors(sharded / "model-00002-of-00002.safetensors", 50)
    _save_tensors(sharded / "consolidated.safetensors", 150)
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                        "c": "model-00002-of-00002.safetensors"}}))
    assert checkpoint_bytes(sharded) == 150 * 4

    pipeline = tmp_path / "pipeline"  # diffusers: fp16 variants beside the full files count once
    (pipeline / "model_index.json").parent.mkdir()
    (pipeline / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
         "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "PNDMScheduler"]}))
    _save_tensors(pipeline / "unet" / "diffusion_pytorch_model.safetensors", 200)
    _save_tensors(pipeline / "unet" / "diffusion_pytorch_model.fp16.safetensors", 200)
    _save_tensors(pipeline / "vae" / "diffusion_pytorch_model.fp16.safetensors", 30)  # a variant alone: counted
    _save_tensors(pipeline / "unused" / "model.safetensors", 999)  # not a component of the pipeline
    assert checkpoint_bytes(pipeline) == (200 + 30) * 4
    assert checkpoint_bytes(tmp_path / "pipeline" / "scheduler") is None


@pytest.fixture()
def runtime(tmp_path, migrated_sqlite):
    url = migrated_sqlite(tmp_path / "wattsweep.db")
    # As a distributed worker: an ordinary load failure would count as one attempt of several.
    runtime = WorkerRuntime(worker_id="test@host", device="cpu", hardware_class="cpu", sessions=session_factory(url),
                            baseline_window_s=0, load_failure_is_final=False)
    runtime.register()
    yield runtime
    runtime.close()


def _submit(runtime, model: str) -> int:
    spec = parse_sweep({"name": "fit", "defaults": {"queries": 1, "repetitions": 2, "warmup": 0},
                        "carbon": {"grid_intensity_g_per_kwh": 100},
                        "tasks": {"text-generation": {"models": [model], "datasets": ["builtin:prompts"],
                                                      "params": {"max_new_tokens": 2}}}})
    with runtime.sessions.begin() as session:
        sweep = create_sweep(session, spec, mode="local")
        return session.scalar(select(Job.id).where(Job.sweep_id == sweep.id))


def test_a_model_larger_than_the_free_memory_fails_once_before_any_weight_is_read(tmp_path, runtime, monkeypatch):
    import transformers

    build_tiny("llama", "text-generation").save_pretrained(tmp_path / "model")
    size = checkpoint_bytes(tmp_path / "model")
    monkeypatch.setattr(WorkerRuntime, "placement", lambda self: Placement("cpu", 1, lambda: [size // 2]))
    read = []  # from_pretrained is where weights are read: it must not be reached
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: read.append(a))
    job_id = _submit(runtime, f"path:{tmp_path / 'model'}")
    assert execute_job(job_id, runtime) == "failed"
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.load_failures) == ("failed", 1)  # once, not per attempt
        error = job.last_error
    assert "\n" not in error and not read
    assert f"the weights need {size / 1e6:.1f} MB, this worker's 1 GPU has {size / 2e6:.1f} MB free" in error


def _with_quantization(folder: Path, config: dict) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "quantization_config": config}))


@pytest.mark.parametrize(("config", "message"), [
    ({"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]},
     "fp8 needs a CUDA GPU with compute capability 8.9 or newer (this worker has no CUDA GPU)"),
    ({"quant_method": "gptq", "bits": 4, "group_size": 128}, "gptq needs the gptqmodel and optimum packages"),
])
def test_a_quantization_this_node_cannot_run_fails_the_job_with_one_line(tmp_path, runtime, config, message):
    build_tiny("llama", "text-generation").save_pretrained(tmp_path / "model")
    _with_quantization(tmp_path / "model", config)
    job_id = _submit(runtime, f"path:{tmp_path / 'model'}")
    assert execute_job(job_id, runtime) == "failed"
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        assert (job.status, job.load_failures) == ("failed", 1)
        assert job.last_error.startswith(f"model failed to load: {message}") and "\n" not in job.last_error


@pytest.mark.parametrize(("config", "expected"), [
    ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}, ("bitsandbytes", 4)),
    ({"quant_method": "bitsandbytes", "load_in_8bit": True}, ("bitsandbytes", 8)),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, ("awq", 4)),
    ({"quant_method": "fp8", "weight_block_size": [128, 128]}, ("fp8", 8)),
    ({"quant_method": "mxfp4"}, ("mxfp4", 4)),
    ({"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "weights": {"num_bits": 8, "type": "float"}, "input_activations": {"num_bits": 8}}}},
     ("compressed-tensors", 8)),
    ({"quant_method": "torchao", "quant_type": {"default": {"_type": "Int4WeightOnlyConfig"}}}, ("torchao", 4)),
    ({"quant_method": "quanto", "weights": "int8"}, ("quanto", 8)),
])
def test_the_method_and_bits_are_read_from_each_config(config, expected):
    found = describe(config)
    assert (found["method"], found["bits"]) == expected


def test_a_torchao_checkpoint_runs_as_saved_and_the_job_records_its_quantization(tmp_path):
    """int8 weight-only (torchao), quantized at load, saved with save_pretrained, then measured by a real
    `wattsweep run` through the path: loader, which loads it as its config says (CPU: torchao runs there)."""
    pytest.importorskip("torchao")
    import transformers
    from torchao.quantization import Int8WeightOnlyConfig

    build_tiny("llama", "text-generation").save_pretrained(tmp_path / "plain")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "plain", quantization_config=transformers.TorchAoConfig(Int8WeightOnlyConfig()))
    model.save_pretrained(tmp_path / "int8")
    transformers.AutoTokenizer.from_pretrained(tmp_path / "plain").save_pretrained(tmp_path / "int8")
    (tmp_path / "sweep.yaml").write_text(
        "name: int8\ndefaults: {queries: 2, repetitions: 1, warmup: 0}\ncarbon: {grid_intensity_g_per_kwh: 100}\n"
        f"tasks:\n  text-generation:\n    models: [path:{tmp_path / 'plain'}, path:{tmp_path / 'int8'}]\n"
        "    datasets: [builtin:prompts]\n    params: {max_new_tokens: 2}\n")
    env = {k: v for k, v in os.environ.items() if k != "WATTSWEEP_DATABASE_URL"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "scheduler", "run", "sweep.yaml"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "wattsweep.db") as db:
        jobs = db.execute("SELECT status, quantization_method, quantization_bits, model_dtype FROM jobs "
                          "ORDER BY id").fetchall()
    assert jobs == [("done", None, None, "float32"), ("done", "torchao", 8, "float32")]


def test_on_the_simulated_node_the_free_memory_is_nvmls_for_the_workers_gpus(tmp_path):
    """The simulated node has no CUDA: a worker there reads its GPUs' free memory through (the fake) NVML, for its
    physical indexes, and the fit check compares the weights with their sum."""
    from tests.simnode import SimNode
    from tests.simnode.fakelib import simnode_profile

    node = SimNode(tmp_path / "node", gpus=4)  # GPUs 0-1: 40 GB, 2-3: 80 GB (NVML: 512 MiB used on each)
    simnode_profile.save(str(node.profile_path), node.data)
    code = ("import json\n"
            "from worker.process.runtime import WorkerRuntime\n"
            "from worker.models.placement import check_fits\n"
            "runtime = WorkerRuntime(worker_id='g@h', device='cpu', hardware_class='sim', sessions=None,\n"
            "                        gpu_ids=[1, 2], simulated_gpu=True)\n"
            "placement = runtime.placement()\n"
            "try:\n"
            "    check_fits(200 * 10**9, placement)\n"
            "    refused = ''\n"
            "except Exception as error:\n"
            "    refused = str(error)\n"
            "print(json.dumps({'gpus': placement.gpus, 'free': placement.free_memory(), 'refused': refused}))\n")
    env = node.env({**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    used = 512 * 2**20
    assert found["gpus"] == 2 and found["free"] == [40 * GIB - used, 80 * GIB - used]
    assert found["refused"].startswith("the weights need 200 GB, this worker's 2 GPUs have 128 GB free")


def test_what_each_quantization_needs_is_decided_before_loading(monkeypatch):
    import importlib.util

    from worker.models import quantization

    fp8 = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    monkeypatch.setattr(quantization, "_capability", lambda placement: (8, 0))  # an A100
    with pytest.raises(CannotLoadHere, match=r"^fp8 needs a CUDA GPU with compute capability 8.9 or newer "
                                             r"\(this worker's GPU has 8.0\)"):
        quantization.check_runnable(fp8, Placement("cuda:0", 1))
    monkeypatch.setattr(quantization, "_capability", lambda placement: (9, 0))  # an H100
    quantization.check_runnable(fp8, Placement("cuda:0", 1))
    quantization.check_runnable({**fp8, "dequantize": True}, Placement("cpu"))  # asked for dequantized weights
    if not (importlib.util.find_spec("triton") and importlib.util.find_spec("kernels")):
        with pytest.raises(CannotLoadHere, match="^mxfp4 needs the "):  # on the CPU too, through triton
            quantization.check_runnable({"quant_method": "mxfp4"}, Placement("cpu"))
