"""The learning-rate schedule (warm-up, then cosine or polynomial decay) and the optimizer."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from fcnedge.train.tfcompat import keras, tf

if TYPE_CHECKING:
    from fcnedge.train.config import TrainConfig


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then cosine or polynomial (power 0.9, as in DeepLab) decay, by step."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int, kind: str,
                 end_fraction: float = 0.01, power: float = 0.9):
        self.base_lr, self.total_steps, self.warmup_steps = base_lr, total_steps, warmup_steps
        self.kind, self.end_fraction, self.power = kind, end_fraction, power

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        base = tf.constant(self.base_lr, tf.float32)
        end = base * self.end_fraction
        warm = base * (step + 1.0) / float(max(self.warmup_steps, 1))
        span = float(max(self.total_steps - self.warmup_steps, 1))
        progress = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
        if self.kind == "cosine":
            decayed = end + (base - end) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        elif self.kind == "poly":
            decayed = end + (base - end) * tf.pow(1.0 - progress, self.power)
        else:
            decayed = base
        return tf.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "kind": self.kind,
                "end_fraction": self.end_fraction, "power": self.power}


def make_schedule(config: TrainConfig, steps_per_epoch: int) -> WarmupDecay:
    return WarmupDecay(config.learning_rate, config.epochs * steps_per_epoch,
                       int(config.warmup_epochs * steps_per_epoch), config.schedule)


def make_optimizer(config: TrainConfig, schedule: WarmupDecay):
    if config.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=schedule,
                                           weight_decay=config.weight_decay)
        # Decaying BatchNorm scales and biases only hurts; decay the kernels.
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        return optimizer
    return keras.optimizers.SGD(learning_rate=schedule, momentum=0.9,
                                weight_decay=config.weight_decay or None)
