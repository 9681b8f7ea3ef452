"""TFLite Model Metadata inside every converted model: written, read back, used alone."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fcnedge.runtime.labels import CAMVID
from fcnedge.runtime.tflite_metadata import (CARD_FILE, LABELS_FILE, associated_files,
                                             metadata_buffer, read_embedded_card,
                                             read_metadata_buffer)

MEDIAPIPE = importlib.util.find_spec("mediapipe") is not None
NO_MEDIAPIPE = ("mediapipe is not installed (`make test` installs mediapipe==1.2.2 with "
                "--no-deps: its absl-py and opencv-contrib pins clash with the training extra)")


def _card(kind: str, hw=(64, 96)) -> dict:
    return {"format": "fcnedge-model/1", "model_format": kind, "labels": CAMVID.to_dict(),
            "input": {"size": list(hw)}, "output": {"kind": "logits"},
            "architecture": {"arch": "fcn8s", "backbone": "mobilenetv2"},
            "created": "2026-12-01T00:00:00+00:00"}


def _without_metadata(model: bytes) -> bytes:
    """What a model converted elsewhere looks like: the same graph, no TFLITE_METADATA."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.ModelT.InitFromPackedBuf(model, 0)
    graph.metadata = [entry for entry in graph.metadata or []
                      if entry.name not in (b"TFLITE_METADATA", "TFLITE_METADATA")]
    builder = flatbuffers.Builder(len(model))
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def test_pack_and_read_back_every_table():
    from fcnedge.convert.metadata import pack_metadata, segmenter_metadata

    written = segmenter_metadata(_card("float32", (352, 480)), CAMVID)
    read = read_metadata_buffer(pack_metadata(written))
    # Unions read back as (member, table) tuples; vectors as lists: JSON makes them alike.
    assert json.loads(json.dumps(read)) == json.loads(json.dumps(written))
    image = read["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert image["process_units"][0]["options"] == ("NormalizationOptions",
                                                    {"mean": [0.0], "std": [1.0]})
    assert image["content"]["content_properties"][1]["default_size"] == {"width": 480,
                                                                          "height": 352}
    with pytest.raises(ValueError, match="M001"):
        read_metadata_buffer(b"\x00" * 64)


def test_metadata_round_trip_leaves_the_graph_and_its_outputs_alone(tflite_models, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from fcnedge.convert.metadata import with_metadata

    original = tflite_models["int8"].read_bytes()
    card = _card("int8")
    model = with_metadata(original, card)
    again = with_metadata(model, dict(card, note="second"))   # replaces, never stacks
    assert len(again) - len(model) < 64
    files = associated_files(again)
    assert json.loads(files[CARD_FILE])["note"] == "second"
    assert files[LABELS_FILE].decode().split() == list(CAMVID.class_names)
    outputs = []
    for data in (original, again):
        interpreter = Interpreter(model_content=data)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.random.default_rng(0).integers(
            -128, 127, detail["shape"], dtype=np.int8))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))
    np.testing.assert_array_equal(*outputs)


