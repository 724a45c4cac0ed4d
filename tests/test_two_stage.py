"""model.name: two_stage: the base at low resolution, the refiner on the cells it is least sure of,
what the refiner sees, how training supervises the base, and inference and export at any size."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fgbg.core.config import ConfigError, ModelConfig, Params, from_dict
from fgbg.core.model import ColumnContext, build_model
from fgbg.core.runtime import predict_padded
from fgbg.core.two_stage import MARGIN, TwoStage
from tests.conftest import contract, write_checkpoint

SCALE = 4


def small_model(share: float = 0.25, heads=("mask", "depth"), ground_contact=False) -> TwoStage:
    """A base of width 4 and 1 pooling at 1/4: inputs divide by 8; a 16 px input has 4 x 4 cells."""
    torch.manual_seed(0)
    return TwoStage(width=4, levels=1, heads=heads, ground_contact=ground_contact, coarse_scale=SCALE,
                    refine_share=share).eval()


class FixedError(torch.nn.Module):
    """In place of the error head: logits that rank the cells as `order` gives (N, 1, h, w)."""

    def __init__(self, order: torch.Tensor) -> None:
        super().__init__()
        self.order = order

    def forward(self, features):
        return self.order.to(features)


def zero_refiner(model: TwoStage, bias: float = 0.0) -> None:
    last = model.refiner[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(bias)


def test_a_zero_refiner_gives_the_base_upsampled_and_its_shapes():
    model = small_model()
    zero_refiner(model)
    x = torch.randn(2, 6, 16, 24)
    out = model(x, coarse=True)
    assert list(out) == ["mask", "depth", "coarse/mask", "coarse/depth", "coarse/error"]
    assert out["mask"].shape == (2, 1, 16, 24) and out["coarse/mask"].shape == (2, 1, 4, 6)
    assert list(model(x)) == ["mask", "depth"]  # the base's outputs only when asked
    up = F.interpolate(out["coarse/mask"], size=(16, 24), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["mask"], up)  # mask logits, no activation
    raw_depth = torch.logit(out["coarse/depth"])
    up_depth = torch.sigmoid(F.interpolate(raw_depth, size=(16, 24), mode="bilinear", align_corners=False))
    torch.testing.assert_close(out["depth"], up_depth)
    assert ((out["coarse/error"] > 0) & (out["coarse/error"] < 1)).all()


def test_the_refiner_changes_exactly_the_share_of_cells_with_the_highest_error():
    """16 cells at a share of 0.25: round(4) are refined; the error ranks cells 5, 0, 15 and 10 highest
    in image 0 and cells 3, 12, 6, 9 in image 1; a refiner of bias 2 adds 2 to each of their 4 x 4 pixels."""
    model = small_model(share=0.25)
    order = torch.zeros(2, 1, 4, 4)
    for image, cells in enumerate(([5, 0, 15, 10], [3, 12, 6, 9])):
        for rank, cell in enumerate(cells):
            order[image, 0, cell // 4, cell % 4] = 10.0 - rank
    model.error = FixedError(order)
    zero_refiner(model)
    x = torch.randn(2, 6, 16, 16)
    before = model(x)["mask"]
    zero_refiner(model, bias=2.0)
    changed = model(x)["mask"] - before  # N, 1, 16, 16
    for image, cells in enumerate(([5, 0, 15, 10], [3, 12, 6, 9])):
        expected = torch.zeros(16, 16)
        for cell in cells:
            r, c = cell // 4 * SCALE, cell % 4 * SCALE
            expected[r:r + SCALE, c:c + SCALE] = 2.0
        torch.testing.assert_close(changed[image, 0], expected)


def test_the_refiner_sees_the_pair_and_the_base_upsampled_around_its_cell():
    """What the refiner reads for a cell is, channel by channel, the input and the base's raw heads and
    features upsampled to full size, edges repeated, over the cell and MARGIN px around it."""
    model = small_model(share=1 / 16)  # one cell per image
    order = torch.zeros(1, 1, 4, 4)
    order[0, 0, 0, 2] = 5.0  # the cell at row 0, column 2: its window starts 3 px above the image
    model.error = FixedError(order)
    seen = {}
    model.refiner.register_forward_pre_hook(lambda module, args: seen.setdefault("patches", args[0]))
    x = torch.randn(1, 6, 16, 16)
    model(x)
    with torch.no_grad():
        features = model.base.features(F.avg_pool2d(x, SCALE))
        context = torch.cat([model.coarse_heads(features), features], dim=1)
    full = torch.cat([x, F.interpolate(context, size=(16, 16), mode="bilinear", align_corners=False)], dim=1)
    padded = F.pad(full, (MARGIN,) * 4, mode="replicate")
    side = SCALE + 2 * MARGIN
    window = padded[:, :, 0:side, 2 * SCALE:2 * SCALE + side]  # rows -3..6, columns 5..14 of the image
    assert seen["patches"].shape == (1, 6 + 2 + 4, side, side)
    torch.testing.assert_close(seen["patches"], window, atol=1e-5, rtol=1e-5)


def test_ground_contact_is_derived_from_the_refined_mask_and_bg_depth():
    from fgbg.core.model import ground_contact

    model = small_model(heads=("mask", "depth", "bg_depth"), ground_contact=True)
    out = model(torch.randn(2, 6, 16, 16))
    assert torch.equal(out["depth"], ground_contact(out["mask"], out["bg_depth"]))
    assert "depth" not in [h for h in model.learned]


def test_backward_reaches_every_parameter_through_the_outputs_and_the_base_terms():
    model = small_model().train()
    out = model(torch.randn(2, 6, 16, 16), coarse=True)
    sum(v.mean() for v in out.values()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_training_supervises_the_base_and_its_error_map():
    """Heads.forward's loss is the final heads' losses, the same at the base's size, and the MSE of the
    error map against the mean over the heads of |probability - target| there."""
    from fgbg.training.losses import HeadLoss
    from fgbg.training.trainer import Heads

    params = from_dict(Params, {"model": {"name": "two_stage", "width": 4, "levels": 1, "depth": "learned"},
                                "heads": {"mask": {"losses": {"bce": 1.0}}, "depth": {"losses": {"l1": 1.0}}},
                                "train": {"crop": 0}})
    the_contract = contract(params.model, heads=("mask", "depth"))
    heads = Heads(params, torch.device("cpu"), the_contract)
    assert heads.term_names == ["mask_bce", "depth_l1", "coarse_mask_bce", "coarse_depth_l1", "coarse_error"]
    torch.manual_seed(1)
    model = build_model(the_contract).eval()
    x = torch.randn(2, 6, 16, 16)
    targets = {"mask": (torch.rand(2, 1, 16, 16) > 0.5).float(), "depth": torch.rand(2, 1, 16, 16)}
    outputs, loss, terms = heads.forward(model, x, targets)
    assert list(outputs) == ["mask", "depth"] and list(terms) == heads.term_names
    out = model(x, coarse=True)
    small_mask = (F.avg_pool2d(targets["mask"], SCALE) > 0.5).float()
    small_depth = F.avg_pool2d(targets["depth"], SCALE)
    real = ((torch.sigmoid(out["coarse/mask"]) - small_mask).abs() + (out["coarse/depth"] - small_depth).abs()) / 2
    want = {"mask_bce": F.binary_cross_entropy_with_logits(out["mask"], targets["mask"]),
            "depth_l1": (out["depth"] - targets["depth"]).abs().mean(),
            "coarse_mask_bce": F.binary_cross_entropy_with_logits(out["coarse/mask"], small_mask),
            "coarse_depth_l1": (out["coarse/depth"] - small_depth).abs().mean(),
            "coarse_error": ((out["coarse/error"] - real) ** 2).mean()}
    for name, value in want.items():
        torch.testing.assert_close(terms[name], value, msg=name)
    torch.testing.assert_close(loss, sum(want.values()))
    assert isinstance(heads.losses["mask"], HeadLoss)


def test_a_derived_depth_has_no_base_term():
    from fgbg.training.trainer import Heads

    params = from_dict(Params, {"model": {"name": "two_stage", "levels": 1}, "train": {"crop": 0},
                                "heads": {"mask": {"losses": {"bce": 1.0}}, "depth": {"losses": {"l1": 1.0}},
                                          "bg_depth": {"losses": {"l1": 1.0}}}})
    heads = Heads(params, torch.device("cpu"), contract(params.model, heads=("mask", "depth", "bg_depth")))
    assert heads.term_names == ["mask_bce", "depth_l1", "bg_depth_l1", "coarse_mask_bce", "coarse_bg_depth_l1",
                                "coarse_error"]


def test_inference_pads_to_the_side_multiple_and_cuts_back():
    model = small_model()
    assert model.side_multiple == 8  # 4 x 2**1
    x = torch.randn(1, 6, 13, 21)
    out = predict_padded(model, x)
    assert out["mask"].shape == (1, 1, 13, 21)
    padded = F.pad(x, (0, 3, 0, 3), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(out["mask"], model(padded)["mask"][..., :13, :21])


def test_params_build_it_and_check_its_sizes():
    p = from_dict(Params, {"model": {"name": "two_stage", "coarse_scale": 2, "refine_share": 0.3, "width": 8,
                                     "levels": 2, "rows": True, "context": "columns"}, "train": {"crop": 0}})
    model = build_model(contract(p.model, heads=tuple(p.heads)))
    assert isinstance(model, TwoStage) and (model.scale, model.share) == (2, 0.3) and model.side_multiple == 8
    first = model.base.encoders[0][0]
    assert (first.in_channels, first.out_channels, len(model.base.encoders)) == (7, 8, 2)
    assert model.refiner[0][0].in_channels == 7 + 3 + 8  # the pair and rows, mask, bg_depth and alpha, features
    assert isinstance(model.base.bottleneck[-1], ColumnContext)
    own = ModelConfig(name="two_stage", width=4, levels=1)  # its own context: none, its base sees whole images
    assert own.context == "none"
    assert not any(isinstance(m, ColumnContext) for m in build_model(contract(own)).modules())
    with pytest.raises(ConfigError, match=r"train.crop = 24 is not allowed; expected a multiple of 32 \(model.coarse_scale "
                                          r"4 x 2\*\*model.levels 8: the base network sees the image shrunk, then pools\), "
                                          r"e.g. 32 \(or 0: whole images\)"):
        from_dict(Params, {"model": {"name": "two_stage"}})
    for over, key in (({"half_output": True}, "model.half_output"), ({"coarse_scale": 1}, "model.coarse_scale"),
                      ({"refine_share": 0.0}, "model.refine_share"), ({"refine_share": 1.5}, "model.refine_share")):
        with pytest.raises(ConfigError, match=key):
            ModelConfig(name="two_stage", **over)
    assert ModelConfig(name="two_stage", refine_share=1.0).refine_share == 1.0  # every cell


def test_it_exports_to_onnx(tmp_path):
    import onnxruntime as ort

    from fgbg.inference.onnx import export_onnx

    the_contract = contract(ModelConfig(name="two_stage", width=4, levels=1, depth="learned"))
    torch.manual_seed(0)
    model = build_model(the_contract)
    with torch.no_grad():  # every cell's error tied: the export must break ties as PyTorch does
        model.error.weight.zero_()
    write_checkpoint(tmp_path / "two.pt", model, the_contract, input_size=16)
    assert export_onnx(tmp_path / "two.pt", tmp_path / "two.onnx")["outputs"] == ["mask_logits", "depth"]
    session = ort.InferenceSession(str(tmp_path / "two.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 6, 16, 16, generator=torch.Generator().manual_seed(5))
    got = session.run(None, {"x": x.numpy()})
    from fgbg.core.checkpoint import load_checkpoint
    model, _ = load_checkpoint(tmp_path / "two.pt")
    with torch.no_grad():
        want = [t.numpy() for t in model(x).values()]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def refined_cells(model: TwoStage, x: torch.Tensor) -> torch.Tensor:
    """N, h, w bool: the cells that a refiner of bias 2 changes (zero_refiner's bias, on the mask logits)."""
    zero_refiner(model)
    with torch.no_grad():
        before = model(x)["mask"]
        zero_refiner(model, bias=2.0)
        changed = model(x)["mask"] - before
    return F.avg_pool2d(changed, SCALE)[:, 0] > 1


@pytest.mark.parametrize("size, share, count", [
    ((16, 40), 0.14, 6),  # 4 x 10 cells: 0.14 x 40 = 5.6, rounded to 6 (int() would give 5)
    ((8, 8), 0.1, 1),  # 2 x 2 cells: 0.4 rounds to 0, and at least one cell is refined
    ((16, 40), 1.0, 40),  # every cell
])
def test_the_count_of_refined_cells_is_the_share_rounded_on_a_non_square_input(size, share, count):
    model = small_model(share=share)
    assert refined_cells(model, torch.randn(2, 6, *size)).flatten(1).sum(1).tolist() == [count, count]


def test_tied_errors_go_to_the_lower_cell_index_as_onnx_breaks_ties():
    """A flat error map (every cell tied): the first `count` cells in row order, 0 to 3 of 4 x 4, are refined."""
    model = small_model(share=0.25)
    model.error = FixedError(torch.zeros(1, 1, 4, 4))
    cells = refined_cells(model, torch.randn(1, 6, 16, 16))
    assert cells[0].flatten().nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_under_bf16_autocast_the_error_and_the_sampling_grid_stay_fp32(monkeypatch):
    """bf16 would tie the ranking of cells and move a sampled pixel by up to 1.5 px on a 1024 px image."""
    seen = {}
    grid_sample = F.grid_sample

    def spy(context, grid, **kwargs):
        seen.update(context=context.dtype, grid=grid.dtype)
        return grid_sample(context, grid, **kwargs)

    monkeypatch.setattr(F, "grid_sample", spy)
    model = small_model(share=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 6, 16, 16), coarse=True)
    assert seen == {"context": torch.float32, "grid": torch.float32}
    assert out["coarse/error"].dtype == torch.float32


