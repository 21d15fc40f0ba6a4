"""Bad input: one line naming field, value and what is allowed; exit 2; no traceback; nothing written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from db.models import Job, Measurement
from db.session import session_factory
from tests.helpers import CARBON, GOOD_TASK, HEAD, TASKS, wattsweep

CASES = {
    "unknown task": (HEAD + CARBON + "tasks:\n  translate:\n    models: [tiny:bert]\n    datasets: [builtin:texts]\n",
                     "unknown task 'translate'; allowed are"),
    "unknown tiny family": (HEAD + CARBON + TASKS + GOOD_TASK.replace("[tiny:bert]", "[tiny:falcon]"),
                            "unknown tiny model family 'falcon': allowed are"),
    "malformed model": (HEAD + CARBON + TASKS + GOOD_TASK.replace("tiny:bert", "bert"),
                        "malformed model reference 'bert'"),
    "malformed dataset": (HEAD + CARBON + TASKS + GOOD_TASK.replace("builtin:texts", "texts"),
                          "malformed dataset reference"),
    "zero queries": (HEAD.replace("queries: 2", "queries: 0") + CARBON + "tasks:\n" + GOOD_TASK,
                     "defaults.queries: Input should be greater than or equal to 1 (got 0)"),
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
    # Issue 11's list: each of these ended in a traceback, a hang, or a job failing on the workers.
    "control character": (HEAD.replace("name: bad", "name: b\x01ad") + CARBON + TASKS + GOOD_TASK,
                          "not a YAML file: unacceptable character #x0001"),
    "3,000 nested brackets": (HEAD + CARBON + "tasks: " + "[" * 3000 + "\n", "nested deeper than"),
    "infinite grid intensity": (HEAD + CARBON.replace("100", ".inf") + TASKS + GOOD_TASK,
                                "carbon.grid_intensity_g_per_kwh: Input should be a finite number (got inf)"),
    "500-character region": (HEAD + "carbon: {country_iso_code: USA, region: " + "r" * 500 + "}\n" + TASKS + GOOD_TASK,
                             "carbon.region: String should have at most 100 characters"),
    "country CodeCarbon has no data for": (HEAD + "carbon: {country_iso_code: GER}\n" + TASKS + GOOD_TASK,
                                           "carbon.country_iso_code: 'GER' is not a country CodeCarbon has data for "
                                           "(it would use the world average); did you mean DEU (Germany)"),
    "region CodeCarbon ignores": (HEAD + "carbon: {country_iso_code: FRA, region: paris}\n" + TASKS + GOOD_TASK,
                                  "carbon.region: CodeCarbon ignores a region for FRA and uses its country mix"),
    "150-character hardware class": ("hardware_class: " + "h" * 150 + "\n" + HEAD + CARBON + TASKS + GOOD_TASK,
                                     "hardware_class: String should have at most 100 characters"),
    "3 billion queries": (HEAD.replace("queries: 2", "queries: 3000000000") + CARBON + TASKS + GOOD_TASK,
                          "defaults.queries: Input should be less than or equal to 1000000 (got 3000000000)"),
    "400-character path": (HEAD + CARBON + TASKS + GOOD_TASK.replace("tiny:bert", "path:/" + "p" * 400),
                           "tasks.fill-mask.models.0: model reference 'path:/pppp"),
    "task params checked per task": (HEAD + CARBON + TASKS + GOOD_TASK + "    params: {dtype: int8, top_k: abc}\n",
                                     "tasks.fill-mask.params.dtype: 'int8' is not a dtype; use float32, float16"),
    "task param of the wrong type": (HEAD + CARBON + TASKS + GOOD_TASK + "    params: {top_k: abc}\n",
                                     "tasks.fill-mask.params.top_k: expected a whole number from 1 to 1,000 "
                                     "(got 'abc')"),
    # AI Energy Score's protocol params (issue 19): a temperature below 0 means nothing; as an axis too.
    "negative temperature": (HEAD + CARBON + TASKS + "  text-generation:\n    models: [tiny:gpt2]\n"
                             "    datasets: [builtin:prompts]\n    params: {temperature: -0.5}\n",
                             "tasks.text-generation.params.temperature: temperature must be a number from 0 (greedy) "
                             "to 100, got -0.5"),
    "negative temperature on an axis": (HEAD + CARBON + TASKS + "  text-generation:\n    models: [tiny:gpt2]\n"
                                        "    datasets: [builtin:prompts]\n    params: {temperature: [0, -1]}\n",
                                        "tasks.text-generation.params.temperature: temperature must be a number "
                                        "from 0 (greedy) to 100, got -1"),
    "reasoning switch not known": (HEAD + CARBON + TASKS + "  reasoning:\n    models: [tiny:gpt2]\n"
                                   "    datasets: [builtin:prompts]\n    params: {reasoning_by: magic}\n",
                                   "tasks.reasoning.params.reasoning_by: expected one of template, system, prefix"),
    "model params a model's tasks do not take": (HEAD + CARBON + TASKS + GOOD_TASK
                                                 + "model_params: {tiny:bert: {temperature: 0.7}}\n",
                                                 "model_params.tiny:bert.temperature: no task of tiny:bert "
                                                 "(fill-mask) takes temperature"),
    # Issue 23's list: accepted before, ambiguous or unreadable as meant; two of them wrote a sweep.
    "key given twice": (HEAD.replace("name: bad", "name: bad\nname: good") + CARBON + TASKS + GOOD_TASK,
                        "line 2, column 1: key 'name' is given twice (first at line 1)"),
    "task given twice": (HEAD + CARBON + TASKS + GOOD_TASK + GOOD_TASK.replace("tiny:bert", "tiny:distilbert"),
                         "line 8, column 3: key 'fill-mask' is given twice (first at line 5)"),
    "key given twice in a flow mapping": (HEAD.replace("queries: 2,", "queries: 2, queries: 5,") + CARBON + TASKS
                                          + GOOD_TASK, "key 'queries' is given twice (first at line 2)"),
    "base-60 number": (HEAD.replace("queries: 2", "queries: 1:30") + CARBON + TASKS + GOOD_TASK,
                       "1:30 is a base-60 number in YAML 1.1 (it would read as 90)"),
    "bidi override in the name": (HEAD.replace("name: bad", 'name: "dab\u202edab"') + CARBON + TASKS + GOOD_TASK,
                                  "name: contains a control character"),
    "non-ASCII hardware class": ("hardware_class: gpu\u00e9\n" + HEAD + CARBON + TASKS + GOOD_TASK,
                                 "hardware_class: String should match pattern"),
    "path outside the data roots": (HEAD + CARBON + TASKS
                                    + GOOD_TASK.replace("builtin:texts", "file:/etc/passwd.jsonl"),
                                    "tasks.fill-mask.datasets.0: path '/etc/passwd.jsonl' is outside the data roots"),
}


def assert_one_line_error(result, expected: str) -> None:
    assert result.returncode == 2, result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert expected in result.stderr, result.stderr


@pytest.mark.parametrize("case", CASES)
def test_bad_sweep_file(case, tmp_path):
    text, expected = CASES[case]
    (tmp_path / "sweep.yaml").write_text(text)
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path, env={"WATTSWEEP_DATA_ROOTS": str(tmp_path)})
    assert_one_line_error(result, expected)
    assert not (tmp_path / "wattsweep.db").exists()  # nothing written


def test_non_utf8_sweep_file(tmp_path):
    text = (HEAD + CARBON + TASKS + GOOD_TASK).replace("bad", "caf\xe9")
    (tmp_path / "sweep.yaml").write_bytes(text.encode("latin-1"))
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path)
    assert_one_line_error(result, "sweep.yaml: not UTF-8 text: byte 0xe9 at line 1")
    assert not (tmp_path / "wattsweep.db").exists()


def test_submit_refuses_bad_task_params_before_touching_the_database_or_broker(tmp_path):
    (tmp_path / "sweep.yaml").write_text(HEAD + CARBON + TASKS + GOOD_TASK + "    params: {dtype: int8, top_k: abc}\n")
    result = wattsweep("submit", "sweep.yaml", "--broker-url", "redis://127.0.0.1:1/0", cwd=tmp_path,
                       env_url=f"sqlite:///{tmp_path / 'wattsweep.db'}")
    assert_one_line_error(result, "tasks.fill-mask.params.dtype: 'int8' is not a dtype; use float32, float16, "
                                  "bfloat16")
    assert not (tmp_path / "wattsweep.db").exists()


def test_unknown_log_level_is_one_line(tmp_path):
    result = wattsweep("worker", "--queue", "cpu", "--device", "cpu", "--loglevel", "LOUD", cwd=tmp_path)
    assert_one_line_error(result, "--loglevel 'LOUD': unknown level; allowed are DEBUG, INFO, WARNING")


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("WATTSWEEP_LEASE_TIMEOUT_S", "abc", "WATTSWEEP_LEASE_TIMEOUT_S='abc': Input should be a valid number"),
    ("WATTSWEEP_HEARTBEAT_INTERVAL_S", "-1", "WATTSWEEP_HEARTBEAT_INTERVAL_S='-1': Input should be greater than 0"),
    ("WATTSWEEP_MAX_ATTEMPTS", "0", "WATTSWEEP_MAX_ATTEMPTS='0': Input should be greater than or equal to 1"),
    ("WATTSWEEP_MEASURE_POWER_SECS", "-1", "WATTSWEEP_MEASURE_POWER_SECS='-1': Input should be greater than or "
                                           "equal to 0"),
])
def test_bad_setting_is_one_line(tmp_path, variable, value, expected):
    (tmp_path / "sweep.yaml").write_text(HEAD + CARBON + TASKS + GOOD_TASK)
    for command in (["status"], ["run", "sweep.yaml"], ["worker", "--queue", "cpu", "--device", "cpu"]):
        result = wattsweep(*command, cwd=tmp_path, env={variable: value})
        assert_one_line_error(result, expected)
    assert not (tmp_path / "wattsweep.db").exists()


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("WATTSWEEP_STALL_TIMEOUT_S", "nan", "WATTSWEEP_STALL_TIMEOUT_S='nan': Input should be a finite number"),
    ("WATTSWEEP_STALL_TIMEOUT_S", "-5", "WATTSWEEP_STALL_TIMEOUT_S='-5': Input should be greater than 0"),
    ("WATTSWEEP_MAX_CONSECUTIVE_FAILURES", "-1", "WATTSWEEP_MAX_CONSECUTIVE_FAILURES='-1': Input should be greater"),
    ("WATTSWEEP_HOST_ID", "a\nb", "WATTSWEEP_HOST_ID='a\\nb': String should match pattern"),
    ("WATTSWEEP_NODE_NAME", "gpu0@evil", "WATTSWEEP_NODE_NAME='gpu0@evil': String should match pattern"),
    ("WATTSWEEP_DATABASE_URL", "mysql://u:hunter2@db/w", "WATTSWEEP_DATABASE_URL='mysql://u:***@db/w': use a sqlite"),
    ("WATTSWEEP_DATABASE_URL", "postgresql://db:99999/w", "not a URL (Port out of range"),
    ("WATTSWEEP_DATABASE_URL", "sqlite:///a b.db", "a URL has no spaces or control characters"),
    ("WATTSWEEP_BROKER_URL", "http://broker", "WATTSWEEP_BROKER_URL='http://broker': use a redis:// or rediss://"),
    ("WATTSWEEP_BROKER_URL", "redis://broker:6379/16", "the Redis database is a number from 0 to 15"),
    ("WATTSWEEP_SECRETS_DIR", "/nonexistent/secrets", "WATTSWEEP_SECRETS_DIR='/nonexistent/secrets': not a folder"),
])
def test_bad_setting_or_url_is_one_line_and_writes_nothing(tmp_path, variable, value, expected):
    (tmp_path / "sweep.yaml").write_text(HEAD + CARBON + TASKS + GOOD_TASK)
    env = {variable: value} | ({} if variable == "WATTSWEEP_DATABASE_URL" else
                               {"WATTSWEEP_DATABASE_URL": f"sqlite:///{tmp_path / 'wattsweep.db'}"})
    result = wattsweep("run", "sweep.yaml", cwd=tmp_path, env=env)
    assert_one_line_error(result, expected)
    assert "hunter2" not in result.stderr
    assert not (tmp_path / "wattsweep.db").exists()


@pytest.mark.parametrize("interval", ["0", "-1", "nan", "inf"])
def test_reconcile_interval_is_checked_before_anything_else(tmp_path, interval):
    result = wattsweep("reconcile", "--watch", "--interval", interval, cwd=tmp_path)
    assert_one_line_error(result, f"--interval {interval}: seconds between passes, from 0.1 to 86400")
    assert not (tmp_path / "wattsweep.db").exists()


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


# CodeCarbon CSVs: `wattsweep import codecarbon`.
CSV_HEADER = ("timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
              "cpu_energy,gpu_energy,ram_energy,energy_consumed,country_iso_code,codecarbon_version,cpu_count,"
              "cpu_model,gpu_count,gpu_model,ram_total_size,tracking_mode")
CSV_ROW = ("2023-10-12T15:22:11,bert,7c1e,12.5,0.0002,0.0001,150.0,300.0,70.0,0.0002,0.001,0.0001,0.0013,USA,2.3.1,"
           "96,AMD EPYC,8,8 x NVIDIA A100,1121.0,machine")


def csv_with(column: str | None = None, value: str = "", header: str = CSV_HEADER) -> str:
    row = CSV_ROW.split(",")
    if column is not None:
        row[CSV_HEADER.split(",").index(column)] = value
    return header + "\n" + ",".join(row) + "\n"


CSV_CASES = {
    "200,000-character field": (csv_with("cpu_model", "x" * 200_000), [],
                                "line 2: not a readable CSV row: field larger than field limit (131072)"),
    "year 0001": (csv_with("timestamp", "0001-01-01T00:00:05"), [],
                  "line 2, column 1 (timestamp): year 1 is outside 2000-2099"),
    "duration 1e300": (csv_with("duration", "1e300"), [],
                       "line 2, column 4 (duration): 1e300 is out of range; the limit is 3.16224e+07"),
    "cpu_count 1e12": (csv_with("cpu_count", "1e12"), [],
                       "line 2, column 16 (cpu_count): 1e12 is out of range; the limit is 1e+06"),
    "empty --model without project_name": (csv_with(header=CSV_HEADER.replace("project_name", "project")),
                                           ["--model", ""], "--model '': empty"),
    "ambiguous day and month": (csv_with("timestamp", "03/04/2024 10:00"), [],
                                "line 2, column 1 (timestamp): '03/04/2024 10:00' is ambiguous"),
    "300-character --sweep": (csv_with(), ["--sweep", "s" * 300], "--sweep 'ssss"),
    # Issue 23: rows no machine could have written.
    "negative power": (csv_with("cpu_power", "-150"), [], "line 2, column 7 (cpu_power): negative cpu_power -150"),
    "1,000 kWh in 12.5 s": (csv_with("gpu_energy", "1000"), [],
                            "line 2, column 11 (gpu_energy): 1000 kWh in 12.5 s is 288,000,000 W on average"),
    "total below its parts": (csv_with("energy_consumed", "0.001"), [],
                              "line 2, column 13 (energy_consumed): 0.001 kWh is less than cpu_energy + gpu_energy "
                              "+ ram_energy = 0.0013 kWh"),
    "energy in no time": (csv_with("duration", "0"), [], "(energy_consumed): 0.0013 kWh in a window of 0 s"),
    "a window ending in the future": (csv_with("timestamp", "2098-01-01T00:00:00"), [],
                                      "line 2, column 1 (timestamp): 2098-01-01 00:00 UTC is in the future"),
    "a megawatt GPU": (csv_with("gpu_power", "1000000"), [], "(gpu_power): 1e+06 W; no machine one tracker reads"),
    "a column given twice": (csv_with(header=CSV_HEADER.replace("cpu_model", "duration")), [],
                             "line 1: column 'duration' appears 2 times"),
}


@pytest.mark.parametrize("case", CSV_CASES)
def test_bad_codecarbon_file(case, tmp_path):
    content, options, expected = CSV_CASES[case]
    (tmp_path / "emissions.csv").write_text(content)
    result = wattsweep("import", "codecarbon", "emissions.csv", "--task", "fill-mask", *options, cwd=tmp_path)
    assert_one_line_error(result, expected)
    assert "nothing imported" in result.stderr
    assert not (tmp_path / "wattsweep.db").exists()


def test_good_codecarbon_file_imports(tmp_path):
    # The same file as above, undamaged, with a spreadsheet's timestamp: the failures above are the damage.
    (tmp_path / "emissions.csv").write_text(csv_with("timestamp", "2023-10-12 9:05:11.5 +02:00"))
    result = wattsweep("import", "codecarbon", "emissions.csv", "--task", "fill-mask", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with session_factory(f"sqlite:///{tmp_path / 'wattsweep.db'}")() as session:
        ended = session.scalars(select(Measurement.ended_at)).one()
    assert ended.replace(tzinfo=UTC) == datetime(2023, 10, 12, 7, 5, 11, 500000, tzinfo=UTC)
