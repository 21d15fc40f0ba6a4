"""migrations/views: every version of every result view is frozen, and revisions find them by name.

A database migrated with a version keeps its SQL (SQLite stores the text as written), so a version must never
change: the hashes below are of the SQL the revisions ran before the views had one source (checked against a
full upgrade and downgrade walk on both databases). A change to a view is a new version, named after the new
revision that creates it, with its hashes added here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from db.results.views import VIEW_COLUMNS
from migrations.views import VERSIONS, definition

# (view, version): (sha256 prefix on Postgres, on SQLite)
FROZEN = {
    ("v_runs", "0007"): ("41d08258bb12dc3a", "56ced1f952e623f2"),
    ("v_runs", "0011"): ("b0e8316a1824c877", "db1845acb4701233"),
    ("v_runs", "0014"): ("e147b1aa2b00e73b", "4b41c4470d4e229d"),
    ("v_runs", "0024"): ("69622798f06ba275", "a648de8be9562c8c"),
    ("v_runs", "0031"): ("48043b81cadd4606", "92cbbfd73d333cfe"),
    ("v_model_summary", "0007"): ("6ce92ed43098d6eb", "94ce9f5a26fcfe05"),
    ("v_model_summary", "0011"): ("14e80abd1dcd87d3", "064f8735a2c59ccb"),
    ("v_model_summary", "0014"): ("0e6360256e7cccd9", "80b7b61fab1c85af"),
    ("v_model_summary", "0021"): ("309f5326c6607efe", "e17a08bbdaab5e09"),
    ("v_model_summary", "0029"): ("01cc4193ad66e6ed", "966deea4c3431391"),
    ("v_task_summary", "0007"): ("8c3f884c9f4bd058", "3b8bccd26f5dee6b"),
    ("v_task_summary", "0014"): ("e49aea6861f772d8", "894032c1fb4b3da0"),
    ("v_task_summary", "0029"): ("821add616ffd1183", "de21f008c3f9e002"),
    ("v_hardware_summary", "0007"): ("1a70931c5321e3dc", "712b4e029d678c01"),
    ("v_hardware_summary", "0014"): ("bb6c1e92c2f1f06c", "a2afe013b4405714"),
    ("v_hardware_summary", "0029"): ("c7a5040f60d3d0cc", "ecb5415c41fb6f33"),
    ("v_sweep_progress", "0007"): ("9f9dac8cc49f065c", "9f9dac8cc49f065c"),
    ("v_sweep_progress", "0014"): ("eaa1150d3f2b66e1", "eaa1150d3f2b66e1"),
    ("v_sweep_progress", "0029"): ("cfe8bc20527c914f", "cfe8bc20527c914f"),
    ("v_model_kind_summary", "0009"): ("d1026cd7157daa35", "d1026cd7157daa35"),
    ("v_model_kind_summary", "0014"): ("c253140f610d548d", "c253140f610d548d"),
    ("v_cell_summary", "0014"): ("69b79f667c366454", "24308e315b615ae7"),
    ("v_cell_summary", "0018"): ("6769093c8285a8f8", "8e7fd466e812908b"),
    ("v_cell_summary", "0029"): ("80d6e2b45cb37b22", "9cf92bfd75f1ed75"),
    ("v_decode", "0016"): ("586138fe6e73a11b", "586138fe6e73a11b"),
    ("v_serving", "0020"): ("910649506e982cc0", "910649506e982cc0"),
    ("v_serving_cells", "0020"): ("de204c4f203ccf2b", "de204c4f203ccf2b"),
    ("v_serving_cells", "0029"): ("0e56a10ac803556c", "0e56a10ac803556c"),
    ("v_cell_summary", "0032"): ("753b2dbc7239e40a", "753b2dbc7239e40a"),
    ("v_hardware_summary", "0032"): ("55b747bb0a76271e", "55b747bb0a76271e"),
    ("v_model_summary", "0032"): ("b48012a070ff3377", "b48012a070ff3377"),
    ("v_sweep_progress", "0032"): ("549174778f359100", "549174778f359100"),
    ("v_task_summary", "0032"): ("b97104c24b90a384", "b97104c24b90a384"),
}
VERSIONS_DIR = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def _sha(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()[:16]


@pytest.mark.parametrize(("view", "version"), sorted(FROZEN))
def test_a_released_version_never_changes(view, version):
    build = VERSIONS[view][version]
    assert (_sha(build("postgresql")), _sha(build("sqlite"))) == FROZEN[(view, version)]


def test_every_version_is_pinned_and_every_view_is_read():
    assert {(view, version) for view, versions in VERSIONS.items() for version in versions} == set(FROZEN)
    assert set(VERSIONS) == set(VIEW_COLUMNS)


def test_a_revision_gets_the_latest_version_at_or_before_it():
    assert definition("v_runs", "0013", "sqlite") == VERSIONS["v_runs"]["0011"]("sqlite")
    assert definition("v_runs", "0019", "postgresql") == VERSIONS["v_runs"]["0014"]("postgresql")
    assert definition("v_model_kind_summary", "0011", "sqlite") == VERSIONS["v_model_kind_summary"]["0009"]("sqlite")
    with pytest.raises(LookupError, match="v_decode does not exist at revision 0015"):
        definition("v_decode", "0015", "sqlite")


def test_no_revision_loads_another_revision_file():
    for path in VERSIONS_DIR.glob("*.py"):
        source = path.read_text()
        assert "spec_from_file_location" not in source and "importlib" not in source, path.name
