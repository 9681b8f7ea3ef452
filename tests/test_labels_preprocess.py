"""Class definitions and the shared preprocessing (resize, colour order, letterbox, mapping back)."""
import numpy as np
import pytest

from fcnedge.runtime.errors import InputError
from fcnedge.runtime.labels import CAMVID, LabelSet
from fcnedge.runtime.preprocess import (Geometry, ResizeMode, check_divisible, labels_to_frame,
                                        parse_size, preprocess)


def test_camvid_labels():
    assert CAMVID.num_labels == 12 and CAMVID.num_classes == 11 and CAMVID.void_id == 11
    assert CAMVID.names[9] == "Pedestrian" and CAMVID.names[10] == "Bicyclist"
    palette = CAMVID.palette_bgr()
    assert palette.shape == (12, 3) and tuple(palette[4]) == (222, 40, 60)  # RGB 60 40 222
    assert LabelSet.from_dict(CAMVID.to_dict()) == CAMVID


def test_labelset_rejects_mismatch():
    with pytest.raises(ValueError):
        LabelSet(("a", "b"), ((0, 0, 0),), None)


def test_preprocess_stretch_swaps_to_rgb_and_resizes():
    frame = np.zeros((40, 60, 3), np.uint8)
    frame[..., 0] = 255   # blue in BGR
    rgb, geometry = preprocess(frame, (32, 64))
    assert rgb.shape == (32, 64, 3) and (rgb[..., 2] == 255).all() and (rgb[..., 0] == 0).all()
    assert geometry == Geometry((40, 60), (32, 64), (32, 64), (0, 0))


def test_preprocess_reuses_the_buffer():
    buffer = np.empty((32, 32, 3), np.uint8)
    out, _ = preprocess(np.full((64, 64, 3), 7, np.uint8), (32, 32), out=buffer)
    assert out is buffer and (buffer == 7).all()


def test_letterbox_pads_and_maps_labels_back():
    frame = np.full((50, 100, 3), 200, np.uint8)
    rgb, geometry = preprocess(frame, (64, 64), ResizeMode.LETTERBOX)
    assert geometry.content_hw == (32, 64) and geometry.offset_yx == (16, 0)
    assert (rgb[:16] == 0).all() and (rgb[16:48] == 200).all() and (rgb[48:] == 0).all()
    labels = np.zeros((64, 64), np.uint8)
    labels[16:48, 32:] = 5          # the right half of the content
    back = labels_to_frame(labels, geometry)
    assert back.shape == (50, 100)
    assert (back[:, 50:] == 5).all() and (back[:, :50] == 0).all()


@pytest.mark.parametrize("frame, message", [
    (np.zeros((10, 10), np.uint8), "1 channel"),
    (np.zeros((10, 10, 4), np.uint8), "4 channel"),
    (np.zeros((10, 10, 3), np.float32), "float32"),
])
def test_bad_frames_are_named(frame, message):
    with pytest.raises(InputError, match=message):
        preprocess(frame, (32, 32))


def test_sizes():
    assert parse_size("352x480") == (352, 480) and parse_size("224") == (224, 224)
    with pytest.raises(InputError, match="HxW"):
        parse_size("big")
    with pytest.raises(InputError, match="225x224.*multiples of 32"):
        check_divisible((225, 224))


def test_a_void_id_past_the_names_scores_every_name(tmp_path):
    labels = LabelSet.from_dict({"names": ["road", "car", "person"],
                                 "colors_rgb": [[1, 1, 1], [2, 2, 2], [3, 3, 3]], "void_id": 255})
    assert labels.num_classes == 3 and labels.class_names == ("road", "car", "person")
    assert labels.mask_id_problem(np.array([[0, 1, 2, 255]], np.uint8)) is None
    assert "label id 7 is outside 0..2 and is not the void id 255" in labels.mask_id_problem(
        np.array([[0, 7, 255]], np.uint8))
    assert "label id 12 is outside 0..11" in CAMVID.mask_id_problem(np.array([[11, 12]], np.uint8))


