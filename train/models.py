"""FCN-32s/16s/8s/4s/2s (Long et al.) on VGG16 or MobileNetV2, built from a skip-layer table.

Every model takes RGB pixels in 0..255 (normalisation is a layer inside the graph) at a fixed
size divisible by 32, and returns logits at the input size: no softmax, since argmax needs none
and an int8 softmax over HxWxC would cost more than the int8 body saves.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fcnedge.runtime.errors import InputError, mention
from fcnedge.train.config import ARCH_STRIDES, MOBILENET_ALPHAS, SKIP_LAYERS, ModelConfig
from fcnedge.train.download import DownloadError
from fcnedge.train.tfcompat import keras, tf


def _bilinear_kernel(factor: int, channels: int) -> np.ndarray:
    """A transposed-convolution kernel that performs bilinear upsampling per channel."""
    size = 2 * factor
    center = factor - 0.5
    grid = np.arange(size)
    weights_1d = 1 - np.abs(grid - center) / factor
    kernel_2d = np.outer(weights_1d, weights_1d)
    kernel = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = kernel_2d
    return kernel


def _upsample(x, factor: int, config: ModelConfig, name: str, trainable: bool = True):
    if config.decoder == "bilinear":
        return keras.layers.UpSampling2D(factor, interpolation="bilinear", name=name)(x)
    layer = keras.layers.Conv2DTranspose(
        config.num_classes, 2 * factor, strides=factor, padding="same", use_bias=False,
        kernel_initializer=keras.initializers.Constant(
            _bilinear_kernel(factor, config.num_classes)),
        trainable=trainable, name=name)
    return layer(x)


def _context(x, config: ModelConfig):
    """The stride-32 context module named by config.context (identity for 'none')."""
    if config.context == "none":
        return x
    units = config.context_units
    local = keras.layers.Conv2D(units, 1, use_bias=False, name="context_conv")(x)
    local = keras.layers.BatchNormalization(momentum=config.bn_momentum, name="context_bn")(local)
    local = keras.layers.ReLU(name="context_relu")(local)
    scene = keras.layers.GlobalAveragePooling2D(keepdims=True, name="context_pool")(x)
    gate = keras.layers.Conv2D(units, 1, activation="sigmoid", name="context_gate")(scene)
    return keras.layers.Multiply(name="context_mul")([local, gate])


def _backbone(config: ModelConfig, inputs, weights: str | None):
    """Builds the backbone on top of the normalisation layer, flat in one graph.

    A nested backbone model would be simpler to wire, but tfmot cannot quantize a model inside a
    model, so the Keras Applications layers are attached to our own input tensor instead.
    """
    height, width = config.input_hw
    if config.backbone == "vgg16":
        # Caffe-style mean subtraction, as VGG16's ImageNet weights expect. Rescaling, unlike
        # Normalization, holds no weights, so ImageNet weights still load layer by layer.
        x = keras.layers.Rescaling(1.0, offset=[-123.68, -116.779, -103.939],
                                   name="normalize")(inputs)
        return keras.applications.VGG16(include_top=False, weights=weights, input_tensor=x,
                                        input_shape=(height, width, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize")(inputs)
    model = keras.applications.MobileNetV2(include_top=False, weights=weights, alpha=config.alpha,
                                           input_tensor=x, input_shape=(height, width, 3))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = config.bn_momentum
    return model


def build_fcn(config: ModelConfig, backbone_weights: str | None = None):
    """Builds an FCN as a Keras (tf_keras) functional model.

    Args:
      config: the graph definition.
      backbone_weights: None/'none' (from scratch), 'imagenet' (Keras' own downloader; offline
        this fails with a clear error), or a path to a backbone weights file.

    Raises:
      InputError: a bad option or weights path.
      RuntimeError: ImageNet weights could not be downloaded.
    """
    weights_arg = None
    weights_path = None
    if backbone_weights in (None, "none"):
        pass
    elif backbone_weights == "imagenet":
        if config.backbone == "mobilenetv2" and config.alpha not in MOBILENET_ALPHAS:
            raise InputError.about("alpha", config.alpha,
                                   f"ImageNet MobileNetV2 weights exist only "
                                   f"for alpha in {MOBILENET_ALPHAS}")
        weights_arg = "imagenet"
    else:
        weights_path = Path(backbone_weights)
        if not weights_path.is_file():
            raise InputError.about("backbone_weights", weights_path, "file not found (expected "
                                   "'none', 'imagenet' or a weights file)")

    inputs = keras.Input(shape=(*config.input_hw, 3), batch_size=None, name="image")
    try:
        backbone = _backbone(config, inputs, weights_arg)
    except Exception as err:  # Keras raises plain Exception on a failed fetch
        if weights_arg == "imagenet" and ("fetch" in str(err).lower() or "url" in str(err).lower()
                                          or isinstance(err, OSError)):
            raise DownloadError(f"{mention('backbone_weights')} imagenet: could not download "
                                f"the ImageNet {config.backbone} weights ({err}); this needs "
                                "internet, or pass a local weights file or 'none'") from err
        raise
    if weights_path is not None:
        try:
            backbone.load_weights(str(weights_path))
        except Exception as err:
            raise InputError.about("backbone_weights", weights_path, f"not a {config.backbone} "
                                   f"weights file ({err})") from err
    if weights_arg == "imagenet" and config.backbone == "vgg16":
        # ImageNet VGG16 was trained on BGR input; our models take RGB, so flip the first kernel.
        first = backbone.get_layer("block1_conv1")
        kernel, bias = first.get_weights()
        first.set_weights([kernel[:, :, ::-1, :], bias])

    wanted = SKIP_LAYERS[config.backbone]
    strides = ARCH_STRIDES[config.arch]
    features = [backbone.get_layer(wanted[s]).output for s in strides]
    x = features[0]
    if config.fc_units:
        x = keras.layers.Conv2D(config.fc_units, 7, padding="same", activation="relu",
                                name="fc6")(x)
        x = keras.layers.Dropout(config.dropout, name="drop6")(x)
        x = keras.layers.Conv2D(config.fc_units, 1, activation="relu", name="fc7")(x)
        x = keras.layers.Dropout(config.dropout, name="drop7")(x)
    x = _context(x, config)
    if not config.fc_units and config.dropout:
        x = keras.layers.Dropout(config.dropout, name="drop_features")(x)
    x = keras.layers.Conv2D(config.num_classes, 1, name=f"{config.arch}_score_fr")(x)
    for stride, skip in zip(strides[1:], features[1:]):
        x = _upsample(x, 2, config, f"{config.arch}_upscore_to{stride}")
        # Zero-initialised, as in the paper: the fused net starts as the coarser one.
        score = keras.layers.Conv2D(config.num_classes, 1, kernel_initializer="zeros",
                                    name=f"{config.arch}_score_pool{stride}")(skip)
        x = keras.layers.Add(name=f"{config.arch}_fuse_pool{stride}")([x, score])
    x = _upsample(x, strides[-1], config, f"{config.arch}_upscore_final", trainable=False)
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(x)
    return keras.Model(inputs, logits, name=config.name)


def count_flops(model) -> int:
    """Multiply-accumulates x2 of one forward pass at batch 1, from TensorFlow's profiler."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2_as_graph)

    spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    _, graph_def = convert_variables_to_constants_v2_as_graph(concrete)
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        info = tf.compat.v1.profiler.profile(graph=graph, options=options)
    return int(info.total_float_ops)
