"""FCN graphs: shapes for every arch x backbone, layer names, the loss, BatchNorm momentum."""
import numpy as np
import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.train.models import ARCH_STRIDES, ModelConfig, build_fcn
from fcnedge.train.tfcompat import keras, tf

SMALL = (64, 96)


@pytest.mark.parametrize("backbone", ["mobilenetv2", "vgg16"])
@pytest.mark.parametrize("arch", list(ARCH_STRIDES))
def test_output_is_logits_at_input_size(arch, backbone):
    decoder = "transpose" if arch in ("fcn8s", "fcn2s") else "bilinear"
    config = ModelConfig(alpha=0.35, arch=arch, backbone=backbone, input_hw=SMALL, decoder=decoder,
                         fc_units=64 if backbone == "vgg16" else 0)
    model = build_fcn(config)
    assert model.output_shape == (None, *SMALL, 11)
    out = model(np.random.default_rng(0).uniform(0, 255, (1, *SMALL, 3)).astype(np.float32))
    assert out.shape == (1, *SMALL, 11) and np.isfinite(out.numpy()).all()
    names = [layer.name for layer in model.layers]
    assert names[0] == "image" and names[-1] == "logits"
    for stride in ARCH_STRIDES[arch][1:]:
        assert f"{arch}_score_pool{stride}" in names
    # No softmax anywhere: the runtime argmaxes logits.
    assert not any(getattr(layer, "activation", None) is keras.activations.softmax
                   for layer in model.layers)


def test_layer_names_are_deterministic():
    first = [layer.name for layer in build_fcn(ModelConfig(alpha=0.35, input_hw=SMALL)).layers]
    second = [layer.name for layer in build_fcn(ModelConfig(alpha=0.35, input_hw=SMALL)).layers]
    assert first == second


def test_transpose_decoder_starts_as_bilinear_upsampling():
    config = ModelConfig(alpha=0.35, arch="fcn32s", input_hw=SMALL, decoder="transpose", dropout=0.0)
    model = build_fcn(config)
    final = model.get_layer("fcn32s_upscore_final")
    assert not final.trainable
    coarse = np.zeros((1, 2, 3, 11), np.float32)
    coarse[0, 1, 1, 4] = 1.0
    up = final(coarse).numpy()[0, :, :, 4]
    assert up.shape == (64, 96) and up.max() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("kwargs, message", [
    ({"input_hw": (100, 96)}, "100x96.*multiples of 32"),
    ({"arch": "fcn3s"}, "arch: got 'fcn3s'"),
    ({"backbone": "resnet"}, "backbone: got 'resnet'"),
    ({"alpha": 0}, "alpha: got 0"),
])
def test_bad_model_options(kwargs, message):
    with pytest.raises(InputError, match=message):
        ModelConfig(**kwargs)


def test_missing_backbone_weights_file(tmp_path):
    with pytest.raises(InputError, match="nope.h5: file not found"):
        build_fcn(ModelConfig(alpha=0.35, input_hw=SMALL), backbone_weights=str(tmp_path / "nope.h5"))


def test_backbone_weights_from_a_file(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None, alpha=0.35,
                                            input_shape=(*SMALL, 3))
    path = tmp_path / "backbone.h5"
    source.save_weights(str(path))
    model = build_fcn(ModelConfig(alpha=0.35, input_hw=SMALL), backbone_weights=str(path))
    np.testing.assert_array_equal(model.get_layer("Conv1").get_weights()[0],
                                  source.get_layer("Conv1").get_weights()[0])


def test_imagenet_weights_offline_fail_clearly(tmp_path, monkeypatch):
    # An empty Keras cache and an unreachable proxy: the download must fail, and say so.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="could not download the ImageNet mobilenetv2 weights"):
        build_fcn(ModelConfig(alpha=0.35, input_hw=(96, 96)), backbone_weights="imagenet")


def test_loss_ignores_void_and_weights_classes():
    from fcnedge.train.losses import masked_weighted_crossentropy

    logits = tf.constant(np.random.default_rng(0).normal(size=(1, 2, 2, 3)), tf.float32)
    labels = tf.constant([[[0, 1], [2, 3]]])   # 3 is void for 3 classes
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        tf.constant([[[0, 1], [2, 0]]]), logits).numpy()[0]
    plain = masked_weighted_crossentropy(None, 3)(labels, logits).numpy()
    assert plain.mean() == pytest.approx(ce.ravel()[:3].mean(), rel=1e-5)
    weighted = masked_weighted_crossentropy(np.array([1.0, 1.0, 4.0]), 3)(labels, logits).numpy()
    expected = (ce[0, 0] + ce[0, 1] + 4 * ce[1, 0]) / 6.0
    assert weighted.mean() == pytest.approx(expected, rel=1e-5)


