"""CodeCarbon's warnings, captured per window and named as flags, instead of silenced.

CodeCarbon reports its fallbacks only in its log: the world-average carbon
intensity for a country it has no data for, a region it ignores, a generic
TDP for a CPU it does not know. The meter records every warning (and error)
CodeCarbon logs while a window is open, keeps their text with the window,
and turns the ones it knows into short flags; an unknown one still counts
as `codecarbon-warning`, so nothing passes unseen.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

LOGGER = "codecarbon"
# Known messages -> flag. Checked in order; the first match names the message.
KNOWN = [
    (re.compile(r"using world average|Does not support country", re.I), "carbon-world-average"),
    (re.compile(r"Region: .* not found|Regional emissions retrieval failed|Falling back on country emissions", re.I),
     "region-ignored"),
    (re.compile(r"we don't know it|unable to detect your CPU|default power consumption|Failed to match CPU TDP",
                re.I), "cpu-generic-tdp"),
    (re.compile(r"didn't run for a long period", re.I), "codecarbon-scheduler-late"),
    (re.compile(r"GPU .* not found or invalid|out of range \[0", re.I), "gpu-id-ignored"),
    # NVML refuses utilisation on a MIG-enabled GPU: said each second for a worker on a MIG slice (its own GPU);
    # the energy is unaffected (the window is flagged gpu-shared-mig anyway), only the utilisation is missing.
    (re.compile(r"Failed to retrieve gpu utilization", re.I), "gpu-utilization-unavailable"),
]
# Said at every tracker's creation or set-up, about choices the meter makes on purpose and records otherwise.
EXPECTED = [
    re.compile(r"Multiple instances of codecarbon are allowed", re.I),
    re.compile(r"No CPU tracking mode found", re.I),  # the CPU method is stored: cpu-load-estimate
    re.compile(r"You have \d+ GPUs but we will monitor only", re.I),  # a pinned worker meters its GPU only
]
MAX_KEPT_CHARS = 2000


class Capture(logging.Handler):
    """Collects CodeCarbon's WARNING and ERROR records while installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._lock_messages = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = " ".join(record.getMessage().split())
        except Exception:  # a malformed record must not break a window
            message = str(record.msg)
        if any(pattern.search(message) for pattern in EXPECTED):
            return
        with self._lock_messages:
            self.messages.append(message)

    def take(self) -> list[str]:
        with self._lock_messages:
            messages, self.messages = self.messages, []
        return messages


def install() -> Capture:
    """A capture handler on CodeCarbon's logger, which is made to pass warnings on (not silenced to ERROR).

    CodeCarbon's own console handler prints errors only: its warnings are the
    window's flags and stored text, and the meter logs each distinct one once.
    """
    logger = logging.getLogger(LOGGER)
    if logger.getEffectiveLevel() > logging.WARNING:
        logger.setLevel(logging.WARNING)
    quiet_console()
    capture = Capture()
    logger.addHandler(capture)
    return capture


def quiet_console() -> None:
    """CodeCarbon's console handler (which each new tracker replaces) prints errors only."""
    for handler in logging.getLogger(LOGGER).handlers:
        if type(handler) is logging.StreamHandler and handler.level < logging.ERROR:
            handler.setLevel(logging.ERROR)


def uninstall(capture: Capture) -> None:
    logging.getLogger(LOGGER).removeHandler(capture)


@contextmanager
def captured() -> Iterator[Capture]:
    capture = install()
    try:
        yield capture
    finally:
        uninstall(capture)


def flags_of(messages: list[str]) -> list[str]:
    """Flags for CodeCarbon's messages, each once, in the order first seen."""
    flags: list[str] = []
    for message in messages:
        flag = next((name for pattern, name in KNOWN if pattern.search(message)), "codecarbon-warning")
        if flag not in flags:
            flags.append(flag)
    return flags


def kept_text(messages: list[str]) -> str | None:
    """The messages, each once, joined for storage (bounded)."""
    unique = list(dict.fromkeys(messages))
    if not unique:
        return None
    text = " | ".join(unique)
    return text if len(text) <= MAX_KEPT_CHARS else text[: MAX_KEPT_CHARS - 3] + "..."
