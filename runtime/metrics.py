"""Segmentation metrics from a confusion matrix: one implementation for Keras and TFLite models."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def confusion_matrix(truth: np.ndarray, prediction: np.ndarray, num_classes: int,
                     void_id: int | None = None) -> np.ndarray:
    """Counts (truth, prediction) pairs into a (num_classes, num_classes) int64 matrix.

    Pixels whose truth is `void_id` (or any id >= num_classes) are ignored. Predictions outside
    0..num_classes-1 are an error: a model predicts scored classes only.
    """
    truth = np.asarray(truth).ravel()
    prediction = np.asarray(prediction).ravel()
    if truth.shape != prediction.shape:
        raise ValueError(f"truth has {truth.size} pixels, prediction {prediction.size}")
    keep = truth < num_classes
    if void_id is not None:
        keep &= truth != void_id
    truth, prediction = truth[keep].astype(np.int64), prediction[keep].astype(np.int64)
    if prediction.size and (prediction.min() < 0 or prediction.max() >= num_classes):
        raise ValueError(f"prediction ids must lie in 0..{num_classes - 1}")
    counts = np.bincount(truth * num_classes + prediction, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Scores read off a confusion matrix; IoU is NaN for a class absent from truth and prediction.

    Recall (the share of a class's pixels found) and precision (the share of pixels predicted as
    the class that are right) split IoU into its two failure modes: class weighting trades one
    for the other on rare classes, and IoU alone cannot show which way a change moved.
    Recall is NaN for a class absent from truth, precision for a class never predicted.
    """

    class_names: tuple[str, ...]
    per_class_iou: tuple[float, ...]
    mean_iou: float
    pixel_accuracy: float
    confusion: np.ndarray = field(repr=False, compare=False)
    per_class_recall: tuple[float, ...]
    per_class_precision: tuple[float, ...]

    @property
    def mean_class_accuracy(self) -> float:
        """Mean recall over the classes present in truth (SegNet's "class average accuracy")."""
        recall = np.asarray(self.per_class_recall, np.float64)
        return float(np.nanmean(recall)) if np.any(~np.isnan(recall)) else float("nan")

    def to_dict(self) -> dict:
        """Percentages rounded for reports; NaN becomes None so it is valid JSON."""
        def pct(value: float):
            return None if np.isnan(value) else round(100.0 * value, 2)
        def per_class(values):
            return {name: pct(v) for name, v in zip(self.class_names, values)}
        return {
            "miou": pct(self.mean_iou),
            "pixel_accuracy": pct(self.pixel_accuracy),
            "mean_class_accuracy": pct(self.mean_class_accuracy),
            "per_class_iou": per_class(self.per_class_iou),
            "per_class_recall": per_class(self.per_class_recall),
            "per_class_precision": per_class(self.per_class_precision),
        }


def scores_from_confusion(confusion: np.ndarray, class_names) -> SegmentationScores:
    """IoU = TP / (TP + FP + FN) per class, its mean over classes present, pixel accuracy, and
    per-class recall TP / (TP + FN) and precision TP / (TP + FP). Rows of `confusion` are truth."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diag(confusion)
    in_truth, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    union = in_truth + predicted - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        recall = np.where(in_truth > 0, true_positive / in_truth, np.nan)
        precision = np.where(predicted > 0, true_positive / predicted, np.nan)
    total = confusion.sum()
    accuracy = float(true_positive.sum() / total) if total else float("nan")
    mean_iou = float(np.nanmean(iou)) if np.any(~np.isnan(iou)) else float("nan")
    return SegmentationScores(tuple(class_names), tuple(float(v) for v in iou), mean_iou,
                              accuracy, confusion.astype(np.int64),
                              tuple(float(v) for v in recall), tuple(float(v) for v in precision))
