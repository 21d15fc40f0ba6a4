"""The workload registry: task name -> workload, discovered from the modules of this package.

Adding a task = its declaration in worker.contract.tasks (name, input kind,
default params, and a zero-shot form if a multi-purpose model can be prompted
to do it) + one module here. Every module here except `base` and private (`_`)
helpers takes its declaration (`DECLARED = TASKS["<task>"]`) and defines a
module-level `WORKLOAD` that runs it; a task with a zero-shot form also
defines `ZERO_SHOT = ZeroShot(DECLARED.zero_shot)` (see `_zero_shot`),
collected in `ZERO_SHOT_WORKLOADS`. The scheduler validates sweep files with
the declarations alone; a test checks that they and this registry name the
same tasks with the same defaults. Importing the registry is still light (no
torch, transformers or diffusers).
"""

from __future__ import annotations

import importlib
import pkgutil

from worker.workloads.base import WorkDone, Workload

__all__ = ["WORKLOADS", "ZERO_SHOT_WORKLOADS", "Workload", "WorkDone", "get_workload"]


def _discover() -> tuple[dict[str, Workload], dict[str, Workload]]:
    found: dict[str, Workload] = {}
    zero_shot: dict[str, Workload] = {}
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
        prompted = getattr(module, "ZERO_SHOT", None)
        if prompted is not None:
            if prompted.task != workload.task:
                raise ImportError(f"{module.__name__}: ZERO_SHOT is for {prompted.task!r}, "
                                  f"WORKLOAD for {workload.task!r}")
            zero_shot[prompted.task] = prompted
    return dict(sorted(found.items())), dict(sorted(zero_shot.items()))


WORKLOADS, ZERO_SHOT_WORKLOADS = _discover()


def get_workload(task: str, *, multi_purpose: bool = False) -> Workload:
    """The workload for `task` (its zero-shot one for a multi-purpose model); KeyError naming the allowed tasks."""
    registry = ZERO_SHOT_WORKLOADS if multi_purpose else WORKLOADS
    try:
        return registry[task]
    except KeyError:
        if multi_purpose:
            raise KeyError(f"task {task!r} has no zero-shot workload; tasks that do: {', '.join(registry)}") from None
        raise KeyError(f"unknown task {task!r}: allowed are {', '.join(registry)}") from None
