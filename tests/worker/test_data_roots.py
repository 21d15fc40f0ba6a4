"""Files are read only under WATTSWEEP_DATA_ROOTS, checked when the sweep file is read and again on the worker;
dataset URLs are fetched only with WATTSWEEP_ALLOW_URLS=1."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from db.settings import Settings, get_settings
from scheduler.spec.reading import SpecError, parse_sweep
from worker.contract.refs import OutsideDataRoots, check_data_path
from worker.data.datasets import load_queries
from worker.errors import DatasetLoadError, ModelLoadError
from worker.models.loading import load_for_task


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Data roots = one folder `inside`; `outside` is its sibling."""
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    monkeypatch.setenv("WATTSWEEP_DATA_ROOTS", str(inside))
    get_settings.cache_clear()
    yield inside, outside
    get_settings.cache_clear()


def sweep(model: str = "tiny:bert", dataset: str = "builtin:texts") -> dict:
    return {"name": "roots", "carbon": {"grid_intensity_g_per_kwh": 100},
            "tasks": {"fill-mask": {"models": [model], "datasets": [dataset]}}}


def test_default_roots_are_the_working_directory_and_hf_home(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert Settings(data_roots="").data_root_paths() == [tmp_path.resolve(), (tmp_path / "hf").resolve()]


@pytest.mark.parametrize("reference", [
    "path:{outside}/model", "path:{inside}/../outside/model", "path:/etc",
])
def test_spec_refuses_model_folders_outside_the_roots(roots, reference):
    inside, outside = roots
    with pytest.raises(SpecError, match="tasks.fill-mask.models.0: path .* is outside the data roots"):
        parse_sweep(sweep(model=reference.format(inside=inside, outside=outside)), data_roots=[inside])


@pytest.mark.parametrize("reference", ["file:{outside}/q.jsonl", "hf:{outside}/set:test", "file:~/q.jsonl"])
def test_spec_refuses_query_files_outside_the_roots(roots, reference):
    inside, outside = roots
    with pytest.raises(SpecError, match="tasks.fill-mask.datasets.0: path .* is outside the data roots"):
        parse_sweep(sweep(dataset=reference.format(outside=outside)), data_roots=[inside])


def test_spec_accepts_paths_under_the_roots_even_if_absent_here(roots):
    inside, _ = roots
    spec = parse_sweep(sweep(model=f"path:{inside}/not-yet/model", dataset=f"file:{inside}/q.jsonl"),
                       data_roots=[inside])
    assert spec.tasks["fill-mask"].models == [f"path:{inside}/not-yet/model"]


def test_a_symlink_out_of_the_roots_is_outside(roots):
    inside, outside = roots
    (inside / "link").symlink_to(outside)
    with pytest.raises(OutsideDataRoots):
        check_data_path(inside / "link" / "q.jsonl", "file", [inside])


def test_worker_refuses_again_whatever_the_scheduler_let_through(roots):
    inside, outside = roots
    (outside / "q.jsonl").write_text('"a secret"\n')
    (inside / "q.jsonl").write_text('"a query"\n')
    assert load_queries(f"file:{inside}/q.jsonl", 1) == ["a query"]
    with pytest.raises(DatasetLoadError, match="outside the data roots"):
        load_queries(f"file:{outside}/q.jsonl", 1)
    with pytest.raises(ModelLoadError, match="outside the data roots"):
        load_for_task(f"path:{outside}", "fill-mask", "cpu")


def test_image_paths_inside_a_query_file_stay_under_the_roots(roots):
    inside, outside = roots
    Image.new("RGB", (4, 4)).save(outside / "secret.png")
    Image.new("RGB", (4, 4)).save(inside / "ok.png")
    (inside / "images.jsonl").write_text(json.dumps({"image": "ok.png"}) + "\n")
    assert load_queries(f"file:{inside}/images.jsonl", 1)[0].size == (4, 4)
    (inside / "images.jsonl").write_text(json.dumps({"image": "../outside/secret.png"}) + "\n")
    with pytest.raises(DatasetLoadError, match="image .* is outside the data roots"):
        load_queries(f"file:{inside}/images.jsonl", 1)


def test_hf_image_columns_read_no_path_outside_the_roots_and_no_url_by_default(roots, monkeypatch):
    from datasets import Dataset

    inside, outside = roots
    Image.new("RGB", (4, 4)).save(outside / "secret.png")
    Dataset.from_dict({"image": [str(outside / "secret.png")]}).save_to_disk(str(inside / "paths"))
    with pytest.raises(DatasetLoadError, match="outside the data roots"):
        load_queries(f"hf:{inside}/paths:train:image", 1, "image")
    Dataset.from_dict({"image": ["http://127.0.0.1:9/x.png"]}).save_to_disk(str(inside / "urls"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(DatasetLoadError, match="fetching URLs is off; set WATTSWEEP_ALLOW_URLS=1"):
        load_queries(f"hf:{inside}/urls:train:image", 1, "image")
    Dataset.from_dict({"image": ["file:///etc/passwd"]}).save_to_disk(str(inside / "schemes"))
    with pytest.raises(DatasetLoadError, match="only http and https"):
        load_queries(f"hf:{inside}/schemes:train:image", 1, "image")
    assert os.environ["WATTSWEEP_DATA_ROOTS"] == str(inside)
