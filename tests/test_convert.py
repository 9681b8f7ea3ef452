"""Converter: every format from a synthetic-trained model, export rules, cards, verification."""
import json
from pathlib import Path

import numpy as np
import pytest

from fcnedge.cli import main
from fcnedge.convert.options import Format, parse_formats
from fcnedge.convert.tflite_graph import export_rule_violations, read_graph
from fcnedge.runtime.errors import InputError
from fcnedge.runtime.interpreter import make_interpreter


def test_every_format_is_written_with_a_card(converted):
    _, result = converted
    assert [row["format"] for row in result["rows"]] == [f.value for f in Format]
    for row in result["rows"]:
        card = json.loads(open(row["path"].replace(".tflite", ".json")).read())
        assert card["model_format"] == row["format"] and card["labels"]["void_id"] == 11
        assert card["input"]["size"] == [96, 128] and card["output"]["kind"] == "logits"
        assert card["verification"]["miou"] == row["miou"]


@pytest.mark.parametrize("fmt", ["int8-ptq", "int8-qat"])
def test_int8_io_types_and_scales_match_the_card(converted, fmt):
    _, result = converted
    row = next(r for r in result["rows"] if r["format"] == fmt)
    card = json.loads(open(row["path"].replace(".tflite", ".json")).read())
    interpreter, _ = make_interpreter(row["path"])
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert inp["quantization"] == pytest.approx((card["input"]["scale"],
                                                 card["input"]["zero_point"]))
    assert out["quantization"] == pytest.approx((card["output"]["scale"],
                                                 card["output"]["zero_point"]))
    assert row["size_mb"] < 0.5 * next(r for r in result["rows"]
                                       if r["format"] == "float32")["size_mb"]


def test_exported_graphs_follow_the_export_rules(converted):
    _, result = converted
    for row in result["rows"]:
        graph = read_graph(row["path"])
        integer = row["format"] in ("int8-ptq", "int8-qat")
        assert export_rule_violations(graph, integer_io=integer) == [], row["format"]
        assert graph.inputs[0].shape == (1, 96, 128, 3)
        assert "SOFTMAX" not in graph.ops


def test_rule_check_flags_a_dynamic_batch_and_softmax(tmp_path):
    from fcnedge.train.tfcompat import keras, tf

    inputs = keras.Input((32, 32, 3))            # batch left dynamic
    logits = keras.layers.Conv2D(11, 1)(inputs)
    model = keras.Model(inputs, keras.layers.Softmax()(logits))
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    problems = export_rule_violations(read_graph(path), integer_io=True)
    text = " ".join(problems)
    assert "dynamic shape" in text and "SOFTMAX" in text and "expected int8" in text
    assert "float ops inside an integer model" in text


@pytest.mark.parametrize("fmt", ["int8-ptq", "int8-qat"])
def test_verification_equals_a_direct_eval(converted, synth_data, tmp_path, capsys, fmt):
    _, result = converted
    row = next(r for r in result["rows"] if r["format"] == fmt)
    code = main(["eval", "--model", row["path"], "--data", str(synth_data), "--out",
                 str(tmp_path / "e"), "--json", str(tmp_path / "e.json")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "e.json").read_text())["miou"] == row["miou"]


def test_quantized_formats_stay_close_to_float(converted):
    _, result = converted
    for row in result["rows"]:
        if row["format"] == "int8-qat":
            # QAT fine-tunes on: it may gain over the briefly trained float model, not lose.
            assert row["delta"] > -5.0, row
        else:
            assert abs(row["delta"]) < 5.0, row
    qat = next(row for row in result["rows"] if row["format"] == "int8-qat")
    card = json.loads(open(qat["path"].replace(".tflite", ".json")).read())
    assert [entry["epoch"] for entry in card["qat"]["history"]] == [0, 1]
    scores = [entry["val_miou"] for entry in card["qat"]["history"]]
    assert card["qat"]["kept_epoch"] == scores.index(max(scores))
    assert card["qat"]["freeze_batchnorm"] is True


