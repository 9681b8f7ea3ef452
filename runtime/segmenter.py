"""The Python API of the runtime: `Segmenter(model).segment(frame) -> Segmentation`."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnedge.runtime import adapters
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.interpreter import InterpreterInfo, make_interpreter
from fcnedge.runtime.labels import CAMVID, LabelSet, fixed_palette
from fcnedge.runtime.options import SegmenterOptions
from fcnedge.runtime.preprocess import Geometry, labels_to_frame, preprocess
from fcnedge.runtime.tflite_metadata import read_embedded_card

log = logging.getLogger("fcnedge.runtime")


@dataclass(frozen=True)
class Segmentation:
    """One frame's result: label ids at the frame's size and at the model's input size."""

    labels: np.ndarray
    input_labels: np.ndarray
    geometry: Geometry
    timings_ms: dict = field(default_factory=dict)


def card_path(model_path: str | os.PathLike) -> Path:
    """The model card sidecar: model.tflite -> model.json."""
    return Path(model_path).with_suffix(".json")


def read_model_card(model_path: str | os.PathLike) -> dict:
    """The model's card (see `find_model_card`), or {}."""
    return find_model_card(model_path)[0]


def find_model_card(model_path: str | os.PathLike) -> tuple[dict, str]:
    """(card, where it was read): the card inside the model (its TFLite metadata, written by
    `fcnedge convert`), else the sidecar .json beside it (models converted before cards went
    inside), else {} with a warning: someone else's .tflite still runs (see `labels_for`).
    """
    model, sidecar = Path(model_path), card_path(model_path)
    why = "it is not a file"
    if model.is_file():
        card, why = read_embedded_card(model)
        if card:
            return card, f"{model}'s card"
    if sidecar.is_file():
        try:
            return json.loads(sidecar.read_text(encoding="utf-8")), str(sidecar)
        except (OSError, ValueError) as err:
            raise InputError(f"{sidecar}: model card is not readable JSON ({err})") from err
    if model.is_file():
        log.warning("%s: no fcnedge model card inside (%s) or beside it (%s): its classes are "
                    "CamVid's if it predicts 11, else numbered", model, why, sidecar.name)
    return {}, str(model)


def labels_for(card: dict, classes: int, source: str = "model card") -> LabelSet:
    """The card's labels. A model without a card predicting as many classes as CamVid, the
    label set data without a classes file is read with, gets CamVid's (so it scores on such
    data, void included); any other gets numbered classes."""
    if "labels" in card:
        return LabelSet.from_dict(card["labels"], source)
    if classes == CAMVID.num_classes:
        return CAMVID
    return LabelSet(tuple(f"class{i}" for i in range(classes)), fixed_palette(classes), None)


