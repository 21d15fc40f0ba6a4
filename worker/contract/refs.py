"""Model and dataset references as written in sweep files.

Pure parsing, no heavy imports: the scheduler validates references with these
functions before anything is written, and the worker parses the same strings
again when it loads what they name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.contract.catalog import BUILTIN_DATASETS, TINY_FAMILIES

MODEL_KINDS = ("tiny", "hub", "path")
DATASET_KINDS = ("builtin", "hf", "file")

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
MAX_REF_CHARS = 300  # jobs.model and runs.dataset are VARCHAR(300)


class ReferenceError(ValueError):
    """A model or dataset reference that cannot be parsed."""


class OutsideDataRoots(ReferenceError):
    """A file or folder outside WATTSWEEP_DATA_ROOTS: a sweep file must not make workers read anything else."""


def data_roots() -> list[Path]:
    """The configured data roots (WATTSWEEP_DATA_ROOTS; default: the working directory and HF_HOME)."""
    from db.settings import get_settings

    return get_settings().data_root_paths()


def check_data_path(path: str | Path, what: str, roots: Sequence[Path] | None = None) -> Path:
    """`path` resolved (~, .., symlinks) if it lies under one of the data roots; OutsideDataRoots otherwise.

    Called by the scheduler when it reads a sweep file (the path need not exist there) and again by the
    worker right before it opens the path: the worker's own roots are the ones that protect it.
    """
    roots = data_roots() if roots is None else roots
    text = str(path)
    if "\x00" in text:
        raise OutsideDataRoots(f"{what} {text[:80]!r}: contains a NUL character")
    resolved = Path(os.path.expanduser(text)).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = os.pathsep.join(str(root) for root in roots)
        raise OutsideDataRoots(f"{what} {text[:120]!r} is outside the data roots ({allowed}); "
                               "add its folder to WATTSWEEP_DATA_ROOTS")
    return resolved


@dataclass(frozen=True)
class ModelRef:
    kind: str  # tiny | hub | path
    name: str  # family for tiny, repo id for hub, folder for path
    revision: str | None = None

    def __str__(self) -> str:
        suffix = f"@{self.revision}" if self.revision else ""
        return f"{self.kind}:{self.name}{suffix}"


@dataclass(frozen=True)
class DatasetRef:
    kind: str  # builtin | hf | file
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def _split(text: str, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise ReferenceError(f"malformed {what} reference {text!r}: expected text such as {kinds[0]}:<name>")
    if len(text) > MAX_REF_CHARS:
        raise ReferenceError(f"{what} reference {text[:40]!r}... is {len(text):,} characters long; "
                             f"the limit is {MAX_REF_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ReferenceError(f"malformed {what} reference {text[:80]!r}: contains a control character")
    kind, sep, rest = text.partition(":")
    if not sep or kind not in kinds or not rest.strip():
        allowed = ", ".join(f"{k}:<...>" for k in kinds)
        raise ReferenceError(f"malformed {what} reference {text!r}: expected one of {allowed}")
    return kind, rest.strip()


def parse_model_ref(text: str) -> ModelRef:
    """`tiny:<family>`, `hub:<org>/<name>[@revision]` or `path:<dir>`."""
    kind, rest = _split(text, MODEL_KINDS, "model")
    if kind == "hub":
        name, _, revision = rest.partition("@")
        if not _HUB_NAME.match(name):
            raise ReferenceError(f"malformed hub model {text!r}: expected hub:<org>/<name>[@revision]")
        return ModelRef("hub", name, revision or None)
    if kind == "tiny":
        if rest not in TINY_FAMILIES:
            raise ReferenceError(
                f"unknown tiny model family {rest!r}: allowed are {', '.join(sorted(TINY_FAMILIES))}"
            )
    return ModelRef(kind, rest)


def parse_dataset_ref(text: str) -> DatasetRef:
    """`builtin:<name>`, `hf:<dataset>[/<config>]:<split>[:<column>]` or `file:<path>.jsonl`."""
    kind, rest = _split(text, DATASET_KINDS, "dataset")
    if kind == "builtin":
        if rest not in BUILTIN_DATASETS:
            raise ReferenceError(
                f"unknown builtin dataset {rest!r}: allowed are {', '.join(sorted(BUILTIN_DATASETS))}"
            )
    if kind == "file" and not rest.endswith(".jsonl"):
        raise ReferenceError(f"malformed file dataset {text!r}: expected file:<path>.jsonl")
    if kind == "hf":
        parse_hf_dataset(rest)  # raises on a malformed reference
    return DatasetRef(kind, rest)


@dataclass(frozen=True)
class HfDatasetRef:
    """`hf:<dataset>[/<config>]:<split>[:<column>]`, parsed.

    `path` is a Hub dataset id (`imdb`, `org/name`) or a local folder (starts
    with `/`, `.` or `~`: a `save_to_disk` folder or a folder of data files).
    Two-part Hub names are ambiguous (`c4/en` is dataset c4 with config en,
    `rafaelpadilla/coco2017` is a dataset with an org): `candidates` lists both
    readings, dataset-with-org first, and the loader takes the one that exists.
    `columns` is empty (infer from the task), one column, or two for
    question answering (`question,context`).
    """

    path: str
    config: str | None
    split: str
    columns: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        return is_local_path(self.path)

    @property
    def source(self) -> str:
        """The reference without its column: what is downloaded and cached."""
        return f"{self.path}/{self.config}:{self.split}" if self.config else f"{self.path}:{self.split}"

    def candidates(self) -> list[tuple[str, str | None]]:
        """(dataset, config) readings of the name, most likely first."""
        if self.config is None and not self.is_local and "/" in self.path:
            org, name = self.path.split("/")
            return [(self.path, None), (org, name)]
        return [(self.path, self.config)]


def is_local_path(name: str) -> bool:
    return name.startswith(("/", ".", "~"))


def parse_hf_dataset(rest: str) -> HfDatasetRef:
    """The part after `hf:`; ReferenceError naming the expected shape otherwise."""
    shape = "expected hf:<dataset>[/<config>]:<split>[:<column>]"
    parts = rest.split(":")
    if len(parts) not in (2, 3) or not all(part.strip() for part in parts):
        raise ReferenceError(f"malformed hf dataset {'hf:' + rest!r}: {shape}")
    name, split = parts[0].strip(), parts[1].strip()
    columns = tuple(c.strip() for c in parts[2].split(",")) if len(parts) == 3 else ()
    if not all(columns) or len(columns) > 2:
        raise ReferenceError(f"malformed hf dataset {'hf:' + rest!r}: the column part is one column, or "
                             "question,context for question answering")
    if is_local_path(name):
        return HfDatasetRef(name, None, split, columns)
    segments = name.split("/")
    if len(segments) > 3 or not all(_HUB_NAME.match(s) for s in segments):
        raise ReferenceError(f"malformed hf dataset {'hf:' + rest!r}: {shape} (Hub names are org/name; "
                             "local folders start with /, . or ~)")
    if len(segments) == 3:
        return HfDatasetRef("/".join(segments[:2]), segments[2], split, columns)
    return HfDatasetRef(name, None, split, columns)


def local_path_of(ref: ModelRef | DatasetRef) -> str | None:
    """The file or folder a reference reads on the worker (`path:`, `file:`, local `hf:`), or None."""
    if ref.kind in ("path", "file"):
        return ref.name
    if ref.kind == "hf":
        parsed = parse_hf_dataset(ref.name)
        return parsed.path if parsed.is_local else None
    return None
