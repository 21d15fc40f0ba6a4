"""`hf:<dataset>[/<config>]:<split>[:<column>]` query sets, read with the `datasets` library.

Where the rows come from, first match wins:
1. a local folder (`hf:./data/reviews:test`): a `save_to_disk` folder (a
   DatasetDict: the split is picked; a single Dataset: read whole), or a folder
   of data files laid out as on the Hub (`test.jsonl`, `data/test-*.parquet`, ...);
2. a pulled snapshot (worker.data.hf_snapshots, filled by `wattsweep pull FILE`),
   so that workers without Hub access (HF_HUB_OFFLINE=1) read them;
3. the Hub, streamed (nothing but the rows used is downloaded).
The first N rows are taken in the split's order, so every worker measures the
same queries; a split shorter than N is cycled through, as builtin sets are.

The input column is inferred from the task's input kind when exactly one
usual column name is present (text: text, sentence, ...; question answering:
question + context or support; images: the one image column) and must be
named otherwise (`:column`, or `:question,context` for question answering); a
wrong name gets the list of columns. Token lists (CoNLL-style `tokens`) are
joined with spaces; image URLs are fetched only with WATTSWEEP_ALLOW_URLS=1 (and network on the worker),
and image paths, like local folders, are read only under WATTSWEEP_DATA_ROOTS.

Module level stays light: `datasets` and PIL load inside functions.
"""

from __future__ import annotations

import functools
import io
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.settings import get_settings
from worker.contract.refs import HfDatasetRef, OutsideDataRoots, check_data_path
from worker.data.hf_snapshots import (
    dataset_label,
    one_line,
    open_hub,
    parse,
    snapshot_covers,
    snapshot_dir,
    snapshot_meta,
    undecoded_audio,
)
from worker.errors import DatasetLoadError
from worker.models.hub import PULL_HINT, hub_offline

# Usual column names per input kind, most specific first; matched case-insensitively.
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    "text": ("text", "sentence", "review", "content", "tokens", "passage"),
    "document": ("document", "article", "dialogue", "text", "content"),
    "prompt": ("prompt", "text", "caption", "sentence"),
    "image": ("image", "img"),
    "audio": ("audio", "speech"),
}
QA_CANDIDATES = (("question", "query"), ("context", "support", "passage"))
PAIR_CANDIDATES = (("sentence1", "sentence_1", "text1", "premise"), ("sentence2", "sentence_2", "text2", "hypothesis"))
TWO_COLUMNS = {"qa": (("question", "context"), QA_CANDIDATES), "pair": (("sentence1", "sentence2"), PAIR_CANDIDATES)}
URL_TIMEOUT_S = 30


# --- reading rows -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rows:
    rows: list[dict[str, Any]]
    columns: list[str]
    image_columns: frozenset[str]
    complete: bool  # the split holds no more rows than these
    audio_columns: frozenset[str] = frozenset()


def _describe(features: Any, first: dict[str, Any] | None) -> tuple[list[str], frozenset[str], frozenset[str]]:
    from datasets import Audio, Image

    if features:
        return (list(features), frozenset(name for name, f in features.items() if isinstance(f, Image)),
                frozenset(name for name, f in features.items() if isinstance(f, Audio)))
    columns = list(first or {})
    images = frozenset(c for c in columns if type(first[c]).__module__.startswith("PIL."))
    sounds = frozenset(c for c in columns if isinstance(first[c], dict) and "sampling_rate" in first[c])
    return columns, images, sounds


def _take(dataset: Any, n: int) -> Rows:
    dataset = undecoded_audio(dataset)
    rows = list(itertools.islice(iter(dataset), n))
    columns, images, sounds = _describe(getattr(dataset, "features", None), rows[0] if rows else None)
    return Rows(rows, columns, images, complete=len(rows) < n, audio_columns=sounds)


def _open_local(ref: HfDatasetRef) -> Any:
    from datasets import DatasetDict, load_dataset, load_from_disk

    folder = _under_roots(ref.path, f"dataset {dataset_label(ref)!r}: folder")
    if not folder.is_dir():
        raise DatasetLoadError(f"dataset {dataset_label(ref)!r}: folder {str(folder)!r} does not exist "
                               "(local hf: folders are read on the worker)")
    if (folder / "dataset_dict.json").exists() or (folder / "state.json").exists():
        loaded = load_from_disk(str(folder))
        if isinstance(loaded, DatasetDict):
            if ref.split not in loaded:
                raise DatasetLoadError(f"dataset {dataset_label(ref)!r}: no split {ref.split!r}; "
                                       f"splits are {', '.join(loaded)}")
            return loaded[ref.split]
        return loaded
    try:
        return load_dataset(str(folder), split=ref.split, streaming=True)
    except ValueError as error:  # an unknown split names the ones there are
        raise DatasetLoadError(f"dataset {dataset_label(ref)!r}: {one_line(error)}") from error


def _under_roots(path: str, what: str) -> Path:
    try:
        return check_data_path(path, what)
    except OutsideDataRoots as error:
        raise DatasetLoadError(str(error)) from None


@functools.lru_cache(maxsize=8)  # repetitions of a run read the same rows: read them once per process
def read_rows(ref: HfDatasetRef, n: int) -> Rows:
    """The first `n` rows of the set `ref` names, from a local folder, a pulled snapshot or the Hub."""
    if ref.is_local:
        return _take(_open_local(ref), n)
    meta = snapshot_meta(ref)
    if meta is not None:
        if not snapshot_covers(meta, n):
            raise DatasetLoadError(f"dataset {dataset_label(ref)!r}: the pulled snapshot holds {meta['rows']} rows and "
                                   f"this run needs {n}; {PULL_HINT} (it pulls as many as the sweep needs)")
        from datasets import load_from_disk

        return _take(load_from_disk(str(snapshot_dir(ref) / "data")), n)
    if hub_offline():
        raise DatasetLoadError(f"dataset {dataset_label(ref)!r} is not in the local cache; {PULL_HINT}")
    dataset, _, _ = open_hub(ref)
    return _take(dataset, n)


