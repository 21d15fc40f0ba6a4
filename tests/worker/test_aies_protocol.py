"""AI Energy Score's generation protocol on tiny models: fixed lengths, reasoning switches, chat templates, and
decoding that is greedy unless the sweep samples (then reproducible with a seed). Real weights (random), no mocks:
`generate` is wrapped only to see the tokens it made."""

from __future__ import annotations

import pytest

from worker.contract.reasoning_switch import ReasoningSwitchError, switch_inputs
from worker.data.datasets import load_queries
from worker.workloads import get_workload
from worker.workloads._decoding import chat_prompts, decoding_kwargs

SAMPLED = {"temperature": 0.7, "top_p": 0.9, "top_k": 50}  # the v2 harness (ai_energy_benchmarks backends/pytorch.py)


def recorded(model):
    """Wrap `model.generate` so that each call's inputs and outputs are kept (it still does the real work)."""
    calls, real = [], model.generate

    def generate(*args, **kwargs):
        output = real(*args, **kwargs)
        calls.append((kwargs.get("input_ids"), output))
        return output

    model.generate = generate
    return calls


def new_tokens(calls):
    return [output[:, inputs.shape[1]:].tolist() for inputs, output in calls]


def test_reasoning_off_generates_exactly_ten_tokens():
    workload = get_workload("reasoning")
    params = {"reasoning": "off", "max_new_tokens": 64, "max_new_tokens_off": 10}
    loaded = workload.load("tiny:gpt2", "cpu", params)
    units = workload.run(loaded, load_queries("builtin:prompts", 3), 1, params)
    assert units.output_tokens == 30 and units.output_lengths == (10, 10, 10) and units.flags == ()
    assert loaded.wattsweep_provenance["decoding"].items() >= {"max_new_tokens": 10, "fixed_length": True,
                                                               "do_sample": False}.items()


def test_reasoning_on_is_not_held_to_the_off_length():
    workload = get_workload("reasoning")
    params = {"reasoning": "on", "max_new_tokens": 12, "max_new_tokens_off": 10}
    loaded = workload.load("tiny:gpt2", "cpu", params)
    assert loaded.wattsweep_provenance["decoding"]["max_new_tokens"] == 12
    assert loaded.wattsweep_provenance["decoding"]["fixed_length"] is False


def test_reasoning_switched_by_system_prompt_or_answer_prefix():
    from worker.models.loading import load_for_task

    tokenizer = load_for_task("tiny:gpt2", "reasoning", "cpu", None).tokenizer
    off = switch_inputs(tokenizer.chat_template, "off", "system", "m")
    [text] = chat_prompts(tokenizer, ["Why?"], system=off["system"], answer_prefix=off["answer_prefix"])
    assert text.startswith("system: /no_think\nuser: Why?\n")
    on = switch_inputs(None, "on", "prefix", "m")  # DeepSeek-R1: the answer starts with <think>
    [text] = chat_prompts(tokenizer, ["Why?"], answer_prefix=on["answer_prefix"])
    assert text.endswith("<think>\n")
    with pytest.raises(ReasoningSwitchError, match="on or off, not high"):
        switch_inputs(None, "high", "system", "m")


def test_greedy_by_default_even_where_the_model_turns_sampling_on():
    workload = get_workload("text-generation")
    pipeline = workload.load("tiny:gpt2", "cpu", {})
    config = pipeline.model.generation_config
    config.do_sample, config.top_k, config.top_p = True, 64, 0.95  # as Gemma 3's generation config does
    calls = recorded(pipeline.model)
    import torch

    for seed in (1, 2):
        torch.manual_seed(seed)
        workload.run(pipeline, load_queries("builtin:prompts", 1), 1, {"max_new_tokens": 8})
    first, second = new_tokens(calls)
    assert first == second
    assert decoding_kwargs({}) == {"do_sample": False}


def test_sampled_decoding_repeats_with_a_seed():
    workload = get_workload("text-generation")
    pipeline = workload.load("tiny:gpt2", "cpu", SAMPLED | {"seed": 7})
    calls = recorded(pipeline.model)
    queries = load_queries("builtin:prompts", 2)
    for seed in (7, 7, 8):
        workload.run(pipeline, queries, 1, SAMPLED | {"seed": seed, "max_new_tokens": 16})
    runs = new_tokens(calls)
    assert runs[0:2] == runs[2:4]  # same seed, same tokens
    assert runs[0:2] != runs[4:6]  # another seed samples otherwise
    assert pipeline.wattsweep_provenance["decoding"] == {"do_sample": True, "num_beams": 1, "temperature": 0.7,
                                                         "top_p": 0.9, "top_k": 50, "seed": 7,
                                                         "chat_template": False}


@pytest.mark.parametrize(("model", "rendered"), [
    ("tiny:ministral3", "[user] Tell me a story\n[assistant]"),  # its chat template, no second BOS
    ("tiny:gpt2", "Tell me a story"),  # GPT-2 has no template: raw text, as AI Energy Score's harness sends it
])
def test_chat_template_is_applied_where_the_model_has_one(model, rendered):
    workload = get_workload("text-generation")
    params = {"chat_template": True, "max_new_tokens": 10}
    pipeline = workload.load(model, "cpu", params)
    calls = recorded(pipeline.model)
    units = workload.run(pipeline, ["Tell me a story"], 1, params)
    assert units.output_tokens == 10 and units.flags == ()
    tokenizer = pipeline.tokenizer
    special = rendered == "Tell me a story"  # raw text gets the tokenizer's special tokens, a chat its template's
    assert calls[0][0][0].tolist() == tokenizer(rendered, add_special_tokens=special)["input_ids"]
    assert pipeline.wattsweep_provenance["decoding"]["chat_template"] is (not special)


@pytest.mark.parametrize(("task", "model", "dataset"), [
    ("automatic-speech-recognition", "tiny:whisper", "builtin:speech"),
    ("image-to-text", "tiny:vit-gpt2", "builtin:shapes"),
])
def test_speech_and_captions_generate_exactly_their_fixed_length(task, model, dataset):
    """optimum-benchmark's energy_star runs both as text generation: greedy, one beam, a fixed length."""
    workload = get_workload(task)
    params = {"max_new_tokens": 12, "num_beams": 1} | ({"fixed_length": True} if "speech" in task else {})
    loaded = workload.load(model, "cpu", params)
    units = workload.run(loaded, load_queries(dataset, 2), 1, params)
    assert units.output_tokens == 24 and units.flags == ()
    assert loaded.wattsweep_provenance["decoding"].items() >= {"do_sample": False, "num_beams": 1,
                                                               "max_new_tokens": 12}.items()
