"""Durations as people read them ("35 h 22 min"), for `status` and `plan --workers`; imports nothing heavy."""

from __future__ import annotations


def duration(delta) -> str:
    """Seconds (or a timedelta) as `2 h 05 min`, `3 min 07 s` or `42 s`."""
    seconds = int(max(delta if isinstance(delta, (int, float)) else delta.total_seconds(), 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"
