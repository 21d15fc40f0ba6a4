"""Every registered task runs end to end on its tiny model: real pipelines, real weights (random), no mocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.contract.catalog import BUILTIN_DATASETS, INPUT_KINDS, TINY_FAMILIES
from worker.data.datasets import load_queries
from worker.workloads import WORKLOADS, get_workload

REPO_ROOT = Path(__file__).resolve().parents[2]
STUDY_TASKS = {
    "text-classification", "token-classification", "question-answering", "fill-mask", "text-generation",
    "summarization", "image-classification", "object-detection", "image-to-text", "text-to-image",
}
AIES_TASKS = {"automatic-speech-recognition", "sentence-similarity", "reasoning"}  # AI Energy Score's other three
ALL_TASKS = STUDY_TASKS | AIES_TASKS
FAST = {"text-to-image": {"num_inference_steps": 2}, "reasoning": {"max_new_tokens": 6},
        "automatic-speech-recognition": {"max_new_tokens": 4}}  # keep the suite quick; the work is still real


def family_for(task: str) -> str:
    return next(name for name, family in TINY_FAMILIES.items() if task in family.tasks)


def dataset_for(kind: str) -> str:
    return "builtin:" + next(name for name, dataset_kind in BUILTIN_DATASETS.items() if dataset_kind == kind)


def test_registry_holds_the_ten_study_tasks_and_ai_energy_scores_three():
    assert set(WORKLOADS) == ALL_TASKS
    for task, workload in WORKLOADS.items():
        assert workload.task == task
        assert workload.input_kind in INPUT_KINDS
        assert "dtype" in workload.default_params


def test_every_task_has_a_tiny_family_and_every_family_task_is_registered():
    covered = {task for family in TINY_FAMILIES.values() for task in family.tasks}
    assert covered == ALL_TASKS


def test_unknown_task_names_the_allowed_ones():
    with pytest.raises(KeyError, match="text-classification"):
        get_workload("translation")


def test_registry_tiny_and_datasets_import_without_torch():
    code = ("import sys, worker.workloads, worker.models.tiny, worker.data.datasets, worker.models.loading; "
            "heavy = [m for m in ('torch', 'transformers', 'diffusers') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


@pytest.mark.parametrize("task", sorted(ALL_TASKS))
def test_tiny_model_runs_two_queries(task):
    workload = get_workload(task)
    params = FAST.get(task, {})
    pipeline = workload.load(f"tiny:{family_for(task)}", "cpu", params)
    units = workload.run(pipeline, load_queries(dataset_for(workload.input_kind), 2), 2, params)

    assert units.queries == 2
    settings = {**workload.default_params, **params}
    if settings.get("fixed_length") is False:  # the model stops when it is done, by max_new_tokens at the latest
        assert 2 <= units.output_tokens <= 2 * settings["max_new_tokens"]
    elif "max_new_tokens" in workload.default_params:
        assert units.output_tokens == 2 * workload.default_params["max_new_tokens"]
    else:
        assert units.output_tokens is None
    if workload.input_kind == "image" or task == "text-to-image":
        assert units.images == 2
    if workload.input_kind == "audio":
        assert units.audio_s == pytest.approx(sum(len(q["array"]) / 16_000 for q in load_queries("builtin:speech", 2)))
    elif workload.input_kind != "image":
        assert units.resolved().input_tokens > 0
    assert units.timing is not None and units.timing.batch_queries == (2,) and units.timing.batch_s[0] > 0


def test_generation_emits_exactly_max_new_tokens_even_with_random_weights():
    """min_new_tokens = max_new_tokens: the real output is as long as the count says, EOS or not."""
    from worker.workloads._shared import fixed_length_generation

    workload = get_workload("text-generation")
    pipeline = workload.load("tiny:gpt2", "cpu", {})
    prompt = load_queries("builtin:prompts", 1)[0]
    generate, counter = fixed_length_generation(pipeline, {"max_new_tokens": 7})
    [[output]] = pipeline([prompt], return_tensors=True, **generate)
    assert len(output["generated_token_ids"]) == len(pipeline.tokenizer(prompt)["input_ids"]) + 7
    assert counter.tokens == 7

    units = workload.run(pipeline, load_queries("builtin:prompts", 3), 2, {"max_new_tokens": 4})
    assert units.output_tokens == 3 * 4


def test_summarization_counts_emitted_tokens_not_beams():
    """The summarization pipeline searches 4 beams by default; tokens emitted are still queries x length."""
    workload = get_workload("summarization")
    pipeline = workload.load("tiny:t5", "cpu", {})
    assert pipeline.generation_config.num_beams > 1
    units = workload.run(pipeline, load_queries("builtin:reports", 3), 2, {"max_new_tokens": 5})
    assert units.output_tokens == 3 * 5


def test_unknown_parameter_is_an_error_not_ignored():
    workload = get_workload("fill-mask")
    pipeline = workload.load("tiny:bert", "cpu", {})
    with pytest.raises(ValueError, match="max_new_token.*allowed are dtype, power_limit_w, top_k"):
        workload.run(pipeline, load_queries("builtin:texts", 1), 1, {"max_new_token": 3})


@pytest.fixture(scope="module")
def fill_mask_pipeline():
    return get_workload("fill-mask").load("tiny:bert", "cpu", {})


def test_fill_mask_keeps_its_mask_inside_what_a_long_document_keeps(fill_mask_pipeline):
    """A document several times the model's 512-token limit (like the study's C4 and OSCAR ones): masking the
    middle of the whole text, then truncating, cut the mask off and the pipeline failed."""
    from worker.workloads.fill_mask import mask_inside, token_limit

    workload, pipeline = get_workload("fill-mask"), fill_mask_pipeline
    tokenizer, limit = pipeline.tokenizer, token_limit(pipeline)
    assert limit == 512
    long_document = " ".join(load_queries("builtin:news", 40))
    assert len(tokenizer(long_document)["input_ids"]) > 3 * limit
    masked = mask_inside(long_document, tokenizer, limit)
    ids = tokenizer(masked)["input_ids"]
    assert tokenizer.mask_token_id in ids and len(ids) <= limit
    assert len(ids) > limit - 40  # cut to what fits, not much shorter
    short = load_queries("builtin:texts", 1)[0]
    assert mask_inside(short, tokenizer, limit).split() == [*short.split()[:len(short.split()) // 2], "[MASK]",
                                                           *short.split()[len(short.split()) // 2 + 1:]]

    units = workload.run(pipeline, [long_document, short, long_document], 2, {})  # failed before
    assert units.queries == 3 and 2 * limit < units.resolved().input_tokens <= 3 * limit


def test_fixed_length_generation_expects_queries_x_max_new_tokens_and_flags_a_mismatch():
    from worker.workloads.base import WorkDone

    workload = get_workload("text-generation")
    pipeline = workload.load("tiny:gpt2", "cpu", {})
    units = workload.run(pipeline, load_queries("builtin:prompts", 3), 2, {"max_new_tokens": 4})
    assert units.expected_output_tokens == units.output_tokens == 12 and units.flags == ()
    short = WorkDone(3, output_tokens=11, expected_output_tokens=12)
    assert short.flags == ("length-mismatch",)
    assert (WorkDone(0) + short + WorkDone(1, output_tokens=4, expected_output_tokens=4)).flags == \
        ("length-mismatch",)
    assert WorkDone(2, output_tokens=5).flags == ()  # lengths may vary (reasoning, speech): nothing expected
    speech = get_workload("automatic-speech-recognition")
    units = speech.run(speech.load("tiny:whisper", "cpu", {}), load_queries("builtin:speech", 1), 1,
                       {"max_new_tokens": 4})
    assert units.expected_output_tokens is None and units.flags == ()


def test_fill_mask_cuts_where_the_tokenizer_truncates_with_or_without_offsets(fill_mask_pipeline):
    """Fast tokenizers say where truncation cuts in one pass (offsets); slow ones are searched by halves: the same
    words are kept, the most that fit."""
    from worker.workloads.fill_mask import kept_words

    tokenizer = fill_mask_pipeline.tokenizer

    class Slow:  # the same tokenizer, seen without offsets
        is_fast = False

        def __call__(self, *args, **kwargs):
            return tokenizer(*args, **kwargs)

    words = " ".join(load_queries("builtin:news", 12)).split()
    for n_words in (5, 40, 200, len(words)):
        text = " ".join(words[:n_words])
        for limit in (16, 64, 512):
            kept = kept_words(text, tokenizer, limit)
            assert kept == kept_words(text, Slow(), limit)
            assert len(tokenizer(" ".join(kept))["input_ids"]) <= limit
            if len(kept) < n_words:  # one word more would not fit
                assert len(tokenizer(" ".join(words[:len(kept) + 1]))["input_ids"]) > limit


def test_latency_percentiles_are_numpys_linear_quantiles_and_none_without_values():
    from worker.workloads.base import percentile

    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([4, 1, 3, 2], 0.5) == 2.5  # unsorted in, ints in: a float out
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85, rel=1e-12)
    assert isinstance(percentile([1, 2], 0.5), float)  # a plain float, as the database drivers expect
