"""Tests only: a process whose wall clock is FAKE_CLOCK_OFFSET_S seconds off (faketime-like, this process only).

Put this folder first on PYTHONPATH of one worker process: Python imports `sitecustomize` at start-up. Then
`time.time()` reads the shifted clock everywhere, and `datetime.now()` / `utcnow()` does in wattsweep's own
modules (db, worker, scheduler: the code that could stamp or judge a lease): each gets a `datetime` class
whose clock is shifted, bound when the module is imported. (Replacing `datetime.datetime` for the whole
process would crash C extensions such as pandas, which check the type.) Monotonic clocks are untouched.

FAKE_CLOCK_FILE instead names a file holding the offset in seconds, read again at most every 0.2 s: writing
it steps the running process's clock, as an NTP step would (tests/chaos).
"""

import datetime as _datetime
import importlib.abc
import os
import sys
import time as _time

_OFFSET_S = float(os.environ.get("FAKE_CLOCK_OFFSET_S", "0") or 0)
_OFFSET_FILE = os.environ.get("FAKE_CLOCK_FILE")
_PACKAGES = ("db", "worker", "scheduler")

if _OFFSET_S or _OFFSET_FILE:
    _real_time = _time.time
    _real_datetime = _datetime.datetime
    _read = [float("-inf"), _OFFSET_S]  # when the file was last read (monotonic), the offset it held

    def _offset_s() -> float:
        if _OFFSET_FILE:
            now = _time.monotonic()
            if now - _read[0] >= 0.2:
                _read[0] = now
                try:
                    with open(_OFFSET_FILE) as source:
                        _read[1] = float(source.read().strip() or 0)
                except (OSError, ValueError):
                    pass
        return _read[1]

    class _ShiftedDatetime(_real_datetime):
        __slots__ = ()

        @classmethod
        def now(cls, tz=None):
            return _real_datetime.now(tz) + _datetime.timedelta(seconds=_offset_s())

        @classmethod
        def utcnow(cls):
            return _real_datetime.utcnow() + _datetime.timedelta(seconds=_offset_s())

    _time.time = lambda: _real_time() + _offset_s()

    class _ShiftOnImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] not in _PACKAGES:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    original = spec.loader.exec_module

                    def exec_module(module, original=original):
                        original(module)
                        if module.__dict__.get("datetime") is _real_datetime:
                            module.datetime = _ShiftedDatetime

                    spec.loader.exec_module = exec_module
                    return spec
            return None

    sys.meta_path.insert(0, _ShiftOnImport())