def test_a_classes_file_names_the_dataset_and_may_omit_colours(tmp_path):
    from fcnedge.runtime.labels import CLASSES_FILE, dataset_labels, labels_mismatch

    assert dataset_labels(tmp_path) == CAMVID
    (tmp_path / CLASSES_FILE).write_text('{"names": ["road", "car"], "void_id": 255}')
    own = dataset_labels(tmp_path)
    assert own.class_names == ("road", "car") and own.void_id == 255
    assert len(set(own.colors_rgb)) == 2
    assert labels_mismatch(own, own) is None
    assert "predicts road, car (void 255) but the data names Sky" in labels_mismatch(own, CAMVID)
    elsewhere = tmp_path / "mine.json"
    elsewhere.write_text('{"names": ["a", "b", "c"], "void_id": 2}')
    assert dataset_labels(tmp_path, elsewhere).class_names == ("a", "b")


@pytest.mark.parametrize("text,expected", [
    ("{", "classes file is not readable JSON"),
    ('{"names": "road"}', "'names' must be a list"),
    ('{"names": ["a", "b"], "void_id": 0}', "void_id is 0"),
])
def test_a_bad_classes_file_is_an_input_error_naming_it(tmp_path, text, expected):
    from fcnedge.runtime.labels import read_label_file

    path = tmp_path / "classes.json"
    path.write_text(text)
    with pytest.raises(InputError) as raised:
        read_label_file(path)
    assert str(raised.value).startswith(str(path)) and expected in str(raised.value)


def test_a_missing_classes_file_names_its_parameter_and_the_cli_its_flag(tmp_path):
    from fcnedge.runtime.errors import flag_message
    from fcnedge.runtime.labels import read_label_file

    with pytest.raises(InputError, match="^classes .*nope.json: classes file not found") as caught:
        read_label_file(tmp_path / "nope.json")
    assert flag_message(caught.value, {}).startswith(f"--classes {tmp_path}")


@pytest.mark.parametrize("error, flags, worded", [
    (("got inf, expected a number > 0", "learning_rate"), {"learning_rate": "--lr"},
     "--lr: got inf, expected a number > 0"),
    (("got 0, expected at least 1", "calib_samples"), {},
     "--calib-samples: got 0, expected at least 1"),
    (("got 0", "fps"), {"fps": "--frame-rate"}, "--frame-rate: got 0"),
    # Another parameter named in the text is worded as its flag too.
    (("holds files; pass `overwrite` or set `max_frames`", "out"), {"overwrite": "--force"},
     "--out: holds files; pass --force or set --max-frames"),
    (("pass `keep` last, see `fcnedge models`", None), {},
     "pass --keep last, see `fcnedge models`"),
    (("no such thing", None), {"x": "--x"}, "no such thing"),
])
def test_library_errors_name_parameters_and_the_cli_names_flags(error, flags, worded):
    from fcnedge.runtime.errors import flag_message

    message, param = error
    err = InputError(message, param)
    assert str(err) == (f"{param}: {message}" if param else message)
    assert flag_message(err, flags) == worded
    about = InputError.about("model", "/m/x.tflite", "file not found")
    assert str(about) == "model /m/x.tflite: file not found"
    assert flag_message(about, {}) == "--model /m/x.tflite: file not found"


def test_labels_at_the_heads_stride_map_onto_the_frame_past_the_padding():
    # A 100x50 frame letterboxed into 64x64: content 64x32 at column 16. At stride 2 the map is
    # 32x32 and the content 32x16 at column 8.
    frame = np.zeros((100, 50, 3), np.uint8)
    _, geometry = preprocess(frame, (64, 64), ResizeMode.LETTERBOX)
    assert geometry.content_hw == (64, 32) and geometry.offset_yx == (0, 16)
    coarse = np.full((32, 32), 9, np.uint8)     # 9 on the padding
    coarse[:, 8:24] = 1
    coarse[:16, 8:24] = 2                       # the content's top half
    back = labels_to_frame(coarse, geometry)
    assert back.shape == (100, 50) and set(np.unique(back)) == {1, 2}
    assert (back[:50] == 2).all() and (back[50:] == 1).all()
