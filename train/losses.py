"""Training losses: cross-entropy that ignores void and weights classes (median frequency
balancing), and the Lovasz-softmax IoU surrogate (Berman et al., CVPR 2018) to add to it."""
from __future__ import annotations

import numpy as np

from fcnedge.train.config import LOSSES
from fcnedge.train.distill import distillation_term, unpack_targets
from fcnedge.train.tfcompat import tf

# Errors lie in [0, 1]; sorted into this many bins, the Lovasz loss is within 1/LOVASZ_BINS of
# its exact value per class (see lovasz_softmax).
LOVASZ_BINS = 1024


def masked_weighted_crossentropy(class_weights: np.ndarray | None, num_classes: int):
    """Returns a Keras loss: per-pixel CE x class weight, normalised by the mean weight.

    Ids >= num_classes (void) get weight 0. Keras averages the returned per-pixel values over the
    batch, so the loss equals sum(w * ce) / sum(w): rare classes count more without changing the
    loss scale, and an image full of void contributes nothing.
    """
    return segmentation_loss("ce", class_weights, num_classes)


def segmentation_loss(kind: str, class_weights: np.ndarray | None, num_classes: int,
                      logit_offset: np.ndarray | None = None,
                      distill: tuple[float, float] | None = None):
    """The Keras loss a run trains with: `ce`, or `ce+lovasz` (their sum).

    The Lovasz term is not class-weighted: it is a mean over the classes present in the batch,
    so every class already counts alike, and it scores false positives as IoU does, which the
    weighted cross-entropy does not.

    `logit_offset` (one value per class) is added to the model's logits before the loss. A model
    with a prior correction folded into its bias outputs the trained logits plus a shift; with
    the shift's negative here the loss sees the logits as training saw them, so fine-tuning
    (QAT) keeps the correction instead of training it back out.

    `distill` (weight w, temperature T) is for targets that carry a teacher's logits beside the
    labels (train.distill.pack_targets): the loss becomes (1 - w) x the above + w x the
    teacher-student distillation term. Targets of labels alone get the loss above unchanged.
    """
    if kind not in LOSSES:
        raise ValueError(f"loss {kind!r}: expected one of {', '.join(LOSSES)}")
    table = _weight_table(class_weights, num_classes)
    offset = None if logit_offset is None else _offset_vector(logit_offset, num_classes)

    def labels_loss(labels, logits):
        ce = _weighted_ce(labels, logits, table, num_classes)
        if kind == "ce":   # see masked_weighted_crossentropy
            return ce
        # Keras averages the returned map, so a scalar added to every pixel adds itself once.
        return ce + lovasz_softmax(labels, logits, num_classes)

    def loss(y_true, logits):
        label_ids, teacher_logits = unpack_targets(y_true, num_classes)
        labels = _labels_with_void_slot(label_ids, num_classes)
        logits = tf.cast(logits, tf.float32)
        if offset is not None:
            logits = logits + offset
        if distill is None or teacher_logits is None:
            return labels_loss(labels, logits)
        weight, temperature = distill
        return ((1.0 - weight) * labels_loss(labels, logits)
                + weight * distillation_term(teacher_logits, logits, temperature))

    loss.__name__ = ("masked_weighted_crossentropy" if kind == "ce"
                     else "crossentropy_plus_lovasz")
    return loss


def lovasz_softmax(labels, logits, num_classes: int, bins: int = LOVASZ_BINS):
    """Lovasz-softmax loss over a whole batch, void (ids >= num_classes) ignored.

    Per class, the exact loss sorts the pixels' errors |fg - p| in decreasing order and weights
    each by the step it adds to the Lovasz extension of the Jaccard loss. Sorting a batch's
    pixels once per class costs ~0.4 s per step on two cores (more than the network), so the
    errors are sorted into `bins` equal bins instead: O(pixels), and since errors within one bin
    differ by less than 1/bins and the weights of a class sum to at most 1, the result differs
    from the exact loss by less than 1/bins per class. Classes absent from the batch are left
    out of the mean, as in the paper's 'present' mode.
    """
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    probs = tf.reshape(tf.nn.softmax(tf.cast(logits, tf.float32)), [-1, num_classes])
    valid = tf.cast(labels < num_classes, tf.float32)[:, None]
    foreground = tf.one_hot(labels, num_classes, dtype=tf.float32) * valid
    errors = tf.abs(foreground - probs) * valid
    # Bin 0 holds the largest errors: the sorted order runs from bin 0 upwards.
    bin_ids = tf.clip_by_value(tf.cast((1.0 - errors) * bins, tf.int32), 0, bins - 1)
    segments = bin_ids + tf.range(num_classes)[None, :] * bins
    size = num_classes * bins
    flat_segments = tf.reshape(segments, [-1])
    counts = tf.math.unsorted_segment_sum(
        tf.reshape(tf.broadcast_to(valid, tf.shape(errors)), [-1]), flat_segments, size)
    fg_counts = tf.math.unsorted_segment_sum(tf.reshape(foreground, [-1]), flat_segments, size)
    counts = tf.reshape(counts, [num_classes, bins])
    fg_counts = tf.reshape(fg_counts, [num_classes, bins])
    totals = tf.reduce_sum(fg_counts, axis=1, keepdims=True)
    fg_seen = tf.cumsum(fg_counts, axis=1)
    bg_seen = tf.cumsum(counts - fg_counts, axis=1)
    jaccard = 1.0 - tf.math.divide_no_nan(totals - fg_seen, totals + bg_seen)
    steps = jaccard - tf.pad(jaccard[:, :-1], [[0, 0], [1, 0]])
    # Spread each bin's step evenly over its pixels: as if ties within a bin were averaged
    # over their orders.
    per_pixel = tf.gather(tf.reshape(tf.math.divide_no_nan(steps, counts), [-1]), segments)
    per_class = tf.reduce_sum(errors * tf.stop_gradient(per_pixel), axis=0)
    present = tf.cast(tf.reshape(totals, [-1]) > 0, tf.float32)
    return tf.reduce_sum(per_class * present) / tf.maximum(tf.reduce_sum(present), 1.0)


def _weight_table(class_weights, num_classes: int):
    weights = np.ones(num_classes, np.float32) if class_weights is None else np.asarray(
        class_weights, np.float32)
    if weights.shape != (num_classes,):
        raise ValueError(f"class weights have shape {weights.shape}, expected ({num_classes},)")
    return tf.constant(np.append(weights, 0.0).astype(np.float32))


def _offset_vector(logit_offset, num_classes: int):
    offset = np.asarray(logit_offset, np.float32)
    if offset.shape != (num_classes,):
        raise ValueError(f"logit offset has shape {offset.shape}, expected ({num_classes},)")
    return tf.constant(offset)


def _labels_with_void_slot(y_true, num_classes: int):
    labels = tf.cast(y_true, tf.int32)
    if labels.shape.rank == 4:
        labels = labels[..., 0]
    return tf.where(labels < num_classes, labels, num_classes)


def _weighted_ce(labels, logits, table, num_classes: int):
    pixel_weights = tf.gather(table, labels)
    safe_labels = tf.minimum(labels, num_classes - 1)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=safe_labels, logits=tf.cast(logits, tf.float32))
    return ce * pixel_weights / tf.maximum(tf.reduce_mean(pixel_weights), 1e-6)