def test_ground_contact_keeps_the_heads_order_and_reads_the_refined_mask():
    """The base sees no mask anywhere; the refiner makes one bottom-row cell surely mask: the outputs keep the
    heads' order (the ONNX output names follow it), and the depth's foot comes from the refined mask."""
    model = small_model(share=1 / 16, heads=("mask", "depth", "bg_depth"), ground_contact=True)
    order = torch.zeros(1, 1, 4, 4)
    order[0, 0, 3, 1] = 5.0
    model.error = FixedError(order)
    zero_refiner(model)
    with torch.no_grad():
        model.coarse_heads.bias[0] = -20.0
        model.refiner[-1].bias[0] = 50.0
        out = model(torch.randn(1, 6, 16, 16), coarse=True)
    assert list(out)[:3] == ["mask", "depth", "bg_depth"]
    assert (out["mask"][0, 0] > 0).nonzero().tolist() == [[r, c] for r in range(12, 16) for c in range(4, 8)]
    foot = out["bg_depth"][0, 0, 15, 4:8].median()  # an even count: torch's median is the lower middle value
    values = out["bg_depth"][0, 0, 15, 4:8].sort().values
    torch.testing.assert_close(out["depth"][0, 0, 12:16, 4:8], ((values[1] + values[2]) / 2).expand(4, 4))
    assert foot == values[1]


