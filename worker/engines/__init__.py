"""The engine registry: engine name -> module-level ENGINE, discovered from the modules of this package.

Every module here except the shared ones (SHARED: the protocol, the process, the load generator, the steady
cut...) defines a module-level `ENGINE`, so adding one is adding one file. The names a sweep may use are also
listed in worker.contract.engines (light: the scheduler reads that list, never this package).
"""

from __future__ import annotations

import importlib
import pkgutil

from worker.engines.base import Endpoint, Engine, MetricNames

__all__ = ["ENGINES", "Endpoint", "Engine", "MetricNames", "get_engine"]


SHARED = {"base", "process", "guard", "load", "records", "sampler", "steady", "metrics", "figures", "served", "unit",
          "sse", "transfers", "lateness"}


def _discover() -> dict[str, Engine]:
    found: dict[str, Engine] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in SHARED:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        engine = getattr(module, "ENGINE", None)
        if engine is None:
            raise ImportError(f"engine module {module.__name__} defines no module-level ENGINE")
        if engine.name in found:
            raise ImportError(f"two engine modules claim engine {engine.name!r}")
        found[engine.name] = engine
    return dict(sorted(found.items()))


ENGINES = _discover()


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}: allowed are {', '.join(ENGINES)}") from None
