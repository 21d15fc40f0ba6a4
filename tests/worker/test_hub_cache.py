"""`hub:` models from a local cache laid out as the Hugging Face cache is, with the Hub offline.

The fixture writes tiny models where huggingface_hub keeps downloads
(`hub/models--org--name/snapshots/<commit>/` plus `refs/main`). In-process tests
point huggingface_hub's constants at it (it reads HF_HOME and HF_HUB_OFFLINE
once, at import); the end-to-end test sets the real environment variables in a
`wattsweep` subprocess. Nothing here can reach the Hub: downloading is not
exercised, only what the cache has and lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Job
from db.session import session_factory
from worker.errors import ModelLoadError
from worker.models.hub import pull_model, weight_files
from worker.models.loading import load_for_task
from worker.models.tiny import build_tiny

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OLD_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def put_in_cache(hf_home: Path, repo_id: str, family: str, task: str, commit: str = COMMIT,
                 branch: str | None = "main") -> None:
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    build_tiny(family, task).save_pretrained(repo / "snapshots" / commit)
    if branch:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / branch).write_text(commit)


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("hf_home")
    put_in_cache(home, "wattsweep-tests/tiny-bert", "bert", "text-classification")
    put_in_cache(home, "wattsweep-tests/tiny-bert", "bert", "text-classification", OLD_COMMIT, branch="v1")
    put_in_cache(home, "wattsweep-tests/tiny-t5", "t5", "summarization")
    return home


@pytest.fixture
def offline_cache(hf_home, monkeypatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(hf_home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hf_home / "hub"))
    return hf_home


def test_cached_model_loads_offline_and_records_its_commit(offline_cache):
    loaded = load_for_task("hub:wattsweep-tests/tiny-bert", "text-classification", "cpu")
    assert loaded.revision == COMMIT
    assert loaded.provenance == {"revision": COMMIT, "dtype": "float32", "quantization_method": None,
                                 "quantization_bits": None,
                                 "num_parameters": sum(p.numel() for p in loaded.model.parameters())}


def test_a_pinned_revision_resolves_through_its_ref_or_its_commit(offline_cache):
    assert load_for_task("hub:wattsweep-tests/tiny-bert@v1", "text-classification", "cpu").revision == OLD_COMMIT
    assert load_for_task(f"hub:wattsweep-tests/tiny-bert@{OLD_COMMIT}", "fill-mask", "cpu",
                         "bfloat16").provenance["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("hub:wattsweep-tests/not-pulled",
         r"model 'hub:wattsweep-tests/not-pulled' is not in the local cache; run `wattsweep pull FILE` on a node "
         r"with Hub access"),
        ("hub:wattsweep-tests/tiny-bert@v9",
         r"revision 'v9' is not in the local cache \(other revisions are\); run `wattsweep pull FILE`"),
    ],
)
def test_what_the_cache_lacks_fails_with_the_fix(offline_cache, ref, message):
    with pytest.raises(ModelLoadError, match=message):
        load_for_task(ref, "text-classification", "cpu")


def test_a_multi_purpose_model_loads_as_the_generator_its_config_says(offline_cache):
    loaded = load_for_task("hub:wattsweep-tests/tiny-t5", "question-answering", "cpu", generative=True)
    assert loaded.model.config.is_encoder_decoder and loaded.revision == COMMIT
    with pytest.raises(ModelLoadError, match="does not generate text"):
        load_for_task("tiny:bert", "question-answering", "cpu", generative=True)


def test_pull_offline_reports_what_the_cache_has_and_lacks(offline_cache):
    cached = pull_model("wattsweep-tests/tiny-bert", None)
    assert (cached.status, cached.ok, cached.detail) == ("cached", True, f"commit {COMMIT}")
    missing = pull_model("wattsweep-tests/not-pulled", "main")
    assert (missing.status, missing.ok) == ("missing", False)
    assert "HF_HUB_OFFLINE=1 and not in the local cache" in missing.detail


def test_weight_files_prefer_safetensors_and_skip_other_frameworks():
    transformers_repo = ["config.json", "pytorch_model.bin", "model.safetensors", "tf_model.h5", "flax_model.msgpack",
                         "onnx/model.onnx", "tokenizer.json", "model.fp16.safetensors"]
    assert weight_files(transformers_repo) == ["config.json", "model.safetensors", "tokenizer.json"]
    sharded_pickles = ["config.json", "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                       "pytorch_model.bin.index.json"]
    assert weight_files(sharded_pickles) == sharded_pickles  # no safetensors: the pickles are all there is
    diffusers_repo = ["model_index.json", "v1-5-pruned.ckpt", "v1-5-pruned.safetensors", "unet/config.json",
                      "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors",
                      "unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.safetensors"]
    assert weight_files(diffusers_repo) == ["model_index.json", "text_encoder/model.safetensors", "unet/config.json",
                                            "unet/diffusion_pytorch_model.safetensors"]


def test_sweep_with_cached_missing_and_zero_shot_hub_models_runs_offline(hf_home, tmp_path):
    """`wattsweep run` and `wattsweep pull` with the real HF_HOME / HF_HUB_OFFLINE environment."""
    from datasets import Dataset, DatasetDict

    DatasetDict({"test": Dataset.from_dict({"text": ["a calm river", "the old tower"], "label": [0, 1]})}
                ).save_to_disk(str(tmp_path / "reviews"))
    (tmp_path / "sweep.yaml").write_text(f"""
