"""Model references resolve to loadable models: tiny builds, save_pretrained folders, clear errors otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from worker.data.datasets import load_queries
from worker.errors import ModelLoadError
from worker.models.loading import load_for_task
from worker.models.tiny import build_tiny
from worker.workloads import get_workload

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("family", "task", "dataset", "params"),
    [
        ("bert", "text-classification", "builtin:reviews", {}),
        ("gpt2", "text-generation", "builtin:prompts", {}),
        ("vit-gpt2", "image-to-text", "builtin:noise", {}),
        ("stable-diffusion", "text-to-image", "builtin:image-prompts", {"num_inference_steps": 2}),
    ],
)
def test_saved_tiny_model_loads_from_path_and_runs(tmp_path, family, task, dataset, params):
    build_tiny(family, task).save_pretrained(tmp_path)
    workload = get_workload(task)
    pipeline = workload.load(f"path:{tmp_path}", "cpu", params)
    units = workload.run(pipeline, load_queries(dataset, 1), 1, params)
    assert units.queries == 1


def test_path_model_has_the_tiny_weights(tmp_path):
    import torch

    build_tiny("bert", "fill-mask").save_pretrained(tmp_path)
    saved = load_for_task(f"path:{tmp_path}", "fill-mask", "cpu").model.state_dict()
    rebuilt = build_tiny("bert", "fill-mask").model.state_dict()  # seeded: every build is the same model
    assert all(torch.equal(saved[name], rebuilt[name]) for name in rebuilt)


def test_unknown_hub_model_offline_says_what_is_needed(tmp_path):
    code = ("from worker.models.loading import load_for_task\n"
            "load_for_task('hub:wattsweep-tests/no-such-model', 'text-classification', 'cpu')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path), "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert ("ModelLoadError: model 'hub:wattsweep-tests/no-such-model' is not in the local cache; "
            "run `wattsweep pull FILE` on a node with Hub access") in result.stderr


def test_tiny_family_without_the_task_names_the_families_that_have_it():
    with pytest.raises(ModelLoadError, match=r"'gpt2' does not support task 'fill-mask'; families that do: bert"):
        load_for_task("tiny:gpt2", "fill-mask", "cpu")


@pytest.mark.parametrize(
    ("ref", "task", "message"),
    [
        ("path:/no/such/folder", "fill-mask", "folder '/no/such/folder' is outside the data roots"),
        (f"path:{tempfile.gettempdir()}/no/such", "fill-mask", f"folder '{tempfile.gettempdir()}/no/such' does not"),
        ("tiny:falcon", "fill-mask", "unknown tiny model family 'falcon'"),
        ("hub:not a name", "fill-mask", "malformed hub model"),
        ("tiny:bert", "translation", "unknown task 'translation'"),
    ],
)
def test_bad_references_raise_model_load_error(ref, task, message):
    with pytest.raises(ModelLoadError, match=message):
        load_for_task(ref, task, "cpu")


def test_folder_of_the_wrong_model_kind_is_a_model_load_error(tmp_path):
    build_tiny("vit", "image-classification").save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="could not be loaded for summarization|is not available"):
        load_for_task(f"path:{tmp_path}", "summarization", "cpu")


def test_dtype_casts_the_weights():
    import torch

    assert load_for_task("tiny:bert", "fill-mask", "cpu", "bfloat16").model.dtype == torch.bfloat16
    with pytest.raises(ModelLoadError, match="unknown dtype 'float13'"):
        load_for_task("tiny:bert", "fill-mask", "cpu", "float13")


@pytest.mark.parametrize(("family", "task"), [("bert", "text-classification"), ("gpt2", "text-generation"),
                                              ("t5", "summarization"), ("bert", "question-answering"),
                                              ("sentence-bert", "sentence-similarity"),
                                              ("stable-diffusion", "text-to-image")])
def test_a_model_loads_as_saved_without_a_dtype_and_says_so(tmp_path, family, task):
    """A checkpoint saved in bfloat16 loads in bfloat16 when the sweep gives no dtype (transformers 4 made it
    float32), runs, and the dtype stored with the job is the one loaded; a dtype given still wins."""
    import torch

    built = build_tiny(family, task)
    parts = [built.model] if isinstance(built.model, torch.nn.Module) else [
        part for part in built.model.components.values() if isinstance(part, torch.nn.Module)]
    for part in parts:
        part.to(torch.bfloat16)
    built.save_pretrained(tmp_path)
    workload = get_workload(task)
    params = {"num_inference_steps": 2} if task == "text-to-image" else {}
    loaded = workload.load(f"path:{tmp_path}", "cpu", params)
    assert loaded.wattsweep_provenance["dtype"] == "bfloat16"
    dataset = {"text": "reviews", "prompt": "prompts", "document": "news", "qa": "squad-like",
               "pair": "sentence-pairs"}[workload.input_kind]
    queries = load_queries(f"builtin:{dataset}", 2)
    assert workload.run(loaded, queries, 2, params).queries == 2
    as_float = workload.load(f"path:{tmp_path}", "cpu", {**params, "dtype": "float32"})
    assert as_float.wattsweep_provenance["dtype"] == "float32"


NEW_ARCHITECTURE_SWEEP = """
name: this-years-model
defaults: {queries: 2, repetitions: 1, batch_size: 2, warmup: 0}
carbon: {grid_intensity_g_per_kwh: 300}
tasks:
  text-generation:
    models: [tiny:ministral3, path:MODEL]
    datasets: [builtin:prompts]
    params: {max_new_tokens: 3}
  summarization:
    datasets: [builtin:news]
    zero_shot: {models: [tiny:ministral3], params: {max_new_tokens: 2}}
"""


def test_an_architecture_only_transformers_5_has_runs_end_to_end(tmp_path):
    """Ministral 3 (model type `ministral3`, which transformers 4.57 does not know) as a tiny model, saved and
    loaded back as path:, and prompted zero-shot: a whole `wattsweep run` into SQLite, every job done."""
    import importlib.util
    import sqlite3

    assert importlib.util.find_spec("transformers.models.ministral3") is not None
    build_tiny("ministral3", "text-generation").save_pretrained(tmp_path / "model")
    (tmp_path / "sweep.yaml").write_text(NEW_ARCHITECTURE_SWEEP.replace("MODEL", str(tmp_path / "model")))
    env = {k: v for k, v in os.environ.items() if k != "WATTSWEEP_DATABASE_URL"} | {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "scheduler", "run", "sweep.yaml"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "wattsweep.db") as db:
        jobs = db.execute("SELECT task, model, model_kind, status, model_dtype FROM jobs ORDER BY id").fetchall()
        tokens = db.execute("SELECT output_tokens FROM measurements WHERE phase = 'query' ORDER BY id").fetchall()
    assert jobs == [("text-generation", "tiny:ministral3", "task-specific", "done", "float32"),
                    ("text-generation", f"path:{tmp_path / 'model'}", "task-specific", "done", "float32"),
                    ("summarization", "tiny:ministral3", "multi-purpose", "done", "float32")]
    assert tokens == [(2 * 3,), (2 * 3,), (2 * 2,)]
