"""Quantized checkpoints, loaded as deployed: what their config says, and whether this node can run it.

transformers reads a checkpoint's `quantization_config` (config.json) and loads the weights with that method (FP8,
MXFP4, AWQ, GPTQ, bitsandbytes, compressed-tensors, torchao, ...). Where the node cannot run a method, transformers
sometimes falls back quietly (FP8 and MXFP4 without a capable GPU are dequantized to bf16), which would measure
another model than the one deployed: `check_runnable` refuses those before any weight is read, with one line that
names the method and what it needs. `describe` gives the method and bits stored with the job.
Light: reads JSON and asks importlib whether packages are installed; torch only for the GPU's capability.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.errors import CannotLoadHere
from worker.models.placement import Placement

# method -> (import names of the packages it needs, the CUDA compute capability it needs on a GPU, whether it
# needs a GPU at all). Without theirs, transformers dequantizes FP8 and MXFP4 to bf16: not the model as deployed.
REQUIREMENTS: dict[str, tuple[tuple[str, ...], tuple[int, int] | None, bool]] = {
    "fp8": ((), (8, 9), True),
    "fbgemm_fp8": (("fbgemm_gpu",), (9, 0), True),
    "mxfp4": (("triton", "kernels"), (7, 5), False),  # transformers runs it on the CPU too, with triton's kernels
    "gptq": (("gptqmodel", "optimum"), None, False),
    "awq": (("gptqmodel",), None, False),
    "bitsandbytes": (("bitsandbytes",), None, False),
    "compressed-tensors": (("compressed_tensors",), None, False),
    "torchao": (("torchao",), None, False),
    "quanto": (("optimum.quanto",), None, False),
    "hqq": (("hqq",), None, False),
    "auto-round": (("auto_round",), None, False),
}
PACKAGE_NAMES = {"compressed_tensors": "compressed-tensors", "optimum.quanto": "optimum-quanto",
                 "fbgemm_gpu": "fbgemm-gpu", "auto_round": "auto-round"}  # import name -> what pip installs
FIXED_BITS = {"fp8": 8, "fbgemm_fp8": 8, "mxfp8": 8, "mxfp4": 4, "nvfp4": 4}
BITS_KEYS = ("bits", "num_bits", "nbits", "w_bit", "weight_bits")


def saved_quantization(folder: str | Path) -> dict[str, Any] | None:
    """The `quantization_config` of a save_pretrained folder's config.json, or None (not quantized, no config)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    found = config.get("quantization_config") if isinstance(config, dict) else None
    return found if isinstance(found, dict) and found else None


def describe(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """{"method": "gptq", "bits": 4} of a quantization config (as saved, or a loaded model's to_dict()); {} for none."""
    if not config:
        return {}
    method = config.get("quant_method") or ""
    method = str(getattr(method, "value", method)).lower()  # a loaded config holds transformers' enum
    if not method and (config.get("load_in_4bit") or config.get("load_in_8bit")):
        method = "bitsandbytes"
    if method == "bitsandbytes":
        bits = 4 if config.get("load_in_4bit") or config.get("_load_in_4bit") else 8
    else:
        bits = FIXED_BITS.get(method) or _bits(config)
    return {"method": method or "unknown", "bits": bits}


def _bits(config: Any) -> int | None:
    """The weights' bits wherever the method keeps them: a `bits`-like key (compressed-tensors: one per group, all
    equal or None), or a type name such as torchao's Int8WeightOnlyConfig or quanto's "int4"."""
    found: set[int] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, Mapping):
            if key == "input_activations" or key == "output_activations":
                return  # the activations' bits are not the weights'
            for name, inner in value.items():
                walk(inner, str(name))
        elif isinstance(value, list):
            for inner in value:
                walk(inner, key)
        elif key in BITS_KEYS and isinstance(value, int) and not isinstance(value, bool):
            found.add(value)
        elif key in ("_type", "weights", "quant_type") and isinstance(value, str):
            match = re.search(r"(?:int|float|fp|uint)(\d+)", value, re.IGNORECASE)
            if match:
                found.add(int(match.group(1)))

    walk(config)
    return found.pop() if len(found) == 1 else None


def check_runnable(config: Mapping[str, Any] | None, placement: Placement) -> None:
    """Raise CannotLoadHere with one line when this node cannot run the checkpoint's quantization as deployed."""
    if not config or config.get("dequantize"):  # a config that asks for dequantized weights gets them
        return
    method = describe(config)["method"]
    packages, capability, cuda_only = REQUIREMENTS.get(method, ((), None, False))
    if capability is not None and (cuda_only or placement.on_cuda):
        have = _capability(placement)
        if have is None or have < capability:
            where = f"this worker's GPU has {have[0]}.{have[1]}" if have else "this worker has no CUDA GPU"
            raise CannotLoadHere(f"{method} needs a CUDA GPU with compute capability {capability[0]}.{capability[1]} "
                                 f"or newer ({where}); without one transformers would load the weights "
                                 "dequantized, not as deployed")
    missing = [PACKAGE_NAMES.get(name, name) for name in packages if not _installed(name)]
    if missing:
        raise CannotLoadHere(f"{method} needs the {' and '.join(missing)} package{'s' if len(missing) > 1 else ''}: "
                             f"pip install {' '.join(missing)} on this worker")


def _capability(placement: Placement) -> tuple[int, int] | None:
    if not placement.on_cuda:
        return None
    import torch

    return tuple(torch.cuda.get_device_capability(0))


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a dotted name whose parent is missing
        return False
