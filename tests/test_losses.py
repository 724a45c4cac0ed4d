"""Losses on hand-checked tensors, and the registry's errors."""

import math

import pytest
import torch
import torch.nn.functional as F

from fgbg.training.losses import LOSSES, HeadLoss, on_measured


def test_dice_loss_by_hand():
    prob = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    # 1 - (2 * 1 + 1) / (2 + 1 + 1) = 0.25 with the smoothing eps = 1
    assert LOSSES.get("dice")(prob, target).item() == pytest.approx(0.25)


def test_l1_rmse_grad_by_hand():
    pred = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    assert LOSSES.get("l1")(pred, target).item() == pytest.approx(0.25)
    assert LOSSES.get("rmse")(pred, target).item() == pytest.approx(0.5, abs=1e-5)
    # horizontal differences: [1, 0] -> mean 0.5; vertical: [0, -1] -> mean |.| 0.5
    assert LOSSES.get("grad")(pred, target).item() == pytest.approx(1.0)


def test_bce_matches_the_formula():
    logits = torch.tensor([2.0, -1.0]).view(1, 1, 1, 2)
    target = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    expected = -(torch.log(torch.sigmoid(torch.tensor(2.0))) + torch.log(1 - torch.sigmoid(torch.tensor(-1.0)))) / 2
    assert LOSSES.get("bce")(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ssim_loss_zero_for_identical():
    a = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert LOSSES.get("ssim")(a, a).item() == pytest.approx(0.0, abs=1e-5)


def test_head_loss_weights_terms_and_uses_logits_only_for_bce():
    logits = torch.tensor([3.0, -3.0, 3.0, -3.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(1, 1, 2, 2)
    total, terms = HeadLoss("mask", {"bce": 2.0, "dice": 0.5})(logits, target)
    bce = F.binary_cross_entropy_with_logits(logits, target)
    dice = LOSSES.get("dice")(torch.sigmoid(logits), target)
    assert total.item() == pytest.approx(2 * bce.item() + 0.5 * dice.item(), rel=1e-5)
    assert set(terms) == {"mask_bce", "mask_dice"}


def test_unknown_loss_lists_valid_names_and_bce_refused_for_depth():
    with pytest.raises(KeyError, match="heads.mask.losses.*valid names: bce, dice, grad, l1, log_l1, rmse, sobel, ssim"):
        HeadLoss("mask", {"focal": 1.0})
    with pytest.raises(KeyError, match="heads.depth.losses: 'bce' needs logits and only suits a binary head"):
        HeadLoss("depth", {"bce": 1.0})


def test_ssim_of_two_constant_images_by_hand():
    # constant images: SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = (0.01 * 1)^2; the contrast term is 1
    a = torch.full((1, 1, 16, 16), 0.5)
    b = torch.full((1, 1, 16, 16), 0.25)
    expected = (2 * 0.5 * 0.25 + 1e-4) / (0.25 + 0.0625 + 1e-4)
    assert LOSSES.get("ssim")(a, b).item() == pytest.approx(1 - expected, abs=1e-5)


def test_log_l1_by_hand():
    pred = torch.tensor([0.2, 0.5, 0.0005]).view(1, 1, 1, 3)
    target = torch.tensor([0.1, 0.5, 0.001]).view(1, 1, 1, 3)
    # |ln 2| + 0 + |ln(0.001 / 0.001)| (the 0.0005 is clamped to 0.001, as the metrics clamp): ln 2 / 3
    assert LOSSES.get("log_l1")(pred, target).item() == pytest.approx(math.log(2) / 3, rel=1e-5)


def test_sobel_by_hand():
    """A vertical step of height 1 between columns 1 and 2 of a 4 x 4 map: the x-Sobel (scaled by 1/8)
    gives (1 + 2 + 1) / 8 = 0.5 on columns 1 and 2 of every row (edges replicated), 0 elsewhere; y gives 0.
    Against a flat prediction: 8 pixels of 0.5 over 2 x 16 gradient values."""
    target = torch.zeros(1, 1, 4, 4)
    target[..., 2:] = 1.0
    assert LOSSES.get("sobel")(torch.zeros_like(target), target).item() == pytest.approx(8 * 0.5 / 32)
    assert LOSSES.get("sobel")(target + 0.3, target).item() == pytest.approx(0, abs=1e-6)  # an offset has no edges
    across = target.transpose(-1, -2)  # the step between rows 1 and 2: the y-Sobel sees it alike
    assert LOSSES.get("sobel")(torch.zeros_like(across), across).item() == pytest.approx(8 * 0.5 / 32)


def _two_samples():
    """Sample 0: pred 0.2 against 0.1 everywhere; sample 1: pred 0.5 against 0.25. 4 x 4 maps."""
    pred = torch.tensor([0.2, 0.5]).view(2, 1, 1, 1).expand(2, 1, 4, 4).clone().requires_grad_()
    target = torch.tensor([0.1, 0.25]).view(2, 1, 1, 1).expand(2, 1, 4, 4).clone()
    return pred, target


def test_a_measured_only_loss_counts_the_prior_s_samples_as_0_by_hand():
    """l1 over both samples is (0.1 + 0.25) / 2; with sample 0 on the prior, (0 + 0.25) / 2; log_l1 with sample 1
    on the prior, ln 2 / 2. The prior's sample passes no gradient; with none measured the loss is 0."""
    pred, target = _two_samples()
    both = torch.ones(2, 1, 1, 1)
    assert HeadLoss("bg_depth", {"l1": 1.0})(pred, target)[0].item() == pytest.approx(0.175)
    head = HeadLoss("bg_depth", {"l1": 1.0, "log_l1": 2.0}, measured_only=("l1", "log_l1"))
    assert head(pred, target, both)[0].item() == pytest.approx(0.175 + 2 * (math.log(2) + math.log(2)) / 2)
    total, terms = head(pred, target, torch.tensor([0.0, 1.0]).view(2, 1, 1, 1))
    assert terms["bg_depth_l1"].item() == pytest.approx(0.125)
    assert terms["bg_depth_log_l1"].item() == pytest.approx(math.log(2) / 2, rel=1e-5)
    total.backward()
    assert pred.grad[0].abs().sum() == 0 and pred.grad[1].abs().sum() > 0
    assert head(pred, target, torch.tensor([1.0, 0.0]).view(2, 1, 1, 1))[1]["bg_depth_l1"].item() == pytest.approx(0.05)
    none = head(pred, target, torch.zeros(2, 1, 1, 1))[0]
    assert none.item() == 0


def test_only_the_listed_losses_skip_the_prior_s_samples():
    pred, target = _two_samples()
    terms = HeadLoss("bg_depth", {"l1": 1.0, "rmse": 1.0}, measured_only=("rmse",))(
        pred, target, torch.tensor([1.0, 0.0]).view(2, 1, 1, 1))[1]
    assert terms["bg_depth_l1"].item() == pytest.approx(0.175)  # both samples
    assert terms["bg_depth_rmse"].item() == pytest.approx(0.05, abs=1e-6)  # sample 0's 0.1, and 1e-6 for the other


@pytest.mark.parametrize("name", ["l1", "log_l1", "rmse", "ssim", "grad", "sobel"])
def test_each_measurable_loss_on_measured_samples_is_their_loss_weighed_by_their_share(name):
    """on_measured, which keeps the batch's shape, gives what the loss gives on the measured samples sliced out,
    times their share of the batch; and a batch's value is the mean of its halves' (micro-batches, ranks)."""
    g = torch.Generator().manual_seed(3)
    pred, target = torch.rand(4, 1, 12, 12, generator=g), torch.rand(4, 1, 12, 12, generator=g)
    measured = torch.tensor([1.0, 1.0, 1.0, 0.0]).view(4, 1, 1, 1)
    loss = LOSSES.get(name)
    kept = on_measured(loss, pred, target, measured)
    assert kept.item() == pytest.approx(0.75 * loss(pred[:3], target[:3]).item(), rel=1e-5, abs=2e-6)
    halves = [on_measured(loss, pred[h], target[h], measured[h]) for h in (slice(0, 2), slice(2, 4))]
    assert kept.item() == pytest.approx(sum(v.item() for v in halves) / 2, rel=1e-5, abs=2e-6)


def test_measured_only_names_a_loss_of_the_head_that_on_measured_is_exact_for():
    with pytest.raises(KeyError, match="heads.bg_depth.measured_only: 'log_l1' must be one of the head's losses"):
        HeadLoss("bg_depth", {"l1": 1.0}, measured_only=("log_l1",))
    with pytest.raises(KeyError, match="'dice' must be one of the head's losses and one of l1, log_l1, rmse"):
        HeadLoss("bg_depth", {"dice": 1.0}, measured_only=("dice",))
    with pytest.raises(ValueError, match="heads.bg_depth.measured_only needs the batch's MEASURED target"):
        HeadLoss("bg_depth", {"l1": 1.0}, measured_only=("l1",))(*_two_samples())
