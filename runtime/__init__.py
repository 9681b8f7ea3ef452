"""TensorFlow-free runtime: labels, preprocessing, metrics and the TFLite streaming pipeline.

Nothing under fcnedge.runtime may import TensorFlow or Keras: it is what ships to the device.

The public API: `from fcnedge.runtime import Segmenter, SegmenterOptions, Segmentation,
Delegate, InputError` (and LabelSet, CAMVID, dataset_labels).
"""
from __future__ import annotations

import importlib

# The public names, each from the module that defines it; imported on first use, so importing
# the package costs nothing and pulls in no dependency of a module the caller never touches.
_EXPORTS = {
    "Segmenter": "segmenter",
    "SegmenterOptions": "segmenter",
    "Segmentation": "segmenter",
    "Delegate": "interpreter",
    "InputError": "errors",
    "LabelSet": "labels",
    "CAMVID": "labels",
    "dataset_labels": "labels",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value
