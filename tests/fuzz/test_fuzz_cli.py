"""Property-based fuzzing of the real CLI commands (hypothesis): sweep files through `submit`, CodeCarbon CSVs
through `import codecarbon`, valid and corrupted. Whatever the input: no traceback, exit status 0 or 2, and on
exit 2 the database is exactly as it was. Bounded in CI (profile `ci`); `make fuzz` runs many more.

In-process (Typer's CliRunner) rather than a subprocess per example, so that hundreds of examples take
seconds: any exception that escapes a command is a traceback a user would have seen.
"""

from __future__ import annotations

import hashlib
import string

import pytest
import redis
import yaml
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import MetaData, create_engine, select
from typer.testing import CliRunner

from db.migrate import upgrade
from scheduler.cli import app
from tests.distributed.conftest import LOCK_KEY, REDIS_URL

runner = CliRunner()

TINY = {"fill-mask": "bert", "text-classification": "bert", "token-classification": "bert",
        "question-answering": "bert", "text-generation": "gpt2", "summarization": "t5",
        "image-classification": "vit"}
BUILTIN = {"fill-mask": "texts", "text-classification": "reviews", "token-classification": "texts",
           "question-answering": "squad-like", "text-generation": "prompts", "summarization": "news",
           "image-classification": "shapes"}
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
ODD_VALUES = st.one_of(
    TEXT, st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(), st.none(), st.lists(st.integers(), max_size=3), st.dictionaries(TEXT, st.integers(), max_size=2),
    st.just("x" * 5000), st.just("[" * 500), st.just("\x00"), st.just("hub:" + "a/" * 200),
)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'wattsweep.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def broker():
    """A Redis database of our own (as the distributed tests take one), flushed afterwards."""
    for number in range(1, 16):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0 and client.set(LOCK_KEY, "fuzz", nx=True, ex=1800):
            yield f"{REDIS_URL}/{number}"
            client.flushdb()
            client.close()
            return
        client.close()
    pytest.skip("no free Redis database (1-15)")


def fingerprint(url: str) -> str:
    """A digest of every row of every table: equal digests, unchanged database."""
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    digest = hashlib.sha256()
    with engine.connect() as connection:
        for table in sorted(metadata.tables.values(), key=lambda t: t.name):
            for row in connection.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
    engine.dispose()
    return digest.hexdigest()


