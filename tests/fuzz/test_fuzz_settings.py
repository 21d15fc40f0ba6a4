"""Property-based fuzzing of what a user gives besides files (issue 23): WATTSWEEP_ environment variables, the
database and broker URLs, CLI options, and imported CodeCarbon rows judged as physics. Whatever the input: a
Settings object whose values are usable, or one line naming the variable (and never a password); exit 0 or 2;
and nothing imported that no machine could have measured."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from db.migrate import upgrade
from db.models import Measurement
from db.settings import ENV_PREFIX, Settings, SettingsError, make_settings
from scheduler.cli import app
from scheduler.import_physics import MAX_POWER_W
from tests.fuzz.test_fuzz_cli import TEXT, assert_clean_outcome, fingerprint, to_csv, valid_rows
from worker.contract.celery_app import queue_name_problem

runner = CliRunner()
FIELDS = sorted(name for name in Settings.model_fields if name not in ("database_url", "broker_url"))
ODD = st.one_of(TEXT, st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e308", "1e-320", "true", "maybe", "", " ",
                                       "1_000", "0x10", "12abc", "\x00", "a\nb", "gpu0@evil", "x" * 500]),
                st.floats().map(repr), st.integers(-(2**64), 2**64).map(str))


@given(field=st.sampled_from(FIELDS), value=ODD)
def test_any_environment_value_is_usable_or_one_line_naming_it(field, value):
    variable = ENV_PREFIX + field.upper()
    with pytest.MonkeyPatch.context() as patch:  # per example (a function-scoped fixture would be shared)
        for name in FIELDS:
            patch.delenv(ENV_PREFIX + name.upper(), raising=False)
        if "\x00" in value:  # the environment itself cannot hold a NUL: it reaches us as a value, not a variable
            return
        patch.setenv(variable, value)
        try:
            settings = make_settings()
        except SettingsError as error:
            message = str(error)
            assert message.startswith(f"{variable}=") and "\n" not in message, message
            return
    got = getattr(settings, field)
    if isinstance(got, float):
        assert math.isfinite(got), (variable, value, got)
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        assert got >= 0, (variable, value, got)  # no setting of ours means anything below zero


URL_PARTS = st.tuples(
    st.sampled_from(["postgresql", "postgres", "postgresql+psycopg", "sqlite", "redis", "rediss", "mysql", "http",
                     "", "POSTGRESQL"]),
    st.sampled_from(["://", ":/", ":", "///"]),
    st.one_of(st.just(""), st.from_regex(r"\A[a-z_]{1,8}(:[A-Za-z0-9%@:/]{0,12})?@\Z")),
    st.one_of(st.sampled_from(["127.0.0.1", "db", "[::1]", "", "host name", "h\nx", "[bad"]), TEXT),
    st.one_of(st.just(""), st.integers(-5, 70000).map(lambda p: f":{p}"), st.just(":abc")),
    st.one_of(st.just(""), st.integers(-1, 40).map(lambda n: f"/{n}"), st.just("/wattsweep"),
              TEXT.map(lambda t: "/" + t)),
)


@given(parts=URL_PARTS, which=st.sampled_from(["database_url", "broker_url"]))
def test_any_url_is_usable_or_one_line_without_its_password(parts, which):
    url = "".join(parts)
    if "\x00" in url:
        return
    try:
        settings = make_settings(**{which: url})
    except SettingsError as error:
        message = str(error)
        assert "\n" not in message and message.startswith(f"{ENV_PREFIX}{which.upper()}=")
        userinfo = parts[2]
        if ":" in userinfo.rstrip("@") and len(userinfo.split(":", 1)[1].rstrip("@")) >= 4:
            assert userinfo.split(":", 1)[1].rstrip("@") not in message.split("=", 1)[1].split("'")[1].split("@")[0]
        return
    accepted = getattr(settings, which)
    if which == "database_url":
        from sqlalchemy.engine import make_url

        make_url(accepted)  # what the engine will parse: never an error later, far from where it was given
    else:
        import redis

        redis.Redis.from_url(accepted).close()  # builds the pool without connecting


@given(node=st.one_of(TEXT, st.from_regex(r"\A[a-z0-9_-]{1,45}\Z")), connections=st.integers(-5, 2000))
def test_add_node_options_are_usable_or_exit_2(node, connections):
    result = runner.invoke(app, ["db", "add-node", node, "--sql", "--connections", str(connections),
                                 "--database-url", "postgresql://postgres@127.0.0.1/wattsweep"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 0:
        assert '"wattsweep_node_' in result.stdout and "DROP" not in result.stdout.upper().replace("DROP ROLE", "")


@given(name=TEXT)
def test_a_queue_name_is_ascii_and_glob_free_or_refused(name):
    if queue_name_problem(name) is None:
        assert name.isascii() and not set(name) & set("*?[]\\ :@") and name[0].isalnum(), name


# --- imported rows, as physics ------------------------------------------------------------------------------------

@st.composite
def physical_rows(draw) -> dict:
    row = draw(valid_rows())
    for column in ("duration", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "gpu_power"):
        row[column] = draw(st.one_of(st.just(row[column]), st.sampled_from(["0", "1e-9", "1000", "5e4", "1e6"]),
                                     st.floats(0, 1e7).map(lambda x: f"{x:.6g}")))
    if draw(st.booleans()):
        soon = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
        row["timestamp"] = draw(st.sampled_from(["2099-06-01T00:00:00", "2030-01-01 00:00:00", soon]))
    return row


@pytest.fixture(scope="module")
def imports_database(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz-physics') / 'wattsweep.db'}"
    upgrade(url)
    return url


@given(rows=st.lists(physical_rows(), min_size=1, max_size=3))
def test_nothing_imported_is_physically_impossible(rows, imports_database, tmp_path_factory):
    from tests.fuzz.test_fuzz_cli import COLUMNS

    path = tmp_path_factory.mktemp("csv") / "emissions.csv"
    path.write_text(to_csv(COLUMNS, rows))
    before = fingerprint(imports_database)
    result = runner.invoke(app, ["import", "codecarbon", str(path), "--task", "fill-mask", "--queries", "10",
                                 "--database-url", imports_database])
    assert_clean_outcome(result, before, imports_database)
    engine = create_engine(imports_database)
    with engine.connect() as connection:
        windows = connection.execute(select(Measurement)).all()
    engine.dispose()
    for window in windows:
        for energy in (window.energy_kwh, window.cpu_energy_kwh, window.gpu_energy_kwh, window.ram_energy_kwh):
            if energy:
                assert window.duration_s > 0 and energy * 3.6e6 / window.duration_s <= MAX_POWER_W * (1 + 1e-9)
        parts = window.cpu_energy_kwh + window.gpu_energy_kwh + window.ram_energy_kwh
        assert window.energy_kwh >= parts - max(1e-9, 0.01 * parts)
        if window.ended_at is not None:
            assert window.ended_at.replace(tzinfo=UTC) <= datetime.now(UTC) + timedelta(days=1)
