"""Opening models: backends, delegates (missing here, on both paths), corrupt files, fuzzing."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fcnedge.runtime.cli import RUN_FLAGS
from fcnedge.runtime.errors import InputError, flag_message
from fcnedge.runtime.interpreter import (CompiledModelInterpreter, DelegateUnavailable,
                                         find_backend, make_interpreter)
from fcnedge.runtime.segmenter import Segmenter, SegmenterOptions


def test_litert_is_the_first_choice():
    assert find_backend().name == "ai_edge_litert"


def test_missing_model(tmp_path):
    with pytest.raises(InputError, match="nope.tflite: file not found"):
        make_interpreter(tmp_path / "nope.tflite")


def test_not_a_tflite_file(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match="not a TFLite model"):
        make_interpreter(path)


def test_truncated_model(tmp_path, tflite_models):
    path = tmp_path / "cut.tflite"
    path.write_bytes(tflite_models["int8"].read_bytes()[:5000])
    with pytest.raises(InputError, match="cut.tflite: malformed TFLite graph: the flatbuffer could not be read"):
        make_interpreter(path)


def test_model_loader_fuzz_never_crashes_the_process(tmp_path, tflite_models):
    """Hundreds of random and truncated byte strings, in a child process that must survive."""
    script = textwrap.dedent(f"""
        import numpy as np, pathlib
        from fcnedge.runtime.errors import InputError
        from fcnedge.runtime.interpreter import make_interpreter
        good = pathlib.Path({str(tflite_models['int8'])!r}).read_bytes()
        rng = np.random.default_rng(0)
        path = pathlib.Path({str(tmp_path / 'fuzz.tflite')!r})
        rejected = opened = 0
        for trial in range(300):
            if trial % 3 == 0:
                data = good[: rng.integers(0, len(good))]
            elif trial % 3 == 1:
                data = bytearray(good)
                for _ in range(rng.integers(1, 50)):
                    data[rng.integers(0, len(data))] = rng.integers(0, 256)
                data = bytes(data)
            else:
                data = b"xxxxTFL3" + rng.bytes(int(rng.integers(0, 4000)))
            path.write_bytes(data)
            try:
                make_interpreter(path)
                opened += 1
            except InputError:
                rejected += 1
        print("ok", rejected, opened)
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("ok")
    rejected = int(completed.stdout.split()[1])
    assert rejected >= 150   # truncations and random bodies are refused, not crashed on


@pytest.mark.parametrize("delegate, library", [("edgetpu", "libedgetpu.so.1"),
                                               ("gpu", "libtensorflowlite_gpu_delegate.so")])
def test_missing_delegate_is_a_clear_error(delegate, library, tflite_models):
    with pytest.raises(DelegateUnavailable, match=f"could not load {library}.*`fallback_cpu`"):
        make_interpreter(tflite_models["int8"], delegate)


def test_the_fallback_warning_does_not_tell_the_user_to_pass_the_fallback(tflite_models,
                                                                          caplog):
    with caplog.at_level("WARNING"):
        _, info = make_interpreter(tflite_models["int8"], "edgetpu", fallback_cpu=True)
    assert info.fell_back and info.delegate == "cpu"
    assert "running on the CPU instead (--fallback cpu)" in caplog.text
    assert "Use --fallback cpu" not in caplog.text


def test_gpu_without_a_usable_gpu_names_the_accelerator_then_the_library(tflite_models,
                                                                        monkeypatch):
    import fcnedge.runtime.interpreter as interpreter_module

    def no_gpu(*args):
        raise RuntimeError("no GPU here")

    monkeypatch.setattr(interpreter_module, "open_gpu_accelerator", no_gpu)
    with pytest.raises(DelegateUnavailable) as caught:
        make_interpreter(tflite_models["float32"], "gpu")
    # Both routes are named, accelerator first.
    assert str(caught.value).startswith(
        "delegate gpu: LiteRT's GPU accelerator found no usable GPU, and could not load "
        "libtensorflowlite_gpu_delegate.so")
    # The command line names its flags instead: the delegate's, the library's, the fallback's.
    worded = flag_message(caught.value, RUN_FLAGS)
    assert worded.startswith("--delegate gpu: LiteRT's GPU accelerator")
    assert "pass its path as --gpu-delegate" in worded and "Use --fallback cpu" in worded


