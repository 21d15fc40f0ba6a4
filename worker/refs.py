"""Model and dataset references as written in sweep files.

Pure parsing, no heavy imports: the scheduler validates references with these
functions before anything is written, and the worker parses the same strings
again when it loads what they name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MODEL_KINDS = ("tiny", "hub", "path")
DATASET_KINDS = ("builtin", "hf", "file")

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


class ReferenceError(ValueError):
    """A model or dataset reference that cannot be parsed."""


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
        from worker.tiny import TINY_FAMILIES  # light: a table of names, no torch

        if rest not in TINY_FAMILIES:
            raise ReferenceError(
                f"unknown tiny model family {rest!r}: allowed are {', '.join(sorted(TINY_FAMILIES))}"
            )
    return ModelRef(kind, rest)


def parse_dataset_ref(text: str) -> DatasetRef:
    """`builtin:<name>`, `hf:<dataset>[/<config>]:<split>[:<column>]` or `file:<path>.jsonl`."""
    kind, rest = _split(text, DATASET_KINDS, "dataset")
    if kind == "builtin":
        from worker.datasets import BUILTIN_DATASETS  # light: a table of names

        if rest not in BUILTIN_DATASETS:
            raise ReferenceError(
                f"unknown builtin dataset {rest!r}: allowed are {', '.join(sorted(BUILTIN_DATASETS))}"
            )
    if kind == "file" and not rest.endswith(".jsonl"):
        raise ReferenceError(f"malformed file dataset {text!r}: expected file:<path>.jsonl")
    if kind == "hf" and ":" not in rest:
        raise ReferenceError(f"malformed hf dataset {text!r}: expected hf:<dataset>[/<config>]:<split>[:<column>]")
    return DatasetRef(kind, rest)
