"""The loaders' errors, which `execute_job` tells apart from a failing workload.

Each message says what is wrong and how to fix it. Below every loader, so that
`worker.data.datasets` and `worker.data.hf_datasets` (or `worker.models.loading` and
`worker.models.hub`) need not import each other to share one.
"""


class ModelLoadError(RuntimeError):
    """A model reference that cannot be loaded for a task; the message names the fix."""


class DatasetLoadError(RuntimeError):
    """A dataset that cannot be read; the message says what is wrong and how to fix it."""


def error_text(error: BaseException, limit: int = 2000) -> str:
    """`Type: message` on one line for `jobs.last_error`, which readers see: a database error keeps the driver's
    message and drops SQLAlchemy's echo of the statement and its parameters (they may hold anyone's data)."""
    orig = getattr(error, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the driver's exception
    message = str(orig if orig is not None else error)
    for marker in ("[SQL:", "[parameters:", "(Background on this error"):
        message = message.split(marker)[0]
    message = " ".join(message.split())
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
