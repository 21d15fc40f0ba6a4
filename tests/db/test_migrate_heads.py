"""db.migrate reads the committed head from the revision files' text (the CLI's schema check must not import
every revision): it must name what alembic's ScriptDirectory names."""

from alembic.script import ScriptDirectory

from db.migrate import alembic_config, committed_heads, is_up_to_date, upgrade


def test_committed_heads_are_alembics():
    assert committed_heads() == set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())
    assert len(committed_heads()) == 1


def test_up_to_date_only_at_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    assert not is_up_to_date(url)  # no schema
    head = committed_heads().pop()
    previous = ScriptDirectory.from_config(alembic_config(url)).get_revision(head).down_revision
    upgrade(url, previous)
    assert not is_up_to_date(url)  # one revision behind
    upgrade(url)
    assert is_up_to_date(url)