def test_the_error_target_passes_no_gradient_on_a_non_square_batch():
    """The coarse heads reach the error term only through its target, which is detached: their gradient is
    that of every other term."""
    from fgbg.training.trainer import Heads

    params = from_dict(Params, {"model": {"name": "two_stage", "width": 4, "levels": 1, "depth": "learned"},
                                "heads": {"mask": {"losses": {"bce": 1.0}}, "depth": {"losses": {"l1": 1.0}}},
                                "train": {"crop": 0}})
    the_contract = contract(params.model, heads=("mask", "depth"))
    heads = Heads(params, torch.device("cpu"), the_contract)
    torch.manual_seed(1)
    model = build_model(the_contract).eval()
    x = torch.randn(2, 6, 16, 40)
    targets = {"mask": (torch.rand(2, 1, 16, 40) > 0.5).float(), "depth": torch.rand(2, 1, 16, 40)}
    _, loss, terms = heads.forward(model, x, targets)
    out = model(x, coarse=True)
    small_mask = (F.avg_pool2d(targets["mask"], SCALE) > 0.5).float()
    small_depth = F.avg_pool2d(targets["depth"], SCALE)
    without_error = (F.binary_cross_entropy_with_logits(out["mask"], targets["mask"])
                     + (out["depth"] - targets["depth"]).abs().mean()
                     + F.binary_cross_entropy_with_logits(out["coarse/mask"], small_mask)
                     + (out["coarse/depth"] - small_depth).abs().mean())
    torch.testing.assert_close(terms["coarse_depth_l1"], (out["coarse/depth"] - small_depth).abs().mean())
    got, = torch.autograd.grad(loss, model.coarse_heads.weight)
    want, = torch.autograd.grad(without_error, model.coarse_heads.weight)
    torch.testing.assert_close(got, want)


