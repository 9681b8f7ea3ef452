"""Evaluation: one scoring loop for any predictor (Keras here, TFLite in the converter).

A predictor maps a batch of RGB uint8 input images (N, H, W, 3) to label maps (N, H, W).
Predictions are resized to each mask's own resolution before scoring, as the papers do.
"""
from __future__ import annotations

import heapq
import io
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from fcnedge.runtime.fileio import write_bytes_atomic, write_image_atomic
from fcnedge.runtime.labels import LabelSet
from fcnedge.runtime.metrics import (SegmentationScores, confusion_matrix,
                                     scores_from_confusion)
from fcnedge.runtime.preprocess import read_image, resize_labels
from fcnedge.runtime.visualize import class_errors, contact_sheet, draw_hud, error_key

Predictor = Callable[[np.ndarray], np.ndarray]


ImageHook = Callable[[int, np.ndarray, np.ndarray], None]


def evaluate_predictor(predict: Predictor, images: np.ndarray, full_masks: Sequence[np.ndarray],
                       labels: LabelSet, batch_size: int = 8,
                       progress: Callable[[int, int], None] | None = None,
                       on_image: ImageHook | None = None) -> SegmentationScores:
    """Scores `predict` on a decoded split (images at input size, masks at their own size).

    `on_image(index, prediction, truth)` sees each prediction at its mask's resolution, as
    scored, so a caller can keep what it wants to draw without a second pass of the model.
    """
    num_classes = labels.num_classes
    confusion = np.zeros((num_classes, num_classes), np.int64)
    for start in range(0, len(images), batch_size):
        hook = None if on_image is None else (
            lambda position, prediction, truth: on_image(start + position, prediction, truth))
        accumulate_confusion(confusion, predict(images[start:start + batch_size]),
                             full_masks[start:start + batch_size], labels, on_image=hook)
        if progress:
            progress(min(start + batch_size, len(images)), len(images))
    return scores_from_confusion(confusion, labels.class_names)


def accumulate_confusion(confusion: np.ndarray, label_maps: np.ndarray,
                         full_masks: Sequence[np.ndarray], labels: LabelSet,
                         on_image: ImageHook | None = None) -> None:
    """Adds predicted label maps, each resized to its mask's own resolution, to `confusion`
    (`on_image(position in the batch, prediction, truth)` sees each resized map)."""
    for position, (label_map, truth) in enumerate(zip(label_maps, full_masks)):
        prediction = resize_labels(label_map, truth.shape[:2])
        confusion += confusion_matrix(truth, prediction, labels.num_classes, labels.void_id)
        if on_image is not None:
            on_image(position, prediction, truth)


class WorstImages:
    """Keeps the `count` images with the most error pixels (missed plus false alarms) of one
    class, for `class_error_sheet`; an `evaluate_predictor` image hook."""

    def __init__(self, class_id: int, void_id: int | None, count: int):
        self.class_id, self.void_id, self.count = class_id, void_id, count
        self._heap: list[tuple[int, int, np.ndarray]] = []

    def __call__(self, index: int, prediction: np.ndarray, truth: np.ndarray) -> None:
        scored = truth != self.void_id if self.void_id is not None else True
        errors = int(np.count_nonzero(((truth == self.class_id) != (prediction == self.class_id))
                                      & scored))
        if errors == 0:
            return
        if len(self._heap) < self.count:
            heapq.heappush(self._heap, (errors, -index, prediction.copy()))
        elif (errors, -index) > self._heap[0][:2]:
            # A copy, so a kept map does not hold on to the whole batch it is a view of.
            heapq.heapreplace(self._heap, (errors, -index, prediction.copy()))

    def picked(self) -> list[tuple[int, int, np.ndarray]]:
        """(image index, error pixels, prediction), most errors first."""
        return [(-negative_index, errors, prediction) for errors, negative_index, prediction
                in sorted(self._heap, key=lambda item: item[:2], reverse=True)]


