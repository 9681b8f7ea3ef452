"""Knowledge distillation (`fcnedge train --teacher`): a larger trained FCN's softened class
scores at every pixel become a second target beside the labels (Hinton et al., 2015; applied
per pixel to segmentation as in Liu et al., Structured Knowledge Distillation, CVPR 2019).

The teacher scores each augmented batch as the student sees it, so scale, crop, flip, camera
jitter and copy-paste change both alike; stored soft labels could not follow them. It is
frozen, in inference mode, without its prior correction (its logits as its own weighted loss
trained them, the same loss the student learns under). Its logits reach the loss packed beside
the mask in `y_true`, so Keras' own train step (regularisation losses, the optimizer step)
runs unchanged, and the student saves, loads and converts as a plain FCN.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import LabelSet
from fcnedge.train.config import ModelConfig
from fcnedge.train.run_folder import locate_run
from fcnedge.train.tfcompat import keras, tf
from fcnedge.train.weights import load_trained_model

log = logging.getLogger("fcnedge.train")

# Where a distilled run keeps its teacher's records (run.json, history.json and its lineage),
# so its card can say what taught it.
TEACHER_FOLDER = "teacher"


@dataclass(frozen=True)
class Teacher:
    """A loaded teacher: the frozen Keras model and where it came from."""

    model: object
    weights: Path
    run_dir: Path


def check_teacher(source: str) -> Path:
    """The teacher's run folder, checked before any data is read.

    Raises:
      InputError: about `teacher`: neither a run folder with weights nor a weights file.
    """
    try:
        return locate_run(source)[0]
    except InputError as err:
        raise err.renamed("teacher") from err


def load_teacher(source: str, student: ModelConfig, labels: LabelSet) -> Teacher:
    """Loads the teacher of a run at the student's input size.

    Raises:
      InputError: about `teacher`: no run or weights there, or classes other than the
        student's.
    """
    try:
        trained = load_trained_model(source, input_hw=student.input_hw, prior_correction=False)
    except InputError as err:
        raise err.renamed("teacher") from err
    if trained.labels.class_names != labels.class_names:
        raise InputError.about("teacher", source,
                               f"scores the classes {', '.join(trained.labels.class_names)}; "
                               f"the student learns {', '.join(labels.class_names)}")
    trained.model.trainable = False
    if trained.config.input_hw != trained.trained_hw:
        log.info("the teacher trained at %dx%d scores the student's %dx%d crops",
                 *trained.trained_hw, *student.input_hw)
    log.info("distilling from %s", trained.weights)
    return Teacher(model=trained.model, weights=trained.weights,
                   run_dir=check_teacher(source))


def pack_targets(masks, teacher_logits):
    """(B, H, W) or (B, H, W, 1) label ids and (B, H, W, C) logits -> (B, H, W, 1 + C) floats:
    channel 0 the ids (exact in float32), the rest the teacher's logits."""
    masks = tf.cast(masks, tf.float32)
    if masks.shape.rank == 3:
        masks = masks[..., tf.newaxis]
    return tf.concat([masks, tf.cast(teacher_logits, tf.float32)], axis=-1)


def unpack_targets(y_true, num_classes: int):
    """The inverse of pack_targets: (label ids (B, H, W) int32, teacher logits), or the ids and
    None when `y_true` carries labels alone."""
    if y_true.shape.rank == 4 and y_true.shape[-1] == 1 + num_classes:
        return tf.cast(y_true[..., 0], tf.int32), y_true[..., 1:]
    return y_true, None


def distillation_term(teacher_logits, student_logits, temperature: float):
    """Per pixel, T^2 x KL(teacher || student) of the class distributions softened by T.

    T^2 keeps the term's gradients on the scale of a T=1 loss (Hinton et al.), so the weight
    between it and the cross-entropy means the same at any temperature. Void pixels count:
    the teacher has a distribution for them where the labels have none.
    """
    teacher_log_p = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / temperature)
    student_log_p = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature)
    kl = tf.reduce_sum(tf.exp(teacher_log_p) * (teacher_log_p - student_log_p), axis=-1)
    return kl * (temperature ** 2)


class DistilledFCN(keras.Model):
    """The student FCN (the same layers and weights, so it saves and loads as a plain FCN)
    whose train step first runs the teacher on the batch."""

    def __init__(self, student, teacher_model):
        super().__init__(inputs=student.inputs, outputs=student.outputs, name=student.name)
        # Held in a closure, not as an attribute: a tracked teacher would enter the student's
        # checkpoint and weights files.
        self._score_with_teacher = lambda images: teacher_model(images, training=False)

    def train_step(self, data):
        images, masks = data[0], data[1]
        teacher_logits = tf.stop_gradient(self._score_with_teacher(images))
        return super().train_step((images, pack_targets(masks, teacher_logits)))