# --- columns and queries ----------------------------------------------------------------------------------------

def _match(columns: list[str], name: str) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def _string_columns(rows: Rows) -> list[str]:
    first = rows.rows[0] if rows.rows else {}
    return [c for c in rows.columns if isinstance(first.get(c), str)]


def choose_columns(ref: HfDatasetRef, rows: Rows, input_kind: str) -> tuple[str, ...]:
    """The column(s) holding the queries of `input_kind`: the named ones, checked, or the inferred ones."""
    label, listing = dataset_label(ref), ", ".join(rows.columns)
    wanted = 2 if input_kind in TWO_COLUMNS else 1
    if ref.columns:
        if len(ref.columns) != wanted:
            shape = (f":{','.join(TWO_COLUMNS[input_kind][0])} (two columns)" if wanted == 2
                     else ":<column> (one column)")
            raise DatasetLoadError(f"dataset {label!r}: this task reads {input_kind} queries: name {shape}")
        found = []
        for name in ref.columns:
            column = _match(rows.columns, name)
            if column is None:
                raise DatasetLoadError(f"dataset {label!r} has no column {name!r}; columns are {listing}")
            found.append(column)
        return tuple(found)
    if input_kind in TWO_COLUMNS:
        roles, candidates = TWO_COLUMNS[input_kind]
        picked = []
        for role, names in zip(roles, candidates, strict=True):
            present = [c for c in (_match(rows.columns, n) for n in names) if c]
            if len(present) != 1:
                raise DatasetLoadError(f"dataset {label!r}: cannot tell which column holds the {role}; name both: "
                                       f"hf:{ref.source}:<{roles[0]}>,<{roles[1]}>; columns are {listing}")
            picked.append(present[0])
        return tuple(picked)
    if input_kind == "image" and len(rows.image_columns) == 1:
        return (next(iter(rows.image_columns)),)
    if input_kind == "audio" and len(rows.audio_columns) == 1:
        return (next(iter(rows.audio_columns)),)
    present = list(dict.fromkeys(c for c in (_match(rows.columns, n) for n in COLUMN_CANDIDATES[input_kind]) if c))
    if len(present) == 1:
        return (present[0],)
    if not present and input_kind not in ("image", "audio") and len(_string_columns(rows)) == 1:
        return (_string_columns(rows)[0],)
    which = f" (candidates: {', '.join(present)})" if present else ""
    raise DatasetLoadError(f"dataset {label!r}: cannot tell which column holds the {input_kind} queries{which}; "
                           f"name it: hf:{ref.source}:<column>; columns are {listing}")


def _image(value: Any, where: str) -> Any:
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict) and value.get("bytes"):
        return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
    if isinstance(value, dict) and value.get("path"):
        value = value["path"]
    if isinstance(value, str) and "://" in value[:12]:
        if not value.startswith(("http://", "https://")):
            raise DatasetLoadError(f"{where}: image URL scheme {value.split(':')[0]!r}: only http and https")
        if not get_settings().allow_urls:
            raise DatasetLoadError(f"{where}: the images are URLs, and fetching URLs is off; set "
                                   "WATTSWEEP_ALLOW_URLS=1 on the workers to allow it")
        if hub_offline():
            raise DatasetLoadError(f"{where}: the images are URLs, and fetching them needs network access")
        import urllib.request

        with urllib.request.urlopen(value, timeout=URL_TIMEOUT_S) as response:  # noqa: S310 (a dataset's own URLs)
            return Image.open(io.BytesIO(response.read())).convert("RGB")
    if isinstance(value, str):
        with Image.open(_under_roots(value, f"{where}: image")) as image:
            return image.convert("RGB")
    raise DatasetLoadError(f"{where}: expected an image, got {type(value).__name__}")


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)  # pre-tokenised (CoNLL, WikiANN): the sentence again
    raise DatasetLoadError(f"{where}: expected text, got {type(value).__name__}")


def _query(row: dict[str, Any], columns: tuple[str, ...], input_kind: str, where: str) -> Any:
    if input_kind in TWO_COLUMNS:
        first, second = TWO_COLUMNS[input_kind][0]
        return {first: _text(row[columns[0]], where), second: _text(row[columns[1]], where)}
    if input_kind == "audio":
        from worker.data.audio import decode_audio

        return decode_audio(row[columns[0]], where)
    if input_kind == "image":
        return _image(row[columns[0]], where)
    return _text(row[columns[0]], where)


def load_hf_queries(text: str, n: int, input_kind: str) -> list[Any]:
    """Exactly `n` queries of `input_kind` from `hf:` reference `text`; rows whose image URL fails are skipped."""
    ref = parse(text)
    if n == 0:
        return []
    rows = read_rows(ref, n)
    if not rows.rows:
        raise DatasetLoadError(f"dataset {dataset_label(ref)!r}: split {ref.split!r} holds no rows")
    columns = choose_columns(ref, rows, input_kind)
    queries, failures = [], []
    for index, row in enumerate(rows.rows):
        where = f"dataset {dataset_label(ref)!r}, row {index}, column {columns[0]!r}"
        try:
            queries.append(_query(row, columns, input_kind, where))
        except OSError as error:  # a dead image link or an unreadable file: skip the row, say so if all fail
            failures.append(f"{where}: {one_line(error)}")
    if not queries:
        raise DatasetLoadError(failures[0])
    return [queries[i % len(queries)] for i in range(n)]
