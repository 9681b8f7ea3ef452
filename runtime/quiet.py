"""Keeping native libraries' start-up chatter off the user's terminal.

TensorFlow, absl, oneDNN, CUDA stubs, LiteRT ("Created TensorFlow Lite XNNPACK delegate") and
FFmpeg write straight to file descriptor 2 from C++, below Python's logging, so no log level set
from Python reaches all of them. The command line therefore points descriptor 2 at /dev/null and
gives Python's `sys.stderr` a descriptor of its own on the real terminal: every message fcnedge
prints still shows, the libraries' own lines do not (`--verbose` keeps them).
"""
from __future__ import annotations

import os
import sys


def silence_native_stderr() -> None:
    """Sends what C/C++ code writes to descriptor 2 to /dev/null; Python's stderr stays."""
    sys.stderr.flush()
    terminal = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")


def child_stderr():
    """What a child process should get as its stderr so that its Python messages reach the
    user: Python's stderr where it is a real file (after silence_native_stderr it is not
    descriptor 2), else None (inherit)."""
    try:
        return sys.stderr if sys.stderr.fileno() != 2 else None
    except (AttributeError, OSError, ValueError):   # a test's capture object has no descriptor
        return None
