"""Named heads: a third head needs only its declaration, its target and params; format-1 checkpoints
still load; metric keys; every head has a kind and a target."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fgbg.core.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from fgbg.core.config import ModelConfig, Params, from_dict
from fgbg.core.contract import KINDS, NormStats
from fgbg.core.heads import HEADLINE, HEADS, KIND_METRICS, metric_keys
from fgbg.dataset.data import TARGETS, Sample
from fgbg.evaluation.evaluate import evaluate_model
from fgbg.inference.onnx import export_onnx
from fgbg.training.train import train_model
from tests.conftest import ROOT, grid_columns, predict_stored_pair
from tests.test_train import TINY, merge

FIXTURES = ROOT / "tests" / "fixtures"


def test_every_head_has_a_kind_and_a_target_and_every_kind_its_metrics():
    assert set(TARGETS.names()) == set(HEADS)
    assert set(HEADS.values()) <= set(KINDS) == set(KIND_METRICS) == set(HEADLINE)
    for kind, names in KIND_METRICS.items():
        assert HEADLINE[kind] in names


def test_metric_keys_keep_the_first_head_of_each_kind_bare(monkeypatch):
    monkeypatch.setitem(HEADS, "outline", "binary")
    keys = metric_keys({"mask": ("iou",), "depth": ("rmse",), "outline": ("iou", "dice")})
    assert keys == {("mask", "iou"): "iou", ("depth", "rmse"): "rmse", ("outline", "iou"): "outline/iou",
                    ("outline", "dice"): "outline/dice"}
    assert metric_keys({"outline": ("iou",), "mask": ("iou",)}) == {("outline", "iou"): "iou", ("mask", "iou"): "mask/iou"}


def test_a_format_1_checkpoint_loads_to_the_predictions_it_gave():
    """tests/fixtures/checkpoint_v1.pt was written by the format-1 code (fixtures/make_checkpoint_v1.py), as the
    `fgbg-unet@v0.1.0` artifact was: its weights load under the named heads and give the same outputs."""
    model, ckpt = load_checkpoint(FIXTURES / "checkpoint_v1.pt")
    want = np.load(FIXTURES / "checkpoint_v1_outputs.npz")
    assert ckpt.contract.heads == ("mask", "depth") and ckpt.contract.config == ModelConfig(width=4, levels=2, rows=True,
                                                                                                 depth="learned",
                                                                                                 context="none")
    assert ckpt.contract.stats == NormStats((0.4, 0.5, 0.6), (0.2, 0.25, 0.3), (0.45, 0.5, 0.55), (0.21, 0.22, 0.23))
    assert (ckpt.input_size, ckpt.epoch, ckpt.val) == (32, 3, {"loss": 0.5})
    with torch.no_grad():
        outputs = model(torch.from_numpy(want["x"]))
    assert torch.equal(outputs["mask"], torch.from_numpy(want["mask_logits"]))
    assert torch.equal(outputs["depth"], torch.from_numpy(want["depth"]))


def test_a_checkpoint_reads_back_as_it_was_written(tmp_path):
    ckpt = read_checkpoint(FIXTURES / "checkpoint_v1.pt")
    save_checkpoint(tmp_path / "v2.pt", ckpt)  # written as format 2
    assert torch.load(tmp_path / "v2.pt", weights_only=True)["format_version"] == 2
    again = read_checkpoint(tmp_path / "v2.pt")
    assert again.contract == ckpt.contract and (again.input_size, again.epoch, again.val) == (32, 3, {"loss": 0.5})
    assert list(again.weights) == list(ckpt.weights) and all(torch.equal(again.weights[k], ckpt.weights[k])
                                                              for k in ckpt.weights)


def outline_target(sample: Sample) -> np.ndarray:
    """The object's outline: mask pixels with a 4-neighbour outside the mask (the image border counts as outside)."""
    mask = np.pad(sample.mask, 1)
    inside = mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
    return (sample.mask & ~inside).astype(np.float32)


def test_outline_target_by_hand():
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True  # a 3 x 3 square: its 8 border pixels are the outline, the centre is not
    got = outline_target(Sample(None, None, mask, None, None, None))
    assert got.sum() == 8 and got[2, 2] == 0 and got[1, 1] == 1 and got[0].sum() == 0


@pytest.fixture
def outline_head(monkeypatch):
    """A third head, added as a user would: declared among the heads (its kind) and given a target.
    Nothing else in fgbg changes."""
    monkeypatch.setitem(HEADS, "outline", "binary")
    monkeypatch.setitem(TARGETS._items, "outline", outline_target)