def class_error_sheet(frames_bgr: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                      predictions: Sequence[np.ndarray], titles: Sequence[str], class_id: int,
                      labels: LabelSet, columns: int = 2) -> np.ndarray:
    """A contact sheet of frames with one class's pixels painted by outcome, under a key."""
    tiles = [draw_hud(class_errors(frame, truth, prediction, class_id, labels.void_id), [title])
             for frame, truth, prediction, title in zip(frames_bgr, truths, predictions, titles)]
    sheet = contact_sheet(tiles, columns=min(columns, len(tiles)),
                          width=min(480, tiles[0].shape[1]))
    return np.vstack([error_key(labels.class_names[class_id], sheet.shape[1]), sheet])


def keras_logits(model) -> Callable[[np.ndarray], np.ndarray]:
    """A Keras model's logits for a batch of RGB uint8 images, run in graph mode."""
    from fcnedge.train.tfcompat import tf

    infer = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    return lambda images: infer(tf.convert_to_tensor(images, tf.float32)).numpy()


def keras_predictor(model) -> Predictor:
    """Argmax of a Keras model's logits, run in graph mode for speed."""
    from fcnedge.train.tfcompat import tf

    @tf.function(reduce_retracing=True)
    def infer(batch):
        return tf.argmax(model(batch, training=False), axis=-1, output_type=tf.int32)

    def predict(images: np.ndarray) -> np.ndarray:
        return infer(tf.convert_to_tensor(images, tf.float32)).numpy().astype(np.uint8)

    return predict


def tflite_predictor(model_path, num_threads: int | None = None) -> Predictor:
    """Argmax of a TFLite model through the runtime (the code that ships), one image at a time."""
    from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions

    segmenter = Segmenter(model_path, SegmenterOptions(num_threads=num_threads))

    def predict(images: np.ndarray) -> np.ndarray:
        return np.stack([segmenter.segment_rgb(image) for image in images])

    predict.segmenter = segmenter
    return predict


def format_scores_table(scores: SegmentationScores, title: str = "") -> str:
    """A markdown table of per-class IoU, recall and precision, then mIoU, mean class accuracy and
    pixel accuracy (percent)."""
    def pct(value: float) -> str:
        return "n/a" if np.isnan(value) else f"{100 * value:.1f}"

    lines = [f"### {title}" if title else "", "| class | IoU % | recall % | precision % |",
             "|---|---:|---:|---:|"]
    for name, iou, recall, precision in zip(scores.class_names, scores.per_class_iou,
                                            scores.per_class_recall, scores.per_class_precision):
        lines.append(f"| {name} | {pct(iou)} | {pct(recall)} | {pct(precision)} |")
    lines.append(f"| **mIoU** | **{pct(scores.mean_iou)}** | | |")
    lines.append(f"| mean class accuracy | {pct(scores.mean_class_accuracy)} | | |")
    lines.append(f"| pixel accuracy | {pct(scores.pixel_accuracy)} | | |")
    return "\n".join(line for line in lines if line is not None).strip() + "\n"


def plot_confusion(scores: SegmentationScores, path: str | os.PathLike, title: str = "") -> Path:
    """Writes a row-normalised confusion matrix (recall per true class) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    confusion = scores.confusion.astype(np.float64)
    rows = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros_like(confusion), where=rows > 0)
    names = scores.class_names
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.55 * len(names)), dpi=110)
    ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            value = normalised[i, j]
            if value >= 0.005:
                ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"mIoU {100 * scores.mean_iou:.1f}%  (row-normalised %)", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def write_class_error_sheet(worst: WorstImages, pairs, full_masks: Sequence[np.ndarray],
                            labels: LabelSet, path: str | os.PathLike) -> Path | None:
    """Draws the images `worst` kept (read again from `pairs`, at their own size) as a
    `class_error_sheet` PNG, atomically; None, and no file, when the class had no errors."""
    picked = worst.picked()
    if not picked:
        return None
    sheet = class_error_sheet(
        [read_image(pairs[index].image) for index, _, _ in picked],
        [full_masks[index] for index, _, _ in picked],
        [prediction for _, _, prediction in picked],
        [f"{Path(pairs[index].image).name}: {errors} px wrong" for index, errors, _ in picked],
        worst.class_id, labels)
    return write_image_atomic(path, sheet)
