"""Small .tflite models for runtime tests, made with TensorFlow here in the tests only."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def make_tflite(path: Path, kind: str = "float32", input_hw=(64, 96), arch: str = "fcn8s",
                seed: int = 0) -> Path:
    """Converts an untrained-but-random FCN (batch 1, static shape, logits out) to TFLite.

    kind: float32, or int8 (full integer, int8 in and out), or uint8 (full integer, uint8 I/O).
    """
    from fcnedge.train.models import ModelConfig, build_fcn
    from fcnedge.train.tfcompat import keras, tf

    keras.utils.set_random_seed(seed)
    model = build_fcn(ModelConfig(alpha=0.35, arch=arch, input_hw=tuple(input_hw), dropout=0.0))
    # Random weights in the score layers, or every logit is zero and argmax is trivial.
    for layer in model.layers:
        if "score" in layer.name:
            layer.set_weights([np.random.default_rng(seed).normal(0, 0.5, w.shape).astype(
                np.float32) for w in layer.get_weights()])
    spec = tf.TensorSpec([1, *input_hw, 3], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    if kind != "float32":
        rng = np.random.default_rng(seed)

        def representative():
            for _ in range(8):
                yield [rng.uniform(0, 255, (1, *input_hw, 3)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8 if kind == "int8" else tf.uint8
        converter.inference_output_type = tf.int8 if kind == "int8" else tf.uint8
    path.write_bytes(converter.convert())
    return path