def test_a_third_head_trains_evaluates_predicts_and_exports(outline_head, tiny_dataset, prepared, tmp_path):
    from fgbg.dataset.store import ComposedStore

    store = ComposedStore(tiny_dataset)
    heads = {"mask": {"losses": {"bce": 1.0}, "metrics": ["iou", "dice"]}, "depth": {"losses": {"l1": 1.0}},
             "outline": {"losses": {"bce": 1.0, "dice": 0.5}, "metrics": ["iou", "dice"]}}  # the third head's params
    params = from_dict(Params, merge(TINY, {"epochs": 1, "heads": heads, "model": {"depth": "learned"},
                                                  "train": {"best_metric": "outline/iou"}}))
    summary = train_model(params=params, dataset_dir=tiny_dataset, stats_path=prepared / "stats.json",
                          split_path=prepared / "split.json", model_dir=tmp_path / "models", live_dir=tmp_path / "live",
                          metrics_path=tmp_path / "train.json")
    assert set(summary["train"]) == {"loss", "mask_bce", "depth_l1", "outline_bce", "outline_dice"}
    assert set(summary["val"]) == {"loss", "mask_bce", "depth_l1", "outline_bce", "outline_dice", "iou", "dice",
                                   *KIND_METRICS["unit"], "outline/iou", "outline/dice"}  # the loss term outline_dice
    # is apart from the metric outline/dice; mask's metrics as listed, depth's all
    assert summary["best_val_outline/iou"] == summary["val"]["outline/iou"]
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "outline" / "iou.tsv").is_file()

    result = evaluate_model(checkpoint=tmp_path / "models" / "best.pt", dataset_dir=tiny_dataset,
                            split_path=prepared / "split.json", metrics_path=tmp_path / "eval.json",
                            plots_dir=tmp_path / "plots", by_source_path=tmp_path / "by.json", params=params)
    assert set(result["outline"]) == {"iou", "dice"} and set(result["mask"]) == {"iou", "dice"}
    assert set(result["baseline"]) == {"mask", "depth", "mask_rule", "depth_rule"}  # no baseline for the outline
    assert set(result["test_files"]["outline"]) == {"iou", "dice"}
    by = json.loads((tmp_path / "by.json").read_text())
    assert {"iou", "rmse", "outline/iou"} <= set(by["worst"][0])
    assert (tmp_path / "plots" / "per_fg.csv").read_text().startswith("fg,iou,rmse,outline/iou,iou_error,outline/iou_error")
    samples = Image.open(tmp_path / "plots" / "samples.png")
    assert grid_columns(samples) == 9  # bg, fg_bg, mask's 2, depth's 3, outline's 2
    assert grid_columns(Image.open(tmp_path / "plots" / "cutouts.png")) == 5  # without an alpha, the mask cuts out

    predict_stored_pair(tmp_path / "models" / "best.pt", store, 0, tmp_path)
    outline = np.asarray(Image.open(tmp_path / "out" / "scene_outline.png"))
    assert outline.shape == (16, 16) and set(np.unique(outline)) <= {0, 255}
    assert export_onnx(tmp_path / "models" / "best.pt", tmp_path / "m.onnx")["outputs"] == [
        "mask_logits", "depth", "outline_logits"]


def test_evaluate_refuses_params_that_list_other_heads_than_the_checkpoints(tmp_path):
    with pytest.raises(ValueError, match=r"heads = \['mask'\], but .*checkpoint_v1.pt has the heads \['mask', 'depth'\]"):
        evaluate_model(checkpoint=FIXTURES / "checkpoint_v1.pt", dataset_dir=tmp_path, split_path=tmp_path / "s.json",
                       metrics_path=tmp_path / "e.json", plots_dir=tmp_path, by_source_path=tmp_path / "b.json",
                       params=from_dict(Params, {"model": {"depth": "learned"}, "heads": {"mask": {"losses": {"bce": 1.0}}}}))


def _hostile(payload: dict) -> dict:
    """The format-1 fixture's payload with `payload`'s changes."""
    base = torch.load(FIXTURES / "checkpoint_v1.pt", weights_only=True)
    return {**base, **payload}


def _v2(**changes) -> dict:
    base = read_checkpoint(FIXTURES / "checkpoint_v1.pt").to_dict()
    return {**base, **changes}


HOSTILE = {
    "unknown head with weights": lambda: _v2(heads=["mask", "depth", "halo"], model={
        **_v2()["model"], "heads.halo.weight": torch.zeros(1, 4, 1, 1), "heads.halo.bias": torch.zeros(1)}),
    "duplicate heads": lambda: _v2(heads=["mask", "mask", "depth"]),
    "config not a mapping": lambda: _v2(model_config=["unet"]),
    "v1 weights None": lambda: _hostile({"model": None}),
    "fractional width": lambda: _v2(model_config={**_v2()["model_config"], "width": 4.5}),
    "4 stats per image": lambda: _v2(stats={"bg": {"mean": [0.5] * 4, "std": [0.2] * 4},
                                            "fg_bg": {"mean": [0.5] * 4, "std": [0.2] * 4}}),
    "zero std": lambda: _v2(stats={"bg": {"mean": [0.5] * 3, "std": [0.0] * 3},
                                   "fg_bg": {"mean": [0.5] * 3, "std": [0.2] * 3}}),
    "input_size text": lambda: _v2(input_size="abc"),
}


