"""Served tasks in the sweep file: `engine:`, the load axes, and the jobs they expand to."""

from __future__ import annotations

import copy

import pytest

from scheduler.plan.expand import expand
from scheduler.spec.reading import SpecError, parse_sweep
from worker.contract.engines import engine_args_command_line

BASE = {"name": "s", "carbon": {"grid_intensity_g_per_kwh": 100.0},
        "tasks": {"text-generation": {"models": ["tiny:llama"], "datasets": ["builtin:prompts"],
                                      "engine": {"name": "vllm", "args": {"max_num_seqs": 256}},
                                      "params": {"max_new_tokens": 16, "concurrency": [1, 8, 32]}}}}


def task(**changes) -> dict:
    spec = copy.deepcopy(BASE)
    spec["tasks"]["text-generation"].update(changes)
    return spec


def test_each_load_is_a_job_carrying_its_engine_and_columns():
    jobs = expand(parse_sweep(BASE))
    assert [job.cell_key for job in jobs] == ["concurrency=1", "concurrency=8", "concurrency=32"]
    assert [job.axes["concurrency"] for job in jobs] == [1, 8, 32]
    assert all(job.axes["engine"] == "vllm" and job.params["engine"]["args"] == {"max_num_seqs": 256}
               for job in jobs)
    rates = expand(parse_sweep(task(params={"max_new_tokens": 16, "request_rate": [0.5, 4]})))
    assert [(job.axes["request_rate"], job.axes["concurrency"]) for job in rates] == [(0.5, None), (4, None)]
    default = expand(parse_sweep(task(params={"max_new_tokens": 16})))
    assert [job.axes["concurrency"] for job in default] == [1]  # closed loop, one request at a time


@pytest.mark.parametrize(("changes", "message"), [
    ({"params": {"concurrency": 8, "request_rate": 2}}, "give concurrency (closed loop) or request_rate"),
    ({"engine": {"name": "tgi"}}, "tasks.text-generation.engine.name: expected one of vllm, openai"),
    ({"engine": {"name": "openai", "model": "m"}}, "tasks.text-generation.engine.base_url: engine openai needs"),
    ({"engine": {"name": "vllm", "args": {"port": 1}}}, "engine.args.port: set by the worker"),
    ({"engine": {"name": "vllm", "args": {"x": [1]}}}, "engine.args.x: expected a number, text"),
    ({"engine": {"name": "vllm", "bogus": 1}}, "engine.bogus: unknown field for engine vllm"),
    ({"engine": None, "params": {"concurrency": 8}}, "concurrency is a serving parameter; serve the task"),
    ({"params": {"concurrency": [1, 0]}}, "concurrency must be a positive whole number, got 0"),
    ({"params": {"request_rate": -1}}, "request_rate must be a positive number"),
    ({"params": {"steady_min_s": -1}}, "steady_min_s: expected seconds"),
])
def test_bad_serving_settings_name_the_field(changes, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sweep(task(**changes))


def test_only_prompt_tasks_are_served():
    spec = copy.deepcopy(BASE)
    spec["tasks"] = {"text-classification": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                                             "engine": {"name": "vllm"}}}
    with pytest.raises(SpecError, match="text-classification is not served by engines"):
        parse_sweep(spec)


def test_engine_args_become_vllm_options():
    assert engine_args_command_line({"max_num_seqs": 256, "enable_prefix_caching": False, "enforce_eager": True,
                                     "quantization": None}) == \
        ["--max-num-seqs", "256", "--no-enable-prefix-caching", "--enforce-eager"]


def test_serving_presets_parse_and_the_smoke_form_has_the_same_shape():
    from pathlib import Path

    from scheduler.spec.reading import load_sweep

    presets = Path(__file__).parents[2] / "presets"
    full = load_sweep(presets / "serving.yaml", data_roots=[])
    smoke = load_sweep(presets / "serving-smoke.yaml", data_roots=[])
    for spec in (full, smoke):
        served = spec.tasks["text-generation"]
        assert served.engine["name"] == "vllm" and isinstance(served.params["concurrency"], list)
    assert full.tasks["text-generation"].params["concurrency"] == [1, 8, 32, 64, 128]
    assert all(model.startswith("hub:") for model in full.tasks["text-generation"].models)
    assert smoke.tasks["text-generation"].models == ["tiny:llama"]
