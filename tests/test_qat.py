"""Quantization-aware training: explicit QuantizeConfigs, frozen BatchNorm, integer export."""
import numpy as np
import pytest

from fcnedge.convert.export import to_tflite
from fcnedge.convert.options import Format
from fcnedge.convert.tflite_graph import export_rule_violations, read_graph
from fcnedge.runtime.labels import CAMVID
from fcnedge.train.data import SplitArrays
from fcnedge.train.config import AugmentConfig

tfmot = pytest.importorskip("tensorflow_model_optimization")


def _small_model(decoder="bilinear", backbone="mobilenetv2"):
    from fcnedge.train.models import ModelConfig, build_fcn

    return build_fcn(ModelConfig(alpha=0.35, input_hw=(64, 96), decoder=decoder, backbone=backbone,
                                 fc_units=16 if backbone == "vgg16" else 0))


def _wrapped(model, name):
    return next(layer for layer in model.layers
                if getattr(getattr(layer, "layer", None), "name", None) == name)


def test_resize_and_normalisation_get_explicit_configs():
    from fcnedge.convert.qat import quantize_for_training
    from fcnedge.convert.quantize_configs import (OutputQuantizeConfig, SameScaleQuantizeConfig,
                                                  explicit_quantize_config)
    from fcnedge.train.tfcompat import keras

    assert isinstance(explicit_quantize_config(keras.layers.UpSampling2D(2)),
                      SameScaleQuantizeConfig)
    assert isinstance(explicit_quantize_config(keras.layers.Resizing(8, 8)),
                      SameScaleQuantizeConfig)
    assert isinstance(explicit_quantize_config(keras.layers.Rescaling(0.5)), OutputQuantizeConfig)
    assert explicit_quantize_config(keras.layers.Conv2D(4, 1)) is None

    qat = quantize_for_training(_small_model())
    upsample = _wrapped(qat, "fcn8s_upscore_to16")
    assert isinstance(upsample.quantize_config, SameScaleQuantizeConfig)
    assert upsample.quantize_config.get_output_quantizers(upsample.layer) == []
    normalize = _wrapped(qat, "normalize")
    assert isinstance(normalize.layer, keras.layers.DepthwiseConv2D)


@pytest.mark.parametrize("backbone", ["mobilenetv2", "vgg16"])
def test_depthwise_stand_in_computes_the_rescaling(backbone):
    from fcnedge.convert.qat import rescaling_as_depthwise

    model = _small_model(backbone=backbone)
    rescaling = model.get_layer("normalize")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    stand_in = rescaling_as_depthwise(rescaling)
    np.testing.assert_allclose(stand_in(pixels).numpy(), rescaling(pixels).numpy(), atol=1e-4)


