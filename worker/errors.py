"""The loaders' errors, which `execute_job` tells apart from a failing workload.

Each message says what is wrong and how to fix it. Below every loader, so that
`worker.data.datasets` and `worker.data.hf_datasets` (or `worker.models.loading` and
`worker.models.hub`) need not import each other to share one.
"""


class ModelLoadError(RuntimeError):
    """A model reference that cannot be loaded for a task; the message names the fix."""


class CannotLoadHere(ModelLoadError):
    """A model this worker can never run, whatever the attempt: weights larger than its GPUs' free memory, or a
    quantization its hardware or installed packages cannot run. The job fails once, not on every worker in turn."""


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


# What a CUDA context says once it is dead: every later call on it fails the same way, whatever the unit.
_DEAD_CONTEXT_SIGNS = ("device-side assert triggered", "illegal memory access", "unspecified launch failure",
                       "misaligned address", "an illegal instruction")


def is_device_lost(error: BaseException) -> bool:
    """Whether `error` left the accelerator's context unusable (only a fresh process gets a new one).

    torch raises `torch.AcceleratorError` for a device-side error (an assert in `torch.multinomial` on NaN
    probabilities, an illegal memory access); out of memory is not one: that context still works. Read by name,
    so that this module stays light (no torch import)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if "OutOfMemoryError" in names or "out of memory" in str(error):
        return False
    return "AcceleratorError" in names or any(sign in str(error) for sign in _DEAD_CONTEXT_SIGNS)
