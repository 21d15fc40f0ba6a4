"""Light catalogues: task names, tiny model families, builtin dataset names and kinds.

Tables and pure functions only, no heavy imports: the scheduler reads them to
validate sweep files (a scheduler node has no GPU stack), and the loaders
(worker.contract.refs, worker.models.tiny, worker.data.datasets, worker.models.loading) sit above them.
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
    "automatic-speech-recognition": "AutoModelForSpeechSeq2Seq",
    "sentence-similarity": "sentence-transformers",  # loaded with the sentence-transformers library
    "reasoning": "AutoModelForCausalLM",
}

INPUT_KINDS = ("text", "qa", "document", "prompt", "image", "audio", "pair")
"""text: a sentence or review (str); qa: {"question", "context"} dict; document: a longer
text to summarise (str); prompt: a generation or image prompt (str); image: a PIL image;
audio: {"array": float32 mono samples, "sampling_rate": Hz} dict (as `datasets` decodes audio);
pair: {"sentence1", "sentence2"} dict (sentence similarity)."""

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
    "speech": "audio",
    "sentence-pairs": "pair",
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
    "gpt2": TinyFamily("GPT-2 decoder (with a chat template for reasoning)", ("text-generation", "reasoning"),
                       generator_task="text-generation"),
    # hidden 256 and 4 heads: vLLM's CPU attention rejects a head size of 16 (the engine tests serve this one)
    "llama": TinyFamily("Llama decoder (head size 64, as engines need)", ("text-generation",)),
    "t5": TinyFamily("T5 encoder-decoder", ("summarization",), generator_task="summarization"),
    # An architecture only transformers 5 has (transformers 4.57 cannot load it): this year's models run.
    "ministral3": TinyFamily("Ministral 3 decoder (transformers 5 only)", ("text-generation",),
                             generator_task="text-generation"),
    "vit": TinyFamily("ViT image classifier", ("image-classification",)),
    "yolos": TinyFamily("YOLOS detector (ViT backbone, no timm)", ("object-detection",)),
    "vit-gpt2": TinyFamily("VisionEncoderDecoder: ViT encoder + GPT-2 decoder", ("image-to-text",)),
    "stable-diffusion": TinyFamily("Stable Diffusion: UNet + VAE + CLIP text encoder", ("text-to-image",)),
    "whisper": TinyFamily("Whisper encoder-decoder with its feature extractor", ("automatic-speech-recognition",)),
    "sentence-bert": TinyFamily("sentence-transformers: BERT encoder + mean pooling", ("sentence-similarity",)),
}

# Chat templates of tiny families that have one (built by worker.models.tiny; read by
# worker.contract.reasoning_switch). The gpt2 one reads both reasoning switches, so tests can set every level, like
# a real template it ends the prompt differently for each.
TINY_CHAT_TEMPLATES: dict[str, str] = {
    # An instruct model's plain template (Ministral 3 ships one), for text generation's `chat_template: true`.
    "ministral3": ("{%- for message in messages %}[{{ message['role'] }}] {{ message['content'] }}\n{% endfor -%}"
                   "{%- if add_generation_prompt %}[assistant]{% endif -%}"),
    "gpt2": ("{%- for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor -%}"
             "{%- if add_generation_prompt %}assistant"
             "{%- if enable_thinking is defined and not enable_thinking %} answers{% else %} thinks{% endif -%}"
             "{%- if reasoning_effort is defined %} with {{ reasoning_effort }} effort{% endif %}:{% endif -%}"),
}

# Sweep axes: settings a sweep file may give as a list. Each combination is its own job (cell), its value
# stored in its own `jobs` column (name here -> column) so that SQL can group by it. `batch_size` is a run
# setting (defaults or a task); the others are task params, and apply to the tasks whose params have them.
SWEEP_AXES: dict[str, str] = {
    "batch_size": "batch_size", "dtype": "dtype", "max_new_tokens": "max_new_tokens",
    "num_inference_steps": "num_inference_steps", "height": "height_px", "width": "width_px",
    "reasoning": "reasoning", "temperature": "temperature", "chat_template": "chat_template",
    "concurrency": "concurrency", "request_rate": "request_rate",  # served tasks' load (worker.contract.engines)
    "power_limit_w": "power_limit_w",  # every task: the GPUs' power limit for the cell (worker.measure.power_limit)
}
PARAM_AXES = tuple(name for name in SWEEP_AXES if name != "batch_size")
DTYPES = ("float32", "float16", "bfloat16")
REASONING_LEVELS = ("on", "off", "low", "medium", "high")


def axis_problem(name: str, value: object) -> str | None:
    """Why `value` cannot be a value of axis `name` (one line naming the allowed values), or None."""
    if name == "dtype":
        return None if value is None or value in DTYPES else f"{value!r} is not a dtype; use {', '.join(DTYPES)}"
    if name == "reasoning":
        return None if value in REASONING_LEVELS else \
            f"{value!r} is not a reasoning level; use {', '.join(REASONING_LEVELS)}"
    if name == "temperature":  # 0 or null: greedy
        ok = value is None or (not isinstance(value, bool) and isinstance(value, int | float) and 0 <= value <= 100)
        return None if ok else f"temperature must be a number from 0 (greedy) to 100, got {value!r}"
    if name == "chat_template":
        return None if isinstance(value, bool) else f"chat_template must be true or false, got {value!r}"
    if name in ("height", "width") and value is None:
        return None  # the model's own default size
    if name == "power_limit_w":  # null: the GPUs' limit as the worker finds it
        ok = value is None or (not isinstance(value, bool) and isinstance(value, int | float) and 1 <= value <= 10_000)
        return None if ok else f"power_limit_w must be a number of watts from 1 to 10000 (or null), got {value!r}"
    if name == "request_rate":
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            return f"request_rate must be a positive number of requests per second, got {value!r}"
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{name} must be a positive whole number, got {value!r}"
    return None


def kinds_compatible(input_kind: str, dataset_kind: str) -> bool:
    """Whether a workload consuming `input_kind` can read queries of `dataset_kind` (strings read as strings)."""
    return input_kind == dataset_kind or (input_kind in STRING_KINDS and dataset_kind in STRING_KINDS)
