"""Matrix expansion is a pure function: jobs = (task, model, hardware class), runs = (dataset, repetition)."""

import pytest

from db.queue.sweeps import RunGroup
from scheduler.plan.expand import expand
from scheduler.spec.reading import parse_sweep

SPEC = {
    "name": "m",
    "hardware_class": "a100",
    "defaults": {"queries": 10, "repetitions": 3, "batch_size": 2, "warmup": 1},
    "carbon": {"grid_intensity_g_per_kwh": 100},
    "tasks": {
        "fill-mask": {"models": ["tiny:bert", "path:/m"], "datasets": ["builtin:texts", "builtin:reviews"]},
        "text-to-image": {
            "models": ["tiny:stable-diffusion", "tiny:stable-diffusion"],
            "datasets": ["builtin:image-prompts"], "repetitions": 1, "queries": 4, "params": {"num_inference_steps": 2},
        },
    },
}


def test_jobs_are_task_model_cells_with_dataset_repetition_runs():
    jobs = expand(parse_sweep(SPEC))
    assert [(j.task, j.model, j.hardware_class) for j in jobs] == [
        ("fill-mask", "tiny:bert", "a100"),
        ("fill-mask", "path:/m", "a100"),
        ("text-to-image", "tiny:stable-diffusion", "a100"),  # listed twice, one job
    ]
    runs = jobs[0].runs
    assert [(r["dataset"], r["repetition"]) for r in runs] == [
        ("builtin:texts", 0), ("builtin:texts", 1), ("builtin:texts", 2),
        ("builtin:reviews", 0), ("builtin:reviews", 1), ("builtin:reviews", 2),
    ]
    assert {(r["n_queries"], r["batch_size"], r["warmup"]) for r in runs} == {(10, 2, 1)}
    image_job = jobs[2]
    assert [(r["dataset"], r["repetition"], r["n_queries"]) for r in image_job.runs] == [
        ("builtin:image-prompts", 0, 4)]
    assert image_job.params == {"num_inference_steps": 2}


def test_hardware_class_override_and_determinism():
    spec = parse_sweep(SPEC)
    assert {j.hardware_class for j in expand(spec, "h100")} == {"h100"}
    assert expand(spec) == expand(spec)


# --- sweep axes ----------------------------------------------------------------------------------------------

AXES_SPEC = {
    "name": "axes",
    "defaults": {"queries": 4, "repetitions": 2, "batch_size": [1, 8]},
    "carbon": {"grid_intensity_g_per_kwh": 100},
    "tasks": {
        "text-generation": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                            "params": {"max_new_tokens": [10, 50, 100], "dtype": "float32"}},
        "fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"], "batch_size": 4},
    },
}


def test_combinations_cross_the_lists_first_axis_slowest():
    from scheduler.plan.expand import combinations

    assert combinations({"batch_size": [1, 8], "max_new_tokens": [10, 20], "dtype": None}) == [
        {"batch_size": 1, "max_new_tokens": 10, "dtype": None}, {"batch_size": 1, "max_new_tokens": 20, "dtype": None},
        {"batch_size": 8, "max_new_tokens": 10, "dtype": None}, {"batch_size": 8, "max_new_tokens": 20, "dtype": None},
    ]
    assert combinations({"batch_size": 2}) == [{"batch_size": 2}]
    assert combinations({"batch_size": [4, 4, 1]}) == [{"batch_size": 4}, {"batch_size": 1}]  # repeats are one cell