def test_converted_model_carries_its_card_and_runs_alone(converted, tmp_path, street_video):
    """A .tflite copied without its sidecar keeps its class names, input size and scores."""
    _, result = converted
    for row in result["rows"]:
        path = Path(row["path"])
        card, why = read_embedded_card(path)
        assert why is None and card == json.loads(path.with_suffix(".json").read_text())
        assert card["verification"]["miou"] == row["miou"]
    int8 = next(Path(row["path"]) for row in result["rows"] if row["format"] == "int8-ptq")
    alone = tmp_path / "lone" / "model.tflite"
    alone.parent.mkdir()
    shutil.copy(int8, alone)
    names = json.loads(int8.with_suffix(".json").read_text())["labels"]["names"]
    from fcnedge.runtime.segmenter import Segmenter

    segmenter = Segmenter(alone)
    assert list(segmenter.labels.names) == names
    completed = subprocess.run(
        [sys.executable, "-m", "fcnedge", "run", "--no-window", "--model", str(alone),
         "--source", str(street_video), "--max-frames", "3", "--json", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "no fcnedge model card" not in completed.stderr


@pytest.mark.parametrize("damage", ["none", "garbage"])
def test_a_model_without_readable_metadata_runs_with_a_warning(damage, tflite_models, tmp_path,
                                                               street_video):
    from fcnedge.convert.metadata import with_metadata

    bare = _without_metadata(with_metadata(tflite_models["float32"].read_bytes(),
                                           _card("float32")))
    model = tmp_path / "foreign.tflite"
    if damage == "garbage":
        # A TFLITE_METADATA buffer that is not metadata, and a zip that is not fcnedge's.
        data = bytearray(with_metadata(tflite_models["float32"].read_bytes(), _card("float32")))
        found = metadata_buffer(bytes(data))
        start = bytes(data).index(found)
        data[start:start + len(found)] = b"\xff" * len(found)
        model.write_bytes(bytes(data).split(b"PK\x03\x04")[0])
    else:
        model.write_bytes(bare)
    completed = subprocess.run(
        [sys.executable, "-m", "fcnedge", "run", "--no-window", "--model", str(model),
         "--source", str(street_video), "--max-frames", "2", "--masks", str(tmp_path / "m")],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert "no fcnedge model card inside" in completed.stderr
    assert "its classes are CamVid's if it predicts 11, else numbered" in completed.stderr
    assert len(list((tmp_path / "m").glob("*.png"))) == 2


@pytest.mark.skipif(not MEDIAPIPE, reason=NO_MEDIAPIPE)
def test_mediapipe_image_segmenter_loads_the_models_and_agrees(converted, synth_data, tmp_path):
    """MediaPipe Tasks reads the metadata (labels, normalisation) and segments like fcnedge:
    float32 and the uint8-I/O int8 model. Resampling differs at edges, so each is scored
    against the ground truth and the two mIoU compared, not the pixels."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    from fcnedge.runtime.preprocess import read_mask
    from fcnedge.runtime.metrics import confusion_matrix, scores_from_confusion
    from fcnedge.runtime.segmenter import Segmenter

    run, result = converted
    uint8_io = _convert_uint8_io(run, synth_data, tmp_path)
    float32 = next(Path(row["path"]) for row in result["rows"] if row["format"] == "float32")
    frames = sorted((synth_data / "val").glob("*.png"))[:6]   # SegNet layout
    for path in (float32, uint8_io):
        ours = Segmenter(path)
        classes, void = ours.labels.num_classes, ours.labels.void_id
        options = vision.ImageSegmenterOptions(base_options=BaseOptions(
            model_asset_path=str(path)), output_category_mask=True)
        segmenter = vision.ImageSegmenter.create_from_options(options)
        counts = {"fcnedge": 0, "mediapipe": 0}
        try:
            assert segmenter.labels == list(ours.labels.class_names)
            for frame in frames:
                image = cv2.imread(str(frame))
                truth = read_mask(synth_data / "valannot" / frame.name, ours.labels)
                theirs = segmenter.segment(mp.Image(
                    image_format=mp.ImageFormat.SRGB,
                    data=cv2.cvtColor(image, cv2.COLOR_BGR2RGB))).category_mask.numpy_view()
                counts["fcnedge"] += confusion_matrix(truth, ours.segment(image).labels,
                                                      classes, void)
                counts["mediapipe"] += confusion_matrix(truth, theirs[..., 0], classes, void)
        finally:
            segmenter.close()
        miou = {name: 100 * scores_from_confusion(matrix, ours.labels.class_names).mean_iou
                for name, matrix in counts.items()}
        assert abs(miou["fcnedge"] - miou["mediapipe"]) < 3.0, (path.name, miou)


def _convert_uint8_io(run, data, tmp_path) -> Path:
    completed = subprocess.run(
        [sys.executable, "-m", "fcnedge", "convert", "--model", str(run), "--data", str(data),
         "--out", str(tmp_path / "u8"), "--formats", "int8-ptq", "--io", "uint8",
         "--calib-samples", "8"], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr
    return next((tmp_path / "u8").glob("*.tflite"))


@pytest.mark.parametrize("args, message", [
    (["{model}", "--embed", "{wrong}"], "names 2 classes, the model predicts 11"),
    (["{model}", "--embed", "{tmp}/none.json"], "no such card"),
    (["{tmp}/none.tflite"], "no such .tflite file"),
], ids=["other-classes", "no-card", "no-model"])
def test_metadata_command_refuses_bad_input_before_writing(tflite_models, tmp_path, args,
                                                           message):
    model = tmp_path / "old.tflite"
    model.write_bytes(tflite_models["float32"].read_bytes())
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(dict(_card("float32"), labels={
        "names": ["a", "b"], "colors_rgb": [[0, 0, 0], [1, 1, 1]], "void_id": 255})))
    args = [part.format(model=model, wrong=wrong, tmp=tmp_path) for part in args]
    completed = subprocess.run([sys.executable, "-m", "fcnedge", "metadata", *args],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and message in completed.stderr, completed.stderr
    assert model.read_bytes() == tflite_models["float32"].read_bytes()   # nothing written


def test_metadata_command_embeds_a_sidecar_card(tflite_models, tmp_path):
    """`fcnedge metadata MODEL --embed CARD`: models converted before cards went inside."""
    from fcnedge.cli import main

    model = tmp_path / "old.tflite"
    model.write_bytes(tflite_models["float32"].read_bytes())
    card = tmp_path / "old.json"
    card.write_text(json.dumps(_card("float32")))
    assert main(["metadata", str(model), "--embed", str(card)]) == 0
    embedded, why = read_embedded_card(model)
    assert why is None and embedded == dict(_card("float32"), size_bytes=model.stat().st_size)
    card.unlink()
    from fcnedge.runtime.segmenter import Segmenter

    assert Segmenter(model).labels.class_names == CAMVID.class_names
