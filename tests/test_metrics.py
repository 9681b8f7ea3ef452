"""IoU, mIoU and pixel accuracy on tiny hand-made masks with known answers."""
import numpy as np
import pytest

from fcnedge.runtime.metrics import confusion_matrix, scores_from_confusion


def test_confusion_counts_pairs_and_ignores_void():
    truth = np.array([[0, 0, 1], [1, 2, 3]])       # 3 = void when void_id=3, num_classes=3
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = confusion_matrix(truth, pred, num_classes=3, void_id=3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]


def test_iou_known_values():
    # class 0: TP 1, FP 0, FN 1 -> 1/2; class 1: TP 2, FP 1, FN 0 -> 2/3; class 2: 1/1
    truth = np.array([0, 0, 1, 1, 2, 3])
    pred = np.array([0, 1, 1, 1, 2, 2])
    scores = scores_from_confusion(confusion_matrix(truth, pred, 3, void_id=3), ["a", "b", "c"])
    assert scores.per_class_iou == pytest.approx((0.5, 2 / 3, 1.0))
    assert scores.mean_iou == pytest.approx((0.5 + 2 / 3 + 1.0) / 3)
    assert scores.pixel_accuracy == pytest.approx(4 / 5)   # the void pixel is not counted


def test_recall_precision_and_mean_class_accuracy_known_values():
    # Truth rows: a has 2 pixels (1 found), b has 2 (both found), c has 1 (found; the void
    # pixel predicted as c is not counted). Predicted: a once, b three times, c once.
    truth = np.array([0, 0, 1, 1, 2, 3])
    pred = np.array([0, 1, 1, 1, 2, 2])
    scores = scores_from_confusion(confusion_matrix(truth, pred, 3, void_id=3), ["a", "b", "c"])
    assert scores.per_class_recall == pytest.approx((0.5, 1.0, 1.0))
    assert scores.per_class_precision == pytest.approx((1.0, 2 / 3, 1.0))
    assert scores.mean_class_accuracy == pytest.approx(2.5 / 3)
    report = scores.to_dict()
    assert report["per_class_recall"] == {"a": 50.0, "b": 100.0, "c": 100.0}
    assert report["per_class_precision"]["b"] == 66.67
    assert report["mean_class_accuracy"] == 83.33


def test_class_never_predicted_has_no_precision_and_absent_class_no_recall():
    truth = np.array([0, 0, 1])
    pred = np.array([0, 0, 0])
    scores = scores_from_confusion(confusion_matrix(truth, pred, 3), ["a", "b", "c"])
    assert np.isnan(scores.per_class_precision[1]) and scores.per_class_recall[1] == 0.0
    assert np.isnan(scores.per_class_recall[2]) and np.isnan(scores.per_class_precision[2])
    assert scores.mean_class_accuracy == pytest.approx(0.5)   # c is not in truth: left out
    assert scores.to_dict()["per_class_precision"]["b"] is None


def test_absent_class_is_nan_and_left_out_of_the_mean():
    truth = np.array([0, 0, 1])
    pred = np.array([0, 0, 1])
    scores = scores_from_confusion(confusion_matrix(truth, pred, 3), ["a", "b", "c"])
    assert np.isnan(scores.per_class_iou[2])
    assert scores.mean_iou == pytest.approx(1.0)
    assert scores.to_dict()["per_class_iou"]["c"] is None


def test_prediction_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="0..2"):
        confusion_matrix(np.array([0, 1]), np.array([0, 5]), 3)


def test_all_void_gives_nan_scores():
    scores = scores_from_confusion(confusion_matrix(np.full(4, 11), np.zeros(4), 11, 11),
                                   [str(i) for i in range(11)])
    assert np.isnan(scores.mean_iou) and np.isnan(scores.pixel_accuracy)


def test_the_hud_rate_reads_fps_and_invoke_over_the_same_recent_frames():
    from fcnedge.runtime.stats import RecentRate

    rate = RecentRate(size=3)
    assert rate.fps is None and "--- FPS" in rate.hud_line()
    for second, invoke in ((0.0, 90.0), (10.0, 80.0), (10.1, 10.0), (10.2, 20.0)):
        rate.add(second, invoke)
    # The slow start has left the window: 2 frames in 0.2 s, invoke mean of the last three.
    assert rate.fps == pytest.approx(10.0) and rate.invoke_ms == pytest.approx(110 / 3)
    assert rate.hud_line() == " 10.0 FPS  invoke 36.7 ms  (last 3 frames)"