BAD_CONVERT = [
    ("unknown format", ["--formats", "int4"], "--formats: got 'int4'"),
    ("no calibration", ["--calib-samples", "0"], "--calib-samples: got 0"),
    ("no qat epochs", ["--qat-epochs", "0"], "--qat-epochs: got 0"),
    ("missing model", ["--model", "{tmp}/nope"], "nope: not found"),
    ("out holds files", ["--out", "{out}"], "holds files; pass --overwrite"),
    ("no train split", ["--data", "{tmp}"], "no 'train' split"),
    ("size not /32", ["--input-size", "100x128"], "multiples of 32"),
    ("size not HxW", ["--input-size", "big"], "--input-size: got 'big'"),
    ("uint8 io on float formats", ["--formats", "float32,float16", "--io", "uint8"],
     "--io: got uint8: it sets the input/output type of the integer formats"),
]


@pytest.mark.parametrize("name,extra,message", BAD_CONVERT, ids=[c[0] for c in BAD_CONVERT])
def test_bad_convert_inputs(name, extra, message, converted, synth_data, tmp_path, capsys):
    run, result = converted
    argv = {"--model": str(run), "--data": str(synth_data), "--out": str(tmp_path / "o")}
    for flag, value in zip(extra[::2], extra[1::2]):
        argv[flag] = value.format(tmp=tmp_path, out=result["out"])
    code = main(["convert", *[item for pair in argv.items() for item in pair]])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_parse_formats():
    assert parse_formats("float32, int8-ptq,float32") == [Format.FLOAT32, Format.INT8_PTQ]
    with pytest.raises(InputError):
        parse_formats("")


def test_edgetpu_report_maps_the_int8_model_and_flags_float(converted):
    from fcnedge.convert.edgetpu import edgetpu_report, format_report

    _, result = converted
    paths = {row["format"]: row["path"] for row in result["rows"]}
    int8 = edgetpu_report(read_graph(paths["int8-ptq"]))
    assert int8["counts"]["cpu"] == 0, format_report(int8, "int8")
    assert any(v["op"] == "RESIZE_BILINEAR" and v["status"] == "maybe" for v in int8["verdicts"])
    floats = edgetpu_report(read_graph(paths["float32"]))
    assert not floats["fully_mapped"]
    assert "float32; the Edge TPU runs 8-bit only" in floats["first_fallback"]["reason"]


def test_edgetpu_report_flags_a_dynamic_shape_model(tmp_path):
    from fcnedge.convert.edgetpu import edgetpu_report
    from fcnedge.train.tfcompat import keras, tf

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same")(inputs))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [np.random.default_rng(i).uniform(0, 1, (1, 8, 8, 3)).astype(np.float32)]
        for i in range(4))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    path = tmp_path / "dynamic_int8.tflite"
    path.write_bytes(converter.convert())
    report = edgetpu_report(read_graph(path))
    assert not report["fully_mapped"]
    assert "dynamic shape" in report["first_fallback"]["reason"]


