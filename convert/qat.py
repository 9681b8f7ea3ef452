"""Quantization-aware fine-tuning of a trained FCN with tensorflow-model-optimization (tf_keras).

The recipe, chosen by measurement (docs/quantization.md): start from the best float
weights, freeze every BatchNorm (inference-mode statistics, no gamma/beta updates) so the folded
scales the int8 export uses are the ones QAT trained against, fine-tune a few epochs at a learning
rate about 100x below the float peak with the trainer's own loss, class weights and augmentation,
and keep the epoch with the best fake-quantized val mIoU.

tfmot's default 8-bit scheme knows neither the in-graph normalisation (Rescaling) nor how TFLite
quantizes a bilinear resize (input and output must share one scale, so a separate output
quantizer adds a requantization error QAT never saw). Resizes get an explicit QuantizeConfig;
Rescaling gets one too, but QAT swaps it for an equivalent 1x1 depthwise conv (see
`rescaling_as_depthwise`).

Per-tensor weights (one scale per kernel, 24 bytes less per output channel in the .tflite) need
their own path, because tfmot's default scheme cannot give them: with per-tensor fake quant
placed ahead of BatchNorm the converter leaves the folded kernels float32, and with BatchNorm
folded beforehand tfmot's Conv+ReLU rule swaps the conv's config for a no-op (kernel not fake
quantized, so the converter quantizes it per channel itself). So `fold_batchnorm` merges each
BatchNorm into its conv first, every conv gets `PerTensorConvQuantizeConfig`, and ReLUs become
`ConvReLU`, which the rule's exact class-name pattern does not match.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from fcnedge.convert.options import QatConfig
from fcnedge.convert.quantize_configs import (ConvReLU, OutputQuantizeConfig,
                                              PerTensorConvQuantizeConfig, kernel_attribute,
                                              tfmot_module, explicit_quantize_config, quantize_scope)
from fcnedge.train.tfcompat import keras, tf

log = logging.getLogger("fcnedge.convert")


CONV_TYPES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _inbound_layers(layer) -> list:
    return tf.nest.flatten(layer._inbound_nodes[0].inbound_layers) if layer._inbound_nodes else []


def _consumers(model) -> dict:
    consumers = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for inbound in _inbound_layers(layer):
            consumers[inbound.name].append(layer)
    return consumers


def _folded_weights(conv, batchnorm) -> list:
    """Kernel and bias of `conv` followed by inference-mode `batchnorm`, as one conv."""
    weights = dict(zip([w.name.split("/")[-1].split(":")[0] for w in conv.weights],
                       conv.get_weights()))
    kernel_name = kernel_attribute(conv)
    kernel = weights[kernel_name]
    channels = batchnorm.moving_mean.shape[-1]
    gamma = batchnorm.gamma.numpy() if batchnorm.gamma is not None else np.ones(channels)
    beta = batchnorm.beta.numpy() if batchnorm.beta is not None else np.zeros(channels)
    scale = gamma / np.sqrt(batchnorm.moving_variance.numpy() + batchnorm.epsilon)
    bias = weights.get("bias", np.zeros(channels))
    # A depthwise kernel is (kh, kw, in, multiplier): output channel = in * multiplier + m.
    kernel = kernel * scale.reshape(kernel.shape[2:] if kernel_name == "depthwise_kernel"
                                    else (-1,))
    bias = (bias - batchnorm.moving_mean.numpy()) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def fold_batchnorm(model):
    """A float copy of `model` with every BatchNorm that directly follows a conv (its only
    consumer) merged into that conv's kernel and bias; same outputs, same layer names."""
    consumers = _consumers(model)
    folds = {}      # conv name -> the BatchNorm merged into it
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        inbound = _inbound_layers(layer)
        if (len(inbound) == 1 and isinstance(inbound[0], CONV_TYPES)
                and len(consumers[inbound[0].name]) == 1
                and inbound[0].get_config().get("activation") == "linear"):
            folds[inbound[0].name] = layer
    merged = {bn.name: conv_name for conv_name, bn in folds.items()}

    source = model.inputs[0]
    image = keras.Input(batch_shape=source.shape, dtype=source.dtype, name=model.layers[0].name)
    tensors = {id(source): image}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer.name in merged:
            tensors[id(layer.output)] = tensors[id(model.get_layer(merged[layer.name]).output)]
            continue
        inputs = tf.nest.map_structure(lambda t: tensors[id(t)],
                                       layer._inbound_nodes[0].input_tensors)
        config = layer.get_config()
        if layer.name in folds:
            config["use_bias"] = True
        clone = layer.__class__.from_config(config)
        tensors[id(layer.output)] = clone(inputs)
        clone.set_weights(_folded_weights(layer, folds[layer.name]) if layer.name in folds
                          else layer.get_weights())
    return keras.Model(image, tensors[id(model.outputs[0])], name=model.name)


