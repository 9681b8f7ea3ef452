"""TensorFlow-free runtime: labels, preprocessing, metrics and the TFLite streaming pipeline.

Nothing under fcnedge.runtime may import TensorFlow or Keras: it is what ships to the device.

The public API: `from fcnedge.runtime import Segmenter, SegmenterOptions, Segmentation,
Delegate, InputError` (and LabelSet, CAMVID, dataset_labels; run_stream, StreamOptions and
StreamResult for what `fcnedge run` does).
"""
from __future__ import annotations

from fcnedge.runtime.lazy import lazy_exports

# The public names, each from the submodule that defines it, imported on first use.
_EXPORTS = {
    "Segmenter": "segmenter",
    "SegmenterOptions": "options",
    "Segmentation": "segmenter",
    "Delegate": "options",
    "InputError": "errors",
    "LabelSet": "labels",
    "CAMVID": "labels",
    "dataset_labels": "labels",
    "run_stream": "live",
    "StreamOptions": "options",
    "StreamResult": "live",
}
__getattr__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
