"""Adapters: quantization with the tensor's own parameters, argmax on int8, input conversion."""
import numpy as np
import pytest

from fcnedge.runtime import adapters
from fcnedge.runtime.stats import latency_summary


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("channels", [2, 11, 150])
def test_argmax_labels_matches_numpy_with_ties_on_every_path(dtype, channels):
    # Few distinct values make ties common: the first maximum must win, as in np.argmax.
    rng = np.random.default_rng(channels)
    raw = rng.integers(0, 4, (17, 23, channels)).astype(dtype)
    out = np.full((17, 23), 99, np.uint8)
    labels = adapters.argmax_labels(raw, out=out)
    assert labels is out
    np.testing.assert_array_equal(labels, np.argmax(raw, axis=-1))


def test_argmax_labels_of_a_non_contiguous_view():
    raw = np.random.default_rng(1).normal(size=(20, 30, 12)).astype(np.float32)[:, ::2, 1:]
    np.testing.assert_array_equal(adapters.argmax_labels(raw), np.argmax(raw, axis=-1))


@pytest.mark.parametrize("dtype, scale, zero_point", [(np.int8, 0.05, -3), (np.uint8, 0.1, 128),
                                                      (np.int8, 1.0, -128)])
def test_quantize_dequantize_round_trip(dtype, scale, zero_point):
    info = np.iinfo(dtype)
    values = np.linspace(scale * (info.min - zero_point), scale * (info.max - zero_point), 257,
                         dtype=np.float32)
    q = adapters.quantize(values, scale, zero_point, dtype)
    assert q.dtype == dtype
    np.testing.assert_allclose(adapters.dequantize(q, scale, zero_point), values,
                               atol=scale / 2 + 1e-6)


def test_quantize_saturates():
    q = adapters.quantize(np.array([-1000.0, 1000.0]), 0.5, 0, np.int8)
    assert q.tolist() == [-128, 127]


def test_dequantize_uses_scale_and_zero_point():
    q = np.array([-128, 0, 127], np.int8)
    assert adapters.dequantize(q, 0.5, -28).tolist() == [-50.0, 14.0, 77.5]


def test_argmax_on_int8_equals_argmax_on_dequantized_floats():
    rng = np.random.default_rng(0)
    raw = rng.integers(-128, 128, (32, 48, 11)).astype(np.int8)
    labels = adapters.argmax_labels(raw)
    floats = adapters.dequantize(raw, 0.073, 17)
    np.testing.assert_array_equal(labels, np.argmax(floats, axis=-1))
    assert labels.dtype == np.uint8


@pytest.mark.parametrize("dtype, scale, zero_point", [
    (np.int8, 1.0, -128), (np.int8, 0.9999998807907104, -128), (np.uint8, 1.0, 0),
    (np.uint8, 2.0, 10), (np.int8, 0.5, 3)])
def test_rgb_to_input_quantizes_with_the_tensor_parameters(dtype, scale, zero_point):
    rgb = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    details = {"dtype": dtype, "quantization": (scale, zero_point)}
    converted = adapters.rgb_to_input(rgb, details)
    assert converted.dtype == dtype
    np.testing.assert_array_equal(converted, adapters.quantize(rgb, scale, zero_point, dtype))
    out = np.empty(rgb.shape, dtype)
    assert adapters.rgb_to_input(rgb, details, out=out) is out
    np.testing.assert_array_equal(out, converted)


def test_rgb_to_input_float():
    rgb = np.full((4, 4, 3), 255, np.uint8)
    as_float = adapters.rgb_to_input(rgb, {"dtype": np.float32, "quantization": (0.0, 0)})
    assert as_float.dtype == np.float32 and as_float.max() == 255.0


def test_model_adapters_on_real_models(tflite_models):
    from fcnedge.runtime.interpreter import make_interpreter

    for kind, path in tflite_models.items():
        interpreter, _ = make_interpreter(path)
        assert adapters.input_size(interpreter) == (64, 96)
        assert adapters.num_classes(interpreter) == 11
        assert adapters.input_type(interpreter) == {"float32": np.float32, "int8": np.int8,
                                                    "uint8": np.uint8}[kind]
        scale, zero_point = adapters.quantization(adapters.input_details(interpreter))
        if kind != "float32":
            assert scale > 0   # read from the model, never assumed
        adapters.set_input(interpreter, np.full((64, 96, 3), 100, np.uint8))
        interpreter.invoke()
        assert adapters.get_output(interpreter).shape == (64, 96, 11)
        with pytest.raises(ValueError, match="expects"):
            adapters.set_input(interpreter, np.zeros((32, 32, 3), np.uint8))


def test_int8_model_agrees_with_float_model(tflite_models):
    from fcnedge.runtime.segmenter import Segmenter
    from fcnedge.train.synth import synth_scene

    image, _ = synth_scene(64, 96, 2)
    float_seg = Segmenter(tflite_models["float32"])
    int8_seg = Segmenter(tflite_models["int8"])
    a, b = float_seg.segment(image), int8_seg.segment(image)
    float_logits = float_seg.probabilities()
    int8_probs = int8_seg.probabilities()
    # Probabilities come from dequantized logits: close to the float model's.
    assert np.abs(float_logits - int8_probs).mean() < 0.05
    assert (a.labels == b.labels).mean() > 0.8


def test_latency_percentiles_on_given_timings():
    summary = latency_summary([1, 2, 3, 4])
    assert summary["p50"] == 2.5 and summary["min"] == 1 and summary["max"] == 4
    assert summary["p90"] == pytest.approx(3.7) and summary["p99"] == pytest.approx(3.97)
    assert summary["fps_at_p50"] == 400.0
    assert latency_summary([]) == {"count": 0}


def test_smoothing_averages_logits_over_frames(tflite_models):
    from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions
    from fcnedge.train.synth import synth_scene

    first, _ = synth_scene(64, 96, 1)
    second, _ = synth_scene(64, 96, 2)
    plain = Segmenter(tflite_models["float32"])
    smooth = Segmenter(tflite_models["float32"], SegmenterOptions(smooth=0.5))
    # The staged API's raw outputs (float32 logits): what the average is taken over.
    first_raw = plain.infer(plain.prepare(first)[0]).copy()
    second_raw = plain.infer(plain.prepare(second)[0]).copy()
    smooth.segment(first)
    result = smooth.segment(second)
    expected = np.argmax(0.5 * first_raw + 0.5 * second_raw, axis=-1)
    np.testing.assert_array_equal(result.input_labels, expected)
    smooth.reset()
    np.testing.assert_array_equal(smooth.segment(second).input_labels,
                                  np.argmax(second_raw, axis=-1))
