"""A served `hub:` model is resolved to one commit from the local Hugging Face cache, as in-process loads are: the
engine gets that commit's snapshot folder, and the commit is what the job records (no engine started here; the
Celery-mode test in test_celery_worker.py serves one end to end)."""

from __future__ import annotations

import pytest

from tests.worker.test_hub_cache import COMMIT, OLD_COMMIT, put_in_cache
from worker.engines import ENGINES
from worker.engines.served import ServedModel, model_location
from worker.errors import ModelLoadError


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    put_in_cache(tmp_path, "wattsweep-tests/tiny-llama", "llama", "text-generation")
    put_in_cache(tmp_path, "wattsweep-tests/tiny-llama", "llama", "text-generation", OLD_COMMIT, branch="v1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub" / "models--wattsweep-tests--tiny-llama" / "snapshots"


def test_a_hub_model_is_served_from_the_snapshot_of_the_commit_its_revision_names(offline_cache):
    assert model_location("hub:wattsweep-tests/tiny-llama", "text-generation") == \
        (str(offline_cache / COMMIT), [], COMMIT)
    assert model_location("hub:wattsweep-tests/tiny-llama@v1", "text-generation") == \
        (str(offline_cache / OLD_COMMIT), [], OLD_COMMIT)
    with pytest.raises(ModelLoadError, match="is not in the local cache; run `wattsweep pull FILE`"):
        model_location("hub:wattsweep-tests/not-pulled", "text-generation")


def test_the_served_commit_is_recorded_with_the_engine(offline_cache):
    served = ServedModel(ENGINES["vllm"], {"name": "vllm"}, ENGINES["vllm"].endpoint({}, port=1), revision=COMMIT)
    assert served.wattsweep_provenance["revision"] == COMMIT  # db.results.provenance stores it in jobs.model_revision
    assert model_location("tiny:llama", "text-generation").revision is None
