"""The snapshot cache of `hf:` sets, and the Hub side that fills it.

`wattsweep pull FILE` stores the first N rows of every `hf:` set a sweep needs
under `$HF_HOME/wattsweep-datasets/`, with what it knows about them (rows,
whether that is the whole split, the Hub commit), so that workers without Hub
access (HF_HUB_OFFLINE=1) read the same rows. Opening a set on the Hub (the
reading of its name that exists, gated sets, script-only sets) lives here too,
as does parsing a reference: worker.data.hf_datasets, which reads rows from a
local folder, a snapshot or the Hub, builds on this module and never the other
way round.

Module level stays light: `datasets` and huggingface_hub load inside functions.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from worker.contract.refs import HfDatasetRef, ReferenceError, parse_hf_dataset
from worker.errors import DatasetLoadError
from worker.models.hub import PullResult, hub_offline

SNAPSHOT_META = "wattsweep.json"


def parse(text: str) -> HfDatasetRef:
    """`hf:...` or the part after `hf:`, parsed; DatasetLoadError if malformed."""
    try:
        return parse_hf_dataset(text.removeprefix("hf:"))
    except ReferenceError as error:
        raise DatasetLoadError(str(error)) from error


def dataset_label(ref: HfDatasetRef) -> str:
    return f"hf:{ref.source}"


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def undecoded_audio(dataset: Any) -> Any:
    """The dataset with its audio columns left as stored ({"bytes", "path"}): worker.data.audio decodes them
    (datasets 4 would decode with torchcodec, which needs CUDA torch)."""
    from datasets import Audio

    for name, feature in dict(getattr(dataset, "features", None) or {}).items():
        if isinstance(feature, Audio) and feature.decode:
            dataset = dataset.cast_column(name, Audio(sampling_rate=feature.sampling_rate, decode=False))
    return dataset


def open_hub(ref: HfDatasetRef) -> tuple[Any, str, str | None]:
    """A streaming dataset for `ref` and the (dataset, config) reading of its name that exists."""
    from datasets import load_dataset
    from datasets.exceptions import DatasetNotFoundError

    missing: Exception | None = None
    for path, config in ref.candidates():
        try:
            try:
                return load_dataset(path, config, split=ref.split, streaming=True), path, config
            except RuntimeError as error:  # datasets 4 runs no loading scripts: the Hub's parquet export may do
                if "script" not in str(error).lower():
                    raise
                return (load_dataset(path, config, split=ref.split, streaming=True, revision="refs/convert/parquet"),
                        path, config)
        except (DatasetNotFoundError, FileNotFoundError) as error:  # not this reading of the name: try the next
            if "gated" in str(error).lower():
                raise DatasetLoadError(f"dataset {dataset_label(ref)!r} is gated: accept its conditions on the Hub and "
                                       "set HF_TOKEN") from error
            missing = error
        except (ValueError, RuntimeError) as error:  # an unknown config or split: the message lists what exists
            raise DatasetLoadError(f"dataset {dataset_label(ref)!r}: {one_line(error)}") from error
    raise DatasetLoadError(f"dataset {dataset_label(ref)!r} not found on the Hub (or private: set HF_TOKEN): "
                           f"{one_line(missing)}")


# --- snapshots --------------------------------------------------------------------------------------------------

def snapshot_root() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "wattsweep-datasets"


def snapshot_dir(ref: HfDatasetRef) -> Path:
    name = ref.path.replace("/", "--") + (f"--{ref.config}" if ref.config else "") + f"@{ref.split}"
    return snapshot_root() / re.sub(r"[^\w.@\-]", "_", name)


def snapshot_meta(ref: HfDatasetRef) -> dict[str, Any] | None:
    """What `pull` stored for this set (rows, whether that is the whole split, the Hub commit), or None."""
    path = snapshot_dir(ref) / SNAPSHOT_META
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def snapshot_covers(meta: dict[str, Any] | None, n: int) -> bool:
    return meta is not None and (meta["rows"] >= n or meta["complete"])


def write_snapshot(ref: HfDatasetRef, rows: list[dict[str, Any]], features: Any, meta: dict[str, Any]) -> Path:
    """Store rows (and the facts in meta) as the snapshot of `ref`; replaces an older one whole."""
    from datasets import Dataset

    target = snapshot_dir(ref)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pull-", dir=target.parent))
    try:
        Dataset.from_list(rows, features=features).save_to_disk(str(staging / "data"))
        notes = {**meta, "ref": dataset_label(ref), "rows": len(rows)}
        (staging / SNAPSHOT_META).write_text(json.dumps(notes, indent=1))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


# --- pulling ----------------------------------------------------------------------------------------------------

def pull_dataset(text: str, n: int) -> PullResult:
    """Store the first `n` rows of an `hf:` set as a snapshot that offline workers read."""
    try:
        ref = parse(text)
    except DatasetLoadError as error:
        return PullResult(text, "error", str(error))
    label = dataset_label(ref)
    if ref.is_local:
        return PullResult(label, "local", "a local folder: read where it is")
    meta = snapshot_meta(ref)
    if snapshot_covers(meta, n):
        return PullResult(label, "cached", f"{meta['rows']} rows pulled")
    if hub_offline():
        return PullResult(label, "missing", "HF_HUB_OFFLINE=1 and no pulled snapshot with enough rows")
    try:
        dataset, path, config = open_hub(ref)
        dataset = undecoded_audio(dataset)  # stored as the Hub has it; decoded when read
        rows = list(itertools.islice(iter(dataset), n))
    except DatasetLoadError as error:
        status = "gated" if "is gated" in str(error) else "not-found" if "not found" in str(error) else "error"
        return PullResult(label, status, str(error))
    except OSError as error:
        return PullResult(label, "error", one_line(error))
    write_snapshot(ref, rows, getattr(dataset, "features", None),
                   {"dataset": path, "config": config, "split": ref.split, "complete": len(rows) < n,
                    "revision": _dataset_commit(path)})
    return PullResult(label, "downloaded", f"{len(rows)} rows")


def _dataset_commit(path: str) -> str | None:
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(path).sha
    except Exception:  # the commit is a nice-to-have in the snapshot's notes, never a reason to fail the pull
        return None
