"""The machine a benchmark ran on, as its report's header: CPU, int8 instructions, libraries."""
from __future__ import annotations

import datetime
import os
import platform
from importlib import metadata
from pathlib import Path

from fcnedge.runtime.interpreter import default_threads

LIBRARIES = ("numpy", "opencv-python", "ai-edge-litert", "tflite-runtime", "tensorflow",
             "tf-keras", "tensorflow-model-optimization")


def int8_instructions() -> list[str]:
    """The CPU's int8 dot-product extensions, which decide whether int8 beats float32 here.

    XNNPACK's int8 kernels gain most from VNNI (x86) or dot-product/i8mm (Arm); without them
    an int8 multiply-add costs about what a float32 FMA does.
    """
    wanted = {"avx512_vnni", "avx_vnni", "avx512f", "avx2", "amx_int8", "asimddp", "i8mm"}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return sorted(wanted & set(line.split(":", 1)[1].split()))
    except OSError:
        pass
    return []


def machine_header(options) -> dict:
    """Where and how a bench ran: CPU, its int8 extensions, threads, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu, "cores": os.cpu_count(), "cpu_int8_features": int8_instructions(),
            "threads": options.threads or default_threads(),
            "stream": options.stream,
            "stream_threads": (options.stream_threads or default_threads(reserve=1))
            if options.stream else None,
            "delegate": options.delegate, "python": platform.python_version(),
            "libraries": versions, "split": options.split, "data": options.data,
            "runs": options.runs, "warmup": options.warmup}
