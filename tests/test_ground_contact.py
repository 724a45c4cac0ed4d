"""model.depth: ground_contact: depth derived from the mask and the scene's depth without the object, by the
rule that made the geometry labels."""

import numpy as np
import pytest
import torch

from fgbg.core.config import ConfigError, ModelConfig, Params, from_dict
from fgbg.core.model import build_model, ground_contact
from fgbg.dataset.store import ComposedStore
from tests.conftest import contract

GC_HEADS = {"mask": {"losses": {"bce": 1.0}}, "bg_depth": {"losses": {"l1": 1.0}}, "depth": {"losses": {"l1": 1.0}}}


def test_the_rule_by_hand():
    bg_depth = torch.tensor([[0.9, 0.9, 0.9, 0.9],
                             [0.5, 0.6, 0.7, 0.8],
                             [0.1, 0.2, 0.3, 0.4],
                             [0.05, 0.05, 0.05, 0.05]]).view(1, 1, 4, 4)
    mask = torch.tensor([[0, 1, 1, 0],
                         [0, 1, 1, 1],
                         [0, 1, 0, 1],
                         [0, 0, 0, 0]], dtype=torch.bool).view(1, 1, 4, 4)
    depth = ground_contact(mask.float() * 2 - 1, bg_depth)
    # the lowest mask row is row 2, its mask pixels take 0.2 and 0.4: the object's depth is their median, 0.3
    want = torch.where(mask, torch.tensor(0.3), bg_depth)
    assert torch.allclose(depth, want, atol=1e-7)
    odd = mask.clone()
    odd[0, 0, 2, 2] = True  # three foot pixels, 0.2, 0.3, 0.4: the middle one
    assert torch.allclose(ground_contact(odd.float() * 2 - 1, bg_depth), torch.where(odd, torch.tensor(0.3), bg_depth))
    empty = ground_contact(-torch.ones(1, 1, 4, 4), bg_depth)  # no object: the bg depth
    assert torch.equal(empty, bg_depth)


def test_gradients_reach_the_bg_depth_at_the_foot_and_outside_the_object():
    bg_depth = torch.rand(1, 1, 4, 4, requires_grad=True)
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 1:3, 1] = True  # a 2 px column, foot at row 2, column 1
    ground_contact(mask.float() * 2 - 1, bg_depth).sum().backward()
    grad = bg_depth.grad[0, 0]
    assert grad[2, 1] == 2  # the foot: both mask pixels take its depth (the median of one pixel)
    assert grad[0, 0] == 1 and grad[1, 1] == 0  # outside: itself; hidden behind the object: nothing


def test_the_rule_gives_the_stored_depth_labels_exactly(tiny_dataset):
    store = ComposedStore(tiny_dataset)
    for i in range(len(store)):
        sample = store.sample(i)
        mask = torch.from_numpy(sample.mask)[None, None]
        got = ground_contact(mask.float() * 2 - 1, torch.from_numpy(sample.bg_depth)[None, None])
        assert torch.equal(got[0, 0], torch.from_numpy(sample.depth)), i


def test_a_ground_contact_model_derives_depth_and_has_no_depth_conv():
    the_contract = contract(ModelConfig(width=4, levels=2, depth="ground_contact"), heads=("mask", "bg_depth", "depth"))
    model = build_model(the_contract)
    assert sorted(model.heads) == ["bg_depth", "mask"]
    outputs = model(torch.randn(2, 6, 16, 16))
    assert list(outputs) == ["mask", "bg_depth", "depth"]
    assert torch.equal(outputs["depth"], ground_contact(outputs["mask"], outputs["bg_depth"]))


@pytest.mark.parametrize("over, message", [
    ({"model": {"depth": "ground_contact"}, "heads": {"mask": GC_HEADS["mask"], "depth": GC_HEADS["depth"]}},
     "heads = \\['mask', 'depth'\\] is not allowed; expected mask, bg_depth and depth"),
    ({"model": {"depth": "ground_contact"}, "heads": GC_HEADS, "compose": {"depth": "teacher", "teacher": {"model": "m.onnx"}}},
     "model.depth = 'ground_contact' is not allowed; expected learned with compose.depth: teacher"),
])
def test_ground_contact_needs_its_heads_and_geometry_depth(over, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Params, over)
    assert from_dict(Params, {"model": {"depth": "ground_contact"}, "heads": GC_HEADS}).model.depth == "ground_contact"


def test_the_derived_depth_may_go_without_losses_and_a_learned_one_may_not():
    """Under ground contact the depth is computed, so it may be left out of the loss (a crop that cuts the
    object's foot would teach the bg depth a wrong foot); a learned depth head with no loss never learns."""
    derived = {**GC_HEADS, "depth": {"losses": {}}}
    params = from_dict(Params, {"model": {"depth": "ground_contact"}, "heads": derived})
    assert params.heads["depth"].losses == {} and params.heads["depth"].metrics  # still scored
    from fgbg.training.trainer import Heads
    assert "depth" not in Heads(params, torch.device("cpu"), contract(heads=("mask", "bg_depth", "depth"))).losses
    with pytest.raises(ConfigError, match=r"heads.depth.losses = \{\} is not allowed; expected at least one loss"):
        from_dict(Params, {"model": {"depth": "learned"}, "heads": {"mask": GC_HEADS["mask"], "depth": {"losses": {}}}})


