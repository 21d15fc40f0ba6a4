"""Sweep file validation: every bad input gets one line naming field, value and fix."""

from __future__ import annotations

import copy

import pytest

from scheduler.spec.reading import SpecError, load_sweep, parse_sweep

VALID = {
    "name": "t",
    "defaults": {"queries": 5, "repetitions": 2, "batch_size": 1, "warmup": 1},
    "carbon": {"country_iso_code": "USA"},
    "tasks": {
        "text-classification": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]},
        "text-generation": {
            "models": ["tiny:gpt2"], "datasets": ["builtin:prompts"], "queries": 3, "params": {"max_new_tokens": 4}
        },
    },
}


def with_change(path: str, value):
    data = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_valid_sweep_and_task_overrides():
    spec = parse_sweep(VALID)
    assert spec.hardware_class == "cpu"
    assert spec.carbon.source == "country mix"
    generation = spec.settings_for("text-generation")
    assert (generation.queries, generation.repetitions, generation.warmup) == (3, 2, 1)
    assert spec.settings_for("text-classification").queries == 5


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("tasks.translation", {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}, "unknown task 'translation'"),
        ("tasks.text-classification.models", ["tiny:nope"], "unknown tiny model family 'nope'"),
        ("tasks.text-classification.models", ["bert-base"], "malformed model reference 'bert-base'"),
        ("tasks.text-classification.datasets", ["builtin:nope"], "unknown builtin dataset 'nope'"),
        ("tasks.text-classification.datasets", ["s3:bucket"], "malformed dataset reference"),
        ("tasks.text-classification.models", [], "tasks.text-classification.models"),
        ("defaults.queries", 0, "defaults.queries"),
        ("defaults.repetitions", -1, "defaults.repetitions"),
        ("tasks.text-generation.batch_size", 0, "tasks.text-generation.batch_size"),
        ("carbon", ..., "carbon: missing required field"),
        ("carbon", {}, "exactly one of country_iso_code"),
        ("carbon", {"country_iso_code": "USA", "grid_intensity_g_per_kwh": 50}, "exactly one of"),
        ("carbon", {"grid_intensity_g_per_kwh": -3}, "carbon.grid_intensity_g_per_kwh"),
        ("carbon", {"country_iso_code": "usa"}, "carbon.country_iso_code"),
        # Checked against CodeCarbon's own energy-mix data, which would otherwise give the world average.
        ("carbon", {"country_iso_code": "GER"}, "carbon.country_iso_code: 'GER' is not a country CodeCarbon has "
                                                "data for (it would use the world average); did you mean DEU"),
        ("carbon", {"country_iso_code": "DEU", "region": "bavaria"}, "carbon.region: CodeCarbon ignores a region "
                                                                     "for DEU and uses its country mix"),
        ("carbon", {"country_iso_code": "USA", "region": "californa"}, "carbon.region: 'californa' is not a region "
                                                                       "CodeCarbon has data for in USA"),
        ("carbon", {"country_iso_code": "SWE", "region": "SE9"}, "did you mean 'SE4'"),
        ("carbon", {"country_iso_code": "FRA", "pue": 0.8}, "carbon.pue: Input should be greater than or equal to 1"),
        ("tasks", {}, "tasks"),
        ("tasks.text-classification.models", ["tiny:gpt2"], "tiny:gpt2 does not do text-classification; use tiny:bert"),
        ("tasks.text-classification.datasets", ["builtin:shapes"], "holds image queries, text-classification reads"),
        ("tasks.text-generation.params", {"max_tokens": 3}, "unknown parameter 'max_tokens'; allowed are"),
        ("colour", "blue", "colour: unknown field"),
        ("baseline", "each-run", "baseline: Input should be 'auto' or 'per-run' (got 'each-run')"),
    ],
)
def test_bad_input_names_the_field(path, value, expected):
    with pytest.raises(SpecError) as caught:
        parse_sweep(with_change(path, value), "sweep.yaml")
    message = str(caught.value)
    assert expected in message
    assert message.startswith("sweep.yaml: ")
    assert "\n" not in message


def test_hub_models_parse_and_tiny_values_are_listed():
    spec = parse_sweep(with_change("tasks.text-classification.models", ["hub:org/model@abc123", "path:/tmp/m"]))
    assert spec.tasks["text-classification"].models[0] == "hub:org/model@abc123"
    with pytest.raises(SpecError, match="allowed are .*bert"):
        parse_sweep(with_change("tasks.text-classification.models", ["tiny:nope"]))


