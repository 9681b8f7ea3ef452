"""Conversion: TFLite export per format, export-rule inspection, model cards, verification.

`tflite_graph` and `edgetpu` read .tflite files with the flatbuffer schema only (no TensorFlow);
`export`, `qat` and `converter` (which verifies each file against the float model) need the
training extra.

The public API: `from fcnedge.convert import convert, ConvertOptions, QatConfig, Format`;
`options` holds every option, TensorFlow-free.
"""
from __future__ import annotations

from fcnedge.runtime.lazy import lazy_exports

# The public names, each from the submodule that defines it, imported on first use.
_EXPORTS = {
    "convert": "converter",
    "ConvertOptions": "options",
    "QatConfig": "options",
    "Format": "options",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
