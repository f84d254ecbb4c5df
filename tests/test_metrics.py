"""The FCN-score formulas (pix2pix scripts/eval_cityscapes) against confusion matrices worked out by hand."""

import numpy as np
import pytest

from repro.eval.metrics import confusion_matrix, scores


def test_confusion_matrix_counts_rows_ground_truth_columns_prediction():
    gt = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0])
    expected = np.array([[1, 1, 0],
                         [0, 2, 0],
                         [1, 0, 0]])
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 3), expected)


def test_scores_of_a_hand_computed_matrix():
    conf = np.array([[1, 1, 0],
                     [0, 2, 0],
                     [1, 0, 0]])
    s = scores(conf)
    # per-pixel: trace 3 of 5 pixels
    assert s["pixel_acc"] == pytest.approx(3 / 5)
    # per-class: 1/2, 2/2, 0/1
    assert s["per_class_acc"] == pytest.approx([1 / 2, 1.0, 0.0])
    assert s["class_acc"] == pytest.approx(1 / 2)
    # IoU: 1/(2+2-1), 2/(2+3-2), 0/(1+0-0)
    assert s["per_class_iou"] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert s["iou"] == pytest.approx(1 / 3)


def test_class_absent_from_ground_truth_scores_zero_and_stays_in_the_mean():
    # class 2 never occurs in the ground truth and is never predicted: 0/(0+1e-12) = 0, not skipped
    conf = np.array([[3, 1, 0],
                     [0, 4, 0],
                     [0, 0, 0]])
    s = scores(conf)
    assert s["per_class_acc"] == pytest.approx([3 / 4, 1.0, 0.0])
    assert s["class_acc"] == pytest.approx((3 / 4 + 1.0 + 0.0) / 3)
    assert s["per_class_iou"] == pytest.approx([3 / 4, 4 / 5, 0.0])
    assert s["iou"] == pytest.approx((3 / 4 + 4 / 5) / 3)
    assert s["pixel_acc"] == pytest.approx(7 / 8)


def test_class_predicted_but_absent_from_ground_truth_scores_zero():
    conf = np.array([[2, 0, 2],
                     [0, 0, 0],
                     [0, 0, 0]])
    s = scores(conf)
    assert s["per_class_iou"] == pytest.approx([2 / 4, 0.0, 0.0])
    assert s["per_class_acc"] == pytest.approx([2 / 4, 0.0, 0.0])


def test_void_column_counts_as_wrong():
    # 3 classes plus a void column (index 3): void predictions lower the row's accuracy and the
    # per-pixel accuracy, but do not enter any class's IoU column
    gt = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 3, 3, 1, 3, 2])
    conf = confusion_matrix(gt, pred, 3, n_pred=4)
    np.testing.assert_array_equal(conf, [[1, 0, 0, 2],
                                         [0, 1, 0, 1],
                                         [0, 0, 1, 0]])
    s = scores(conf)
    assert s["pixel_acc"] == pytest.approx(3 / 6)
    assert s["per_class_acc"] == pytest.approx([1 / 3, 1 / 2, 1.0])
    assert s["per_class_iou"] == pytest.approx([1 / 3, 1 / 2, 1.0])
    # the same pixels with the void predictions dropped would score perfectly: they must not be dropped
    assert scores(conf[:, :3])["pixel_acc"] == pytest.approx(1.0)


def test_ignored_ground_truth_is_not_counted():
    gt = np.array([0, 255, 1, 19, 1])
    pred = np.array([0, 1, 1, 0, 0])
    np.testing.assert_array_equal(confusion_matrix(gt, pred, 2), [[1, 0], [1, 1]])


def test_19_by_20_matrix_of_cityscapes_shape():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 19, 1000)
    pred = rng.integers(0, 20, 1000)
    conf = confusion_matrix(gt, pred, 19, n_pred=20)
    assert conf.shape == (19, 20) and conf.sum() == 1000
    assert conf[:, 19].sum() == (pred == 19).sum()
    assert np.trace(conf) == (gt == pred).sum()


def test_prediction_out_of_range_and_size_mismatch_are_refused():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 1]), np.array([0, 19]), 19)
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 19)


def test_perfect_prediction_scores_one():
    gt = np.repeat(np.arange(19), 10)
    s = scores(confusion_matrix(gt, gt, 19, n_pred=20))
    assert s["pixel_acc"] == pytest.approx(1.0)
    assert s["class_acc"] == pytest.approx(1.0)
    assert s["iou"] == pytest.approx(1.0)
