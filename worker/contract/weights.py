"""How many bytes a checkpoint's weights take, read from its safetensors headers without loading a tensor.

A safetensors file starts with an 8-byte little-endian header length and a JSON header that gives each tensor's
byte range; the largest end offset is the size of its data. Pure standard library, so both the scheduler
(`gpus: auto` at plan time) and the worker (a model that cannot fit fails before any weight is read) use it.
`cached_snapshot` finds a `hub:` model's folder in the local Hugging Face cache (huggingface_hub, imported inside
it, never the network): the scheduler sizes Hub models from there, and worker.models.hub loads them from there.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit: a longer header is a corrupt or hostile file


class WeightsHeaderError(ValueError):
    """A safetensors file whose header cannot be read; the message names the file."""


def safetensors_data_bytes(path: Path) -> int:
    """Bytes of tensor data in one .safetensors file, from its header alone."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(8)
            if len(raw) < 8:
                raise WeightsHeaderError(f"{path}: too short to be a safetensors file")
            (length,) = struct.unpack("<Q", raw)
            if length > MAX_HEADER_BYTES:
                raise WeightsHeaderError(f"{path}: header of {length} bytes is over safetensors' limit")
            header = json.loads(handle.read(length))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightsHeaderError(f"{path}: cannot read its safetensors header ({error})") from error
    if not isinstance(header, dict):
        raise WeightsHeaderError(f"{path}: its safetensors header is not a JSON object")
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and "data_offsets" in entry]
    return max(ends, default=0)


def checkpoint_bytes(directory: Path) -> int | None:
    """Bytes of weights in a checkpoint directory (every *.safetensors file in it, subfolders included, as a
    diffusers pipeline keeps one per component), or None where it holds no safetensors file."""
    files = sorted(Path(directory).rglob("*.safetensors"))
    if not files:
        return None
    return sum(safetensors_data_bytes(path) for path in files)


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of `repo_id` at `revision` (branch, tag or commit; None = main), if any."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
