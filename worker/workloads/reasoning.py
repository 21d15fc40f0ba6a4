"""reasoning: chat generation that stops when the model is done, with reasoning switched on, off or to a level.

AI Energy Score v2 measures reasoning models with up to 8,192 new tokens and
compares reasoning on and off (its reported energy differs ~100x for one model).
Each prompt is a user message put through the model's chat template; `reasoning`
(on / off / low / medium / high) sets the template's switch (`enable_thinking`,
`reasoning_effort`, ...: worker.contract.reasoning_switch), and a model without one is an
error naming it. Output length is the model's (`fixed_length: false`), so the
headline figures are energy per query and per generated token, and each run
stores the distribution of output lengths: generated tokens up to and including
the first end-of-sequence token of each query. Decoding is greedy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.contract.tasks import TASKS
from worker.errors import ModelLoadError
from worker.workloads._shared import TokenCounter, merged, quiet
from worker.workloads.base import WorkDone

DECLARED = TASKS["reasoning"]  # name, input kind, default params: worker.contract.tasks


class Reasoning:
    task, input_kind, default_params = DECLARED.task, DECLARED.input_kind, DECLARED.default_params

    def load(self, model: str, device: str, params: Mapping[str, Any]) -> Any:
        from worker.contract.reasoning_switch import ReasoningSwitchError, template_kwargs
        from worker.models.loading import load_for_task

        settings = merged(self.task, self.default_params, params)
        with quiet():
            loaded = load_for_task(model, self.task, device, settings["dtype"])
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ModelLoadError(f"{model} has no chat template, so it cannot be run as a chat (reasoning) model")
        try:
            loaded.chat_kwargs = template_kwargs(tokenizer.chat_template, settings["reasoning"], model)
        except ReasoningSwitchError as error:
            raise ModelLoadError(str(error)) from error
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # batched prompts end together
        loaded.model.eval()
        loaded.device = device
        loaded.wattsweep_provenance = loaded.provenance
        return loaded

    def run(self, loaded: Any, queries: list[str], batch_size: int, params: Mapping[str, Any]) -> WorkDone:
        from worker.workloads._shared import run_batches

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        settings = merged(self.task, self.default_params, params)
        with quiet():
            return run_batches(lambda batch: self._batch(loaded, batch, settings), list(queries), batch_size)

    def _batch(self, loaded: Any, prompts: list[str], settings: dict[str, Any]) -> WorkDone:
        import torch

        tokenizer, model = loaded.tokenizer, loaded.model
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                               add_generation_prompt=True, **loaded.chat_kwargs) for prompt in prompts]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
        length = int(settings["max_new_tokens"])
        counter = TokenCounter()
        extra = {"min_new_tokens": length} if settings["fixed_length"] else {}
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=length, do_sample=False, num_beams=1,
                                    pad_token_id=tokenizer.pad_token_id, logits_processor=[counter], **extra)
        generated = output[:, inputs["input_ids"].shape[1]:].tolist()  # to the host: the batch is complete
        lengths = tuple(_until_end(row, model.generation_config.eos_token_id) for row in generated)
        return WorkDone(len(prompts), input_tokens=int(inputs["attention_mask"].sum()), output_tokens=sum(lengths),
                         output_lengths=lengths, expected_output_tokens=len(prompts) * length if extra else None)


def _until_end(tokens: list[int], eos: int | list[int] | None) -> int:
    """Tokens generated up to and including the first end-of-sequence token (later ones are batch padding)."""
    ends = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    for index, token in enumerate(tokens):
        if token in ends:
            return index + 1
    return len(tokens)


WORKLOAD = Reasoning()
