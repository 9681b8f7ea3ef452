"""Keras FCN -> TFLite bytes, one small function per format, with the export rules applied.

Every format is exported from a concrete function with a fixed (1, H, W, 3) input, so no
SHAPE/PACK/STRIDED_SLICE ops appear and the graph stays one XNNPACK partition; the output is
the logits tensor.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from fcnedge.convert.options import INTEGER_FORMATS, IO_TYPES, Format
from fcnedge.runtime.errors import InputError, mention
from fcnedge.train.tfcompat import keras, tf


def with_head_output(model, arch: str):
    """The model up to its head's finest stride: the logits before the fixed final upsampling
    (the layer ending in `ARCH_upscore_final`, wrapped or not by quantization-aware training),
    so the file exports them at 1/stride of the input size."""
    finals = [layer for layer in model.layers if layer.name.endswith(f"{arch}_upscore_final")]
    if len(finals) != 1:
        raise ValueError(f"{model.name}: expected one {arch}_upscore_final layer, found "
                         f"{len(finals)}")
    return keras.Model(model.inputs, finals[0].input, name=f"{model.name}_head")


def _converter(model):
    height, width = model.input_shape[1:3]
    spec = tf.TensorSpec([1, height, width, 3], tf.float32, name="image")
    concrete = tf.function(lambda image: model(image, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)


def to_tflite(model, fmt: Format, calibration: Iterable[np.ndarray] | None = None,
              io_type: str = "int8", per_tensor: bool = False) -> bytes:
    """Converts a Keras model to one TFLite format.

    Args:
      model: a float model, or for int8-qat the fake-quantized model from convert.qat.
      calibration: RGB uint8 images at the model's input size (int8-ptq only). Natural images
        span 0..255, which makes the int8 input scale 1 and zero point -128.
      io_type: int8 or uint8 (EdgeTPU) input and output for the integer formats.
      per_tensor: one weight scale per tensor. For int8-qat the model must already be
        fake-quantized per tensor (convert.qat, QatConfig.per_tensor); this only keeps the
        converter from adding per-channel scales of its own.
    """
    fmt = Format(fmt)
    if fmt in INTEGER_FORMATS and io_type not in IO_TYPES:
        raise InputError(f"got {io_type!r}, expected int8 or uint8", "io_type")
    converter = _converter(model)
    if fmt is not Format.FLOAT32:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if fmt is Format.FLOAT16:
        converter.target_spec.supported_types = [tf.float16]
    elif fmt is Format.INT8_PTQ:
        images = [] if calibration is None else [np.asarray(image) for image in calibration]
        if not images:
            raise InputError(f"int8-ptq needs calibration images ({mention('calib_samples')} > 0)")

        def representative():
            for image in images:
                yield [image[np.newaxis].astype(np.float32)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    # int8-qat needs no representative data: its fake-quant nodes carry every range.
    if fmt in INTEGER_FORMATS:
        converter._experimental_disable_per_channel = per_tensor
        converter.inference_input_type = tf.int8 if io_type == "int8" else tf.uint8
        converter.inference_output_type = tf.int8 if io_type == "int8" else tf.uint8
    return converter.convert()
