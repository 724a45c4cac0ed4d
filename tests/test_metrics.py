"""Metrics on tiny hand-checked tensors."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgbg.core.metrics import (
    _connectivity,
    connectivity_error,
    depth_metrics,
    gaussian_derivative_filters,
    gradient_magnitude,
    mask_metrics,
    matte_metrics,
)


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)[None, None]  # 1, 1, H, W


def test_mask_metrics_on_a_4x4_mask_by_hand():
    target = t([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # 4 pixels
    pred = t([[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # 4 pixels, 3 shared
    logits = pred * 4 - 2  # > 0 exactly where pred is 1
    m = mask_metrics(logits, target)
    assert m["iou"].item() == pytest.approx(3 / 5)  # intersection 3, union 5
    assert m["dice"].item() == pytest.approx(2 * 3 / 8)
    assert m["pixel_acc"].item() == pytest.approx(14 / 16)  # 2 pixels differ


def test_mask_metrics_are_per_image_and_empty_masks_score_one():
    target = torch.zeros(2, 1, 2, 2)
    target[1, 0, 0, 0] = 1
    logits = -torch.ones(2, 1, 2, 2)
    m = mask_metrics(logits, target)
    assert m["iou"].tolist() == [1.0, 0.0]
    assert m["dice"].tolist() == [1.0, 0.0]
    assert m["pixel_acc"].tolist() == [1.0, 0.75]


def test_depth_metrics_by_hand():
    target = t([[0.5, 0.5], [0.5, 0.5]])
    pred = t([[0.5, 0.5], [0.5, 0.9]])  # one pixel off by 0.4
    m = depth_metrics(pred, target)
    assert m["mae"].item() == pytest.approx(0.1)
    assert m["rmse"].item() == pytest.approx(math.sqrt(0.16 / 4))
    assert m["abs_rel"].item() == pytest.approx((0.4 / 0.5) / 4)
    assert m["delta1"].item() == pytest.approx(3 / 4)  # 0.9 / 0.5 = 1.8 >= 1.25


def test_depth_ssim_is_one_for_identical_and_lower_otherwise():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 1, 16, 16, generator=g)
    assert depth_metrics(a, a)["ssim"].tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    assert (depth_metrics(1 - a, a)["ssim"] < 0.5).all()


def test_depth_zero_is_clamped_not_infinite():
    zeros = torch.zeros(1, 1, 4, 4)
    m = depth_metrics(zeros, zeros)
    assert m["abs_rel"].item() == 0.0 and m["delta1"].item() == 1.0


def test_precision_recall_and_depth_extras_by_hand():
    target = t([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # 4 pixels
    pred = t([[1, 1, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # 4 pixels, 3 shared
    m = mask_metrics(pred * 4 - 2, target)
    assert m["precision"].item() == pytest.approx(3 / 4) and m["recall"].item() == pytest.approx(3 / 4)
    empty = mask_metrics(-torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
    assert empty["precision"].item() == 1.0 and empty["recall"].item() == 1.0
    depth_t = t([[0.5, 0.5], [0.5, 0.5]])
    depth_p = t([[0.5, 0.7], [0.9, 1.0]])  # ratios 1, 1.4, 1.8, 2.0
    d = depth_metrics(depth_p, depth_t)
    assert d["sq_rel"].item() == pytest.approx((0 + 0.04 + 0.16 + 0.25) / 0.5 / 4)
    assert d["delta1"].item() == pytest.approx(1 / 4)  # only 1.0 < 1.25
    assert d["delta2"].item() == pytest.approx(2 / 4)  # 1.4 < 1.5625
    assert d["delta3"].item() == pytest.approx(3 / 4)  # 1.8 < 1.953125; 2.0 is not


def test_matte_sad_and_mse_by_hand():
    target = torch.zeros(1, 1, 4, 4)
    target[0, 0, 0, :] = 1.0  # 4 opaque pixels
    target[0, 0, 1, :2] = 0.5  # 2 half-transparent ones
    got = matte_metrics(torch.zeros(1, 1, 4, 4), target)
    assert got["sad"].item() == pytest.approx((4 + 2 * 0.5) / 1000)
    assert got["mse"].item() == pytest.approx((4 * 1 + 2 * 0.25) / 16)
    same = matte_metrics(target, target)
    assert all(same[k].item() == 0 for k in ("sad", "mse", "grad", "conn"))


def test_matte_grad_of_an_impulse_is_the_filters_squared_norms():
    """|grad t|^2 of a one-pixel target, summed over the image, is the sum of both filters' squares:
    1 + 1 with unit-norm filters, so Grad = 2 / 1000 against a flat prediction."""
    target = torch.zeros(1, 1, 21, 21)
    target[0, 0, 10, 10] = 1.0
    assert matte_metrics(torch.zeros_like(target), target)["grad"].item() == pytest.approx(2 / 1000)
    filters = gaussian_derivative_filters()
    assert filters.shape == (2, 1, 11, 11)  # sigma 1.4: radius ceil(4.2) = 5
    assert filters[0, 0, 5, :5].gt(0).all() and filters[0, 0, 5, 6:].lt(0).all()  # d/dx: falls along x


def test_connectivity_error_by_hand():
    """A row of opaque target pixels; the prediction dips to 0.5 at the third. Up to t = 0.5 every pixel is
    connected; from 0.6 the largest region is pixels 0-1, so pixels 2 and 3 get the level l = 0.5.
    d = alpha - l: the prediction's 0, 0, 0, 0.5, the target's 0, 0, 0.5, 0.5; phi = 1 - d [d >= 0.15]:
    1, 1, 1, 0.5 against 1, 1, 0.5, 0.5: one pixel differs by 0.5."""
    target = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    pred = torch.tensor([1.0, 1.0, 0.5, 1.0], dtype=torch.float64).view(1, 1, 1, 4)
    assert matte_metrics(pred, target)["conn"].item() == pytest.approx(0.5 / 1000)
    assert connectivity_error(np.zeros((3, 3)), np.zeros((3, 3))) == 0  # no object: nothing to connect


def test_connectivity_error_of_two_regions_by_hand():
    """Both maps >= t, 4-connected: at t = 0.1 and 0.2 the regions are {(0,2), (0,3), (1,3)} (3 px, the largest)
    and {(1,0), (1,1)}: every pixel outside the largest gets l = 0. At t = 0.3 the prediction drops (0,3)
    and the regions are (0,2), {(1,0), (1,1)} (the largest now) and (1,3): those two and (0,3) get l = 0.2.
        d(pred) = [[1, 0, .1, 0], [1, .3, .5, .1]]     phi(pred) = [[0, 1, 1, 1], [0, .7, .5, 1]]
        d(target) = [[0, 1, .8, .8], [1, 1, 0, .8]]    phi(target) = [[1, 0, .2, .2], [0, 0, 1, .2]]
    The differences add up to 5.6."""
    target = np.array([[0, 1, 1, 1], [1, 1, 0, 1]], dtype=np.float64)
    pred = np.array([[1, 0, 0.3, 0.2], [1, 0.3, 0.5, 0.3]])
    assert connectivity_error(pred, target) == pytest.approx(5.6 / 1000)


def test_connectivity_ignores_distances_below_theta_by_hand():
    """One pixel: the target 0.6 leaves at t = 0.7, so l = 0.6; the prediction 0.72 is d = 0.12 above it, below
    theta = 0.15, so phi = 1 as the target's: no error. At 0.8 (d = 0.2) phi = 0.8: an error of 0.2."""
    assert connectivity_error(np.array([[0.72]]), np.array([[0.6]])) == 0
    assert connectivity_error(np.array([[0.8]]), np.array([[0.6]])) == pytest.approx(0.2 / 1000)