def exact_lovasz_softmax(labels: np.ndarray, probs: np.ndarray, num_classes: int) -> float:
    """The paper's definition, by sorting: the reference the binned version must match."""
    labels, probs = labels.reshape(-1), probs.reshape(-1, num_classes)
    keep = labels < num_classes
    labels, probs = labels[keep], probs[keep].astype(np.float64)
    losses = []
    for c in range(num_classes):
        fg = (labels == c).astype(np.float64)
        if not fg.any():
            continue
        errors = np.abs(fg - probs[:, c])
        order = np.argsort(-errors, kind="stable")
        errors, fg = errors[order], fg[order]
        jaccard = 1 - (fg.sum() - np.cumsum(fg)) / (fg.sum() + np.cumsum(1 - fg))
        losses.append(np.dot(errors, np.diff(jaccard, prepend=0.0)))
    return float(np.mean(losses))


@pytest.mark.parametrize("bins", [16, 1024])
def test_binned_lovasz_is_within_one_bin_of_the_exact_loss(bins):
    from fcnedge.train.losses import lovasz_softmax

    rng = np.random.default_rng(bins)
    logits = rng.normal(size=(2, 30, 40, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 6, (2, 30, 40))
    labels[labels == 4] = 1      # class 4 absent: left out of the mean; id 5 is void
    probs = tf.nn.softmax(logits).numpy()
    exact = exact_lovasz_softmax(labels, probs, 5)
    binned = float(lovasz_softmax(tf.constant(labels), tf.constant(logits), 5, bins=bins))
    assert abs(binned - exact) < 1.0 / bins
    if bins == 16:
        assert binned != pytest.approx(exact, abs=1e-6)   # the bound is not vacuous here
    # Void pixels do not count, whatever the network says there.
    noisy = logits.copy()
    noisy[labels == 5] = rng.normal(size=(int((labels == 5).sum()), 5)) * 10
    assert float(lovasz_softmax(tf.constant(labels), tf.constant(noisy), 5, bins=bins)) == \
        pytest.approx(binned, abs=1e-6)


def test_lovasz_is_zero_for_a_confident_right_answer_and_pulls_on_a_wrong_one():
    from fcnedge.train.losses import lovasz_softmax, segmentation_loss

    labels = np.array([[[0, 1], [2, 2]]])
    right = tf.constant(np.eye(3)[labels] * 30, tf.float32)
    assert float(lovasz_softmax(tf.constant(labels), right, 3)) < 1e-3
    wrong = tf.Variable(np.eye(3)[[[[1, 0], [2, 2]]]] * 3, dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = lovasz_softmax(tf.constant(labels), wrong, 3)
    gradient = tape.gradient(value, wrong).numpy()
    assert float(value) > 0.3
    # Descent raises the right class's logit at the wrongly labelled pixel.
    assert gradient[0, 0, 0, 0] < 0 and gradient[0, 0, 0, 1] > 0
    combined = segmentation_loss("ce+lovasz", None, 3)(tf.constant(labels), wrong)
    ce = segmentation_loss("ce", None, 3)(tf.constant(labels), wrong)
    assert float(tf.reduce_mean(combined)) == pytest.approx(
        float(tf.reduce_mean(ce)) + float(value), rel=1e-5)
    with pytest.raises(ValueError, match="loss 'dice'"):
        segmentation_loss("dice", None, 3)


def test_bn_momentum_makes_eval_mode_match_training_mode():
    """With momentum 0.9 the moving statistics track the data within a short run.

    A tiny learning rate keeps the weights nearly still, so the gap between training-mode and
    eval-mode output is the lag of the moving statistics alone. It is read at the stride-8 skip
    that FCN-8s fuses: at this test's 64x96 input the stride-32 maps hold 2x3 pixels, too few
    for batch and moving statistics to agree there whatever the momentum.
    """
    from fcnedge.train.losses import masked_weighted_crossentropy

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (4, *SMALL, 3)).astype(np.float32)
    y = rng.integers(0, 11, (4, *SMALL)).astype(np.uint8)
    gaps = {}
    for momentum in (0.9, 0.999):
        tf.random.set_seed(0)
        model = build_fcn(ModelConfig(alpha=0.35, input_hw=SMALL, bn_momentum=momentum, dropout=0.0))
        model.compile(keras.optimizers.Adam(1e-6), masked_weighted_crossentropy(None, 11))
        assert model.get_layer("bn_Conv1").momentum == momentum
        for _ in range(100):
            model.train_on_batch(x, y)
        skip = keras.Model(model.input, model.get_layer("block_6_expand_relu").output)
        train_mode = skip(x, training=True).numpy()
        eval_mode = skip(x, training=False).numpy()
        gaps[momentum] = np.abs(train_mode - eval_mode).mean() / np.abs(train_mode).mean()
    assert gaps[0.9] < 0.05, gaps
    assert gaps[0.999] > 5 * gaps[0.9], gaps
