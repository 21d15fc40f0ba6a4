"""`LoadedModel`: a model with the pre-processors it reads its inputs with, whatever the weights' origin.

Below both loaders (worker.models.loading for path:/hub:, worker.models.tiny for tiny:), so
that neither imports the other to build one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class LoadedModel:
    """A model with what it needs to read its inputs; for text-to-image `model` is the diffusers pipeline."""

    model: Any
    tokenizer: Any = None
    image_processor: Any = None
    revision: str | None = None  # the Hub commit loaded; None for tiny: and path:
    feature_extractor: Any = None  # audio models: waveform -> log-mel features

    @property
    def provenance(self) -> dict[str, Any]:
        """What was loaded, for the job's record: Hub commit, dtype of the weights, parameter count."""
        return model_provenance(self.model, self.revision)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write every part into `folder`, loadable again as `path:<folder>`."""
        for part in (self.model, self.tokenizer, self.image_processor, self.feature_extractor):
            if part is not None:
                part.save_pretrained(str(folder))


def model_provenance(model: Any, revision: str | None = None) -> dict[str, Any]:
    """revision, dtype ("float32", ...), num_parameters and quantization (method, bits) of a loaded model or
    diffusers pipeline."""
    import torch

    modules = [model] if isinstance(model, torch.nn.Module) else [
        part for part in getattr(model, "components", {}).values() if isinstance(part, torch.nn.Module)]
    tensors = [t for module in modules for t in module.parameters()]
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors if t.is_floating_point()})
    quantization = next((found for module in modules if (found := loaded_quantization(module))), {})
    return {"revision": revision, "dtype": "+".join(dtypes) or None,
            "num_parameters": sum(t.numel() for t in tensors) or None,
            "quantization_method": quantization.get("method"), "quantization_bits": quantization.get("bits")}


def loaded_quantization(module: Any) -> dict[str, Any]:
    """{"method", "bits"} of the quantization a loaded model runs (transformers keeps it in its config); {} for none.

    Read from the loaded model, not the folder: what transformers actually applied (a checkpoint it dequantized
    has no quantization_config left)."""
    from worker.models.quantization import describe

    config = getattr(getattr(module, "config", None), "quantization_config", None)
    if config is not None and not isinstance(config, dict):
        config = config.to_dict() if hasattr(config, "to_dict") else None
    return describe(config)


def float32_numerics() -> dict[str, Any]:
    """How torch computes float32 matmuls in this process now: its matmul precision and whether TF32 is allowed
    (matmuls, cuDNN). Stored with each job: TF32 changes both the speed and the energy of an FP32 model."""
    import torch

    return {"float32_matmul_precision": torch.get_float32_matmul_precision(),
            "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
            "tf32_cudnn": bool(torch.backends.cudnn.allow_tf32)}
