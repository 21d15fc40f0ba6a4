"""What a failed job stores in `last_error` (shown to readers): the message, never the SQL or its parameters."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from worker.errors import error_text


def test_database_errors_keep_the_message_and_drop_the_parameters():
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)"))
        connection.execute(text("INSERT INTO t VALUES (1, 'x')"))
    with pytest.raises(IntegrityError) as caught, engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (:id, :secret)"), {"id": 1, "secret": "hunter2-password"})
    assert "hunter2" in str(caught.value)  # what SQLAlchemy would have stored
    stored = error_text(caught.value)
    assert stored == "IntegrityError: UNIQUE constraint failed: t.id"
    assert "hunter2" not in stored and "INSERT" not in stored


def test_other_errors_are_one_line_and_bounded():
    stored = error_text(RuntimeError("line one\nline two " + "x" * 5000))
    assert "\n" not in stored and stored.startswith("RuntimeError: line one line two") and len(stored) == 2000
