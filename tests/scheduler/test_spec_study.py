"""Sweep-file fields for the study: zero-shot models, per-model dtype, training energy, hf: datasets."""

from __future__ import annotations

import copy

import pytest

from scheduler.plan.expand import MULTI_PURPOSE, TASK_SPECIFIC, expand
from scheduler.spec.reading import SpecError, parse_sweep

SWEEP = {
    "name": "study",
    "defaults": {"queries": 5, "repetitions": 2},
    "carbon": {"grid_intensity_g_per_kwh": 297.6},
    "model_dtype": {"hub:google/flan-t5-xl": "bfloat16"},
    "training_energy_kwh": {"hub:bigscience/bloomz-560m": 10505},
    "tasks": {
        "text-classification": {
            "models": ["hub:distilbert-base-uncased-finetuned-sst-2-english"],
            "datasets": ["hf:imdb:test", "hf:sst2:test:sentence"],
            "zero_shot": {"models": ["hub:google/flan-t5-xl", "hub:bigscience/bloomz-560m"],
                          "params": {"max_new_tokens": 2}},
        },
        "summarization": {"datasets": ["builtin:news"], "zero_shot": {"models": ["tiny:gpt2", "tiny:t5"]}},
    },
}


def changed(path: str, value) -> dict:
    data = copy.deepcopy(SWEEP)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def test_zero_shot_models_become_multi_purpose_jobs_with_their_own_params():
    spec = parse_sweep(SWEEP)
    jobs = {(job.task, job.model): job for job in expand(spec)}
    assert len(jobs) == 5
    specific = jobs[("text-classification", "hub:distilbert-base-uncased-finetuned-sst-2-english")]
    assert (specific.model_kind, specific.params) == (TASK_SPECIFIC, {})
    flan = jobs[("text-classification", "hub:google/flan-t5-xl")]
    assert (flan.model_kind, flan.params) == (MULTI_PURPOSE, {
        "prompt_template": "what is the binary sentiment of the following sentence? {text}", "max_new_tokens": 2,
        "fixed_length": True, "dtype": "bfloat16"})  # the template in force is stored with the job
    assert len(flan.runs) == 2 * 2  # the task's datasets and repetitions
    assert jobs[("summarization", "tiny:t5")].model_kind == MULTI_PURPOSE  # a task may have zero-shot models only
    assert spec.training_energy_kwh == {"hub:bigscience/bloomz-560m": 10505}
    assert parse_sweep(spec.model_dump(mode="json")) == spec  # what the database stores reads back the same


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("tasks.fill-mask", {"datasets": ["builtin:texts"], "zero_shot": {"models": ["tiny:gpt2"]}},
         "tasks.fill-mask.zero_shot: fill-mask has no zero-shot workload; tasks that do: question-answering, "
         "summarization, text-classification"),
        ("tasks.summarization.zero_shot", {"models": ["tiny:bert"]},
         "tasks.summarization.zero_shot.models.0: tiny:bert does not generate text, so it cannot be prompted; "
         "use tiny:gpt2, tiny:ministral3, tiny:t5"),
        ("tasks.summarization.zero_shot", {"models": ["tiny:gpt2"], "params": {"prompt": "x"}},
         "tasks.summarization.zero_shot.params: unknown parameter 'prompt'; allowed are dtype, fixed_length, "
         "max_input_words, max_new_tokens, power_limit_w, prompt_template"),
        ("tasks.summarization.zero_shot", {"models": ["tiny:gpt2"], "params": {"prompt_template": "Sum {txt}"}},
         "tasks.summarization.zero_shot.params: prompt_template uses {txt}; it may use {text}"),
        ("tasks.summarization.zero_shot", {"models": ["tiny:gpt2"], "params": {"max_new_tokens": 0}},
         "zero_shot.params.max_new_tokens: max_new_tokens must be a positive whole number, got 0"),
        ("tasks.summarization", {"models": ["tiny:t5"], "datasets": ["builtin:news"],
                                 "zero_shot": {"models": ["tiny:t5"]}},
         "tasks.summarization.zero_shot.models.0: tiny:t5 is also a task-specific model of summarization"),
        ("tasks.summarization", {"datasets": ["builtin:news"]},
         "tasks.summarization.models: list at least one model (or zero_shot.models)"),
        ("tasks.text-classification.models", ["tiny:gpt2"],
         "tiny:gpt2 does not do text-classification; use tiny:bert; or prompt it zero-shot under "
         "tasks.text-classification.zero_shot.models"),
        ("training_energy_kwh", {"hub:bigscience/bloomz-7b1": 51686},
         "training_energy_kwh: 'hub:bigscience/bloomz-7b1' is not a model of this sweep"),
        ("training_energy_kwh", {"hub:bigscience/bloomz-560m": -1}, "training_energy_kwh.hub:bigscience/bloomz-560m"),
        ("model_dtype", {"hub:google/flan-t5-xl": "float8"}, "model_dtype.hub:google/flan-t5-xl"),
        ("tasks.summarization.datasets", ["hf:cnn_dailymail/3.0.0"], "malformed hf dataset"),
    ],
)
def test_bad_study_fields_name_the_field_and_the_fix(path, value, message):
    with pytest.raises(SpecError) as error:
        parse_sweep(changed(path, value))
    assert message in str(error.value)
