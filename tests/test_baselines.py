"""The trivial baselines on hand-checked images."""

import numpy as np
import pytest

from fgbg.evaluation.baselines import choose_threshold, difference, iou_per_threshold


def test_difference_is_the_largest_channel_difference():
    bg = np.array([[[10, 20, 30], [200, 200, 200]]], np.uint8)
    fg_bg = np.array([[[15, 0, 30], [190, 255, 200]]], np.uint8)
    assert difference(bg, fg_bg).tolist() == [[20, 55]]  # max(5, 20, 0), max(10, 55, 0)


def test_iou_per_threshold_by_hand():
    diff = np.array([[0, 10], [50, 90]], np.uint8)
    mask = np.array([[False, False], [True, True]])
    iou = iou_per_threshold(diff, mask)
    # t = 0: P = {10, 50, 90}, P & T = 2, union 3 -> 2/3; t = 10..49: P = {50, 90} = T -> 1;
    # t = 50..89: P = {90} -> 1/2; t >= 90: P empty -> 0
    assert iou[0] == pytest.approx(2 / 3)
    assert iou[10] == iou[49] == 1.0
    assert iou[50] == iou[89] == 0.5
    assert iou[90] == iou[255] == 0.0


def test_an_empty_mask_and_an_empty_prediction_score_one():
    iou = iou_per_threshold(np.array([[0, 5]], np.uint8), np.zeros((1, 2), bool))
    assert iou[4] == 0.0 and iou[5] == 1.0


def test_choose_threshold_takes_the_best_mean_iou():
    a = (np.array([[0, 10], [50, 90]], np.uint8), np.array([[False, False], [True, True]]))
    b = (np.array([[0, 30], [60, 90]], np.uint8), np.array([[False, False], [True, True]]))
    # a is perfect for t in 10..49, b for t in 30..59: both for 30..49, the smallest is 30
    assert choose_threshold([a, b]) == 30
