"""reasoning: chat generation that stops when the model is done, with reasoning switched on, off or to a level.

AI Energy Score v2 measures reasoning models with up to 8,192 new tokens and
compares reasoning on and off (its reported energy differs ~100x for one model).
Each prompt is a user message put through the model's chat template; `reasoning`
(on / off / low / medium / high) sets the template's switch (`enable_thinking`,
`reasoning_effort`, ...: worker.contract.reasoning_switch), and a model without one is an
error naming it. Output length is the model's (`fixed_length: false`), so the
headline figures are energy per query and per generated token, and each run
stores the distribution of output lengths: generated tokens up to and including
the first end-of-sequence token of each query. `reasoning_by: system | prefix`
switches by a system prompt or an answer prefix instead of the template's
argument; `max_new_tokens_off` makes reasoning off exactly that many tokens (AI
Energy Score's `get_token_parameters`: 10). Decoding: worker.workloads._decoding
(greedy unless the sweep samples); what was used is stored with the job.
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
        from worker.contract.reasoning_switch import ReasoningSwitchError, switch_inputs
        from worker.models.loading import load_for_task
        from worker.workloads._decoding import record_decoding

        settings = merged(self.task, self.default_params, params)
        with quiet():
            loaded = load_for_task(model, self.task, device, settings["dtype"])
        tokenizer = loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ModelLoadError(f"{model} has no chat template, so it cannot be run as a chat (reasoning) model")
        try:
            loaded.switch = switch_inputs(tokenizer.chat_template, settings["reasoning"], settings["reasoning_by"],
                                          model)
        except ReasoningSwitchError as error:
            raise ModelLoadError(str(error)) from error
        loaded.wattsweep_provenance = loaded.provenance
        length, fixed = _length(settings)
        record_decoding(loaded, loaded.model.generation_config, settings, chat_template=True, max_new_tokens=length,
                        fixed_length=fixed, reasoning_by=settings["reasoning_by"])
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"  # batched prompts end together
        loaded.model.eval()
        loaded.device = device
        return loaded

    def run(self, loaded: Any, queries: list[str], batch_size: int, params: Mapping[str, Any]) -> WorkDone:
        from worker.workloads._shared import run_batches

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        from worker.workloads._decoding import seed_run

        settings = merged(self.task, self.default_params, params)
        seed_run(settings)  # sampled decoding repeats run after run
        with quiet():
            return run_batches(lambda batch: self._batch(loaded, batch, settings), list(queries), batch_size)

    def _batch(self, loaded: Any, prompts: list[str], settings: dict[str, Any]) -> WorkDone:
        import torch

        tokenizer, model = loaded.tokenizer, loaded.model
        from worker.workloads._decoding import chat_prompts, decoding_kwargs

        switch = loaded.switch
        texts = chat_prompts(tokenizer, prompts, system=switch["system"], answer_prefix=switch["answer_prefix"],
                             **switch["template_kwargs"])
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
        length, fixed = _length(settings)
        counter = TokenCounter()
        extra = {"min_new_tokens": length} if fixed else {}
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=length, num_beams=1, **decoding_kwargs(settings),
                                    pad_token_id=tokenizer.pad_token_id, logits_processor=[counter], **extra)
        generated = output[:, inputs["input_ids"].shape[1]:].tolist()  # to the host: the batch is complete
        lengths = tuple(_until_end(row, model.generation_config.eos_token_id) for row in generated)
        return WorkDone(len(prompts), input_tokens=int(inputs["attention_mask"].sum()), output_tokens=sum(lengths),
                         output_lengths=lengths, expected_output_tokens=len(prompts) * length if extra else None)


def _length(settings: Mapping[str, Any]) -> tuple[int, bool]:
    """(new tokens, fixed?): reasoning off with `max_new_tokens_off` is exactly that many (AI Energy Score's
    reasoning_helpers.get_token_parameters: min = max = 10); else up to max_new_tokens, fixed if fixed_length."""
    if settings["reasoning"] == "off" and settings["max_new_tokens_off"] is not None:
        return int(settings["max_new_tokens_off"]), True
    return int(settings["max_new_tokens"]), bool(settings["fixed_length"])


def _until_end(tokens: list[int], eos: int | list[int] | None) -> int:
    """Tokens generated up to and including the first end-of-sequence token (later ones are batch padding)."""
    ends = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    for index, token in enumerate(tokens):
        if token in ends:
            return index + 1
    return len(tokens)


WORKLOAD = Reasoning()
