"""The UNet: shapes, a backward pass, the original preset's size, determinism."""

import pytest
import torch

from fgbg.core.config import ConfigError, ModelConfig
from fgbg.core.model import UNet, build_model


def test_output_shapes_and_ranges():
    model = build_model(ModelConfig(width=4, levels=2))
    logits, depth = model(torch.randn(3, 6, 16, 16))
    assert logits.shape == (3, 1, 16, 16) and depth.shape == (3, 1, 16, 16)

    with torch.no_grad():  # a depth head of zero weights and bias ln 3 gives sigmoid(ln 3) = 3 / 4 everywhere
        model.depth_head.weight.zero_()
        model.depth_head.bias.fill_(float(torch.log(torch.tensor(3.0))))
    _, depth = model(torch.randn(3, 6, 16, 16))
    assert torch.allclose(depth, torch.full_like(depth, 0.75))


def test_backward_reaches_every_parameter():
    model = UNet(width=4, levels=2)
    logits, depth = model(torch.randn(2, 6, 8, 8))
    (logits.mean() + depth.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_same_seed_same_model():
    x = torch.randn(1, 6, 8, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(UNet(width=4, levels=1).eval()(x)[0])
    assert torch.equal(outs[0], outs[1])


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="model.name = 'resnet' is not allowed; expected one of 'unet', 'unet_original'"):
        build_model(ModelConfig(name="resnet"))