name: hub-offline
defaults: {{queries: 2, repetitions: 1, warmup: 0}}
carbon: {{grid_intensity_g_per_kwh: 100}}
tasks:
  text-classification:
    models: [hub:wattsweep-tests/tiny-bert, hub:wattsweep-tests/not-pulled]
    datasets: ["hf:{tmp_path / 'reviews'}:test"]
    zero_shot:
      models: [hub:wattsweep-tests/tiny-t5]
  fill-mask:
    models: [tiny:bert]
    datasets: [builtin:texts, "hf:wattsweep-tests/never-pulled:test"]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WATTSWEEP_", "HF_"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home), "WATTSWEEP_BASELINE_WINDOW_S": "0",
            "PYTHONPATH": str(REPO_ROOT)}

    def wattsweep(*args):
        return subprocess.run([sys.executable, "-m", "scheduler", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    result = wattsweep("run", "sweep.yaml")
    assert result.returncode == 1, result.stderr  # two jobs failed; the rest of the sweep is stored
    stderr = " ".join(result.stderr.split())
    assert ("hub:wattsweep-tests/not-pulled' is not in the local cache; run `wattsweep pull FILE` on a node with "
            "Hub access") in stderr
    # Unavailable, not failed: the job fails once no live worker (here the one in-process worker) has what it needs.
    assert ("fill-mask / tiny:bert: not available on any of the 1 live worker(s): dataset failed to load: dataset "
            "'hf:wattsweep-tests/never-pulled:test' is not in the local cache; run `wattsweep pull FILE`") in stderr
    with session_factory(f"sqlite:///{tmp_path / 'wattsweep.db'}")() as session:
        jobs = {job.model: job for job in session.scalars(select(Job).where(Job.task == "text-classification"))}
        fill_mask = session.scalars(select(Job).where(Job.task == "fill-mask")).one()
        assert [(run.dataset, run.status) for run in fill_mask.runs] == [
            ("builtin:texts", "done"), ("hf:wattsweep-tests/never-pulled:test", "failed")]
    assert {m: (j.status, j.model_kind, j.model_revision) for m, j in jobs.items()} == {
        "hub:wattsweep-tests/tiny-bert": ("done", "task-specific", COMMIT),
        "hub:wattsweep-tests/not-pulled": ("failed", "task-specific", None),
        "hub:wattsweep-tests/tiny-t5": ("done", "multi-purpose", COMMIT),
    }
    assert jobs["hub:wattsweep-tests/tiny-t5"].model_dtype == "float32"

    pulled = wattsweep("pull", "sweep.yaml")
    assert pulled.returncode == 1
    lines = " ".join(pulled.stdout.split())
    assert "cached hub:wattsweep-tests/tiny-bert: commit" in lines
    assert "reviews" not in lines  # a local folder is read where it is: nothing to pull
    assert "missing hub:wattsweep-tests/not-pulled: HF_HUB_OFFLINE=1 and not in the local cache" in lines
    assert "missing hf:wattsweep-tests/never-pulled:test" in lines
    assert "2 of 4 not pulled: hub:wattsweep-tests/not-pulled, hf:wattsweep-tests/never-pulled:test" in " ".join(
        pulled.stderr.split())


def test_pull_downloads_torch_weights_of_one_commit_and_offline_nodes_then_resolve_it(tmp_path, monkeypatch):
    """The Hub is replaced by fakes of HfApi.model_info and snapshot_download (no network here)."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.errors import GatedRepoError, RevisionNotFoundError
    from huggingface_hub.hf_api import RepoSibling

    cache = tmp_path / "hub"
    files = {"config.json": 10, "model.safetensors": 1000, "pytorch_model.bin": 1000, "tf_model.h5": 1000,
             "tokenizer.json": 20}
    fetched = []

    def hub_error(kind, message, status):
        """huggingface_hub 1.x and later: its errors carry the HTTP response (of whichever HTTP library it uses: 2.x
        has its own httpx2), read for its headers and request only."""
        import types

        return kind(message, response=types.SimpleNamespace(status_code=status, headers={}, request=None))

    class FakeApi:
        def model_info(self, repo_id, *, revision=None, files_metadata=False):
            if repo_id == "meta-llama/Llama-2-7b-hf":
                raise hub_error(GatedRepoError, "gated", 403)
            if revision == "v9":
                raise hub_error(RevisionNotFoundError, "no v9", 404)
            siblings = [RepoSibling(rfilename=name, size=size) for name, size in files.items()]
            return type("Info", (), {"sha": COMMIT, "siblings": siblings})()

    def fake_snapshot_download(repo_id, *, revision, allow_patterns):
        [name] = allow_patterns
        fetched.append((revision, name))
        target = cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / revision / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")
        return str(target.parent)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    progress = []
    result = pull_model("org/model", None, lambda done, total: progress.append((done, total)))
    assert (result.status, result.nbytes) == ("downloaded", 1030)
    assert fetched == [(COMMIT, "config.json"), (COMMIT, "model.safetensors"), (COMMIT, "tokenizer.json")]
    assert progress[-1] == (1030, 1030)
    assert (cache / "models--org--model" / "refs" / "main").read_text() == COMMIT  # offline nodes resolve `main`
    assert pull_model("meta-llama/Llama-2-7b-hf", None).status == "gated"
    assert pull_model("org/model", "v9").status == "not-found"

    from worker.models.hub import resolve_model

    monkeypatch.undo()  # the real snapshot_download reads the cache the fake wrote
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert resolve_model("org/model", None).revision == COMMIT
