"""`hub:` models: which commit a reference resolves to, and pulling it into the local cache.

The cache is the Hugging Face one (`$HF_HOME/hub/models--org--name/`, with
`refs/<branch>` naming a commit and `snapshots/<commit>/` holding the files),
so a lab shares it between nodes by pointing HF_HOME at a shared disk.

Offline (`HF_HUB_OFFLINE=1`, which huggingface_hub reads once, at import) only
the cache is read: a reference resolves to its snapshot folder, and a model
missing from it fails with the fix (`wattsweep pull FILE`). Online the
revision (default `main`) is resolved to a commit on the Hub and exactly that
commit is loaded. Either way the commit is recorded with the job.

Module level stays light: huggingface_hub is imported inside functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from worker.contract.weights import cached_snapshot  # the cache lookup the scheduler shares (`gpus: auto`)

PULL_HINT = "run `wattsweep pull FILE` on a node with Hub access"


class HubModelError(RuntimeError):
    """A Hub model that cannot be resolved; the message names it and the fix."""


@dataclass(frozen=True)
class ResolvedModel:
    where: str  # what from_pretrained reads: the snapshot folder (offline) or the repo id (online)
    revision: str  # the commit


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _label(repo_id: str, revision: str | None) -> str:
    return f"hub:{repo_id}" + (f"@{revision}" if revision else "")


def _not_cached(repo_id: str, revision: str | None) -> HubModelError:
    label = _label(repo_id, revision)
    if revision and cached_snapshot(repo_id, None) is not None:
        return HubModelError(f"model {label!r}: revision {revision!r} is not in the local cache (other revisions "
                             f"are); {PULL_HINT}")
    return HubModelError(f"model {label!r} is not in the local cache; {PULL_HINT}")


def resolve_model(repo_id: str, revision: str | None) -> ResolvedModel:
    """The commit `hub:repo_id@revision` names, and where to load it from; HubModelError otherwise."""
    if hub_offline():
        folder = cached_snapshot(repo_id, revision)
        if folder is None:
            raise _not_cached(repo_id, revision)
        return ResolvedModel(str(folder), folder.name)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    label = _label(repo_id, revision)
    try:
        info = HfApi().model_info(repo_id, revision=revision)
    except RevisionNotFoundError:
        raise HubModelError(f"model {label!r}: revision {revision!r} does not exist on the Hub") from None
    except GatedRepoError:
        raise HubModelError(f"model {label!r} is gated: accept its conditions on the Hub and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise HubModelError(f"model {label!r} does not exist on the Hub (or is private: set HF_TOKEN)") from None
    except OSError as error:  # the Hub unreachable: the cache may still have it
        folder = cached_snapshot(repo_id, revision)
        if folder is None:
            raise HubModelError(f"model {label!r}: the Hub is unreachable ({type(error).__name__}) and the model "
                                f"is not in the local cache; {PULL_HINT}") from None
        return ResolvedModel(str(folder), folder.name)
    return ResolvedModel(repo_id, info.sha)


# --- choosing what to download -------------------------------------------------------------------------------

# Formats no torch pipeline reads: never downloaded.
_FOREIGN = ("tf_model.h5", "flax_model.msgpack", "rust_model.ot", "model.onnx", "model.ckpt.index")
_FOREIGN_SUFFIXES = (".h5", ".msgpack", ".onnx", ".onnx_data", ".tflite", ".ot", ".gguf", ".ckpt", ".mlmodel",
                     ".pb", ".nemo")
_FOREIGN_DIRS = ("onnx", "openvino", "coreml", "tf", "flax", "tflite", "mlx", "gguf")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth")
_VARIANTS = (".fp16.", ".non_ema.", ".ema.", ".fp32.", ".bf16.")


def _is_weight(name: str) -> bool:
    return name.endswith((".safetensors", *_PICKLE_SUFFIXES)) or name.endswith(".bin.index.json")


def weight_files(filenames: Iterable[str]) -> list[str]:
    """The files of a repo that a torch pipeline needs, preferring safetensors over pickles.

    Drops other frameworks' weights (TF, Flax, ONNX, ...), pickled weights in a
    folder that has safetensors, precision/EMA variants where the plain file
    exists, and, in a diffusers repo (model_index.json), the single-file
    checkpoints at its root that diffusers' from_pretrained never reads.
    """
    names = sorted(set(filenames))
    diffusers = "model_index.json" in names
    by_folder: dict[str, list[str]] = {}
    for name in names:
        by_folder.setdefault(str(PurePosixPath(name).parent), []).append(name)
    kept = []
    for folder, files in by_folder.items():
        top = folder.split("/")[0]
        if top in _FOREIGN_DIRS:
            continue
        plain = [f for f in files if _is_weight(f) and not any(v in PurePosixPath(f).name for v in _VARIANTS)]
        has_safetensors = any(f.endswith(".safetensors") for f in plain)
        for name in files:
            base = PurePosixPath(name).name
            if base in _FOREIGN or base.endswith(_FOREIGN_SUFFIXES):
                continue
            if _is_weight(name):
                if diffusers and folder == ".":
                    continue
                if plain and any(v in base for v in _VARIANTS):
                    continue
                if has_safetensors and not name.endswith(".safetensors"):
                    continue
            kept.append(name)
    return kept


def _record_ref(repo_id: str, revision: str, commit: str) -> None:
    """refs/<revision> -> commit in the cache (as huggingface_hub writes it), so offline nodes resolve the name."""
    if revision == commit:
        return
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    ref = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type="model") / "refs" / revision
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text(commit)


@dataclass(frozen=True)
class PullResult:
    ref: str
    status: str  # downloaded | cached | local | missing | gated | not-found | error
    detail: str = ""
    nbytes: int = 0

    @property
    def ok(self) -> bool:
        return self.status in ("downloaded", "cached", "local")


def pull_model(repo_id: str, revision: str | None, on_bytes: Callable[[int, int], None] | None = None) -> PullResult:
    """Download what `hub:repo_id@revision` needs into the cache; offline, say whether the cache has it.

    `on_bytes(done, total)` is called as files arrive (a file at a time).
    """
    label = _label(repo_id, revision)
    if hub_offline():
        folder = cached_snapshot(repo_id, revision)
        if folder is None:
            return PullResult(label, "missing", "HF_HUB_OFFLINE=1 and not in the local cache")
        return PullResult(label, "cached", f"commit {folder.name}")
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
        sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
        files = weight_files(sizes)
        total = sum(sizes[f] for f in files)
        done = 0
        for name in files:  # one at a time, so that progress moves; the same commit throughout
            snapshot_download(repo_id, revision=info.sha, allow_patterns=[name])
            done += sizes[name]
            if on_bytes:
                on_bytes(done, total)
        _record_ref(repo_id, revision or "main", info.sha)
    except RevisionNotFoundError:
        return PullResult(label, "not-found", f"revision {revision!r} does not exist")
    except GatedRepoError:
        return PullResult(label, "gated", "accept its conditions on the Hub and set HF_TOKEN")
    except RepositoryNotFoundError:
        return PullResult(label, "not-found", "no such model on the Hub (or private: set HF_TOKEN)")
    except OSError as error:
        return PullResult(label, "error", " ".join(str(error).split())[:200] or type(error).__name__)
    return PullResult(label, "downloaded", f"commit {info.sha}, {len(files)} files", total)
