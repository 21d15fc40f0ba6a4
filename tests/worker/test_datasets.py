"""Query sets: builtin sets are deterministic and varied, file: jsonl works, bad inputs say what is wrong."""

from __future__ import annotations

import json
import tempfile

import pytest
from PIL import Image

from worker.contract.catalog import BUILTIN_DATASETS, INPUT_KINDS, kinds_compatible
from worker.data.datasets import BUILTIN_SIZE, dataset_kind, load_queries
from worker.errors import DatasetLoadError


def comparable(query):
    if isinstance(query, dict) and "array" in query:  # audio: the samples' bytes
        return query["array"].tobytes().hex()
    return query.tobytes() if isinstance(query, Image.Image) else query


def is_kind(query, kind: str) -> bool:
    if kind == "qa":
        return isinstance(query, dict) and set(query) == {"question", "context"}
    if kind == "image":
        return isinstance(query, Image.Image) and query.mode == "RGB"
    if kind == "audio":
        return (set(query) == {"array", "sampling_rate"} and query["sampling_rate"] == 16_000
                and query["array"].dtype.name == "float32" and 0.5 <= len(query["array"]) / 16_000 <= 4.0)
    if kind == "pair":
        return set(query) == {"sentence1", "sentence2"} and all(query.values())
    return isinstance(query, str) and query.strip() != ""


def test_builtin_sets_for_every_input_kind():
    for kind in INPUT_KINDS:  # the study's kinds have two each (it used several datasets a task)
        wanted = 1 if kind in ("audio", "pair") else 2
        assert sum(1 for k in BUILTIN_DATASETS.values() if k == kind) >= wanted, kind


def test_speech_lengths_vary_and_are_deterministic():
    first, again = load_queries("builtin:speech", 20), load_queries("builtin:speech", 20)
    lengths = {len(q["array"]) for q in first}
    assert len(lengths) > 15 and all((a["array"] == b["array"]).all() for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("name", sorted(BUILTIN_DATASETS))
def test_builtin_set_is_deterministic_varied_and_of_its_kind(name):
    ref = f"builtin:{name}"
    queries = load_queries(ref, 40)
    assert len(queries) == 40
    assert all(is_kind(q, BUILTIN_DATASETS[name]) for q in queries)
    assert [comparable(q) for q in queries] == [comparable(q) for q in load_queries(ref, 40)]
    assert len({json.dumps(comparable(q)) if isinstance(q, dict) else comparable(q) for q in queries}) > 30
    assert [comparable(q) for q in load_queries(ref, 10)] == [comparable(q) for q in queries[:10]]
    assert dataset_kind(ref) == BUILTIN_DATASETS[name]


def test_builtin_set_cycles_after_its_size():
    queries = load_queries("builtin:texts", BUILTIN_SIZE + 3)
    assert len(queries) == BUILTIN_SIZE + 3
    assert queries[-3:] == queries[:3]


def test_zero_queries_is_an_empty_list():
    assert load_queries("builtin:shapes", 0) == []


def test_file_jsonl_reads_each_line_form(tmp_path):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "red.png")
    files = {
        "strings.jsonl": ['"first text"', '{"text": "second text"}', '{"prompt": "third prompt"}'],
        "qa.jsonl": ['{"question": "Who?", "context": "Ada did.", "answer": "Ada"}'],
        "images.jsonl": ['{"image": "red.png"}'],
    }
    for name, lines in files.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n\n", encoding="utf-8")

    assert load_queries(f"file:{tmp_path / 'strings.jsonl'}", 4) == ["first text", "second text", "third prompt",
                                                                        "first text"]
    assert load_queries(f"file:{tmp_path / 'qa.jsonl'}", 2) == [{"question": "Who?", "context": "Ada did."}] * 2
    [image] = load_queries(f"file:{tmp_path / 'images.jsonl'}", 1)
    assert image.size == (8, 8) and image.getpixel((0, 0)) == (255, 0, 0)
    assert [dataset_kind(f"file:{tmp_path / n}") for n in files] == ["text", "qa", "image"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["not json"], r"bad\.jsonl:1: not JSON"),
        (['"ok"', "[1, 2]"], r"bad\.jsonl:2: expected a JSON string or object, got list"),
        (['{"label": 1}'], r'expected a "text", "prompt", "question"\+"context", "sentence1"\+"sentence2", "image"'),
        (['"a text"', '{"question": "q", "context": "c"}'], r"bad\.jsonl:2: mixes query kinds"),
        (['{"image": "missing.png"}'], "cannot read image"),
        ([], "holds no queries"),
    ],
)
def test_bad_file_lines_are_named_with_their_line(tmp_path, lines, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DatasetLoadError, match=message):
        load_queries(f"file:{path}", 3)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("builtin:imagenet", "unknown builtin dataset 'imagenet': allowed are"),
        ("hf:imdb", "malformed hf dataset"),
        ("file:/no/such/queries.jsonl", "outside the data roots"),
        (f"file:{tempfile.gettempdir()}/no/such/queries.jsonl", "does not exist"),
        ("file:queries.csv", r"expected file:<path>\.jsonl"),
        ("texts", "malformed dataset reference"),
    ],
)
def test_bad_references_raise_dataset_load_error(ref, message):
    with pytest.raises(DatasetLoadError, match=message):
        load_queries(ref, 1)


def test_string_kinds_are_interchangeable_the_others_are_not():
    assert kinds_compatible("document", "text") and kinds_compatible("prompt", "document")
    assert not kinds_compatible("text", "qa") and not kinds_compatible("image", "prompt")
