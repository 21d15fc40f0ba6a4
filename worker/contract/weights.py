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


INDEX_SUFFIX = ".safetensors.index.json"  # a sharded checkpoint's map of tensor -> shard file


def checkpoint_bytes(directory: Path) -> int | None:
    """Bytes of the weights a load of this checkpoint directory reads, or None where it holds no safetensors file.

    Counted as the loaders read them: a diffusers pipeline (model_index.json) per component folder, anything else
    from its own folder. In one folder a sharded checkpoint's index names its shards; otherwise each weights file
    counts once, a variant (`diffusion_pytorch_model.fp16.safetensors`) only where the full file is absent, as
    diffusers loads the full one unless told a variant. Other copies (a `consolidated.safetensors` beside
    sharded `model-*` files, an `original/` folder) are not loaded, so not counted.
    """
    directory = Path(directory)
    index = directory / "model_index.json"
    if index.is_file():
        folders = [directory / name for name in _pipeline_components(index)]
    else:
        folders = [directory]
    sizes = [size for folder in folders if (size := _folder_bytes(folder)) is not None]
    return sum(sizes) if sizes else None


def _pipeline_components(index: Path) -> list[str]:
    """The component folders a diffusers model_index.json names (entries are [library, class] pairs)."""
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError) as error:
        raise WeightsHeaderError(f"{index}: cannot read it ({error})") from error
    return sorted(name for name, value in entries.items() if isinstance(value, list) and not name.startswith("_"))


STANDARD_NAMES = ("model.safetensors", "diffusion_pytorch_model.safetensors")  # what the loaders look for first


def _folder_bytes(folder: Path) -> int | None:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    indexes = sorted(folder.glob(f"*{INDEX_SUFFIX}"))  # a variant's index (`...index.fp16.json`) does not match
    if indexes:
        shards: set[str] = set()
        for index in indexes:
            try:
                shards.update((json.loads(index.read_text()).get("weight_map") or {}).values())
            except (OSError, ValueError, AttributeError) as error:
                raise WeightsHeaderError(f"{index}: cannot read its weight map ({error})") from error
        return sum(safetensors_data_bytes(folder / name) for name in sorted(shards))
    standard = [path for path in files if path.name in STANDARD_NAMES]
    full = {path.name for path in files}
    kept = standard or [path for path in files  # a variant only where its full file is absent
                        if path.name.count(".") == 1 or f"{_stem(path)}.safetensors" not in full]
    return sum(safetensors_data_bytes(path) for path in kept)


def _stem(path: Path) -> str:
    """`diffusion_pytorch_model.fp16.safetensors` -> `diffusion_pytorch_model`: the file a variant stands for."""
    return path.name.split(".", 1)[0]


def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The cached snapshot folder of `repo_id` at `revision` (branch, tag or commit; None = main), if any."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None
