"""Zero-shot workloads: tiny seq2seq (T5) and causal (GPT-2) models prompted for the study's three tasks."""

from __future__ import annotations

import pytest

from worker.contract.params import template_problem
from worker.data.datasets import load_queries
from worker.workloads import WORKLOADS, ZERO_SHOT_WORKLOADS, get_workload
from worker.workloads._zero_shot import render

DATASETS = {"text-classification": "builtin:reviews", "question-answering": "builtin:squad-like",
            "summarization": "builtin:news"}


def test_the_study_tasks_have_zero_shot_workloads_with_its_defaults():
    assert set(ZERO_SHOT_WORKLOADS) == set(DATASETS)
    defaults = {task: (w.default_params["prompt_template"], w.default_params["max_new_tokens"])
                for task, w in ZERO_SHOT_WORKLOADS.items()}
    assert defaults["text-classification"] == ("what is the binary sentiment of the following sentence? {text}", 1)
    assert defaults["summarization"] == ("Summarize the following text: {text}. Summary:", 15)
    assert defaults["question-answering"][1] == 65
    for task, workload in ZERO_SHOT_WORKLOADS.items():
        assert workload.input_kind == WORKLOADS[task].input_kind  # the same datasets serve both kinds of model
    with pytest.raises(KeyError, match="'fill-mask' has no zero-shot workload; tasks that do: question-answering"):
        get_workload("fill-mask", multi_purpose=True)


@pytest.mark.parametrize("model", ["tiny:t5", "tiny:gpt2"])
@pytest.mark.parametrize("task", sorted(DATASETS))
def test_tiny_generators_do_each_task_with_a_fixed_number_of_new_tokens(task, model):
    workload = get_workload(task, multi_purpose=True)
    params = {"max_new_tokens": 3}
    pipeline = workload.load(model, "cpu", params)
    units = workload.run(pipeline, load_queries(DATASETS[task], 3, workload.input_kind), 2, params)
    assert (units.queries, units.output_tokens) == (3, 3 * 3)
    assert units.resolved().input_tokens > 3 * 5  # the template's words count too
    assert pipeline.wattsweep_provenance["dtype"] == "float32"


def test_prompts_fill_the_template_and_cut_long_inputs():
    qa = {"question": "When was Avalon founded", "context": "Avalon was founded in 1200 by farmers."}
    assert render('{question}? In "{context}":', qa, max_words=3) == 'When was Avalon founded? In "Avalon was founded":'
    assert render("Summarize: {text}. Summary:", "one two three four", max_words=2) == "Summarize: one two. Summary:"


@pytest.mark.parametrize(
    ("template", "kind", "problem"),
    [
        ("Sentiment of {text}?", "text", None),
        ("Q: {question} C: {context}", "qa", None),
        ("Sentiment of {sentence}?", "text", "uses {sentence}; it may use {text}"),
        ("No placeholder", "document", "must contain {text}"),
        ("Q: {question", "qa", "not a format string"),
        ("", "text", "non-empty string"),
    ],
)
def test_templates_are_checked_against_the_fields_of_the_input_kind(template, kind, problem):
    found = template_problem(template, kind)
    assert (found is None) if problem is None else (problem in found)


def test_without_fixed_length_a_model_may_stop_early_and_the_count_stays_true():
    workload = get_workload("text-classification", multi_purpose=True)
    params = {"max_new_tokens": 4, "fixed_length": False}
    pipeline = workload.load("tiny:gpt2", "cpu", params)
    units = workload.run(pipeline, load_queries("builtin:texts", 2), 1, params)
    assert 2 <= units.output_tokens <= 2 * 4