def rescaling_as_depthwise(layer):
    """A fixed 1x1 DepthwiseConv2D computing what a Rescaling layer computes.

    Rescaling is x * scale + offset: two TFLite ops whose middle tensor has no fake-quant range
    in QAT, so the converter leaves them in float between DEQUANTIZE and QUANTIZE (a CPU island
    at the very start of the graph, fatal for the EdgeTPU). One depthwise conv is the same affine
    map as a single int8 op; a per-channel scale quantizes it exactly.
    """
    config = layer.get_config()
    channels = 3
    scale = np.broadcast_to(np.asarray(config["scale"], np.float32), (channels,))
    offset = np.broadcast_to(np.asarray(config["offset"], np.float32), (channels,))
    replacement = keras.layers.DepthwiseConv2D(
        1, use_bias=True, trainable=False, name=layer.name,
        depthwise_initializer=keras.initializers.Constant(scale.reshape(1, 1, channels, 1)),
        bias_initializer=keras.initializers.Constant(offset))
    return replacement


def freeze_batchnorm(model) -> int:
    """Puts every BatchNorm in inference mode for good (trainable=False); returns how many."""
    count = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            count += 1
    return count


def quantize_for_training(model, freeze_bn: bool = True, per_tensor: bool = False):
    """A fake-quantized copy of a float FCN, ready to fine-tune; the float model is untouched.

    per_tensor: one weight scale per kernel. Pass a model without BatchNorm after its convs
    (`fold_batchnorm`): a BatchNorm left there would be folded by the converter after the
    kernel's fake quant, and the folded kernel would stay float32.
    """
    tfmot = tfmot_module()
    annotate_layer = tfmot.quantization.keras.quantize_annotate_layer
    standins = {}
    consumers = _consumers(model) if per_tensor else {}

    def annotate(layer):
        if isinstance(layer, keras.layers.Rescaling):
            standins[layer.name] = rescaling_as_depthwise(layer)
            if per_tensor:
                # Built here, outside the annotation wrapper, so its weights carry the layer's
                # own name ('normalize/...') for _copy_weights_by_name.
                standins[layer.name](tf.zeros((1, 1, 1, 3)))
                return annotate_layer(standins[layer.name], PerTensorConvQuantizeConfig())
            return standins[layer.name]
        if per_tensor and isinstance(layer, keras.layers.ReLU):
            return annotate_layer(ConvReLU.from_config(layer.get_config()), OutputQuantizeConfig())
        fresh = layer.__class__.from_config(layer.get_config())
        if per_tensor and isinstance(layer, CONV_TYPES):
            followers = consumers[layer.name]
            fused = (len(followers) == 1 and isinstance(followers[0], keras.layers.ReLU)
                     and layer.get_config().get("activation") == "linear")
            return annotate_layer(fresh, PerTensorConvQuantizeConfig(quantize_output=not fused))
        config = explicit_quantize_config(fresh)
        return annotate_layer(fresh, config) if config is not None else fresh

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated = tfmot.quantization.keras.quantize_annotate_model(annotated)
    with quantize_scope():
        quantized = tfmot.quantization.keras.quantize_apply(annotated)
    _copy_weights_by_name(model, quantized, standins)

    # Frozen stays frozen: the float model's fixed layers (bilinear transposed-conv kernels), the
    # normalisation stand-in and, by choice, every BatchNorm. A wrapper lists every weight it
    # fake-quantizes as trainable whatever the layer's flag says, so those move to its
    # non-trainable list.
    frozen = {layer.name for layer in model.layers if not layer.trainable} | set(standins)
    if freeze_bn:
        frozen |= {layer.name for layer in model.layers
                   if isinstance(layer, keras.layers.BatchNormalization)}
    for layer in quantized.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name in frozen:
            layer.trainable = False
            if inner is not layer:
                layer._non_trainable_weights.extend(layer._trainable_weights)
                layer._trainable_weights = []
    return quantized


