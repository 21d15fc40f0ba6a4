"""Light catalogues: task names, tiny model families, builtin dataset names and kinds.

Tables and pure functions only, no heavy imports: the scheduler reads them to
validate sweep files (a scheduler node has no GPU stack), and the loaders
(worker.refs, worker.tiny, worker.datasets, worker.loading) sit above them.
"""

from __future__ import annotations

from dataclasses import dataclass

# task -> transformers Auto class that loads a checkpoint for it ("diffusers" for the diffusion pipeline).
TASK_MODEL_CLASSES: dict[str, str] = {
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "question-answering": "AutoModelForQuestionAnswering",
    "fill-mask": "AutoModelForMaskedLM",
    "text-generation": "AutoModelForCausalLM",
    "summarization": "AutoModelForSeq2SeqLM",
    "image-classification": "AutoModelForImageClassification",
    "object-detection": "AutoModelForObjectDetection",
    "image-to-text": "AutoModelForImageTextToText",  # AutoModelForVision2Seq is deprecated in 4.57
    "text-to-image": "diffusers",
}

INPUT_KINDS = ("text", "qa", "document", "prompt", "image")
"""text: a sentence or review (str); qa: {"question", "context"} dict; document: a longer
text to summarise (str); prompt: a generation or image prompt (str); image: a PIL image."""

STRING_KINDS = ("text", "document", "prompt")  # all plain strings: a workload of one kind may read another

BUILTIN_DATASETS: dict[str, str] = {
    "texts": "text",
    "reviews": "text",
    "squad-like": "qa",
    "trivia": "qa",
    "news": "document",
    "reports": "document",
    "prompts": "prompt",
    "image-prompts": "prompt",
    "shapes": "image",
    "noise": "image",
}


@dataclass(frozen=True)
class TinyFamily:
    architecture: str
    tasks: tuple[str, ...]
    # A family that generates text can also be prompted for other tasks zero-shot (a "multi-purpose" model):
    # this is the task whose build is its generator.
    generator_task: str | None = None


TINY_FAMILIES: dict[str, TinyFamily] = {
    "bert": TinyFamily("BERT encoder", ("text-classification", "token-classification", "question-answering",
                                        "fill-mask")),
    "gpt2": TinyFamily("GPT-2 decoder", ("text-generation",), generator_task="text-generation"),
    "t5": TinyFamily("T5 encoder-decoder", ("summarization",), generator_task="summarization"),
    "vit": TinyFamily("ViT image classifier", ("image-classification",)),
    "yolos": TinyFamily("YOLOS detector (ViT backbone, no timm)", ("object-detection",)),
    "vit-gpt2": TinyFamily("VisionEncoderDecoder: ViT encoder + GPT-2 decoder", ("image-to-text",)),
    "stable-diffusion": TinyFamily("Stable Diffusion: UNet + VAE + CLIP text encoder", ("text-to-image",)),
}


def kinds_compatible(input_kind: str, dataset_kind: str) -> bool:
    """Whether a workload consuming `input_kind` can read queries of `dataset_kind` (strings read as strings)."""
    return input_kind == dataset_kind or (input_kind in STRING_KINDS and dataset_kind in STRING_KINDS)