def test_the_teacher_error_gives_the_whole_fix_and_the_fix_works():
    with pytest.raises(ConfigError, match=r"add -S model.depth=learned -S 'heads.depth.losses=\{l1: 1, ssim: 0.5\}'"):
        from_dict(Params, {"compose": {"depth": "teacher", "teacher": {"model": "m.onnx"}}})
    from fgbg.core.typed_yaml import read_yaml
    from tests.conftest import ROOT

    data = read_yaml(ROOT / "params.yaml")  # as dvc exp run -S sets these keys in it
    data["compose"].update({"depth": "teacher", "teacher": {"model": "m.onnx"}})
    data["model"]["depth"] = "learned"
    data["heads"]["depth"]["losses"] = {"l1": 1, "ssim": 0.5}
    assert from_dict(Params, data).model.depth == "learned"


def test_a_ground_contact_model_trains_and_evaluates_its_depth(tiny_dataset, prepared, tmp_path):
    """Through the real loop: the bg_depth target travels through crops and flips with the sample."""
    from fgbg.core.checkpoint import load_checkpoint
    from fgbg.evaluation.evaluate import evaluate_model
    from fgbg.training.train import train_model
    from tests.test_train import TINY, merge

    heads = {"mask": GC_HEADS["mask"], "depth": GC_HEADS["depth"], "bg_depth": GC_HEADS["bg_depth"]}
    params = from_dict(Params, merge(TINY, {"epochs": 1, "heads": heads, "model": {"depth": "ground_contact"},
                                            "train": {"crop": 8, "augment": {"hflip": 1.0}, "image_every": 0}}))
    summary = train_model(params=params, dataset_dir=tiny_dataset, stats_path=prepared / "stats.json",
                          split_path=prepared / "split.json", model_dir=tmp_path / "models", live_dir=tmp_path / "live",
                          metrics_path=tmp_path / "train.json")
    assert {"depth_l1", "bg_depth_l1", "rmse", "bg_depth/rmse"} <= set(summary["val"])  # depth first: bare names
    model, ckpt = load_checkpoint(tmp_path / "models" / "best.pt")
    assert ckpt.contract.config.depth == "ground_contact" and sorted(model.heads) == ["bg_depth", "mask"]
    result = evaluate_model(checkpoint=tmp_path / "models" / "best.pt", dataset_dir=tiny_dataset,
                            split_path=prepared / "split.json", metrics_path=tmp_path / "eval.json",
                            plots_dir=tmp_path / "plots", by_source_path=tmp_path / "by.json", params=params)
    assert result["depth"]["rmse"] == pytest.approx(summary["val"]["rmse"], abs=1) and "bg_depth" in result


def test_hflip_moves_the_bg_depth_with_the_images(tiny_dataset):
    from fgbg.core.config import AugmentConfig
    from fgbg.training.augment import Augment

    sample = ComposedStore(tiny_dataset).sample(2)
    flipped = Augment(AugmentConfig(hflip=1.0))(sample, seed=0)
    assert np.array_equal(flipped.bg_depth, sample.bg_depth[:, ::-1]) and np.array_equal(flipped.mask, sample.mask[:, ::-1])
    assert np.array_equal(flipped.alpha, sample.alpha[:, ::-1]) and np.array_equal(flipped.depth, sample.depth[:, ::-1])
    assert np.array_equal(flipped.bg, sample.bg[:, ::-1]) and np.array_equal(flipped.fg_bg, sample.fg_bg[:, ::-1])


def test_a_ground_contact_model_exports_to_onnx_with_its_derived_depth(tmp_path):
    import onnxruntime as ort

    from fgbg.inference.onnx import export_onnx
    from tests.conftest import write_checkpoint

    the_contract = contract(ModelConfig(width=4, levels=2, depth="ground_contact"), heads=("mask", "depth", "bg_depth"))
    torch.manual_seed(0)
    write_checkpoint(tmp_path / "gc.pt", build_model(the_contract), the_contract)
    assert export_onnx(tmp_path / "gc.pt", tmp_path / "gc.onnx")["outputs"] == ["mask_logits", "depth", "bg_depth"]

    class Rule(torch.nn.Module):  # the rule alone, on inputs that hold objects (a random model's mask may not)
        def forward(self, mask_logits, bg_depth):
            return ground_contact(mask_logits, bg_depth)

    logits = torch.randn(3, 1, 12, 10, generator=torch.Generator().manual_seed(1))
    bg_depth = torch.rand(3, 1, 12, 10, generator=torch.Generator().manual_seed(2))
    torch.onnx.export(Rule(), (logits, bg_depth), str(tmp_path / "rule.onnx"), input_names=["m", "g"],
                      opset_version=17, dynamo=False)
    got = ort.InferenceSession(str(tmp_path / "rule.onnx")).run(None, {"m": logits.numpy(), "g": bg_depth.numpy()})[0]
    assert np.array_equal(got, Rule()(logits, bg_depth).numpy())


def test_affine_moves_the_bg_depth_as_it_moves_the_depth(tiny_dataset):
    """Outside the object depth and bg depth are equal; both are warped as maps (nearest), so they stay equal."""
    from fgbg.core.config import AugmentConfig
    from fgbg.training.augment import Augment

    store = ComposedStore(tiny_dataset)
    moved = 0
    for i in range(6):
        sample = store.sample(i)
        out = Augment(AugmentConfig(hflip=0.0, affine=1.0))(sample, seed=i)
        moved += int(not np.array_equal(out.bg_depth, sample.bg_depth))
        assert np.array_equal(out.depth[~out.mask], out.bg_depth[~out.mask]), i
        assert np.array_equal(out.mask, np.round(out.alpha * 255) >= 128), i  # the alpha moves as the mask does
    assert moved >= 3  # the warp really ran (a draw can leave a sample in place)