def test_yaml_syntax_error_has_line_number(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\ntasks:\n  a: [1, 2\ncarbon: {}\n")
    with pytest.raises(SpecError, match=r"bad.yaml: YAML syntax error at line \d+"):
        load_sweep(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read sweep file"):
        load_sweep(tmp_path / "absent.yaml")


def test_quickstart_example_is_valid():
    spec = load_sweep("examples/quickstart.yaml")
    assert len(spec.tasks) == 10


@pytest.mark.parametrize("tasks, defaults, message", [
    ({"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"], "batch_size": []}}, {},
     r"tasks.fill-mask.batch_size: empty axis list"),
    ({"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"]}}, {"batch_size": [1, 0]},
     r"defaults.batch_size: batch_size must be a positive whole number .* got 0"),
    ({"text-generation": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                          "params": {"max_new_tokens": []}}}, {},
     r"tasks.text-generation.params.max_new_tokens: empty axis list"),
    ({"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                    "params": {"max_new_tokens": [10, 20]}}}, {},
     r"tasks.fill-mask.params.max_new_tokens: max_new_tokens does not apply to fill-mask; its axes are "
     r"batch_size, dtype"),
    ({"text-classification": {"models": ["tiny:bert"], "datasets": ["builtin:texts"],
                              "params": {"num_inference_steps": [1, 2]}}}, {},
     r"num_inference_steps does not apply to text-classification"),
    ({"fill-mask": {"models": ["tiny:bert"], "datasets": ["builtin:texts"], "params": {"dtype": ["fp8"]}}}, {},
     r"tasks.fill-mask.params.dtype: 'fp8' is not a dtype; use float32, float16, bfloat16"),
    ({"reasoning": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                    "params": {"reasoning": ["on", "maximum"]}}}, {},
     r"'maximum' is not a reasoning level; use on, off, low, medium, high"),
    ({"text-generation": {"models": ["tiny:gpt2"], "datasets": ["builtin:prompts"],
                          "params": {"reasoning": "on"}}}, {},
     r"tasks.text-generation.params.reasoning: reasoning does not apply to text-generation"),
])
def test_bad_axes_are_one_line_errors_naming_field_and_allowed_values(tasks, defaults, message):
    data = {"name": "s", "carbon": {"grid_intensity_g_per_kwh": 1}, "tasks": tasks, "defaults": defaults}
    with pytest.raises(SpecError, match=message) as error:
        parse_sweep(data)
    assert "\n" not in str(error.value)


def test_reasoning_on_a_model_without_the_switch_names_the_model(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "{{ messages[0][\'content\'] }}"}')
    data = {"name": "s", "carbon": {"grid_intensity_g_per_kwh": 1},
            "tasks": {"reasoning": {"models": ["tiny:gpt2", f"path:{tmp_path}"], "datasets": ["builtin:prompts"],
                                    "params": {"reasoning": "on"}}}}
    with pytest.raises(SpecError, match=rf"tasks.reasoning.models.1: path:{tmp_path} has no chat-template switch "
                                        r"for reasoning"):
        parse_sweep(data)
    data["tasks"]["reasoning"]["models"] = ["tiny:gpt2"]
    assert parse_sweep(data).tasks["reasoning"].params["reasoning"] == "on"


def test_the_schema_reads_no_chat_template_the_reading_step_does(tmp_path):
    from scheduler.spec.schema import SweepSpec

    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "{{ messages[0][\'content\'] }}"}')
    data = {"name": "s", "carbon": {"grid_intensity_g_per_kwh": 1},
            "tasks": {"reasoning": {"models": [f"path:{tmp_path}"], "datasets": ["builtin:prompts"],
                                    "params": {"reasoning": "off"}}}}
    assert SweepSpec.model_validate(data).tasks["reasoning"].params["reasoning"] == "off"  # pure: no file read
    with pytest.raises(SpecError, match=rf"^s: tasks.reasoning.models.0: path:{tmp_path} has no chat-template"):
        parse_sweep(data, "s")


def test_known_countries_and_regions_pass_and_pue_defaults_to_one():
    for carbon in ({"country_iso_code": "DEU"}, {"country_iso_code": "USA", "region": "California"},
                   {"country_iso_code": "CAN", "region": "quebec"}, {"country_iso_code": "NOR", "region": "no2"},
                   {"grid_intensity_g_per_kwh": 56.0, "pue": 1.2}):
        spec = parse_sweep(with_change("carbon", carbon))
        assert spec.carbon.pue == carbon.get("pue", 1.0)


def test_the_scheduler_checks_countries_without_importing_codecarbon():
    import subprocess
    import sys

    code = ("import sys; from scheduler.spec.reading import parse_sweep, SpecError\n"
            f"data = {with_change('carbon', {'country_iso_code': 'GER'})!r}\n"
            "try:\n    parse_sweep(data)\nexcept SpecError as e:\n    print(e)\n"
            "print('codecarbon' in sys.modules, 'pandas' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "did you mean DEU" in result.stdout and result.stdout.split()[-2:] == ["False", "False"]
