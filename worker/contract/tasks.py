"""The task catalogue: what each task is, declared apart from the code that runs it.

A declaration says what a sweep file may ask of a task: its name, the kind of
query it reads, its parameters with their defaults (checked by
worker.contract.params), and, for a task a multi-purpose generative model can
be prompted to do, that zero-shot form's defaults. The scheduler validates and
expands sweep files with this catalogue alone (a scheduler node has no GPU
stack); each module of worker.workloads takes its declaration from here and
adds the code that loads and runs the task. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.contract.params import template_problem

# Every task: cast weights ("float16", "bfloat16"; None = as saved), and the GPUs' power limit in watts for the
# cell (None = as the worker finds it; set through NVML around the job by worker.process.power_limits).
COMMON_PARAMS: dict[str, Any] = {"dtype": None, "power_limit_w": None}


# Decoding of the generation tasks: greedy (do_sample off, whatever the model's generation config says) unless
# `temperature` > 0 asks for sampling; top_p / top_k None = the model's own; `seed` seeds each run's sampling.
DECODING_PARAMS: dict[str, Any] = {"temperature": None, "top_p": None, "top_k": None, "seed": None}


def with_common(**task_params: Any) -> dict[str, Any]:
    """A task's default params: its own settings plus the ones every task accepts."""
    return {**COMMON_PARAMS, **task_params}


@dataclass(frozen=True, eq=False)
class ZeroShotForm:
    """A task done by a multi-purpose model prompted with `prompt_template` (the study's second finding)."""

    task: str
    input_kind: str
    default_params: Mapping[str, Any]

    def __post_init__(self) -> None:
        problem = template_problem(self.default_params["prompt_template"], self.input_kind)
        if problem:
            raise ValueError(f"{self.task}: {problem}")

    def params_problem(self, params: Mapping[str, Any]) -> str | None:
        """What is wrong with sweep params for this form (checked before anything runs), or None."""
        if "prompt_template" in params:
            problem = template_problem(params["prompt_template"], self.input_kind)
            if problem:
                return problem
        for name in ("max_new_tokens", "max_input_words"):
            value = params.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                return f"{name} must be a positive whole number, got {value!r}"
        return None


@dataclass(frozen=True, eq=False)
class TaskDeclaration:
    task: str  # the name sweep files use, e.g. "text-classification"
    input_kind: str  # the kind of query it reads: see worker.contract.catalog.INPUT_KINDS
    default_params: Mapping[str, Any]  # e.g. {"dtype": None, "max_new_tokens": 10}; sweep params override
    zero_shot: ZeroShotForm | None = None
    # Whether its in-process workload can load a model across a group of GPUs (device_map over the group): a
    # sweep giving one of its models `gpus` > 1 is refused at submit, naming the task and the model.
    multi_gpu: bool = True


def _task(task: str, input_kind: str, default_params: dict[str, Any],
          zero_shot: tuple[str, int] | None = None, multi_gpu: bool = True) -> TaskDeclaration:
    """A declaration; `zero_shot` = (prompt template, new tokens) where a multi-purpose model can be prompted."""
    form = None
    if zero_shot is not None:
        template, max_new_tokens = zero_shot
        form = ZeroShotForm(task, input_kind, with_common(prompt_template=template, max_new_tokens=max_new_tokens,
                                                          max_input_words=None, fixed_length=True))
    return TaskDeclaration(task, input_kind, default_params, form, multi_gpu)


_DECLARATIONS = [
    # 256: the speech pipeline's own default; speech of different lengths makes different amounts of text.
    # num_beams None: the pipeline's own (Whisper: 5); AI Energy Score (optimum-benchmark energy_star): 1.
    _task("automatic-speech-recognition", "audio", with_common(max_new_tokens=256, fixed_length=False, num_beams=None,
                                                               **DECODING_PARAMS)),
    _task("fill-mask", "text", with_common(top_k=1)),
    # resize_px: N or [width, height] to resize inputs first (None: as they come).
    _task("image-classification", "image", with_common(resize_px=None)),
    _task("image-to-text", "image", with_common(max_new_tokens=10, measure_prefill=False, resize_px=None,
                                                num_beams=None, **DECODING_PARAMS)),
    _task("object-detection", "image", with_common(resize_px=None)),
    # The study's extractive-QA prompt for multi-purpose models, with 65 new tokens (end-of-sequence disabled).
    _task("question-answering", "qa", with_common(),
          zero_shot=('{question}? Find the answer to the question in the following text: "{context}". Answer:', 65)),
    # reasoning_by: how the level is set (worker.contract.reasoning_switch): the chat template's argument, a
    # system prompt (/think, /no_think), an answer prefix (<think>), or `default` (one mode: nothing switched);
    # max_new_tokens_off: with reasoning off, exactly that many tokens (AI Energy Score: 10), not max_new_tokens.
    _task("reasoning", "prompt", with_common(max_new_tokens=8192, fixed_length=False, reasoning=None,
                                             reasoning_by="template", max_new_tokens_off=None, **DECODING_PARAMS)),
    # sentence-transformers places a model on one device: no device map across a group.
    _task("sentence-similarity", "pair", with_common(), multi_gpu=False),
    # The study's summarization prompt for multi-purpose models, with its summary length of 15 new tokens.
    _task("summarization", "document", with_common(max_new_tokens=10, measure_prefill=False),
          zero_shot=("Summarize the following text: {text}. Summary:", 15)),
    # The study prompted multi-purpose models for sentiment with this question and read 1 new token.
    _task("text-classification", "text", with_common(),
          zero_shot=("what is the binary sentiment of the following sentence? {text}", 1)),
    # chat_template: each prompt as a user message through the model's chat template where it has one (AI
    # Energy Score v2); false: raw text, as the study.
    _task("text-generation", "prompt", with_common(max_new_tokens=10, measure_prefill=False, max_input_words=None,
                                                   chat_template=False, **DECODING_PARAMS)),
    # height/width None: the model's own default size; max_input_words: the study cut prompts to 50 words.
    _task("text-to-image", "prompt", with_common(num_inference_steps=20, guidance_scale=7.5, height=None, width=None,
                                                 max_input_words=None)),
    _task("token-classification", "text", with_common()),
]

TASKS: dict[str, TaskDeclaration] = {declared.task: declared
                                     for declared in sorted(_DECLARATIONS, key=lambda declared: declared.task)}
ZERO_SHOT_TASKS: dict[str, ZeroShotForm] = {task: declared.zero_shot for task, declared in TASKS.items()
                                            if declared.zero_shot is not None}