def _checked_integer_graph(data: bytes):
    """An exported integer model's graph, once it passes the export rules with no float island."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "qat.tflite"
        path.write_bytes(data)
        graph = read_graph(path)
    assert export_rule_violations(graph, integer_io=True) == []
    assert "DEQUANTIZE" not in graph.ops
    return graph


@pytest.mark.parametrize("decoder", ["bilinear", "transpose"])
def test_qat_graph_exports_as_pure_integer(decoder):
    from fcnedge.convert.qat import is_fake_quantized, quantize_for_training

    qat = quantize_for_training(_small_model(decoder))
    assert is_fake_quantized(qat)
    data = to_tflite(qat, Format.INT8_QAT, io_type="int8")
    graph = _checked_integer_graph(data)
    expected = "RESIZE_BILINEAR" if decoder == "bilinear" else "TRANSPOSE_CONV"
    assert expected in graph.ops


def test_fine_tune_changes_weights_keeps_bn_frozen_and_stays_quantized(synth_data, monkeypatch):
    from fcnedge.convert.options import QatConfig
    from fcnedge.convert.qat import fine_tune, is_fake_quantized
    from fcnedge.train.data import find_pairs, load_split

    from fcnedge.train.losses import masked_weighted_crossentropy

    model = _small_model()
    train = load_split(find_pairs(synth_data, "train", 16), (64, 96), CAMVID)
    val = load_split(find_pairs(synth_data, "val", 4), (64, 96), CAMVID)
    assert isinstance(train, SplitArrays)
    # QAT starts from a trained model: an untrained one with frozen BatchNorm has dead
    # activations (moving statistics at their initial values) and no gradient to learn from.
    model.compile("adam", masked_weighted_crossentropy(None, CAMVID.num_classes))
    model.fit(train.images.astype(np.float32), train.masks, batch_size=4, epochs=3, verbose=0)
    # The run's augmentation, copy-paste included, is what QAT fine-tunes with.
    import fcnedge.train.input_pipeline as pipeline

    pasted_with = []
    real_train_dataset = pipeline.train_dataset

    def recording_train_dataset(*args, **kwargs):
        pasted_with.append(kwargs.get("paste_ids"))
        return real_train_dataset(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_dataset", recording_train_dataset)
    qat, history = fine_tune(model, train, val, None, CAMVID,
                             AugmentConfig(paste_classes=("Pole", "Pedestrian")),
                             QatConfig(epochs=1, learning_rate=1e-2, batch_size=4,
                                       keep_best=False))
    assert pasted_with == [(2, 9)]
    assert is_fake_quantized(qat)
    assert [entry["epoch"] for entry in history] == [0, 1]
    # keep_best=False returns the last epoch, whatever the scores: the history says so.
    assert [entry.get("kept", False) for entry in history] == [False, True]

    def kernel(m, name):
        layer = next(layer for layer in m.layers if name in layer.name)
        return next(w.numpy() for w in layer.weights
                    if w.name.endswith(("/kernel:0", "/depthwise_kernel:0")))

    def moving_mean(m, name):
        layer = next(layer for layer in m.layers if layer.name.endswith(name))
        return next(w.numpy() for w in layer.weights if "moving_mean" in w.name)

    assert not np.allclose(kernel(qat, "fcn8s_score_fr"), kernel(model, "fcn8s_score_fr"))
    # The normalisation stand-in and BatchNorm do not train.
    np.testing.assert_allclose(kernel(qat, "normalize").ravel(), [1 / 127.5] * 3, rtol=1e-6)
    np.testing.assert_array_equal(moving_mean(qat, "block_6_expand_BN"),
                                  moving_mean(model, "block_6_expand_BN"))


def test_calibrated_qat_model_agrees_with_float_before_fine_tuning(converted, synth_data):
    from fcnedge.convert.qat import calibrate_ranges, quantize_for_training
    from fcnedge.train.data import find_pairs, load_split
    from fcnedge.train.weights import load_trained_model

    run, _ = converted
    trained = load_trained_model(run)
    model, config, labels = trained.model, trained.config, trained.labels
    images = load_split(find_pairs(synth_data, "val"), config.input_hw,
                        labels).images.astype(np.float32)
    qat = quantize_for_training(model)
    float_logits = model(images, training=False).numpy()

    def logits():
        return qat(images, training=False).numpy()

    def relative_error(quantized):
        return (np.linalg.norm(quantized - float_logits)
                / np.linalg.norm(float_logits - float_logits.mean()))

    # tfmot starts every range at [-6, 6]: a 1/127.5 normalisation weight quantizes to zero,
    # so the output no longer depends on the image. Pixel agreement with the float labels
    # cannot show that: on synthetic scenes a fixed layout (sky above, road below) matched
    # 39-92% of pixels over five trainings.
    uncalibrated = logits()
    np.testing.assert_array_equal(uncalibrated, np.broadcast_to(uncalibrated[:1],
                                                                uncalibrated.shape))
    assert calibrate_ranges(qat, model, images) > 10
    calibrated = logits()
    # Measured over four trainings: 0.013-0.014 calibrated, 0.16-0.32 before.
    assert relative_error(calibrated) < 0.05 < relative_error(uncalibrated)
    assert (calibrated.argmax(-1) == float_logits.argmax(-1)).mean() > 0.9


def _weight_scale_counts(data: bytes) -> dict:
    """Per weight tensor of each CONV_2D / DEPTHWISE_CONV_2D: how many scales it carries."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    counts = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weights = interpreter._get_tensor_details(op["inputs"][1], 0)
            counts[weights["name"]] = len(weights["quantization_parameters"]["scales"])
    return counts


