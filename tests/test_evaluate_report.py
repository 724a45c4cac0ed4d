"""Evaluate's choices and words: the baseline threshold comes from val, the depth baseline names
its scale, the per-fg chart's column. An untrained tiny model is enough: none of it depends on
how good the model is."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from fgbg.core.config import ModelConfig, Params, from_dict, read_yaml
from fgbg.core.model import build_model
from fgbg.dataset.store import META, ComposedStore
from fgbg.evaluation.baselines import choose_threshold, difference
from fgbg.evaluation.evaluate import evaluate_model
from tests.conftest import ROOT, contract, write_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    the_contract = contract(ModelConfig(width=2, levels=1))
    torch.manual_seed(0)
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", build_model(the_contract), the_contract)


def _evaluate(checkpoint, dataset, split: dict, out):
    out.mkdir(exist_ok=True)
    (out / "split.json").write_text(json.dumps(split))
    return evaluate_model(checkpoint=checkpoint, dataset_dir=dataset, split_path=out / "split.json",
                          metrics_path=out / "eval.json", plots_dir=out / "plots", by_source_path=out / "by.json",
                          params=from_dict(Params, {"batch_size": 8, "evaluate": {"grid_samples": 2}}))


def _split_by_fg(store: ComposedStore, val: list[str], test: list[str]) -> dict:
    fg = store.index["fg"]
    ids = {side: [int(i) for i in np.flatnonzero(fg.isin(names))] for side, names in (("val", val), ("test", test))}
    train = [int(i) for i in np.flatnonzero(~fg.isin(val + test))]
    return {"train": train, **ids, "unseen": "foregrounds never seen in training"}


def test_the_baseline_threshold_is_chosen_on_val_and_scored_on_test(tiny_dataset, checkpoint, tmp_path):
    store = ComposedStore(tiny_dataset)
    pairs = [(difference(bg, fg_bg), mask) for bg, fg_bg, mask, _ in map(store.read, range(len(store)))]
    best = {name: choose_threshold(pairs[i] for i in np.flatnonzero(store.index["fg"] == name))
            for name in sorted(set(store.index["fg"]))}
    val_fg, test_fg = min(best, key=best.get), max(best, key=best.get)
    assert best[val_fg] < best[test_fg]  # so that choosing on test would show
    split = _split_by_fg(store, [val_fg], [test_fg])
    baseline = _evaluate(checkpoint, tiny_dataset, split, tmp_path)["baseline"]
    t = best[val_fg]
    assert baseline["mask_rule"].startswith(f"|fg_bg - bg| > {t} (")
    ious = [((diff > t) & mask).sum() / ((diff > t) | mask).sum() for diff, mask in (pairs[i] for i in split["test"])]
    assert baseline["mask"]["iou"] == pytest.approx(np.mean(ious), abs=1e-12)


def test_the_per_fg_chart_draws_the_iou_error(tiny_dataset, checkpoint, tmp_path):
    store = ComposedStore(tiny_dataset)
    names = sorted(set(store.index["fg"]))
    _evaluate(checkpoint, tiny_dataset, _split_by_fg(store, names[:1], names[1:]), tmp_path)
    by_fg = json.loads((tmp_path / "by.json").read_text())["fg"]
    [plot] = [p["plots/per_fg.csv"] for p in read_yaml(ROOT / "dvc.yaml")["stages"]["evaluate"]["plots"]
              if isinstance(p, dict) and "plots/per_fg.csv" in p]
    table = pd.read_csv(tmp_path / "plots" / "per_fg.csv")
    assert plot["x"] == "iou_error" and list(table["fg"]) == sorted(by_fg) == names[1:]
    for row in table.itertuples():
        assert row.iou_error == pytest.approx(1 - by_fg[row.fg]["mask"]["iou"], abs=1e-6)


@pytest.mark.parametrize("depth, says_scale", [("geometry", False), ("teacher", True)])
def test_the_depth_baseline_says_when_it_is_on_another_scale_than_the_labels(tiny_dataset, checkpoint, tmp_path,
                                                                               depth, says_scale):
    dataset = tmp_path / "composed"
    shutil.copytree(tiny_dataset, dataset)
    meta = json.loads((dataset / META).read_text())
    meta["compose"]["depth"] = depth  # what evaluate reads of the composition; meta.json is not in its own record
    (dataset / META).write_text(json.dumps(meta))
    store = ComposedStore(dataset)
    names = sorted(set(store.index["fg"]))
    rule = _evaluate(checkpoint, dataset, _split_by_fg(store, names[:1], names[1:2]), tmp_path)["baseline"]["depth_rule"]
    assert rule.startswith("the bg depth, as if the object were not there")
    assert ("geometry scale" in rule and "teacher's relative scale" in rule) == says_scale, rule
