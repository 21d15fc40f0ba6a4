"""Bad input: one line naming field, value and what is allowed; exit 2; no traceback; nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Job
from db.session import session_factory
from tests.test_local_sweep import wattsweep

GOOD_TASK = "  fill-mask:\n    models: [tiny:bert]\n    datasets: [builtin:texts]\n"
TASKS = "tasks:\n"
HEAD = "name: bad\ndefaults: {queries: 2, repetitions: 1, warmup: 0}\n"
CARBON = "carbon: {grid_intensity_g_per_kwh: 100}\n"

CASES = {
    "unknown task": (HEAD + CARBON + "tasks:\n  translate:\n    models: [tiny:bert]\n    datasets: [builtin:texts]\n",
                     "unknown task 'translate'; allowed are"),
    "unknown tiny family": (HEAD + CARBON + TASKS + GOOD_TASK.replace("[tiny:bert]", "[tiny:llama]"),
                            "unknown tiny model family 'llama': allowed are"),
    "malformed model": (HEAD + CARBON + TASKS + GOOD_TASK.replace("tiny:bert", "bert"),
                        "malformed model reference 'bert'"),
    "malformed dataset": (HEAD + CARBON + TASKS + GOOD_TASK.replace("builtin:texts", "texts"),
                          "malformed dataset reference"),
    "zero queries": (HEAD.replace("queries: 2", "queries: 0") + CARBON + "tasks:\n" + GOOD_TASK,
                     "defaults.queries: Input should be greater than 0 (got 0)"),
    "negative repetitions": (HEAD.replace("repetitions: 1", "repetitions: -2") + CARBON + "tasks:\n" + GOOD_TASK,
                             "defaults.repetitions"),
    "missing carbon": (HEAD + "tasks:\n" + GOOD_TASK, "carbon: missing required field"),
    "yaml syntax": (HEAD + CARBON + "tasks:\n  fill-mask: [unclosed\n", "YAML syntax error at line"),
    "empty axis list": (HEAD + CARBON + TASKS + GOOD_TASK + "    params: {dtype: []}\n",
                        "tasks.fill-mask.params.dtype: empty axis list"),
    "axis not applying": (HEAD + CARBON + TASKS + GOOD_TASK + "    params: {max_new_tokens: [1, 2]}\n",
                          "max_new_tokens does not apply to fill-mask; its axes are batch_size, dtype"),
    "reasoning level not taken": (HEAD + CARBON + TASKS + "  reasoning:\n    models: [tiny:gpt2]\n"
                                  "    datasets: [builtin:prompts]\n    params: {reasoning: [on, extreme]}\n",
                                  "'extreme' is not a reasoning level; use on, off, low, medium, high"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_sweep_file(case, tmp_path):
    text, expected = CASES[case]
    (tmp_path / "sweep.yaml").write_text(text)
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "wattsweep.db").exists()  # nothing written


def test_unknown_sweep_lists_closest_names(tmp_path):
    (tmp_path / "sweep.yaml").write_text(HEAD + CARBON + TASKS + GOOD_TASK)
    assert wattsweep("run", "sweep.yaml", cwd=tmp_path).returncode == 0
    result = wattsweep("report", "bda", cwd=tmp_path)
    assert result.returncode == 2 and "no sweep 'bda'; closest: bad" in result.stderr


def test_model_that_fails_to_load_fails_its_job_and_the_rest_goes_on(tmp_path):
    text = HEAD + CARBON + TASKS + GOOD_TASK.replace("[tiny:bert]", f"[path:{tmp_path / 'missing'}, tiny:bert]")
    (tmp_path / "sweep.yaml").write_text(text)
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "1 job(s) failed" in result.stderr and "model failed to load" in result.stderr
    with session_factory(f"sqlite:///{tmp_path / 'wattsweep.db'}")() as session:
        jobs = {j.model.split(":")[0]: j for j in session.scalars(select(Job))}
        assert jobs["path"].status == "failed" and "failed to load" in jobs["path"].last_error
        assert jobs["path"].attempts == 1  # a model that cannot load is not retried
        assert jobs["tiny"].status == "done"


def test_unreachable_postgres_is_one_line_with_masked_password(tmp_path):
    (tmp_path / "sweep.yaml").write_text(HEAD + CARBON + TASKS + GOOD_TASK)
    url = "postgresql://user:secret@127.0.0.1:1/nothing"
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path, env_url=url)
    assert result.returncode == 2
    assert "cannot reach the database at postgresql+psycopg://user:***@127.0.0.1:1/nothing" in result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr


def test_reasoning_on_a_model_without_the_switch_is_refused_before_anything_is_written(tmp_path):
    model = tmp_path / "chat-model"
    model.mkdir()
    (model / "tokenizer_config.json").write_text('{"chat_template": "{{ messages[0].content }}"}')
    text = (HEAD + CARBON + TASKS + f"  reasoning:\n    models: [path:{model}]\n    datasets: [builtin:prompts]\n"
            "    params: {reasoning: [on, off]}\n")
    (tmp_path / "sweep.yaml").write_text(text)
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert f"path:{model} has no chat-template switch for reasoning" in result.stderr
    assert not (tmp_path / "wattsweep.db").exists()
