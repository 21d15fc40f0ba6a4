"""`hf:` query sets read offline: local `datasets` folders, pulled snapshots, and what is missing.

Sets are made here with the `datasets` library (`save_to_disk`, or a folder of
data files as on the Hub); the Hub itself is never reached (huggingface_hub's
offline flag is set), so streaming from it is not exercised.
"""

from __future__ import annotations

import json

import pytest
from datasets import Dataset, DatasetDict, Features, Image, Value
from PIL import Image as PILImage

from worker.contract.refs import ReferenceError, parse_hf_dataset
from worker.data.datasets import load_queries
from worker.data.hf_datasets import read_rows
from worker.data.hf_snapshots import parse, pull_dataset, snapshot_dir, write_snapshot
from worker.errors import DatasetLoadError


@pytest.fixture(autouse=True)
def offline_home(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf_home"))
    read_rows.cache_clear()
    yield tmp_path / "hf_home"
    read_rows.cache_clear()


@pytest.fixture
def reviews(tmp_path) -> str:
    """A save_to_disk DatasetDict: test has an obvious text column, train two plausible ones."""
    DatasetDict({
        "test": Dataset.from_dict({"text": ["good film", "bad plot", "fine cast"], "label": [1, 0, 1]}),
        "train": Dataset.from_dict({"sentence": ["a", "b"], "review": ["c", "d"], "label": [0, 1]}),
    }).save_to_disk(str(tmp_path / "reviews"))
    return str(tmp_path / "reviews")


@pytest.mark.parametrize(
    ("text", "path", "config", "split", "columns", "candidates"),
    [
        ("imdb:test", "imdb", None, "test", (), [("imdb", None)]),
        ("c4/en:train", "c4/en", None, "train", (), [("c4/en", None), ("c4", "en")]),
        ("poloclub/diffusiondb/2m_first_1k:train:prompt", "poloclub/diffusiondb", "2m_first_1k", "train",
         ("prompt",), [("poloclub/diffusiondb", "2m_first_1k")]),
        ("sciq:test:question,support", "sciq", None, "test", ("question", "support"), [("sciq", None)]),
        ("./data/my set:validation", "./data/my set", None, "validation", (), [("./data/my set", None)]),
    ],
)
def test_references_parse_with_both_readings_of_two_part_names(text, path, config, split, columns, candidates):
    ref = parse_hf_dataset(text)
    assert (ref.path, ref.config, ref.split, ref.columns) == (path, config, split, columns)
    assert ref.candidates() == candidates


@pytest.mark.parametrize("text", ["imdb", "a/b/c/d:test", "imdb:test:a,b,c", "imdb::text", "bad name:test"])
def test_malformed_references_are_refused(text):
    with pytest.raises(ReferenceError, match="malformed hf dataset"):
        parse_hf_dataset(text)


def test_local_dataset_dict_infers_the_text_column_and_cycles(reviews):
    assert load_queries(f"hf:{reviews}:test", 5, "text") == ["good film", "bad plot", "fine cast", "good film",
                                                             "bad plot"]
    assert load_queries(f"hf:{reviews}:train:review", 2, "document") == ["c", "d"]


@pytest.mark.parametrize(
    ("suffix", "kind", "message"),
    [
        ("test:txt", "text", r"has no column 'txt'; columns are text, label"),
        ("train", "text", r"cannot tell which column holds the text queries \(candidates: sentence, review\); "
                          r"name it: hf:.*reviews:train:<column>; columns are sentence, review, label"),
        ("validation", "text", r"no split 'validation'; splits are test, train"),
        ("test:text", "qa", r"name :question,context \(two columns\)"),
    ],
)
def test_wrong_or_ambiguous_columns_list_the_columns(reviews, suffix, kind, message):
    with pytest.raises(DatasetLoadError, match=message):
        load_queries(f"hf:{reviews}:{suffix}", 2, kind)


def test_folder_of_data_files_with_question_and_support_reads_as_qa(tmp_path):
    folder = tmp_path / "sciq"
    folder.mkdir()
    rows = [{"question": f"What is {i}?", "support": f"{i} is a number.", "correct_answer": str(i)} for i in range(3)]
    (folder / "test.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    assert load_queries(f"hf:{folder}:test", 2, "qa") == [{"question": "What is 0?", "context": "0 is a number."},
                                                        {"question": "What is 1?", "context": "1 is a number."}]


def test_token_lists_are_joined_and_image_columns_are_found_by_type(tmp_path):
    conll = tmp_path / "conll"
    Dataset.from_dict({"id": ["0"], "tokens": [["EU", "rejects", "German", "call"]], "ner_tags": [[3, 0, 7, 0]]}
                      ).save_to_disk(str(conll))
    assert load_queries(f"hf:{conll}:validation", 1, "text") == ["EU rejects German call"]

    pictures = tmp_path / "cifar"
    image = PILImage.new("L", (8, 8), color=128)
    Dataset.from_dict({"img": [image, image], "label": [3, 5]},
                      features=Features({"img": Image(), "label": Value("int64")})).save_to_disk(str(pictures))
    [first, second] = load_queries(f"hf:{pictures}:test", 2, "image")
    assert first.mode == "RGB" and first.size == (8, 8)


def test_a_pulled_snapshot_is_read_offline_and_must_hold_enough_rows(tmp_path):
    ref = parse("hf:wattsweep-tests/reviews/plain:test")
    rows = [{"text": f"review {i}", "label": i % 2} for i in range(3)]
    write_snapshot(ref, rows, None, {"complete": False, "dataset": "wattsweep-tests/reviews", "config": "plain"})
    assert snapshot_dir(ref).is_dir()
    assert load_queries("hf:wattsweep-tests/reviews/plain:test:text", 3, "text") == [r["text"] for r in rows]
    with pytest.raises(DatasetLoadError, match=r"the pulled snapshot holds 3 rows and this run needs 4; run "
                                               r"`wattsweep pull FILE`"):
        load_queries("hf:wattsweep-tests/reviews/plain:test", 4, "text")
    assert pull_dataset("hf:wattsweep-tests/reviews/plain:test", 3).status == "cached"
    assert pull_dataset("hf:wattsweep-tests/reviews/plain:test", 4).status == "missing"

    write_snapshot(ref, rows, None, {"complete": True})  # the whole split: a larger run cycles through it
    read_rows.cache_clear()
    assert load_queries("hf:wattsweep-tests/reviews/plain:test", 4, "text")[3] == "review 0"


def test_offline_without_a_snapshot_names_the_fix():
    with pytest.raises(DatasetLoadError, match=r"dataset 'hf:imdb:test' is not in the local cache; run `wattsweep "
                                               r"pull FILE` on a node with Hub access"):
        load_queries("hf:imdb:test", 10, "text")
    result = pull_dataset("hf:imdb:test", 10)
    assert (result.status, result.ok) == ("missing", False)
    assert pull_dataset("hf:./somewhere:test", 10).status == "local"


def test_pull_streams_the_reading_of_the_name_that_exists_then_workers_read_it_offline(monkeypatch):
    """The Hub is replaced by a fake `load_dataset`: `c4/en` is no repository, so it is dataset c4, config en."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError
    from huggingface_hub import constants

    import worker.data.hf_snapshots as hf

    calls = []

    def fake_load_dataset(path, config=None, *, split, streaming, revision=None):
        calls.append((path, config, split, streaming, revision))
        if path not in ("c4", "visual_genome"):
            raise DatasetNotFoundError(f"Dataset '{path}' doesn't exist on the Hub or cannot be accessed.")
        if revision is None and path == "visual_genome":
            raise RuntimeError("Dataset scripts are no longer supported, but found visual_genome.py")
        return Dataset.from_dict({"text": [f"{path} row {i}" for i in range(5)], "url": ["u"] * 5})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hf, "_dataset_commit", lambda path: "abc123")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    pulled = pull_dataset("hf:c4/en:train", 3)
    assert (pulled.status, pulled.detail) == ("downloaded", "3 rows")
    assert calls == [("c4/en", None, "train", True, None), ("c4", "en", "train", True, None)]
    meta = json.loads((snapshot_dir(parse("hf:c4/en:train")) / "wattsweep.json").read_text())
    assert (meta["dataset"], meta["config"], meta["rows"], meta["complete"], meta["revision"]) == (
        "c4", "en", 3, False, "abc123")

    assert pull_dataset("hf:visual_genome/objects_v1.2.0:train", 2).ok  # a script dataset: the parquet export
    assert calls[-1] == ("visual_genome", "objects_v1.2.0", "train", True, "refs/convert/parquet")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    calls.clear()
    assert load_queries("hf:c4/en:train", 3, "text") == ["c4 row 0", "c4 row 1", "c4 row 2"]
    assert calls == []  # read from the snapshot, not the Hub


def _wav(rate_hz: int, seconds: float) -> bytes:
    import io
    import wave

    import numpy as np

    samples = (np.sin(np.arange(int(rate_hz * seconds)) / 5) * 8000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(np.repeat(samples, 2).tobytes())  # stereo: mixed down to mono
    return buffer.getvalue()


def test_hf_audio_column_is_decoded_to_16_khz_mono_and_a_bad_file_is_named(tmp_path):
    from datasets import Audio, Dataset

    from worker.data.hf_datasets import load_hf_queries, read_rows

    good = tmp_path / "good"
    Dataset.from_dict({"audio": [{"bytes": _wav(8000, 1.5), "path": "a.wav"}]}).cast_column(
        "audio", Audio()).save_to_disk(str(good))
    [query] = load_hf_queries(f"hf:{good}:train", 1, "audio")
    assert query["sampling_rate"] == 16_000 and query["array"].ndim == 1
    assert len(query["array"]) == 24_000 and query["array"].dtype.name == "float32"  # 1.5 s, resampled 8 -> 16 kHz

    bad = tmp_path / "bad"
    Dataset.from_dict({"audio": [{"bytes": b"not a sound file", "path": "broken.flac"}]}).cast_column(
        "audio", Audio()).save_to_disk(str(bad))
    read_rows.cache_clear()
    with pytest.raises(DatasetLoadError, match=r"row 0, column 'audio'.*cannot decode audio file 'broken.flac': "):
        load_hf_queries(f"hf:{bad}:train", 1, "audio")