def test_convert_cli_edgetpu_without_compiler(converted, synth_data, tmp_path, capsys):
    run, _ = converted
    code = main(["convert", "--model", str(run), "--data", str(synth_data), "--out",
                 str(tmp_path / "tpu"), "--formats", "int8-ptq", "--io", "uint8", "--edgetpu",
                 "--no-verify", "--calib-samples", "4", "--json", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 0, err
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["edgetpu"]["int8-ptq"]["compiled"] is None
    assert (tmp_path / "tpu" / "fcn8s_mobilenetv2_96x128_int8-ptq.edgetpu-report.json").is_file()
    interpreter, _ = make_interpreter(tmp_path / "tpu" / "fcn8s_mobilenetv2_96x128_int8-ptq.tflite")
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8


def test_convert_at_another_input_size(converted, synth_data, tmp_path, capsys):
    # Trained at 96x128; the fully convolutional weights export at 64x160 as well.
    run, _ = converted
    code = main(["convert", "--model", str(run), "--data", str(synth_data), "--out",
                 str(tmp_path / "small"), "--formats", "float32", "--input-size", "64x160",
                 "--limit-val", "4"])
    assert code == 0, capsys.readouterr().err
    model = tmp_path / "small" / "fcn8s_mobilenetv2_64x160_float32.tflite"
    interpreter, _ = make_interpreter(model)
    assert list(interpreter.get_input_details()[0]["shape"]) == [1, 64, 160, 3]
    assert list(interpreter.get_output_details()[0]["shape"])[:3] == [1, 64, 160]
    card = json.loads(model.with_suffix(".json").read_text())
    assert card["input"]["size"] == [64, 160]


def test_head_output_exports_the_finest_stride_and_scores_at_the_frame(converted, synth_data,
                                                                       tmp_path, capsys):
    """--output-size head: the FCN-8s logits at an eighth of the input, labels resized by the
    runtime to each frame; scored like the full-size export (the same weights; int8-qat cut
    after its fine-tuning, which trains with the full-size output)."""
    from fcnedge.runtime.segmenter import Segmenter

    run, result = converted
    code = main(["convert", "--model", str(run), "--data", str(synth_data), "--out",
                 str(tmp_path / "head"), "--formats", "int8-ptq,int8-qat", "--output-size",
                 "head", "--calib-samples", "16", "--qat-epochs", "1", "--qat-lr", "1e-4",
                 "--json", str(tmp_path / "head.json")])
    assert code == 0, capsys.readouterr().err
    head = json.loads((tmp_path / "head.json").read_text())
    full = {row["format"]: row for row in result["rows"]}
    for row in head["rows"]:
        path = Path(row["path"])
        assert path.name == f"fcn8s_mobilenetv2_96x128_head_{row['format']}.tflite"
        card = json.loads(path.with_suffix(".json").read_text())
        assert card["output"]["size"] == "head" and card["output"]["shape"][1:3] == [12, 16]
        # The stride-8 labels are coarser than the upsampled logits' argmax: a few points.
        assert abs(row["miou"] - full[row["format"]]["miou"]) < 8, (row, full[row["format"]])
        frame = np.zeros((90, 160, 3), np.uint8)
        assert Segmenter(path).segment(frame).labels.shape == (90, 160)


def test_a_refit_calibrates_on_its_own_frames_and_keeps_its_last_qat_epoch(
        converted, synth_data, tmp_path, monkeypatch):
    """A run trained on train+val with a fixed schedule (`keep last`): its val also trained, so
    QAT does not pick its epoch there either, and calibration draws on both splits."""
    import shutil

    import fcnedge.convert.qat as qat_module
    from fcnedge.convert.converter import convert
    from fcnedge.convert.options import ConvertOptions, QatConfig

    fine_tune, seen = qat_module.fine_tune, []

    def recording_fine_tune(model, train_arrays, val_arrays, class_weights, labels, augment,
                            config, **kwargs):
        seen.append((len(train_arrays.images), config.keep_best))
        return fine_tune(model, train_arrays, val_arrays, class_weights, labels, augment,
                         config, **kwargs)

    monkeypatch.setattr(qat_module, "fine_tune", recording_fine_tune)

    run, _ = converted
    refit = tmp_path / "refit"
    shutil.copytree(run, refit)
    record = json.loads((refit / "run.json").read_text())
    record["train"].update(train_splits=["train", "val"], keep="last")
    (refit / "run.json").write_text(json.dumps(record))
    result = convert(ConvertOptions(model=str(refit), data=str(synth_data),
                                    out=str(tmp_path / "out"), formats=(Format.INT8_QAT,),
                                    calib_samples=8, limit_val=4,
                                    qat=QatConfig(epochs=1, learning_rate=1e-4)))
    # Fine-tuned on the 64 train and 16 val frames, the last epoch kept.
    assert seen == [(80, False)]
    kept = [entry["epoch"] for entry in result["qat_history"] if entry.get("kept")]
    assert kept == [1]
    card = json.loads(Path(result["rows"][0]["path"]).with_suffix(".json").read_text())
    assert card["training"]["train_splits"] == ["train", "val"]
    assert card["training"]["keep"] == "last"