def test_each_axis_combination_is_its_own_job_with_its_values_in_columns():
    jobs = expand(parse_sweep(AXES_SPEC))
    generation = [j for j in jobs if j.task == "text-generation"]
    assert [(j.axes["batch_size"], j.axes["max_new_tokens"]) for j in generation] == [
        (1, 10), (1, 50), (1, 100), (8, 10), (8, 50), (8, 100)]
    assert [j.cell_key for j in generation][:2] == ["batch_size=1 max_new_tokens=10", "batch_size=1 max_new_tokens=50"]
    assert len({j.cell_key for j in generation}) == 6
    for job in generation:
        assert job.params["max_new_tokens"] == job.axes["max_new_tokens"]  # the worker sees scalars
        assert {r["batch_size"] for r in job.runs} == {job.axes["batch_size"]} and len(job.runs) == 2
        assert job.axes["dtype"] == "float32" and "num_inference_steps" not in job.axes  # not an axis of the task
    [mask] = [j for j in jobs if j.task == "fill-mask"]  # the task's own scalar batch size overrides the axis
    assert mask.cell_key == "" and mask.axes == {"batch_size": 4, "dtype": None, "power_limit_w": None}
    assert {r["batch_size"] for r in mask.runs} == {4}


def test_a_sweep_without_lists_keeps_one_job_per_model_and_default_axis_values():
    jobs = expand(parse_sweep(SPEC))
    assert all(j.cell_key == "" for j in jobs)
    image = jobs[2]
    assert image.axes == {"batch_size": 2, "dtype": None, "num_inference_steps": 2, "height_px": None,
                          "width_px": None, "power_limit_w": None}


def test_model_dtype_wins_over_a_dtype_axis():
    spec = {**AXES_SPEC, "defaults": {"queries": 1}, "model_dtype": {"tiny:bert": "bfloat16"},
            "tasks": {"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                                    "params": {"dtype": ["float32", "float16"]}}}}
    [job] = expand(parse_sweep(spec))
    assert job.axes["dtype"] == "bfloat16" and job.params["dtype"] == "bfloat16"


def test_decoding_and_chat_template_are_axes_stored_in_their_columns():
    spec = {**SPEC, "defaults": {"queries": 1},
            "tasks": {"text-generation": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                                          "params": {"temperature": [0, 0.7], "chat_template": [True, False],
                                                     "top_p": 0.9, "seed": 3}}}}
    jobs = expand(parse_sweep(spec))
    assert [(j.axes["temperature"], j.axes["chat_template"]) for j in jobs] == [
        (0, True), (0, False), (0.7, True), (0.7, False)]
    assert jobs[2].cell_key == "temperature=0.7 chat_template=True"
    assert jobs[2].params == {"temperature": 0.7, "chat_template": True, "top_p": 0.9, "seed": 3}


def test_model_params_set_one_models_reasoning_switch_and_win_over_the_task():
    spec = {**SPEC, "defaults": {"queries": 1},
            "model_params": {"tiny:gpt2": {"reasoning_by": "system", "temperature": 0.6}},
            "tasks": {"reasoning": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                                    "params": {"reasoning": "off", "temperature": [0, 1]}},
                      "text-generation": {"models": ["tiny:gpt2", "tiny:ministral3"], "datasets": ["builtin:prompts"]}}}
    jobs = expand(parse_sweep(spec))
    by_model = [(j.task, j.model, j.params.get("reasoning_by"), j.params.get("temperature")) for j in jobs]
    assert by_model == [("reasoning", "tiny:gpt2", "system", 0.6), ("text-generation", "tiny:gpt2", None, 0.6),
                        ("text-generation", "tiny:ministral3", None, None)]


def test_a_jobs_runs_are_held_as_one_group_per_dataset_and_read_as_runs():
    [job] = expand(parse_sweep({**SPEC, "tasks": {"fill-mask": {"models": ["tiny:bert"],
                                                                  "datasets": ["builtin:texts", "builtin:reviews"]}}}))
    runs = job.runs
    assert runs.groups == (RunGroup("builtin:texts", 0, 3, 10, 2, 1), RunGroup("builtin:reviews", 0, 3, 10, 2, 1))
    listed = [dict(dataset=d, repetition=r, n_queries=10, batch_size=2, warmup=1, shards=None, expected_s=None)
              for d in ("builtin:texts", "builtin:reviews") for r in range(3)]
    assert list(runs) == listed and len(runs) == 6
    assert [runs[i] for i in range(-6, 6)] == listed * 2 and runs[1:3] == listed[1:3]
    with pytest.raises(IndexError):
        runs[6]
