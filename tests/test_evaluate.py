"""Evaluate on whole images of any size: padded as predict pads, so both give the same mask."""

import json

import numpy as np
import pytest
import torch

from fgbg.composing.build import compose_dataset
from fgbg.core.checkpoint import load_checkpoint
from fgbg.core.config import ComposeConfig, ModelConfig, Params, from_dict
from fgbg.core.contract import NormStats
from fgbg.core.imageio import atomic_write_json
from fgbg.core.model import build_model
from fgbg.core.runtime import predict_pair
from fgbg.dataset.split import split_index
from fgbg.dataset.stats import dataset_stats
from fgbg.dataset.store import ComposedStore
from fgbg.evaluation.evaluate import evaluate_model
from tests.conftest import contract, write_checkpoint


def test_evaluate_pads_sizes_the_network_cannot_take_as_predict_does(tiny_data, tmp_path, monkeypatch):
    """Also: the forward takes batches of the CPU pixel budget (here 3 images of 20 px), not params' batch_size."""
    import fgbg.core.runtime as runtime
    import fgbg.evaluation.evaluate as evaluate_mod

    batches = []
    per_image = evaluate_mod._per_image
    monkeypatch.setattr(evaluate_mod, "_per_image", lambda loaded, ds, batch, keys: batches.append(batch)
                        or per_image(loaded, ds, batch, keys))
    monkeypatch.setattr(runtime, "CPU_BATCH_PIXELS", 3 * 20 * 20 + 5)
    composed = tmp_path / "composed"
    compose_dataset(data_dir=tiny_data, out_dir=composed, cfg=ComposeConfig(bg_size=20, fg_size=8, positions=1,
                                                                            shard_size=10, workers=1))
    store = ComposedStore(composed)
    split = split_index(store.index, group_by="fg", val_fraction=0.25, test_fraction=0.25, seed=0)
    atomic_write_json(tmp_path / "split.json", split)
    stats = dataset_stats(store)
    torch.manual_seed(0)
    the_contract = contract(ModelConfig(width=4, levels=3), stats=NormStats.from_dict(stats))
    write_checkpoint(tmp_path / "model.pt", build_model(the_contract), the_contract, input_size=20)  # 20 % 2**3 != 0
    evaluate_model(checkpoint=tmp_path / "model.pt", dataset_dir=composed, split_path=tmp_path / "split.json",
                   metrics_path=tmp_path / "eval.json", plots_dir=tmp_path / "plots",
                   by_source_path=tmp_path / "by.json", params=from_dict(Params, {"batch_size": 4, "evaluate": {"grid_samples": 2}}))
    loaded, ckpt = load_checkpoint(tmp_path / "model.pt")
    ious = []
    for i in split["test"]:
        bg, fg_bg, mask, _ = store.read(i)
        mask_pred = predict_pair(loaded, ckpt.contract, bg, fg_bg, "cpu")["mask"]  # predict's path: padded, cut back
        union = (mask_pred | (mask > 0)).sum()
        ious.append((mask_pred & (mask > 0)).sum() / union if union else 1.0)
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["samples"] == len(split["test"]) and ev["image_size"] == 20
    assert batches == [3]
    assert ev["mask"]["iou"] == pytest.approx(np.mean(ious), abs=1e-9)


def test_padding_repeats_the_edge_pixels_and_is_cut_back():
    """What the network sees past the image is the image's last row and column, not zeros."""
    from fgbg.core.runtime import predict_padded

    seen = []

    class Recorder(torch.nn.Module):
        side_multiple = 4  # sides padded to a multiple of 4

        def forward(self, x):
            seen.append(x.clone())
            return {"mask": x[:, :1], "depth": x[:, 1:2]}

    x = torch.arange(2 * 3 * 5, dtype=torch.float32).reshape(1, 2, 3, 5)  # 1, 2, H 3, W 5
    outputs = predict_padded(Recorder(), x)
    logits, depth = outputs["mask"], outputs["depth"]
    padded = seen[0]
    assert padded.shape == (1, 2, 4, 8)
    assert torch.equal(padded[..., :3, :5], x)
    assert torch.equal(padded[..., 3, :5], x[..., 2, :])  # the last row again
    assert torch.equal(padded[..., :3, 7], x[..., :, 4])  # the last column again
    assert torch.equal(logits, x[:, :1]) and torch.equal(depth, x[:, 1:2])  # cut back to 3 x 5
