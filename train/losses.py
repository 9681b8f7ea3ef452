"""Cross-entropy that ignores void pixels and weights classes (median frequency balancing)."""
from __future__ import annotations

import numpy as np

from fcnedge.train.tfcompat import tf


def masked_weighted_crossentropy(class_weights: np.ndarray | None, num_classes: int):
    """Returns a Keras loss: per-pixel CE x class weight, normalised by the mean weight.

    Ids >= num_classes (void) get weight 0. Keras averages the returned per-pixel values over the
    batch, so the loss equals sum(w * ce) / sum(w): rare classes count more without changing the
    loss scale, and an image full of void contributes nothing.
    """
    weights = np.ones(num_classes, np.float32) if class_weights is None else np.asarray(
        class_weights, np.float32)
    if weights.shape != (num_classes,):
        raise ValueError(f"class weights have shape {weights.shape}, expected ({num_classes},)")
    table = tf.constant(np.append(weights, 0.0).astype(np.float32))

    def loss(y_true, logits):
        labels = tf.cast(y_true, tf.int32)
        if labels.shape.rank == 4:
            labels = labels[..., 0]
        labels = tf.where(labels < num_classes, labels, num_classes)   # void -> extra slot
        pixel_weights = tf.gather(table, labels)
        safe_labels = tf.minimum(labels, num_classes - 1)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=safe_labels, logits=tf.cast(logits, tf.float32))
        return ce * pixel_weights / tf.maximum(tf.reduce_mean(pixel_weights), 1e-6)

    loss.__name__ = "masked_weighted_crossentropy"
    return loss
