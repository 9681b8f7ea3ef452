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
