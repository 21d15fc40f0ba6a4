"""The Power Hungry Processing presets: checked against the study's published matrix and protocol.

`data/power-hungry-processing-matrix.tsv` is a copy of
../shared/reference/power-hungry-processing-matrix.tsv (every task, dataset and
model the study published measurements for), kept here so that the check runs
anywhere; where the shared reference is present, the copy must equal it.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from scheduler.plan.expand import MULTI_PURPOSE, expand
from scheduler.spec.reading import load_sweep
from worker.contract.refs import parse_dataset_ref, parse_hf_dataset, parse_model_ref
from worker.workloads import ZERO_SHOT_WORKLOADS

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESET = REPO_ROOT / "presets" / "power-hungry-processing.yaml"
SMOKE = REPO_ROOT / "presets" / "power-hungry-processing-smoke.yaml"
MATRIX = Path(__file__).parent / "data" / "power-hungry-processing-matrix.tsv"
PRESETS = REPO_ROOT / "presets"
SHARED_MATRIX = REPO_ROOT.parent / "shared" / "reference" / "power-hungry-processing-matrix.tsv"
KINDS = {"task-specific": "task-specific", "multi-purpose zero-shot": MULTI_PURPOSE}
# The preset runs every model of a task on every dataset of it; the published data lacks one such cell.
UNPUBLISHED_CELLS = {("summarization", "xsum:test", "bigscience/bloom-560m", MULTI_PURPOSE)}


def matrix() -> set[tuple[str, str, str, str]]:
    with MATRIX.open(newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {(r["task"], r["hf_dataset"], r["model"], KINDS[r["kind"]]) for r in rows}


def preset_cells(path: Path) -> set[tuple[str, str, str, str]]:
    cells = set()
    for job in expand(load_sweep(path)):
        for run in job.runs:
            source = parse_hf_dataset(parse_dataset_ref(run["dataset"]).name).source  # without its column
            cells.add((job.task, source, parse_model_ref(job.model).name, job.model_kind))
    return cells


@pytest.mark.skipif(not SHARED_MATRIX.exists(), reason="no ../shared/reference here")
def test_the_copy_of_the_matrix_is_the_shared_reference():
    assert MATRIX.read_bytes() == SHARED_MATRIX.read_bytes()


def test_preset_holds_every_published_task_dataset_and_model_and_nothing_else():
    published, planned = matrix(), preset_cells(PRESET)
    assert published - planned == set(), "missing from the preset"
    assert planned - published == UNPUBLISHED_CELLS, "in the preset but not in the study's data (misspelled?)"
    spec = load_sweep(PRESET)
    assert all(parse_model_ref(ref).kind == "hub" for ref in spec.all_models())
    assert len(spec.all_models()) == len({cell[2] for cell in published}) == 91


def test_preset_follows_the_study_protocol():
    spec = load_sweep(PRESET)
    assert (spec.defaults.queries, spec.defaults.repetitions, spec.defaults.batch_size) == (1000, 10, 1)
    assert spec.carbon.grid_intensity_g_per_kwh == 297.6
    params = {task: task_spec.params for task, task_spec in spec.tasks.items()}
    assert params["text-generation"] == {"max_new_tokens": 10, "max_input_words": 20}
    assert params["fill-mask"] == {"top_k": 1}
    assert params["summarization"] == {"max_new_tokens": 15}
    assert params["text-to-image"]["max_input_words"] == 50
    assert params["image-to-text"]["resize_px"] == [640, 480]
    for task, task_spec in spec.tasks.items():  # zero-shot: the study's templates and lengths (the defaults)
        if task_spec.zero_shot:
            defaults = ZERO_SHOT_WORKLOADS[task].default_params
            assert {k: defaults[k] for k in task_spec.zero_shot.params} == task_spec.zero_shot.params
    assert {ref.removeprefix("hub:bigscience/"): kwh for ref, kwh in spec.training_energy_kwh.items()} == {
        "bloomz-7b1": 51686, "bloomz-3b": 25634, "bloomz-1b7": 17052, "bloomz-560m": 10505}  # Table 5


def test_smoke_preset_has_the_same_shape_with_tiny_models_and_builtin_data():
    full, smoke = load_sweep(PRESET), load_sweep(SMOKE)
    assert set(smoke.tasks) == set(full.tasks)
    for task, task_spec in smoke.tasks.items():
        assert set(task_spec.params) == set(full.tasks[task].params), task
        assert (task_spec.zero_shot is None) == (full.tasks[task].zero_shot is None), task
        assert all(ref.startswith("builtin:") for ref in task_spec.datasets)
    assert all(ref.startswith("tiny:") for ref in smoke.all_models())
    assert smoke.training_energy_kwh
    kinds = defaultdict(set)
    for job in expand(smoke):
        kinds[job.task].add(job.model_kind)
    assert {task for task, k in kinds.items() if MULTI_PURPOSE in k} == set(ZERO_SHOT_WORKLOADS)


AIES_TASKS = {"text-generation", "reasoning", "summarization", "question-answering", "text-classification",
              "sentence-similarity", "image-classification", "object-detection", "automatic-speech-recognition",
              "text-to-image", "image-to-text"}


def test_ai_energy_score_preset_has_its_tasks_datasets_and_protocol():
    from scheduler.plan.expand import expand
    from scheduler.spec.reading import load_sweep

    spec = load_sweep(PRESETS / "ai-energy-score.yaml")
    assert set(spec.tasks) == AIES_TASKS
    for task in spec.tasks:
        settings = spec.settings_for(task)
        assert (settings.queries, settings.batch_size, settings.repetitions) == (1000, 1, 10), task
        [dataset] = spec.tasks[task].datasets
        assert dataset.startswith("hf:AIEnergyScore/") and ":train" in dataset, task
    v2_sampling = {"temperature": 0.7, "top_p": 0.9, "top_k": 50}  # ai_energy_benchmarks backends/pytorch.py
    generation = spec.tasks["text-generation"].params
    assert "dtype" not in generation and generation["chat_template"] is True  # v2: as saved, chat template
    assert generation.items() >= ({"max_new_tokens": 10} | v2_sampling).items()
    assert spec.model_params["hub:openai-community/gpt2"] == {"dtype": "float16", "chat_template": False,
                                                              "temperature": 0}  # v1: FP16, raw, greedy
    assert spec.tasks["reasoning"].params.items() >= ({"max_new_tokens": 8192, "max_new_tokens_off": 10,
                                                       "reasoning": ["on", "off"]} | v2_sampling).items()
    for task in ("automatic-speech-recognition", "image-to-text"):  # energy_star: greedy, 1 beam, 100 tokens
        assert spec.tasks[task].params.items() >= {"num_beams": 1, "max_new_tokens": 100}.items()
    assert spec.tasks["automatic-speech-recognition"].params["fixed_length"] is True
    assert spec.tasks["text-to-image"].params == {"dtype": "float32", "num_inference_steps": 30,
                                                  "guidance_scale": None}
    jobs = expand(spec)
    assert len(jobs) == 128 and sum(len(j.runs) for j in jobs) == 1280
    assert {j.axes["reasoning"] for j in jobs if j.task == "reasoning"} == {"on", "off"}
    models = {j.model for j in jobs}
    issue_rows = {"google/gemma-3-4b-pt", "google/gemma-3-270m-it", "google/gemma-3-1b-it", "google/gemma-3-12b-it",
                  "google/gemma-3-27b-it", "microsoft/Phi-4-reasoning-plus", "deepseek-ai/DeepSeek-R1",
                  "deepseek-ai/DeepSeek-R1-0528", "deepseek-ai/DeepSeek-V3.2-Exp",
                  "deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
                  "Qwen/Qwen3-Next-80B-A3B-Thinking", "Qwen/Qwen3-Next-80B-A3B-Instruct", "zai-org/GLM-4.5",
                  "zai-org/GLM-4.6", "moonshotai/Kimi-K2-Instruct", "MiniMaxAI/MiniMax-M1-80k",
                  "nvidia/Llama-3_3-Nemotron-Super-49B-v1_5", "openai/gpt-oss-20b", "Qwen/Qwen-Image",
                  "black-forest-labs/FLUX.1-dev", "HiDream-ai/HiDream-I1-Full"}
    assert {"hub:" + name for name in issue_rows} <= models
    r1 = [j for j in jobs if j.model == "hub:deepseek-ai/DeepSeek-R1"]
    assert sorted(j.params["reasoning"] for j in r1) == ["off", "on"] and {j.params["reasoning_by"] for j in r1} \
        == {"prefix"}
    assert spec.model_gpus["hub:deepseek-ai/DeepSeek-R1"] == 16
    smoke = load_sweep(PRESETS / "ai-energy-score-smoke.yaml")
    assert set(smoke.tasks) == AIES_TASKS and all(m.startswith("tiny:") for m in smoke.all_models())