@pytest.mark.parametrize("command", ["predict", "onnx"])
@pytest.mark.parametrize("damage", sorted(HOSTILE))
def test_a_checkpoint_of_the_wrong_form_is_one_clear_error(tmp_path, capsys, damage, command):
    from fgbg.cli import main as cli

    torch.save(HOSTILE[damage](), tmp_path / "bad.pt")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "a.png")
    args = (["predict", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]
            if command == "predict" else ["onnx", "--out", str(tmp_path / "m.onnx")])
    with pytest.raises(SystemExit) as e:
        cli(args + ["--checkpoint", str(tmp_path / "bad.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'bad.pt'}: "), err
    assert "retrain with `dvc repro train`" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "m.onnx").exists()


def test_a_unit_targets_file_is_read_by_its_bit_depth_and_colour_is_refused(tmp_path):
    from fgbg.evaluation.scoring import read_target

    Image.fromarray(np.array([[0, 51, 255]], np.uint8)).save(tmp_path / "d8.png")
    Image.fromarray(np.array([[0, 13107, 65535]], np.uint16)).save(tmp_path / "d16.png")
    Image.fromarray(np.zeros((1, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    assert np.allclose(read_target(tmp_path / "d8.png", "depth"), [[0, 0.2, 1]])
    assert np.allclose(read_target(tmp_path / "d16.png", "depth"), [[0, 0.2, 1]])
    with pytest.raises(ValueError, match="rgb.png: a depth target must be a greyscale image"):
        read_target(tmp_path / "rgb.png", "depth")


def test_a_model_without_a_mask_head_is_scored_and_reported(tiny_dataset, tmp_path):
    """`fgbg score` needs the folder of the model's first head (here depth/), and the report draws the heads there are."""
    from fgbg.cli import main as cli
    from fgbg.core.imageio import depth_to_uint16
    from fgbg.core.model import build_model
    from fgbg.dataset.store import ComposedStore
    from fgbg.report import results_markdown
    from tests.conftest import contract, write_checkpoint

    depth_only = contract(heads=("depth",))
    torch.manual_seed(0)
    write_checkpoint(tmp_path / "d.pt", build_model(depth_only), depth_only)
    store = ComposedStore(tiny_dataset)
    for kind in ("bg", "fg_bg", "depth"):
        (tmp_path / "pairs" / kind).mkdir(parents=True)
    for i in (0, 3):
        bg, fg_bg, _, depth = store.read(i)
        Image.fromarray(bg).save(tmp_path / "pairs" / "bg" / f"s{i}.png")
        Image.fromarray(fg_bg).save(tmp_path / "pairs" / "fg_bg" / f"s{i}.png")
        Image.fromarray(depth_to_uint16(depth)).save(tmp_path / "pairs" / "depth" / f"s{i}.png")
    cli(["score", str(tmp_path / "pairs"), "-o", str(tmp_path / "score.json"), "--checkpoint", str(tmp_path / "d.pt")])
    result = json.loads((tmp_path / "score.json").read_text())
    assert set(result["depth"]) == set(KIND_METRICS["unit"]) and "mask" not in result and result["baseline"] == {}
    assert (tmp_path / "score_worst.png").is_file()

    ev = {"split": "test", "unseen": "foregrounds never seen in training", "samples": 2, "checkpoint_epoch": 0,
          "mask": {"iou": 0.9}, "baseline": {"mask": {"iou": 0.8}, "mask_rule": "|fg_bg - bg| > 7"},
          "test_files": {"mask": {"iou": 0.85}, "files": "two JPEG files", "baseline": {"mask": {"iou": 0.7}}}}
    (tmp_path / "e.json").write_text(json.dumps(ev))
    (tmp_path / "b.json").write_text(json.dumps({"fg_class": {"cat": {"samples": 2, "mask": {"iou": 0.9}}}}))
    text = results_markdown(tmp_path / "e.json", tmp_path / "b.json")  # a mask-only model's eval.json
    assert "mask |fg_bg - bg| > 7." in text and "| class | samples | mask IoU |\n|---|---|---|" in text
    assert "as a user's files (two JPEG files): mask IoU 0.8500 (baseline 0.7000)." in text
    assert "| cat | 2 | 0.9000 |" in text and "ranked by (1 - mask IoU):" in text