class Segmenter:
    """Runs a TFLite segmentation model on BGR frames.

    Buffers for the resized frame and the input tensor are allocated once, so a video loop
    allocates only the per-frame results.
    """

    def __init__(self, model_path: str | os.PathLike, options: SegmenterOptions | None = None):
        self.options = options or SegmenterOptions()
        self.model_path = str(model_path)
        self.interpreter, self.info = make_interpreter(
            model_path, self.options.delegate, self.options.num_threads,
            device=self.options.device, delegate_path=self.options.delegate_path,
            fallback_cpu=self.options.fallback_cpu)
        adapters.check_image_model(self.interpreter, self.model_path)
        # After the graph is known good: a broken model gets one line, not a card warning too.
        self.card, card_source = find_model_card(model_path)
        self.input_hw = adapters.input_size(self.interpreter)
        self.num_classes = adapters.num_classes(self.interpreter)
        self.labels = labels_for(self.card, self.num_classes, card_source)
        if self.labels.num_classes != self.num_classes:
            raise InputError(f"{card_source}: names {self.labels.num_classes} classes "
                             f"but the model predicts {self.num_classes}")
        self.palette_bgr = self.labels.palette_bgr()
        self._input = adapters.input_details(self.interpreter)
        self._output = adapters.output_details(self.interpreter)
        self._lut = adapters.pixel_lut(self._input)
        self._workspace = self.new_workspace()
        self._ema: np.ndarray | None = None
        self._last_raw: np.ndarray | None = None

    @property
    def info_dict(self) -> dict:
        info: InterpreterInfo = self.info
        return {"backend": info.backend, "delegate": info.delegate,
                "requested_delegate": info.requested_delegate, "num_threads": info.num_threads,
                "fell_back_to_cpu": info.fell_back, "input_size": list(self.input_hw),
                "input_type": np.dtype(self._input["dtype"]).name}

    def new_workspace(self) -> tuple[np.ndarray, np.ndarray]:
        """Buffers for `prepare`: the resized RGB frame and the (1, H, W, 3) input tensor.

        Give each thread that prepares frames its own (a video pipeline keeps a small ring).
        """
        return (np.empty((*self.input_hw, 3), np.uint8),
                np.empty((1, *self.input_hw, 3), self._input["dtype"]))

    def prepare(self, frame_bgr: np.ndarray, workspace=None) -> tuple[np.ndarray, Geometry]:
        """Stage 1: frame -> input tensor of the model's type (resize, RGB, quantize)."""
        rgb, tensor = workspace if workspace is not None else self._workspace
        _, geometry = preprocess(frame_bgr, self.input_hw, self.options.resize, out=rgb)
        adapters.rgb_to_input(rgb, self._input, out=tensor[0], lut=self._lut)
        return tensor, geometry

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Stage 2: runs the model; returns the raw output (H, W, C), a copy it may keep."""
        self.interpreter.set_tensor(self._input["index"], tensor)
        self.interpreter.invoke()
        self._last_raw = self.interpreter.get_tensor(self._output["index"])[0]
        return self._last_raw

    def finish(self, raw: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
        """Stage 3: raw output -> (labels at frame size, labels at input size).

        Argmax runs on int8 logits directly; with smoothing on, on the moving average of the
        dequantized logits. Frames must arrive in order when smoothing.
        """
        if self.options.smooth:
            logits = adapters.output_logits(raw, self._output)
            if self._ema is None or self._ema.shape != logits.shape:
                self._ema = logits.copy()
            else:
                self._ema *= self.options.smooth
                self._ema += (1.0 - self.options.smooth) * logits
            raw = self._ema
        input_labels = self._label_map(raw)
        return labels_to_frame(input_labels, geometry), input_labels

    def _label_map(self, raw: np.ndarray) -> np.ndarray:
        return adapters.argmax_labels(raw)

    def segment_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Label map (input size) of an RGB image already at the input size, as evaluation uses."""
        _, tensor = self._workspace
        adapters.rgb_to_input(rgb, self._input, out=tensor[0], lut=self._lut)
        return self._label_map(self.infer(tensor))

    def segment(self, frame_bgr: np.ndarray) -> Segmentation:
        """Segments one HxWx3 uint8 BGR frame (the three stages in a row)."""
        start = time.perf_counter()
        tensor, geometry = self.prepare(frame_bgr)
        prepared = time.perf_counter()
        raw = self.infer(tensor)
        invoked = time.perf_counter()
        labels, input_labels = self.finish(raw, geometry)
        done = time.perf_counter()
        return Segmentation(labels, input_labels, geometry, {
            "preprocess": 1e3 * (prepared - start), "invoke": 1e3 * (invoked - prepared),
            "postprocess": 1e3 * (done - invoked)})

    def probabilities(self) -> np.ndarray:
        """Softmax of the last frame's logits (dequantized): (H, W, C) float32."""
        if self._last_raw is None:
            raise RuntimeError("probabilities() needs a segment() call first")
        return adapters.softmax(adapters.output_logits(self._last_raw, self._output))

    def reset(self) -> None:
        """Forgets the smoothing state (for a new clip)."""
        self._ema = None
