"""CodeCarbon timestamps as people and spreadsheets write them: every unambiguous form reads, the rest is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from scheduler.importer import parse_timestamp

NOON = datetime(2024, 3, 5, 12, 7, 9, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-03-05T12:07:09", NOON),  # CodeCarbon's own (no zone: UTC)
    ("2024-03-05 12:07:09", NOON),  # a space instead of T
    ("2024-03-05T12:07:09Z", NOON),
    ("2024-03-05T12:07:09+00:00", NOON),
    ("2024-03-05 14:07:09+02:00", NOON),
    ("2024-03-05 14:07:09 +0200", NOON),
    ("2024-03-05T07:07:09-05", NOON),
    ("2024-03-05 12:07:09 UTC", NOON),
    ("2024-03-05T12:07:09.123456", NOON.replace(microsecond=123456)),
    ("2024-03-05T12:07:09.123456789", NOON.replace(microsecond=123456)),  # nanoseconds: cut to microseconds
    ("2024-03-05 12:07:09,5", NOON.replace(microsecond=500000)),  # a decimal comma
    ("2024-3-5 9:07:09", NOON.replace(hour=9)),  # a spreadsheet: no leading zeros
    ("2024-03-05 9:07", NOON.replace(hour=9, second=0)),  # and no seconds
    ("2024-03-05 12:07:09 PM", NOON),
    ("2024-03-05 9:07:09 pm", NOON.replace(hour=21)),
    ("2024-03-05 12:07:09 AM", NOON.replace(hour=0)),
    ("2024/03/05 12:07:09", NOON),  # year first: unambiguous
    ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
])
def test_unambiguous_timestamps_read(text, expected):
    assert parse_timestamp(text) == expected


def test_zone_is_kept_as_an_offset():
    assert parse_timestamp("2024-03-05T12:07:09+05:30").utcoffset() == timedelta(hours=5, minutes=30)
    assert parse_timestamp("2024-03-05T12:07:09+05:30").tzinfo == timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize("text", [
    "2024-02-30 10:00:00",  # no such day
    "2024-03-05 25:00:00",
    "2024-03-05 13:00 PM",
    "2024-03-05T12:07:09+24:00",
    "yesterday",
    "12:07:09",
    "1709640429",  # a Unix time: seconds or milliseconds? refused
])
def test_impossible_or_unreadable_timestamps_are_refused(text):
    with pytest.raises(ValueError):
        parse_timestamp(text)
