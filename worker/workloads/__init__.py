"""The workload registry: task name -> workload, discovered from the modules of this package.

Every module here except `base` and private (`_`) helpers defines a module-level
`WORKLOAD`, so adding a task means adding one file. Importing the registry is
light (no torch, transformers or diffusers): the scheduler uses it to validate
sweep files.
"""

from __future__ import annotations

import importlib
import pkgutil

from worker.workloads.base import Workload, WorkUnits

__all__ = ["WORKLOADS", "Workload", "WorkUnits", "get_workload"]


def _discover() -> dict[str, Workload]:
    found: dict[str, Workload] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name == "base" or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        workload = getattr(module, "WORKLOAD", None)
        if workload is None:
            raise ImportError(f"workload module {module.__name__} defines no module-level WORKLOAD")
        if workload.task in found:
            raise ImportError(f"two workload modules claim task {workload.task!r}")
        found[workload.task] = workload
    return dict(sorted(found.items()))


WORKLOADS: dict[str, Workload] = _discover()


def get_workload(task: str) -> Workload:
    """The workload for `task`; KeyError naming the allowed tasks otherwise."""
    try:
        return WORKLOADS[task]
    except KeyError:
        raise KeyError(f"unknown task {task!r}: allowed are {', '.join(WORKLOADS)}") from None
