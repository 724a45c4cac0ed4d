"""Training and evaluation on a tiny dataset: outputs, determinism, and the NaN guard."""

import json

import pytest
import torch

from fgbg.checkpoint import load_checkpoint
from fgbg.config import from_dict, Params
from fgbg.evaluate import evaluate_model
from fgbg.imageio import atomic_write_json
from fgbg.split import split_index
from fgbg.stats import dataset_stats
from fgbg.store import Dataset
from fgbg.train import Heads, run_epoch, train_model

TINY = {"epochs": 2, "batch_size": 8, "model": {"width": 4, "levels": 2}, "train": {"threads": 1}}


@pytest.fixture(scope="module")
def prepared(tiny_dataset, tmp_path_factory):
    d = tmp_path_factory.mktemp("prep")
    ds = Dataset(tiny_dataset)
    atomic_write_json(d / "stats.json", dataset_stats(ds))
    atomic_write_json(d / "split.json", split_index(ds.index, group_by="fg", val_fraction=0.3, seed=0))
    return d


def _train(tiny_dataset, prepared, out, **overrides):
    params = from_dict(Params, {**TINY, **overrides})
    return train_model(params=params, dataset_dir=tiny_dataset, stats_path=prepared / "stats.json",
                       split_path=prepared / "split.json", model_dir=out / "models", live_dir=out / "live",
                       metrics_path=out / "train.json")


def test_train_then_evaluate_writes_every_output(tiny_dataset, prepared, tmp_path):
    summary = _train(tiny_dataset, prepared, tmp_path)
    assert (tmp_path / "models" / "best.pt").is_file() and (tmp_path / "models" / "last.pt").is_file()
    assert json.loads((tmp_path / "train.json").read_text())["epoch"] == 1 == summary["epoch"]
    assert (tmp_path / "live" / "plots" / "metrics" / "val" / "iou.tsv").is_file()
    model, ckpt = load_checkpoint(tmp_path / "models" / "last.pt")
    assert ckpt["epoch"] == 1 and set(ckpt["stats"]) == {"bg", "fg_bg"}
    result = evaluate_model(checkpoint=tmp_path / "models" / "best.pt", dataset_dir=tiny_dataset,
                            split_path=prepared / "split.json", metrics_path=tmp_path / "eval.json",
                            grid_path=tmp_path / "grid.png", grid_samples=2, batch_size=4)
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved == result and 0 <= saved["mask"]["iou"] <= 1 and 0 <= saved["depth"]["rmse"] <= 1
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"


def test_training_is_deterministic_under_a_seed(tiny_dataset, prepared, tmp_path):
    a = _train(tiny_dataset, prepared, tmp_path / "a")
    b = _train(tiny_dataset, prepared, tmp_path / "b")
    assert a["val"] == b["val"]
    wa = load_checkpoint(tmp_path / "a" / "models" / "last.pt")[1]["model"]
    wb = load_checkpoint(tmp_path / "b" / "models" / "last.pt")[1]["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_nan_loss_stops_with_the_step_and_terms():
    params = from_dict(Params, TINY)
    from fgbg.model import build_model

    model = build_model(params.model)
    batch = [(torch.full((2, 6, 8, 8), float("nan")), torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))]
    with pytest.raises(FloatingPointError, match=r"epoch 0, step 0.*mask_bce"):
        run_epoch(model, batch, Heads(params, torch.device("cpu")), 0, torch.optim.SGD(model.parameters(), lr=0.1))


def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    torch.save({"format_version": 999}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="checkpoint format 999"):
        load_checkpoint(tmp_path / "old.pt")
