"""The loaders' errors, which `execute_job` tells apart from a failing workload.

Each message says what is wrong and how to fix it. Below every loader, so that
`worker.datasets` and `worker.hf_datasets` (or `worker.loading` and
`worker.hub`) need not import each other to share one.
"""


class ModelLoadError(RuntimeError):
    """A model reference that cannot be loaded for a task; the message names the fix."""


class DatasetLoadError(RuntimeError):
    """A dataset that cannot be read; the message says what is wrong and how to fix it."""
