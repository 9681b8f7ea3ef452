"""Per-class error drawing for `fcnedge eval --error-class`: the painting and the picking."""
import numpy as np
import pytest

from fcnedge.runtime.labels import CAMVID
from fcnedge.runtime.visualize import (FALSE_ALARM_BGR, FOUND_BGR, MISSED_BGR, class_errors,
                                       error_key)
from fcnedge.train.evaluate import WorstImages, class_error_sheet

POLE, ROAD, VOID = 2, 3, CAMVID.void_id


def test_class_errors_paints_found_missed_and_false_alarms_but_not_void():
    frame = np.full((2, 4, 3), 7, np.uint8)
    truth = np.array([[POLE, POLE, ROAD, VOID], [ROAD, ROAD, ROAD, ROAD]], np.uint8)
    prediction = np.array([[POLE, ROAD, POLE, POLE], [ROAD, ROAD, ROAD, ROAD]], np.uint8)
    painted = class_errors(frame, truth, prediction, POLE, VOID)
    assert tuple(painted[0, 0]) == FOUND_BGR
    assert tuple(painted[0, 1]) == MISSED_BGR
    assert tuple(painted[0, 2]) == FALSE_ALARM_BGR
    assert tuple(painted[0, 3]) == (7, 7, 7)          # called Pole on void: not scored, not drawn
    assert (painted[1] == 7).all() and (frame == 7).all()   # other classes and the input untouched
    with pytest.raises(ValueError, match="same height and width"):
        class_errors(frame, truth[:, :3], prediction, POLE, VOID)


def test_worst_images_keeps_the_most_wrong_images_of_one_class():
    worst = WorstImages(POLE, VOID, count=2)
    truth = np.full((4, 4), ROAD, np.uint8)
    truth[:, 0] = POLE
    errors_by_image = [0, 3, 1, 3, 2]
    for index, errors in enumerate(errors_by_image):
        prediction = truth.copy()
        prediction[:errors, 0] = ROAD                # `errors` missed pole pixels
        worst(index, prediction, truth)
    with_void = truth.copy()
    with_void[:, 1] = VOID
    called_on_void = with_void.copy()
    called_on_void[:, 1] = POLE
    worst(5, called_on_void, with_void)              # Pole called only on void: no error
    picked = worst.picked()
    assert [(index, errors) for index, errors, _ in picked] == [(1, 3), (3, 3)]  # ties: first
    assert WorstImages(POLE, VOID, count=3).picked() == []


def test_class_error_sheet_stacks_a_key_over_the_tiles():
    frames = [np.zeros((64, 96, 3), np.uint8)] * 3
    truths = [np.full((64, 96), POLE, np.uint8)] * 3
    predictions = [np.full((64, 96), ROAD, np.uint8)] * 3
    sheet = class_error_sheet(frames, truths, predictions, ["a", "b", "c"], POLE, CAMVID)
    key = error_key("Pole", 2 * 96)
    assert sheet.shape == (key.shape[0] + 2 * 64, 2 * 96, 3)
    assert np.array_equal(sheet[:key.shape[0]], key)
    # every tile below the key is the missed colour, but for its title band and the empty slot
    assert (sheet[-10:, :96] == MISSED_BGR).all(axis=-1).all()
    assert (sheet[-10:, 96:] == 0).all()


def test_a_legend_under_an_image_shows_every_class_colour():
    from fcnedge.runtime.labels import CAMVID
    from fcnedge.runtime.visualize import with_legend

    image = np.zeros((100, 480, 3), np.uint8)
    keyed = with_legend(image, CAMVID.class_names, CAMVID.palette_bgr())
    # 480 px hold 3 columns of 160: 11 classes take 4 rows of 22 px, plus a margin.
    assert keyed.shape == (100 + 4 * 22 + 6, 480, 3) and not keyed[:100].any()
    strip = keyed[100:].reshape(-1, 3)
    for name, color in zip(CAMVID.class_names, CAMVID.palette_bgr()):
        assert (strip == color).all(axis=1).any(), name