@pytest.mark.parametrize("seed", range(6))
def test_connectivity_over_the_object_box_equals_it_over_the_whole_image(seed):
    """connectivity_error labels only the box where either alpha reaches 0.1; outside it each pixel is below 0.1
    in both, so phi = 1 in both and the sum is the whole image's. Blobs with soft rims, values just under 0.1
    around them and two regions of equal size (the tie the label order breaks) are where a wrong box shows."""
    rng = np.random.default_rng(seed)
    pred, target = np.zeros((2, 40, 50))
    for alpha in (pred, target):
        for _ in range(3):
            y, x, r = rng.integers(8, 32), rng.integers(8, 42), rng.integers(2, 7)
            dist = np.hypot(*np.ogrid[-y : 40 - y, -x : 50 - x])
            alpha[...] = np.maximum(alpha, np.clip((r - dist) / 3, 0, 1) * rng.uniform(0.5, 1))
    target[3, 5:7] = target[36, 40:42] = 1  # two equal 2 px regions far from the rest
    pred[3, 5:7] = pred[36, 40:42] = 1
    pred[2, 2] = target[38, 47] = 0.0999  # just below the first threshold, outside the box
    pred[39, 0] = 0.17  # a lone pixel in no largest region: d = 0.17 >= theta, so phi = 0.83 against 1
    whole = _connectivity(pred, target)
    assert whole > 0
    assert connectivity_error(pred, target) == pytest.approx(whole, rel=1e-12)
    assert connectivity_error(np.pad(pred, 5), np.pad(target, 5)) == pytest.approx(whole, rel=1e-12)


@pytest.mark.parametrize("pred, target", [
    ([[0, 0]], [[0, 0.5]]),  # only the target reaches 0.1: its pixel is in the box
    ([[0, 0, 0], [0.1, 0.5, 0.1]], [[0, 0, 1], [0.12, 0, 0.5]]),  # 0.1 and 0.12, below theta, in no largest region
    ([[0, 0.5, 0, 0.9], [0.1, 0, 0.2, 0]], [[0.1, 0, 0.12, 0], [0.1, 0.1, 0.12, 0.12]]),  # exactly 0.1 counts
])
def test_connectivity_box_on_small_cases_found_by_review(pred, target):
    pred, target = np.array(pred, float), np.array(target, float)
    whole = _connectivity(pred, target)
    assert whole > 0 and connectivity_error(pred, target) == pytest.approx(whole, rel=1e-12)


def test_matte_grad_runs_the_2d_filters_and_compares_magnitudes():
    """The separable float32 passes give the 2-D float64 filters' gradients; Grad compares magnitudes, so
    1 - t (every gradient reversed) scores 0 against t. The filter by hand: d/dx of a Gaussian of sigma 1.4
    along a row, x e^(-x^2 / 3.92), so its taps at x = 1 and 2 are in the ratio e^(-1/3.92) / (2 e^(-4/3.92))."""
    target = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    filters = gaussian_derivative_filters()
    want = F.conv2d(F.pad(target, (5, 5, 5, 5), mode="replicate"), filters).square().sum(1, keepdim=True).sqrt()
    assert torch.allclose(gradient_magnitude(target), want, atol=1e-5)
    assert matte_metrics(1 - target, target)["grad"].abs().max().item() < 1e-9
    row = filters[0, 0, 5]
    assert (row[4] / row[3]).item() == pytest.approx(math.exp(-1 / 3.92) / (2 * math.exp(-4 / 3.92)))
