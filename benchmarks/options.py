"""Every option of `fcnedge bench` and its default: what the command line and the library share.
Light (no OpenCV, LiteRT or TensorFlow), so the parser reads its defaults here."""
from __future__ import annotations

from dataclasses import dataclass

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.options import Delegate

DELEGATES = tuple(delegate.value for delegate in Delegate)


@dataclass(frozen=True)
class BenchOptions:
    models: tuple[str, ...]
    data: str
    out: str
    split: str = "val"
    runs: int = 50
    warmup: int = 5
    threads: int | None = None
    delegate: str = "cpu"
    device: str | None = None
    delegate_path: str | None = None
    limit: int | None = None
    min_miou: float | None = None
    timeout_s: float = 1800.0
    overwrite: bool = False
    stream: str | None = None            # a video (or image folder) each TFLite row streams
    stream_threads: int | None = None    # None: as `fcnedge run`, all cores but one
    classes: str | None = None           # the data's classes file (default: DATA/classes.json)

    def __post_init__(self):
        if not self.models:
            raise InputError("no models given (expected .tflite files or run folders)", "models")
        if self.runs < 1:
            raise InputError(f"got {self.runs}, expected at least 1", "runs")
        if self.warmup < 0:
            raise InputError(f"got {self.warmup}, expected 0 or more", "warmup")
        if self.delegate not in DELEGATES:
            raise InputError(f"got {self.delegate!r}, expected one of {', '.join(DELEGATES)}",
                             "delegate")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"got {self.threads}, expected at least 1", "threads")
        if self.stream_threads is not None and self.stream_threads < 1:
            raise InputError(f"got {self.stream_threads}, expected at least 1", "stream_threads")


# The flags of the parameters not named after them, for error messages and the report's row
# failures (runtime.errors.flag_message); `fcnedge bench` has no fallback: a row that cannot
# load its delegate fails, and `fcnedge run` is where the fallback is.
BENCH_FLAGS = {"delegate_path": "--gpu-delegate", "timeout_s": "--timeout",
               "fallback_cpu": "`fcnedge run --fallback cpu`"}