def test_gpu_runs_through_litert_accelerator_when_it_opens(tflite_models, monkeypatch):
    """The accelerator route end to end, with LiteRT's CPU accelerator standing in for a GPU
    (this machine has none): the interpreter it returns runs the model."""
    import fcnedge.runtime.interpreter as interpreter_module
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    def cpu_accelerator(content, details_source, num_threads):
        return CompiledModelInterpreter(content, details_source, HardwareAccelerator.CPU,
                                        num_threads)

    monkeypatch.setattr(interpreter_module, "open_gpu_accelerator", cpu_accelerator)
    interpreter, info = make_interpreter(tflite_models["float32"], "gpu")
    assert (info.backend, info.delegate) == ("ai_edge_litert (CompiledModel)", "gpu")
    details = interpreter.get_input_details()[0]
    interpreter.set_tensor(details["index"], np.zeros(details["shape"], details["dtype"]))
    interpreter.invoke()
    assert interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).ndim == 4


def test_a_broken_model_is_not_reported_as_a_missing_gpu(tflite_models, tmp_path):
    truncated = tmp_path / "half.tflite"
    content = tflite_models["float32"].read_bytes()
    truncated.write_bytes(content[:len(content) // 2])
    with pytest.raises(InputError, match="half.tflite: malformed TFLite graph: the flatbuffer could not be read") as caught:
        make_interpreter(truncated, "gpu")
    assert not isinstance(caught.value, DelegateUnavailable)


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_compiled_model_adapter_matches_the_interpreter(kind, tflite_models):
    """The GPU route's adapter, run here on LiteRT's CPU accelerator."""
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator

    path = tflite_models[kind]
    content = path.read_bytes()
    classic, _ = make_interpreter(path, "cpu", num_threads=1)
    backend = find_backend(("ai_edge_litert",))
    compiled = CompiledModelInterpreter(content, backend.interpreter_class(model_content=content),
                                        HardwareAccelerator.CPU, 1)
    source, target = classic.get_input_details()[0], classic.get_output_details()[0]
    assert compiled.get_input_details()[0]["quantization"] == source["quantization"]
    rng = np.random.default_rng(0)
    frame = (rng.uniform(0, 255, source["shape"]) if kind == "float32"
             else rng.integers(-128, 128, source["shape"])).astype(source["dtype"])
    outputs = []
    for interpreter in (classic, compiled):
        interpreter.set_tensor(source["index"], frame)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(target["index"]).copy())
    assert outputs[1].dtype == outputs[0].dtype and outputs[1].shape == outputs[0].shape
    assert np.abs(outputs[0]).max() > 0
    np.testing.assert_allclose(outputs[1].astype(np.float64), outputs[0].astype(np.float64),
                               atol=1 if kind == "int8" else 1e-3 * np.abs(outputs[0]).max())
    with pytest.raises(ValueError, match="not this model's input"):
        compiled.set_tensor(source["index"] + 1000, frame)


@pytest.mark.parametrize("delegate", ["edgetpu", "gpu"])
def test_fallback_runs_on_cpu_with_a_warning(delegate, tflite_models, caplog):
    segmenter = Segmenter(tflite_models["int8"],
                          SegmenterOptions(delegate=delegate, fallback_cpu=True))
    assert segmenter.info.delegate == "cpu" and segmenter.info.fell_back
    assert "running on the CPU instead (--fallback cpu)" in caplog.text
    assert segmenter.segment(np.zeros((64, 96, 3), np.uint8)).labels.shape == (64, 96)


def test_explicit_delegate_path_is_named(tflite_models, tmp_path):
    bogus = tmp_path / "libmydelegate.so"
    bogus.write_bytes(b"not a library")
    with pytest.raises(DelegateUnavailable, match="libmydelegate.so"):
        make_interpreter(tflite_models["float32"], "gpu", delegate_path=str(bogus))


def test_non_image_model_is_refused(tmp_path):
    from fcnedge.train.tfcompat import keras, tf

    inputs = keras.Input((8, 8, 1), batch_size=1)
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    path = tmp_path / "grey.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(InputError, match=r"expected one \(1, H, W, 3\) image"):
        Segmenter(path)


def test_bad_frames_are_refused(tflite_models):
    segmenter = Segmenter(tflite_models["float32"])
    with pytest.raises(InputError, match="1 channel"):
        segmenter.segment(np.zeros((64, 96), np.uint8))
    with pytest.raises(InputError, match="4 channel"):
        segmenter.segment(np.zeros((64, 96, 4), np.uint8))


def test_threads_must_be_positive(tflite_models):
    with pytest.raises(InputError, match="num_threads: got 0"):
        make_interpreter(tflite_models["float32"], num_threads=0)
