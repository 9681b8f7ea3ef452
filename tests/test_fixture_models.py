"""tests/fixtures' .tflite files are what tflite_models.make_tflite builds today: the runtime
tests read those files (no TensorFlow), so a change to the model code must show up here."""
import numpy as np
import pytest

from conftest import FIXTURE_KINDS, FIXTURE_MODELS


@pytest.mark.parametrize("kind", FIXTURE_KINDS)
def test_fixture_model_is_what_make_tflite_builds(kind, tmp_path):
    from tflite_models import make_tflite

    from fcnedge.runtime.interpreter import make_interpreter

    fresh = make_tflite(tmp_path / f"fcn8s_{kind}.tflite", kind)
    outputs, details = [], []
    for path in (FIXTURE_MODELS / fresh.name, fresh):
        interpreter, _ = make_interpreter(path, num_threads=1)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        details.append([(d["shape"].tolist(), np.dtype(d["dtype"]).name,
                         *np.round(d["quantization"], 5)) for d in (inp, out)])
        image = np.random.default_rng(3).integers(0, 255, inp["shape"])
        if inp["dtype"] == np.float32:
            image = image.astype(np.float32)
        else:   # the int8 input's zero point is -128 for 0..255 pixels
            image = (image + inp["quantization"][1]).astype(inp["dtype"])
        interpreter.set_tensor(inp["index"], image)
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(out["index"]).astype(np.float32))
    assert details[0] == details[1]
    # The same graph and weights: the same logits (one quantization step at most for int8).
    tolerance = 1e-4 if kind == "float32" else 1.0
    assert np.abs(outputs[0] - outputs[1]).max() <= tolerance
