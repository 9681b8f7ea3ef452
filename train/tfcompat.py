"""The one place that imports TensorFlow and Keras 2 for training and conversion.

tensorflow-model-optimization works with Keras 2 only (tf_keras); TensorFlow 2.21 defaults to
Keras 3. TF_USE_LEGACY_KERAS must be set before TensorFlow first loads Keras, so every module of
fcnedge.train and fcnedge.convert imports `tf` and `keras` from here.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
