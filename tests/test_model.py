"""The UNet: shapes, a backward pass, the original preset's size, determinism."""

import pytest
import torch

from fgbg.core.config import ConfigError, ModelConfig
from fgbg.core.model import UNet, build_model
from tests.conftest import contract


def test_output_shapes_and_ranges():
    model = build_model(contract(ModelConfig(width=4, levels=2, depth="learned")))
    outputs = model(torch.randn(3, 6, 16, 16))
    assert list(outputs) == ["mask", "depth"]
    assert outputs["mask"].shape == (3, 1, 16, 16) and outputs["depth"].shape == (3, 1, 16, 16)

    with torch.no_grad():  # zero weights and bias ln 3: the depth head gives sigmoid(ln 3) = 3 / 4, the mask its logit
        for head in ("mask", "depth"):
            model.heads[head].weight.zero_()
            model.heads[head].bias.fill_(float(torch.log(torch.tensor(3.0))))
    outputs = model(torch.randn(3, 6, 16, 16))
    assert torch.allclose(outputs["depth"], torch.full_like(outputs["depth"], 0.75))
    assert torch.allclose(outputs["mask"], torch.full_like(outputs["mask"], 1.0986123))  # logits, no activation


def test_the_heads_are_the_contracts_in_its_order():
    model = build_model(contract(ModelConfig(width=4, levels=1, depth="learned"), heads=("depth", "mask")))
    assert list(model(torch.randn(1, 6, 8, 8))) == ["depth", "mask"]
    assert [k for k in model.state_dict() if k.startswith("heads.")] == [
        "heads.depth.weight", "heads.depth.bias", "heads.mask.weight", "heads.mask.bias"]


def test_backward_reaches_every_parameter():
    model = UNet(width=4, levels=2)
    outputs = model(torch.randn(2, 6, 8, 8))
    (outputs["mask"].mean() + outputs["depth"].mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_same_seed_same_model():
    x = torch.randn(1, 6, 8, 8)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(UNet(width=4, levels=1).eval()(x)["mask"])
    assert torch.equal(outs[0], outs[1])


def test_unknown_model_lists_valid_names():
    with pytest.raises(ConfigError, match="model.name = 'resnet' is not allowed; expected one of 'unet', 'unet_original'"):
        build_model(contract(ModelConfig(name="resnet")))


def test_column_context_adds_each_columns_mean_through_its_mix():
    from fgbg.core.model import ColumnContext

    context = ColumnContext(1)
    with torch.no_grad():
        context.mix.weight.fill_(2.0)
        context.mix.bias.fill_(-5.0)
    x = torch.tensor([[1.0, 2.0, 0.0], [3.0, 8.0, 0.0]]).view(1, 1, 2, 3)  # column means 2, 5, 0
    # by hand: relu(2 * mean - 5) = 0, 5, 0, added to every row of its column
    assert torch.equal(context(x), torch.tensor([[1.0, 7.0, 0.0], [3.0, 13.0, 0.0]]).view(1, 1, 2, 3))


def test_column_context_reaches_the_bottom_row_from_the_top_and_stays_in_its_columns():
    """Without context, 2 levels see about 30 px: row 63's outputs depend on nothing in row 0. With it, the
    column's mean carries row 0 down, from no further than the columns that the convolutions reach."""
    x = torch.randn(1, 6, 64, 64)
    for context, reaches in (("none", False), ("columns", True)):
        torch.manual_seed(0)
        model = UNet(width=4, levels=2, context=context).eval()
        if context == "columns":
            with torch.no_grad():
                model.bottleneck[-1].mix.bias.fill_(1.0)  # every column's context alive, whatever the input
        x.grad = None
        x.requires_grad_(True)
        model(x)["mask"][0, 0, 63, :8].sum().backward()  # the bottom row's first 8 columns
        top = x.grad[0, :, 0].abs().amax(dim=0)  # 64: how much each column of row 0 moves them
        assert bool(top.max() > 0) == reaches, context
        assert top[40:].max() == 0  # 32 columns away: beyond what the context's input reads
