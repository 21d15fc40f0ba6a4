"""Audio queries: decode a sound file to float32 mono samples, resampled to the rate a model reads.

`datasets` 4 decodes audio columns with torchcodec, whose PyPI wheel needs a
CUDA build of torch (it cannot load beside the CPU torch of development and
CI machines). So audio is read as `datasets` 3 did, the same on every worker:
libsndfile (the `soundfile` package, which bundles it: WAV, FLAC, OGG, MP3,
...), channels averaged to mono, then polyphase resampling (scipy) to the
target rate. A file that cannot be decoded is an error naming the file and
libsndfile's reason; the run fails rather than measuring fewer queries.

Module level stays light: numpy, soundfile and scipy load inside functions.
"""

from __future__ import annotations

import io
import math
from typing import Any

from worker.errors import DatasetLoadError

TARGET_RATE_HZ = 16_000  # what Whisper and wav2vec2-style feature extractors read


def resample(samples: Any, from_hz: int, to_hz: int) -> Any:
    """float32 samples at `from_hz` -> `to_hz` (polyphase, scipy); unchanged when the rates agree."""
    import numpy as np

    if int(from_hz) == int(to_hz):
        return np.asarray(samples, dtype=np.float32)
    from scipy.signal import resample_poly

    divisor = math.gcd(int(from_hz), int(to_hz))
    return resample_poly(samples, int(to_hz) // divisor, int(from_hz) // divisor).astype(np.float32)


def decode_audio(value: Any, where: str, rate_hz: int = TARGET_RATE_HZ) -> dict[str, Any]:
    """A row's audio ({"bytes", "path"} as `datasets` stores it undecoded, {"array", "sampling_rate"}, or a path)
    as {"array": float32 mono, "sampling_rate": rate_hz, "path": ...}; DatasetLoadError naming the file if not."""
    import numpy as np

    if isinstance(value, dict) and value.get("array") is not None:
        samples = np.asarray(value["array"], dtype=np.float32)
        samples = samples.mean(axis=0) if samples.ndim > 1 else samples
        return {"array": resample(samples, value.get("sampling_rate") or rate_hz, rate_hz),
                "sampling_rate": rate_hz, "path": value.get("path")}
    path = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None
    data = value.get("bytes") if isinstance(value, dict) else None
    if not data and not path:
        raise DatasetLoadError(f"{where}: expected audio (bytes or a file path), got {type(value).__name__}")
    import soundfile

    try:
        samples, rate = soundfile.read(io.BytesIO(data) if data else path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError, TypeError) as error:  # soundfile.LibsndfileError is a RuntimeError
        reason = " ".join(str(error).split()) or type(error).__name__
        raise DatasetLoadError(f"{where}: cannot decode audio file {path or '(inline bytes)'!r}: {reason}") from error
    if samples.shape[0] == 0:
        raise DatasetLoadError(f"{where}: audio file {path or '(inline bytes)'!r} holds no samples")
    return {"array": resample(samples.mean(axis=1), rate, rate_hz), "sampling_rate": rate_hz, "path": path}


def duration_s(audio: dict[str, Any]) -> float:
    return len(audio["array"]) / float(audio["sampling_rate"])