def assert_clean_outcome(result, before: str, url: str) -> None:
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback: {result.exception!r}\n{result.output}") from result.exception
    assert result.exit_code in (0, 2), (result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert fingerprint(url) == before, "exit 2 but the database changed"


# --- sweep files ------------------------------------------------------------------------------------------------

@st.composite
def valid_sweeps(draw) -> dict:
    tasks = draw(st.lists(st.sampled_from(sorted(TINY)), min_size=1, max_size=3, unique=True))
    sweep = {
        "name": draw(st.text(alphabet=string.ascii_letters + string.digits + " -_.é", min_size=1, max_size=60)),
        "hardware_class": draw(st.from_regex(r"\Afuzz-[a-z0-9]{1,20}\Z")),
        "defaults": {"queries": draw(st.integers(1, 1000)), "repetitions": draw(st.integers(1, 5)),
                     "batch_size": draw(st.integers(1, 64)), "warmup": draw(st.integers(0, 20))},
        "carbon": draw(st.one_of(
            st.builds(lambda g: {"grid_intensity_g_per_kwh": g}, st.floats(0.5, 2000)),
            st.sampled_from([{"country_iso_code": "USA"}, {"country_iso_code": "USA", "region": "texas"}]))),
        "tasks": {task: {"models": [f"tiny:{TINY[task]}"], "datasets": [f"builtin:{BUILTIN[task]}"]} for task in tasks},
    }
    if "fill-mask" in tasks and draw(st.booleans()):
        sweep["tasks"]["fill-mask"]["params"] = {"top_k": draw(st.integers(1, 10)),
                                                 "dtype": draw(st.sampled_from(["float32", "float16", None]))}
    return sweep


def paths_of(value, prefix=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield from paths_of(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from paths_of(child, (*prefix, i))
    yield prefix


@st.composite
def corrupted_sweeps(draw) -> bytes:
    sweep = draw(valid_sweeps())
    kind = draw(st.sampled_from(["value", "drop", "add", "bytes", "truncate", "text"]))
    paths = [p for p in paths_of(sweep) if p]
    if kind in ("value", "drop", "add"):
        path = draw(st.sampled_from(paths))
        parent = sweep
        for part in path[:-1]:
            parent = parent[part]
        if kind == "value":
            parent[path[-1]] = draw(ODD_VALUES)
        elif kind == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = draw(ODD_VALUES)
        return yaml.safe_dump(sweep, allow_unicode=True).encode()
    raw = yaml.safe_dump(sweep, allow_unicode=True).encode()
    if kind == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    at = draw(st.integers(0, len(raw)))
    if kind == "bytes":
        return raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return raw[:at] + draw(TEXT).encode() + raw[at:]


@given(content=st.one_of(valid_sweeps().map(lambda s: yaml.safe_dump(s, allow_unicode=True).encode()),
                         corrupted_sweeps()))
def test_submit_never_tracebacks_and_exit_2_writes_nothing(content, database, broker, tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "sweep.yaml"
    path.write_bytes(content)
    before = fingerprint(database)
    result = runner.invoke(app, ["submit", str(path), "--database-url", database, "--broker-url", broker])
    assert_clean_outcome(result, before, database)


# --- CodeCarbon CSVs --------------------------------------------------------------------------------------------

COLUMNS = ["timestamp", "project_name", "run_id", "duration", "emissions", "emissions_rate", "cpu_power",
           "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "country_iso_code",
           "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "ram_total_size",
           "tracking_mode", "task_name"]
NUMBER = st.floats(0, 1e4).map(lambda x: f"{x:.6g}")


@st.composite
def valid_rows(draw) -> dict:
    return {
        "timestamp": draw(st.sampled_from(["2024-03-05T12:07:09", "2024-03-05 9:07:09", "2024-03-05T12:07:09Z",
                                           "2024-03-05 12:07:09.123+02:00", ""])),
        "project_name": draw(st.sampled_from(["bert", "gpt2", "org/model-x"])),
        "run_id": "r1", "duration": draw(NUMBER), "emissions": draw(NUMBER), "emissions_rate": draw(NUMBER),
        "cpu_power": draw(NUMBER), "gpu_power": draw(NUMBER), "ram_power": draw(NUMBER), "cpu_energy": draw(NUMBER),
        "gpu_energy": draw(NUMBER), "ram_energy": draw(NUMBER), "energy_consumed": draw(NUMBER),
        "country_iso_code": "USA", "codecarbon_version": "2.3.1", "cpu_count": str(draw(st.integers(1, 256))),
        "cpu_model": "AMD EPYC", "gpu_count": str(draw(st.integers(0, 8))), "gpu_model": "1 x NVIDIA A100",
        "ram_total_size": draw(NUMBER), "tracking_mode": "machine",
        "task_name": draw(st.sampled_from(["load model", "query model", "query model_1f2e"])),
    }


def to_csv(header: list[str], rows: list[dict]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow([row.get(column, "") for column in header])
    return out.getvalue()


@st.composite
def codecarbon_files(draw) -> bytes:
    header = list(COLUMNS)
    rows = draw(st.lists(valid_rows(), min_size=1, max_size=5))
    kind = draw(st.sampled_from(["valid", "valid", "cell", "column", "bytes", "truncate", "fields"]))
    if kind == "cell":
        row, column = draw(st.sampled_from(rows)), draw(st.sampled_from(COLUMNS))
        row[column] = draw(st.one_of(TEXT, st.sampled_from(
            ["nan", "inf", "-1", "1e300", "1e12", "0001-01-01T00:00:00", "03/04/2024 10:00", "x" * 200_000, "",
             "2024-02-30 10:00", "\x00"]), st.floats().map(repr)))
    elif kind == "column":
        header.remove(draw(st.sampled_from(COLUMNS)))
    text = to_csv(header, rows)
    raw = text.encode("utf-8", errors="surrogatepass") if kind != "bytes" else text.encode()
    if kind == "fields":
        raw += b"a,b\n"
    if kind == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    if kind == "bytes":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:]
    return raw


@given(content=codecarbon_files(), model=st.one_of(st.none(), st.just(""), TEXT))
def test_import_never_tracebacks_and_exit_2_writes_nothing(content, model, database, tmp_path_factory):
    path = tmp_path_factory.mktemp("csv") / "emissions.csv"
    path.write_bytes(content)
    before = fingerprint(database)
    options = ["--model", model] if model is not None else []
    result = runner.invoke(app, ["import", "codecarbon", str(path), "--task", "fill-mask", "--queries", "10",
                                 *options, "--database-url", database])
    assert_clean_outcome(result, before, database)
