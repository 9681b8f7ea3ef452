"""Conversion: TFLite export per format, export-rule inspection, model cards, verification.

`tflite_graph` and `edgetpu` read .tflite files with the flatbuffer schema only (no TensorFlow);
`export`, `qat` and `pipeline` (which verifies each file against the float model) need the
training extra.

The public API: `from fcnedge.convert import convert, ConvertOptions, Format`.
"""
from __future__ import annotations

import importlib

# The public names, each from the module that defines it; imported on first use, so importing
# the package costs nothing and pulls in no dependency of a module the caller never touches.
_EXPORTS = {
    "convert": "pipeline",
    "ConvertOptions": "pipeline",
    "Format": "export",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