def test_per_tensor_ptq_drops_the_per_channel_vectors():
    model = _small_model()
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 96, 3)).astype(np.uint8)
    sizes = {}
    for per_tensor in (False, True):
        data = to_tflite(model, Format.INT8_PTQ, images, per_tensor=per_tensor)
        counts = _weight_scale_counts(data)
        assert counts, "no convolutions found"
        if per_tensor:
            assert set(counts.values()) == {1}
        else:
            assert max(counts.values()) > 1
        sizes[per_tensor] = len(data)
    assert sizes[True] < sizes[False]


def test_folding_batchnorm_keeps_the_outputs():
    from fcnedge.convert.qat import fold_batchnorm
    from fcnedge.train.tfcompat import keras

    model = _small_model()
    rng = np.random.default_rng(1)
    # Fresh BatchNorms are near identities; give them statistics worth folding.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[-1]
            layer.set_weights([rng.uniform(0.5, 2, channels), rng.normal(0, 0.5, channels),
                               rng.normal(0, 0.5, channels), rng.uniform(0.2, 3, channels)])
    folded = fold_batchnorm(model)
    assert not [layer for layer in folded.layers
                if isinstance(layer, keras.layers.BatchNormalization)]
    assert {layer.name for layer in folded.layers} < {layer.name for layer in model.layers}
    pixels = rng.uniform(0, 255, (2, 64, 96, 3)).astype(np.float32)
    expected = model(pixels, training=False).numpy()
    np.testing.assert_allclose(folded(pixels, training=False).numpy(), expected,
                               atol=1e-4 * np.abs(expected).max())


def test_per_tensor_qat_exports_one_scale_per_kernel_and_fuses_relu(synth_data):
    from fcnedge.convert.options import QatConfig
    from fcnedge.convert.qat import fine_tune, is_fake_quantized
    from fcnedge.train.data import find_pairs, load_split
    from fcnedge.train.tfcompat import keras

    model = _small_model()
    train = load_split(find_pairs(synth_data, "train", 4), (64, 96), CAMVID)
    val = load_split(find_pairs(synth_data, "val", 2), (64, 96), CAMVID)
    qat, history = fine_tune(model, train, val, None, CAMVID, AugmentConfig(),
                             QatConfig(epochs=1, learning_rate=1e-4, batch_size=2,
                                       per_tensor=True))
    assert is_fake_quantized(qat) and len(history) == 2
    # BatchNorm folded into the convolutions: its statistics became constants in the kernels.
    assert not [layer for layer in qat.layers
                if isinstance(getattr(layer, "layer", layer), keras.layers.BatchNormalization)]
    data = to_tflite(qat, Format.INT8_QAT, per_tensor=True)
    counts = _weight_scale_counts(data)
    assert counts and set(counts.values()) == {1}
    graph = _checked_integer_graph(data)
    # Every ReLU6 fused into its conv, as in the per-channel graph: no activation op left.
    assert not {"RELU", "RELU6"} & set(graph.ops)
    assert graph.ops.count("CONV_2D") + graph.ops.count("DEPTHWISE_CONV_2D") == len(counts)


def test_per_tensor_qat_cannot_train_batchnorm():
    from fcnedge.convert.options import ConvertOptions, QatConfig
    from fcnedge.runtime.errors import InputError

    with pytest.raises(InputError, match="qat_train_bn: per-tensor int8-qat folds BatchNorm"):
        ConvertOptions(model="m", data="d", out="o", formats=(Format.INT8_QAT,), per_tensor=True,
                       qat=QatConfig(freeze_bn=False))
    ConvertOptions(model="m", data="d", out="o", formats=(Format.INT8_QAT,), per_tensor=True)


@pytest.mark.parametrize("kwargs, message", [({"epochs": 0}, "qat_epochs: got 0"),
                                             ({"learning_rate": 0.0}, "qat_learning_rate: got 0")])
def test_a_bad_qat_config_is_bad_input(kwargs, message):
    from fcnedge.convert.options import QatConfig
    from fcnedge.runtime.errors import InputError

    with pytest.raises(InputError, match=message):
        QatConfig(**kwargs)