def _copy_weights_by_name(model, quantized, standins: dict) -> None:
    """Copies every float weight into the quantized model by variable name.

    Keras orders a model's get_weights() trainable-first, so a positional copy between models
    whose trainable flags differ silently scrambles same-shaped weights (BatchNorm vectors);
    names ('block_1_expand/kernel:0') survive wrapping unchanged.
    """
    values = {weight.name: weight for weight in model.weights}
    for standin in standins.values():
        values.update({weight.name: weight for weight in standin.weights})
    copied = set()
    for weight in quantized.weights:
        source = values.get(weight.name)
        if source is not None:
            weight.assign(source)
            copied.add(weight.name)
    missing = sorted(set(values) - copied)
    if missing:
        raise RuntimeError(f"QAT model lost float weights: {', '.join(missing[:5])}")


ACTIVATION_RANGES = ("output", "post_activation")


def calibrate_ranges(qat_model, float_model, images: np.ndarray, batch_size: int = 8) -> int:
    """Starts every weight range at its weights and activation range at what the float model
    produces on `images`.

    tfmot starts each range at [-6, 6] and moves it by an EMA with decay 0.999, so after a
    few hundred fine-tuning steps the ranges still sit mostly at their initial values: a -1..1
    tensor gets 5 bits, and the quantized model before fine-tuning scores near chance. The
    mean over batches of each tensor's batch min and max (0 included, as TFLite requires) is
    what that EMA converges to; starting there makes epoch 0 about as good as PTQ.
    Returns how many ranges were set.
    """
    targets = []      # (float layer name, min variable, max variable)
    for layer in qat_model.layers:
        by_name = {w.name.split("/")[-1].split(":")[0]: w for w in layer.weights}
        if layer.__class__.__name__ == "QuantizeLayer":
            by_name_min = next(w for n, w in by_name.items() if n.endswith("_min"))
            by_name_max = next(w for n, w in by_name.items() if n.endswith("_max"))
            by_name_min.assign(min(0.0, float(images.min())))
            by_name_max.assign(max(0.0, float(images.max())))
            continue
        for kind in ACTIVATION_RANGES:
            if f"{kind}_min" in by_name:
                targets.append((layer.layer.name, by_name[f"{kind}_min"], by_name[f"{kind}_max"]))
    # Weight ranges (LastValueQuantizer) are also at [-6, 6] until a training-mode call sets
    # them from the weights themselves; one such call does that (and moves the activation
    # EMAs by a negligible 0.1%, overwritten below).
    qat_model(tf.constant(images[:1], tf.float32), training=True)
    if not targets:
        return 0
    probe_outputs = [float_model.get_layer(name).output for name, _, _ in targets]
    probe = keras.Model(float_model.input, probe_outputs)

    @tf.function
    def extremes(batch):
        outputs = probe(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return (tf.stack([tf.reduce_min(t) for t in outputs]),
                tf.stack([tf.reduce_max(t) for t in outputs]))

    lows, highs = [], []
    for start in range(0, len(images), batch_size):
        low, high = extremes(tf.constant(images[start:start + batch_size], tf.float32))
        lows.append(np.minimum(low.numpy(), 0.0))
        highs.append(np.maximum(high.numpy(), 0.0))
    low, high = np.mean(lows, axis=0), np.mean(highs, axis=0)
    for (_, min_var, max_var), lo, hi in zip(targets, low, high):
        min_var.assign(float(lo))
        max_var.assign(float(max(hi, lo + 1e-6)))
    return len(targets) + 1


def is_fake_quantized(model) -> bool:
    """Whether every layer with weights is wrapped for quantization (the graph stayed QAT)."""
    wrapper = tfmot_module().quantization.keras.QuantizeWrapperV2
    weighted = [layer for layer in model.layers if layer.weights]
    plain = [layer.name for layer in weighted
             if not isinstance(layer, wrapper) and "quantize_layer" not in layer.name]
    return bool(weighted) and not plain


class _EpochScorer(keras.callbacks.Callback):
    """Scores the fake-quantized model on val after every epoch and keeps the best weights;
    epoch 0 is the model as it comes in."""

    def __init__(self, score, start_weights: list, epochs: int, progress=None):
        super().__init__()
        self.score, self.epochs, self.progress = score, epochs, progress
        self.best_miou, self.best_epoch, self.best_weights = score(), 0, start_weights
        self.history = [{"epoch": 0, "val_miou": round(100 * self.best_miou, 2)}]
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        number, miou = epoch + 1, self.score()
        self.history.append({"epoch": number, "loss": round(float((logs or {})["loss"]), 5),
                             "val_miou": round(100 * miou, 2),
                             "seconds": round(time.perf_counter() - self.started, 1)})
        log.info("QAT epoch %d/%d: loss %.4f, val mIoU %.2f (%.0f s)", number, self.epochs,
                 self.history[-1]["loss"], 100 * miou, self.history[-1]["seconds"])
        if self.progress:
            self.progress(number, self.epochs, miou)
        if miou > self.best_miou:
            self.best_miou, self.best_epoch = miou, number
            self.best_weights = self.model.get_weights()


def fine_tune(model, train_arrays, val_arrays, class_weights, labels, augment,
              config: QatConfig, calibration: np.ndarray | None = None, progress=None,
              loss: str = "ce", logit_offset: np.ndarray | None = None):
    """QAT-fine-tunes a float model; returns (best fake-quant model, history list).

    Activation ranges start from `calibration` images (default: the first 64 training images;
    see calibrate_ranges). The val mIoU of the fake-quantized graph picks the epoch; epoch 0 is
    the calibrated model before any fine-tuning, so with keep_best QAT never returns a model
    worse than its own start. `logit_offset` goes to the loss (see segmentation_loss): minus a
    folded prior correction's shift, so fine-tuning does not undo it.
    """
    from fcnedge.train.evaluate import evaluate_predictor, keras_predictor
    from fcnedge.train.losses import segmentation_loss
    from fcnedge.train.input_pipeline import train_dataset

    tf.random.set_seed(config.seed)
    if config.per_tensor:
        # Folded statistics are constants: BatchNorm is as frozen as freeze_bn makes it.
        model = fold_batchnorm(model)
    qat_model = quantize_for_training(model, config.freeze_bn, config.per_tensor)
    calibration = train_arrays.images[:64] if calibration is None else calibration
    calibrate_ranges(qat_model, model, calibration, config.batch_size)
    steps = max(1, len(train_arrays.images) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps,
                                                      alpha=0.1)
    qat_model.compile(optimizer=keras.optimizers.Adam(schedule),
                      loss=segmentation_loss(loss, class_weights, labels.num_classes,
                                             logit_offset=logit_offset))

    def score() -> float:
        return evaluate_predictor(keras_predictor(qat_model), val_arrays.images,
                                  val_arrays.full_masks, labels).mean_iou

    scorer = _EpochScorer(score, qat_model.get_weights(), config.epochs, progress)
    log.info("QAT epoch 0 (quantized, not fine-tuned): val mIoU %.2f",
             scorer.history[0]["val_miou"])
    # One fit over an endless dataset: one input iterator for all epochs (see train_dataset).
    dataset = train_dataset(train_arrays.images, train_arrays.masks, config.batch_size, augment,
                            labels.void_id, seed=config.seed,
                            paste_ids=augment.paste_ids(labels.class_names))
    qat_model.fit(dataset, epochs=config.epochs, steps_per_epoch=steps, verbose=0,
                  callbacks=[scorer])
    history, best_epoch = scorer.history, scorer.best_epoch
    if config.keep_best:
        qat_model.set_weights(scorer.best_weights)
    # The card says which epoch became the model: it tells whether fine-tuning paid at all.
    history[best_epoch if config.keep_best else config.epochs]["kept"] = True
    return qat_model, history
