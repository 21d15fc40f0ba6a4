"""Matrix expansion is a pure function: jobs = (task, model, hardware class), runs = (dataset, repetition)."""

from scheduler.expand import expand
from scheduler.spec import parse_sweep

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
    assert [(r.dataset, r.repetition) for r in runs] == [
        ("builtin:texts", 0), ("builtin:texts", 1), ("builtin:texts", 2),
        ("builtin:reviews", 0), ("builtin:reviews", 1), ("builtin:reviews", 2),
    ]
    assert {(r.n_queries, r.batch_size, r.warmup) for r in runs} == {(10, 2, 1)}
    image_job = jobs[2]
    assert [(r.dataset, r.repetition, r.n_queries) for r in image_job.runs] == [("builtin:image-prompts", 0, 4)]
    assert image_job.params == {"num_inference_steps": 2}


def test_hardware_class_override_and_determinism():
    spec = parse_sweep(SPEC)
    assert {j.hardware_class for j in expand(spec, "h100")} == {"h100"}
    assert expand(spec) == expand(spec)