def test_the_base_takes_a_measured_only_loss_on_the_measured_samples_too():
    """A two-stage model's base is supervised at its size with the batch's MEASURED flags: with sample 1 on
    the prior, its coarse log_l1 is sample 0's alone, weighed by its share (1 of 2)."""
    from fgbg.dataset.data import MEASURED
    from fgbg.training.trainer import Heads

    params = from_dict(Params, {"model": {"name": "two_stage", "width": 4, "levels": 1, "depth": "learned"},
                                "heads": {"mask": {"losses": {"bce": 1.0}},
                                          "depth": {"losses": {"log_l1": 1.0}, "measured_only": ["log_l1"]}},
                                "train": {"crop": 0}})
    the_contract = contract(params.model, heads=("mask", "depth"))
    torch.manual_seed(1)
    model = build_model(the_contract).eval()
    x = torch.randn(2, 6, 16, 16)
    targets = {"mask": (torch.rand(2, 1, 16, 16) > 0.5).float(), "depth": torch.rand(2, 1, 16, 16) + 0.01,
               MEASURED: torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)}
    _, _, terms = Heads(params, torch.device("cpu"), the_contract).forward(model, x, targets)
    out = model(x, coarse=True)
    small = F.avg_pool2d(targets["depth"], SCALE)
    log_error = (out["coarse/depth"][:1].clamp(min=1e-3).log() - small[:1].log()).abs().mean()
    torch.testing.assert_close(terms["coarse_depth_log_l1"], log_error / 2)
