"""The task catalogue (worker.contract.tasks, read by the scheduler) and the workload registry (run by workers)
describe the same tasks: a sweep file the scheduler accepts is one the workers can run as it was checked."""

from __future__ import annotations

import pytest

from worker.contract.catalog import INPUT_KINDS, TASK_MODEL_CLASSES
from worker.contract.tasks import TASKS, ZERO_SHOT_TASKS, ZeroShotForm
from worker.workloads import WORKLOADS, ZERO_SHOT_WORKLOADS


def described(workload) -> tuple:
    return workload.task, workload.input_kind, dict(workload.default_params)


def test_the_registry_and_the_catalogue_name_the_same_tasks_with_the_same_defaults():
    assert list(WORKLOADS) == list(TASKS) == sorted(TASK_MODEL_CLASSES)
    for task, workload in WORKLOADS.items():
        assert described(workload) == described(TASKS[task])
        assert TASKS[task].input_kind in INPUT_KINDS and "dtype" in TASKS[task].default_params


def test_the_zero_shot_forms_are_the_declared_ones_with_the_same_defaults():
    assert list(ZERO_SHOT_WORKLOADS) == list(ZERO_SHOT_TASKS)
    for task, workload in ZERO_SHOT_WORKLOADS.items():
        assert described(workload) == described(ZERO_SHOT_TASKS[task]) and workload.input_kind == TASKS[task].input_kind
        assert workload.params_problem({"max_new_tokens": 0}) == ZERO_SHOT_TASKS[task].params_problem(
            {"max_new_tokens": 0}) == "max_new_tokens must be a positive whole number, got 0"


def test_a_zero_shot_form_with_a_template_that_cannot_fill_its_queries_is_refused_when_declared():
    with pytest.raises(ValueError, match="question-answering: prompt_template uses {text}"):
        ZeroShotForm("question-answering", "qa", {"prompt_template": "Answer: {text}"})


def test_the_catalogue_imports_nothing_but_the_standard_library_and_the_contract():
    import json
    import subprocess
    import sys

    code = ("import json, sys; before = set(sys.modules); import worker.contract.tasks; "
            "print(json.dumps(sorted(m for m in set(sys.modules) - before "
            "if m.split('.')[0] not in sys.stdlib_module_names)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(result.stdout) == ["worker", "worker.contract", "worker.contract.params", "worker.contract.tasks"]
