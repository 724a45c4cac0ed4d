"""Training and evaluation on a tiny dataset: outputs, determinism, resume, faults, precision."""

import json
import logging
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import fgbg.training.train as train_mod
from fgbg.core.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from fgbg.core.config import Params, from_dict
from fgbg.core.model import build_model
from fgbg.dataset.data import MEASURED
from fgbg.dataset.store import ComposedStore
from fgbg.evaluation.evaluate import evaluate_model
from fgbg.training.train import epoch_size, train_model
from fgbg.training.trainer import Heads, Trainer
from tests.conftest import contract, write_checkpoint

TINY = {"epochs": 2, "batch_size": 8, "compose": {"bg_size": 16, "fg_size": 8},
        "model": {"width": 4, "levels": 2}, "train": {"threads": 1, "image_every": 1, "crop": 0}}


def batch_targets(n: int, size: int) -> dict[str, torch.Tensor]:
    """Random targets of the default heads, n of size x size: a 0/1 mask, maps in [0, 1]; and MEASURED
    (the default's log_l1 on bg_depth takes the measured samples only), 1 for every other sample."""
    gen = torch.Generator().manual_seed(n * size)
    return {"mask": (torch.rand(n, 1, size, size, generator=gen) > 0.5).float(),
            **{head: torch.rand(n, 1, size, size, generator=gen) for head in ("depth", "bg_depth", "alpha")},
            MEASURED: (torch.arange(n) % 2 == 0).float().view(n, 1, 1, 1)}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def _train(tiny_dataset, prepared, out, **overrides):
    params = from_dict(Params, merge(TINY, overrides))
    return train_model(params=params, dataset_dir=tiny_dataset, stats_path=prepared / "stats.json",
                       split_path=prepared / "split.json", model_dir=out / "models", live_dir=out / "live",
                       metrics_path=out / "train.json", timing_dir=out / "timing")


def _weights(path):
    return read_checkpoint(path).weights


def _same(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def hook_forward(monkeypatch, hook) -> None:
    """Every model that training builds calls `hook(module, inputs, outputs)` after each forward pass."""
    real_build = train_mod.build_model

    def hooked_build(cfg):
        model = real_build(cfg)
        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(train_mod, "build_model", hooked_build)


def test_train_then_evaluate_writes_every_output(tiny_dataset, prepared, tmp_path):
    summary = _train(tiny_dataset, prepared, tmp_path)
    assert (tmp_path / "models" / "best.pt").is_file() and (tmp_path / "models" / "last.pt").is_file()
    assert json.loads((tmp_path / "train.json").read_text())["epoch"] == 1 == summary["epoch"]
    live = tmp_path / "live" / "plots"
    assert (live / "metrics" / "val" / "iou.tsv").is_file() and not (live / "metrics" / "epoch_s.tsv").exists()
    timing = (tmp_path / "timing" / "plots" / "metrics" / "train_samples_per_s.tsv").read_text().splitlines()
    assert len(timing) == 3 and float(timing[-1].split("\t")[-1]) > 0  # header + 2 epochs
    assert (live / "images" / "predictions" / "epoch_002.png").is_file()
    model, ckpt = load_checkpoint(tmp_path / "models" / "last.pt")
    assert ckpt.epoch == 1 and ckpt.contract.heads == ("mask", "depth", "bg_depth", "alpha") and ckpt.resume["fingerprint"]
    result = evaluate_model(checkpoint=tmp_path / "models" / "best.pt", dataset_dir=tiny_dataset,
                            split_path=prepared / "split.json", metrics_path=tmp_path / "eval.json",
                            plots_dir=tmp_path / "plots", by_source_path=tmp_path / "by_source.json",
                            params=from_dict(Params, {"batch_size": 4, "evaluate": {"grid_samples": 2}}))
    saved = json.loads((tmp_path / "eval.json").read_text())
    split = json.loads((prepared / "split.json").read_text())
    assert saved == result and saved["split"] == "test" and saved["samples"] == len(split["test"])
    assert saved["unseen"] == "foregrounds never seen in training"
    assert set(saved["mask"]) == set(saved["baseline"]["mask"]) == {"iou", "dice", "pixel_acc", "precision", "recall"}
    assert set(saved["depth"]) == set(saved["baseline"]["depth"]) == {
        "rmse", "mae", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "ssim"}
    assert saved["baseline"]["depth"]["rmse"] == pytest.approx(_bg_depth_rmse(tiny_dataset, split["test"]), abs=1e-12)
    files = saved["test_files"]  # the same samples through JPEG files: depth targets and bg depth do not change
    assert files["samples"] == len(split["test"]) and "quality 90" in files["files"]
    assert files["baseline"]["depth"]["rmse"] == pytest.approx(saved["baseline"]["depth"]["rmse"], abs=1e-12)
    by = json.loads((tmp_path / "by_source.json").read_text())
    assert sorted(by["fg"]) == split["test_fg"] and len(by["worst"]) == 10
    assert by["worst"][0]["iou"] - by["worst"][0]["rmse"] <= by["worst"][-1]["iou"] - by["worst"][-1]["rmse"]
    for name in ("samples.png", "worst.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "plots" / "per_fg.csv").read_text().startswith("fg,iou,rmse")


def _bg_depth_rmse(dataset, ids):
    """Mean per-image RMSE of the bg depth against the depth target, straight from the store."""
    ds = ComposedStore(dataset)
    errors = []
    for i in ids:
        _, _, _, depth = ds.read(i)
        bg_depth = ds.bg_depth[ds.index["bg_idx"][i]].astype(np.float64)
        errors.append(np.sqrt(np.mean((bg_depth - depth) ** 2)))
    return float(np.mean(errors))


def test_training_is_deterministic_under_a_seed(tiny_dataset, prepared, tmp_path):
    a = _train(tiny_dataset, prepared, tmp_path / "a")
    b = _train(tiny_dataset, prepared, tmp_path / "b")
    assert a["val"] == b["val"]
    assert _same(_weights(tmp_path / "a" / "models" / "last.pt"), _weights(tmp_path / "b" / "models" / "last.pt"))


def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(tiny_dataset, prepared, tmp_path, monkeypatch, caplog):
    over = {"epochs": 3, "train": {"augment": {"hflip": 0.5, "color": 0.5}, "deterministic": True}}
    _train(tiny_dataset, prepared, tmp_path / "whole", **over)
    real_epoch, calls = Trainer.train_epoch, []

    def killed_in_epoch_1(self, loader, epoch, size):
        calls.append(epoch)
        if epoch == 1:
            it = iter(loader)
            next(it)  # a batch of epoch 1 is drawn, then the process dies
            raise KeyboardInterrupt
        return real_epoch(self, loader, epoch, size)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_dataset, prepared, tmp_path / "killed", **over)
    assert read_checkpoint(tmp_path / "killed" / "models" / "last.pt").epoch == 0
    monkeypatch.setattr(Trainer, "train_epoch", real_epoch)
    with caplog.at_level(logging.INFO):
        _train(tiny_dataset, prepared, tmp_path / "killed", **over)
    assert "resumed from" in caplog.text
    whole, resumed = tmp_path / "whole" / "models", tmp_path / "killed" / "models"
    assert _same(_weights(whole / "last.pt"), _weights(resumed / "last.pt"))
    assert _same(_weights(whole / "best.pt"), _weights(resumed / "best.pt"))
    whole_live, resumed_live = tmp_path / "whole" / "live", tmp_path / "killed" / "live"
    files = sorted(p.relative_to(whole_live) for p in whole_live.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(resumed_live) for p in resumed_live.rglob("*") if p.is_file())
    for f in files:  # the curves and the summary, byte for byte
        assert (whole_live / f).read_bytes() == (resumed_live / f).read_bytes(), f


def test_a_checkpoint_of_other_params_is_not_resumed(tiny_dataset, prepared, tmp_path, caplog):
    _train(tiny_dataset, prepared, tmp_path, epochs=3)
    ckpt = read_checkpoint(tmp_path / "models" / "last.pt")
    ckpt.epoch = 0  # as if it had stopped early
    save_checkpoint(tmp_path / "models" / "last.pt", ckpt)
    with caplog.at_level(logging.INFO):
        _train(tiny_dataset, prepared, tmp_path, epochs=3, lr=0.01)
    assert "made with other params or data; training starts afresh" in caplog.text
    assert "resumed from" not in caplog.text


def test_oom_halves_the_micro_batch_and_goes_on(caplog):
    params = from_dict(Params, TINY)
    model = build_model(contract(params.model))
    real_forward = model.forward

    def small_only(x):
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_forward(x)

    model.forward = small_only
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = (torch.randn(8, 6, 16, 16), batch_targets(8, 16))
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    trainer = Trainer(params, model, Heads(params, torch.device("cpu"), contract()), opt, None, scaler, "")
    with caplog.at_level(logging.WARNING):
        loss, terms = trainer.train_step(batch, 0, 0)
    assert trainer.state.accum == 4 and "splitting each batch of 8 into 4 micro-batches" in caplog.text
    assert loss > 0 and set(terms) == {"mask_bce", "mask_dice", "bg_depth_l1", "bg_depth_ssim", "bg_depth_log_l1",
                                       "alpha_l1", "alpha_sobel"}


@pytest.mark.parametrize("bad_step, window", [(3, "between steps 0 and 24"), (30, "between steps 25 and 39")])
def test_a_nan_loss_stops_the_epoch_naming_its_window_of_steps(bad_step, window):
    from fgbg.training.trainer import CHECK_EVERY

    assert CHECK_EVERY == 25
    params = from_dict(Params, TINY)
    model = build_model(contract(params.model))
    good = (torch.zeros(2, 6, 8, 8), {**{head: torch.zeros(2, 1, 8, 8) for head in params.heads},
                                      MEASURED: torch.ones(2, 1, 1, 1)})
    nan = (torch.full((2, 6, 8, 8), float("nan")), good[1])
    loader = [nan if step == bad_step else good for step in range(40)]
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    with pytest.raises(FloatingPointError, match=rf"epoch 3, {window} \(train\).*mask_bce"):
        Trainer(params, model, Heads(params, torch.device("cpu"), contract()), torch.optim.SGD(model.parameters(), lr=0.1), None,
                scaler, "", show=False).train_epoch(loader, 3, 8)


class HostReads(TorchDispatchMode):
    """Every read of a tensor's value by the host, as (kind, fgbg function, innermost function):
    on a GPU, each is a sync.

    CPU has no sync-debug mode, so the reads are caught where they happen. Every scalar read
    goes through the op aten._local_scalar_dense (item, bool, float, int, an f-string of a 0-d
    tensor, GradScaler's found-inf check), which this mode sees wherever it is called from,
    torch included. .cpu, .numpy, .tolist and repr read a CPU tensor without an op, so those
    are patched. Invisible here: .to("cpu") and copy_ into a host tensor (no-ops on a CPU).
    An unfused optimizer keeps its step counters on the host by design: reading them is free.
    """

    def __init__(self, opt, monkeypatch):
        super().__init__()
        self.opt, self.reads, self.depth = opt, [], 0
        for name in ("cpu", "numpy", "tolist", "__repr__"):
            monkeypatch.setattr(torch.Tensor, name, self._patched(name, getattr(torch.Tensor, name)))

    def _record(self, kind):
        frames = traceback.extract_stack()[:-2]
        ours = [f for f in frames if f"{Path('src') / 'fgbg'}" in f.filename] or frames
        self.reads.append((kind, *(f"{Path(f.filename).name}:{f.name}" for f in (ours[-1], frames[-1]))))

    def _patched(self, name, real):
        def read(tensor, *args, **kwargs):
            if self.depth == 0:
                self._record(name)
            self.depth += 1  # what it calls inside is the same read
            try:
                return real(tensor, *args, **kwargs)
            finally:
                self.depth -= 1
        return read

    def _host_counters(self) -> set[int]:
        unfused = [g for g in self.opt.param_groups if not (g.get("fused") or g.get("capturable"))]
        states = [self.opt.state.get(param, {}) for group in unfused for param in group["params"]]
        return {state["step"].data_ptr() for state in states if "step" in state}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and self.depth == 0 \
                and args[0].data_ptr() not in self._host_counters():
            self._record("scalar")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("grad_clip", [0.0, 1.0], ids=["no-clip", "clip"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])  # fp16: an enabled GradScaler, as on a GPU without bf16
def test_a_training_step_reads_nothing_back_from_the_device(monkeypatch, precision, grad_clip):
    """50 steps read two values back: the finiteness flag after steps 24 and 49, nothing else; then
    the epoch reads its sums, once."""
    params = from_dict(Params, merge(TINY, {"train": {"precision": precision, "grad_clip": grad_clip}}))
    t = train_mod._trainer(params, torch.device("cpu"), 50, "", contract(params.model))  # what training uses
    t.show = False
    assert t.scaler.is_enabled() == (precision == "fp16")
    batch = (torch.randn(2, 6, 8, 8), batch_targets(2, 8))
    with HostReads(t.opt, monkeypatch) as host:
        t.train_epoch([batch] * 50, 0, 8)
    expected = [("scalar", "trainer.py:check")] * 2 + [("tolist", "distributed.py:all_sum")]
    assert [read[:2] for read in host.reads] == expected, host.reads


LEARN = {"epochs": 6, "batch_size": 4, "lr": 0.01}  # 36 steps: enough for the loss to fall on the tiny data


def _losses(out, phase):
    rows = (out / "live" / "plots" / "metrics" / phase / "loss.tsv").read_text().splitlines()[1:]
    return [float(r.split("\t")[-1]) for r in rows]


@pytest.mark.parametrize("over, dtype, out_size", [
    ({}, torch.float32, 16),
    ({"train": {"precision": "bf16"}}, torch.bfloat16, 16),  # autocast as on a GPU, runnable on CPU
    ({"train": {"precision": "fp16"}}, torch.float16, 16),  # fp16 with a GradScaler
    ({"model": {"half_output": True}, "train": {"resize_schedule": [[8, 1]], "scheduler": "onecycle",
                                                "optimizer": "adamw", "grad_clip": 1.0}}, torch.float32, 8),
    ({"train": {"scheduler": "cosine", "optimizer": "sgd", "best_metric": "iou", "augment": {"affine": 1.0}}},
     torch.float32, 16),
])
def test_training_variants_learn_in_the_precision_and_shape_under_test(tiny_dataset, prepared, tmp_path, monkeypatch,
                                                                       over, dtype, out_size):
    seen = []  # (training?, logits dtype, logits size) of every forward pass
    hook_forward(monkeypatch, lambda m, inp, out: seen.append((m.training, out["mask"].dtype, out["mask"].shape[-1])))
    _train(tiny_dataset, prepared, tmp_path, **merge(LEARN, over))
    train_passes = [(d, size) for training, d, size in seen if training]
    assert {d for d, _ in train_passes} == {dtype}, "autocast did not run in the dtype under test"
    # half_output: outputs at half the input; the resize schedule trains epoch 0 at 8 px (output 4 px)
    sizes = {size for _, size in train_passes}
    assert sizes == ({4, 8} if out_size == 8 else {16})
    assert {size for training, _, size in seen if not training} == {out_size}  # val: whole 16 px images
    train_loss, val_loss = _losses(tmp_path, "train"), _losses(tmp_path, "val")
    assert train_loss[-1] < 0.85 * train_loss[0], train_loss  # lr = 1e-12 stays within 1%
    assert val_loss[-1] < val_loss[0], val_loss


def test_a_model_that_cannot_learn_fails_the_learning_check(tiny_dataset, prepared, tmp_path):
    """The check above is able to fail: at lr = 1e-12 the loss stays where it started."""
    _train(tiny_dataset, prepared, tmp_path, **merge(LEARN, {"lr": 1e-12}))
    train_loss = _losses(tmp_path, "train")
    assert not train_loss[-1] < 0.85 * train_loss[0]


def test_progressive_resizing_schedule():
    p = from_dict(Params, merge(TINY, {"epochs": 5, "train": {"resize_schedule": [[8, 2], [12, 1]]}, "model": {"levels": 2}}))
    assert [epoch_size(p, e) for e in range(5)] == [8, 8, 12, 16, 16]


def test_auto_loader_workers():
    from fgbg.training.train import loader_workers

    assert loader_workers(-1, torch.device("cpu")) == 0
    assert 1 <= loader_workers(-1, torch.device("cuda")) <= 8
    assert loader_workers(3, torch.device("cpu")) == 3


def test_equal_checkpoints_are_equal_bytes(tmp_path):
    from fgbg.core.config import ModelConfig

    the_contract = contract(ModelConfig(width=2, levels=1))
    torch.manual_seed(0)
    model = build_model(the_contract)
    write_checkpoint(tmp_path / "a.pt", model, the_contract, epoch=3)
    write_checkpoint(tmp_path / "b.pt", model, the_contract, epoch=3)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()  # so dvc.lock is stable


def test_the_logged_lr_is_the_one_each_epoch_trained_with(tiny_dataset, prepared, tmp_path):
    # patience 0 and a threshold no val loss can meet: the plateau schedule halves the lr after
    # epoch 1's validation (epoch 0 is always an improvement), so epoch 2 trains at half the lr
    over = {"epochs": 3, "lr": 0.002, "train": {"scheduler": "plateau", "plateau_patience": 0, "plateau_threshold": 0.99}}
    _train(tiny_dataset, prepared, tmp_path, **over)
    rows = (tmp_path / "live" / "plots" / "metrics" / "lr.tsv").read_text().splitlines()[1:]
    assert [float(r.split("\t")[-1]) for r in rows] == [0.002, 0.002, 0.001]


def test_colour_jitter_keeps_bg_and_fg_bg_equal_outside_the_object(tiny_dataset):
    from fgbg.core.config import AugmentConfig
    from fgbg.training.augment import Augment

    ds = ComposedStore(tiny_dataset)
    bg, fg_bg, mask, depth = ds.read(3)
    row = ds.index.iloc[3]
    outside = np.ones(mask.shape, bool)
    outside[row.y : row.y + row.h, row.x : row.x + row.w] = False
    assert (bg[outside] == fg_bg[outside]).all()  # as composed
    augment = Augment(AugmentConfig(hflip=0.0, color=1.0))
    changed = 0
    for seed in range(5):
        a_bg, a_fg_bg, a_mask, a_depth, *_ = augment(ds.sample(3), seed)
        changed += int((a_bg != bg).any())
        assert (a_bg[outside] == a_fg_bg[outside]).all(), f"seed {seed}: the jitter moved bg and fg_bg apart"
        assert (a_mask == mask).all() and (a_depth == depth).all()
    assert changed == 5  # the jitter really ran


def test_temporary_files_left_by_a_killed_write_are_removed_at_start(tiny_dataset, prepared, tmp_path):
    stale = tmp_path / "models" / ".last.pt.k3j2x9.tmp"  # what a kill inside atomic_path leaves
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a checkpoint")
    _train(tiny_dataset, prepared, tmp_path, epochs=1)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["best.pt", "last.pt"]


def test_evaluate_says_when_the_dataset_is_not_at_the_training_size(tiny_dataset, prepared, tmp_path, caplog):
    _train(tiny_dataset, prepared, tmp_path, epochs=1)
    ckpt = read_checkpoint(tmp_path / "models" / "best.pt")
    ckpt.input_size = 32  # as if trained on a dataset composed at 32 px
    save_checkpoint(tmp_path / "other.pt", ckpt)
    with caplog.at_level(logging.WARNING):
        result = evaluate_model(checkpoint=tmp_path / "other.pt", dataset_dir=tiny_dataset,
                                split_path=prepared / "split.json", metrics_path=tmp_path / "eval.json",
                                plots_dir=tmp_path / "plots", by_source_path=tmp_path / "by.json",
                                params=from_dict(Params, {"batch_size": 4, "evaluate": {"grid_samples": 2}}))
    assert "is composed at 16 px but" in caplog.text and "trained at 32 px: evaluating at 16 px" in caplog.text
    assert (result["image_size"], result["trained_at"]) == (16, 32)


def test_crop_windows_by_hand():
    from fgbg.dataset.data import Crop, crop_window

    box = (100, 120, 40, 30)  # x, y, h, w: foot row 159, centre column 115
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left = crop_window(192, Crop(64, 1.0), box, rng)
        assert 96 <= top <= 128 and top <= 159 < top + 64  # the foot is inside, and the crop too
        assert 52 <= left <= 115 < left + 64
    anywhere = [crop_window(192, Crop(64, 0.0), box, rng) for _ in range(300)]
    assert min(t for t, _ in anywhere) < 20 and max(t for t, _ in anywhere) > 110  # all over the image
    assert crop_window(64, Crop(64, 1.0), box, rng) == (0, 0)  # a crop as large as the image is the image


def test_strips_taller_than_the_image_take_its_whole_height(tiny_dataset):
    """crop_height 200 on 16 px images (the default 192 on a smaller -S compose.bg_size): full-height strips."""
    from fgbg.core.config import Params, from_dict
    from fgbg.dataset.data import Crop, PairDataset, SampleView

    assert from_dict(Params, {"train": {"crop_height": 200}}).train.crop_height == 200
    ds = PairDataset(ComposedStore(tiny_dataset), [0, 1], contract(), SampleView(crop=Crop(8, 0.5, 200)))
    for k in (0, 1):
        x, targets = ds[k]
        assert x.shape[-2:] == (16, 8) and all(t.shape[-2:] == (16, 8) for t in targets.values())


def test_training_on_crops_sees_crops_and_validates_on_whole_images(tiny_dataset, prepared, tmp_path, monkeypatch):
    seen = []  # (training?, input) of every forward pass
    hook_forward(monkeypatch, lambda m, inp, out: seen.append((m.training, inp[0].detach().clone())))
    summary = _train(tiny_dataset, prepared, tmp_path, train={"crop": 8, "crop_height": 0, "threads": 1, "val_samples": 10})
    assert {tuple(x.shape[-2:]) for training, x in seen if training} == {(8, 8)} and summary["image_size"] == 8
    assert read_checkpoint(tmp_path / "models" / "best.pt").input_size == 16  # the native scale
    val = [x for training, x in seen if not training]  # epoch 0's val batches and grid, then epoch 1's
    assert {tuple(x.shape[-2:]) for x in val} == {(16, 16)}  # whole images, as evaluate sees them
    first, second = val[: len(val) // 2], val[len(val) // 2 :]
    assert [len(x) for x in first] == [8, 2, 4]  # 10 of the 12 val samples in batches of 8, then the grid
    assert all(torch.equal(a, b) for a, b in zip(first, second)), "epoch 1 validated on other samples than epoch 0"
    assert summary["samples"]["val"] == 10


def test_val_subset_is_evenly_spaced():
    from fgbg.training.train import val_subset

    assert val_subset([10, 11, 12, 13, 14], 3) == [10, 12, 14]
    assert val_subset([10, 11, 12], 0) == val_subset([10, 11, 12], 5) == [10, 11, 12]


def test_the_rows_channel_gives_each_pixels_row_in_the_whole_image(tiny_dataset):
    from fgbg.core.config import ModelConfig
    from fgbg.core.contract import rows_channel
    from fgbg.dataset.data import Crop, PairDataset, SampleView

    assert np.allclose(rows_channel(0, 3, 2, 3), [[-1, -1], [1 / 255, 1 / 255], [1, 1]], atol=1e-6)  # level 128 of 255 for the middle row
    store = ComposedStore(tiny_dataset)
    with_rows = contract(ModelConfig(width=4, levels=2, rows=True))
    ds = PairDataset(store, [0, 1, 2], with_rows, SampleView(crop=Crop(8, 1.0), raw=True))
    raw = ds[1][0]  # 8, 8, 7 uint8
    x = with_rows.encode_uint8(raw[None])[0]
    top = round(float((x[6, 0, 0] + 1) / 2 * 15))  # the crop's first row in the 16 px image
    assert torch.allclose(x[6], torch.from_numpy(rows_channel(top, 8, 8, 16)))
    whole = PairDataset(store, [1], with_rows, SampleView())[0][0]  # float path, whole image
    assert whole.shape[0] == 7 and whole[6, 0, 0] == -1 and whole[6, -1, 0] == 1


def test_gray_inputs_are_each_images_luma_on_both_paths(tiny_dataset):
    """model.input gray, by hand. bg stats: means 0.2, 0.4, 0.6 and stds 0.1, 0.2, 0.3, so the luma's mean is
    0.299 x 0.2 + 0.587 x 0.4 + 0.114 x 0.6 = 0.363 and its std 0.299 x 0.1 + 0.587 x 0.2 + 0.114 x 0.3 = 0.1815;
    a green bg pixel (0, 255, 0) has luma 0.587: (0.587 - 0.363) / 0.1815. fg_bg's stats are 0.5 and 0.25 in
    every channel: white is (1 - 0.5) / 0.25 = 2. The loader's uint8 path, encoded on the device, gives what the
    float path gives; plots show the luma as three equal channels."""
    from fgbg.core.config import ModelConfig
    from fgbg.core.contract import NormStats
    from fgbg.dataset.data import PairDataset, SampleView

    stats = NormStats((0.2, 0.4, 0.6), (0.1, 0.2, 0.3), (0.5,) * 3, (0.25,) * 3)
    gray = contract(ModelConfig(width=4, levels=2, input="gray", depth="learned"), stats=stats)
    bg = np.zeros((4, 4, 3), np.uint8)
    bg[0, 0] = (0, 255, 0)
    fg_bg = np.full((4, 4, 3), 255, np.uint8)
    x = gray.encode(bg, fg_bg)
    assert x.shape == (2, 4, 4) and gray.input_channels == 2
    assert x[0, 0, 0].item() == pytest.approx((0.587 - 0.363) / 0.1815, rel=1e-5)
    assert x[0, 1, 1].item() == pytest.approx(-0.363 / 0.1815, rel=1e-5) and x[1, 0, 0].item() == pytest.approx(2.0)
    shown_bg, shown_fg_bg = gray.decode_images(x)
    assert shown_bg[0, 0].tolist() == [150] * 3 and shown_fg_bg[0, 0].tolist() == [255] * 3  # round(0.587 x 255)
    store = ComposedStore(tiny_dataset)
    raw = PairDataset(store, [4], gray, SampleView(raw=True))[0][0]
    assert torch.allclose(gray.encode_uint8(raw[None])[0], PairDataset(store, [4], gray)[0][0], atol=1e-5)
    with_rows = contract(ModelConfig(width=4, levels=2, input="gray", rows=True, depth="learned"))
    assert with_rows.input_channels == 3 and with_rows.encode(bg, fg_bg).shape == (3, 4, 4)


@pytest.mark.parametrize("metric, best_epoch", [("loss", 2), ("iou", 0), ("rmse", 1)])
def test_best_pt_is_the_epoch_with_the_best_val_metric_in_its_direction(tiny_dataset, prepared, tmp_path, monkeypatch,
                                                                         metric, best_epoch):
    """Each metric peaks in another epoch: the loss is lowest at 2, the IoU highest at 0, the RMSE lowest at 1."""
    vals = [{"loss": 3.0, "iou": 0.9, "rmse": 0.3}, {"loss": 2.0, "iou": 0.5, "rmse": 0.1},
            {"loss": 1.0, "iou": 0.7, "rmse": 0.2}]
    others = {"bg_depth/rmse": 0.1, "sad": 0.1}  # the other heads' headlines, logged each epoch
    monkeypatch.setattr(Trainer, "validate", lambda self, loader, epoch: ({**vals[epoch], **others}, 12))
    summary = _train(tiny_dataset, prepared, tmp_path, epochs=3, train={"best_metric": metric, "image_every": 0})
    assert summary["best_epoch"] == best_epoch and summary[f"best_val_{metric}"] == vals[best_epoch][metric]
    assert read_checkpoint(tmp_path / "models" / "best.pt").epoch == best_epoch


def test_full_height_strips_by_hand():
    from fgbg.dataset.data import Crop, crop_window

    box = (100, 120, 40, 30)  # x, y, h, w: foot row 159, centre column 115
    rng = np.random.default_rng(0)
    strip = Crop(24, 1.0, height=192)
    assert strip.shape == (192, 24)
    for _ in range(100):
        top, left = crop_window(192, strip, box, rng)
        assert top == 0 and 92 <= left <= 115 < left + 24  # the whole height, and the object's centre column
    band = [crop_window(192, Crop(192, 0.0, height=64), box, rng) for _ in range(50)]
    assert {left for _, left in band} == {0} and len({top for top, _ in band}) > 10


def test_training_on_strips_sees_strips(tiny_dataset, prepared, tmp_path, monkeypatch):
    seen = []
    hook_forward(monkeypatch, lambda m, inp, out: seen.append((m.training, tuple(inp[0].shape[-2:]))))
    _train(tiny_dataset, prepared, tmp_path, epochs=1, model={"half_output": True},
           train={"crop": 4, "crop_height": 16, "image_every": 0})
    assert {shape for training, shape in seen if training} == {(16, 4)}  # not squashed to a square
    assert {shape for training, shape in seen if not training} == {(16, 16)}


def test_training_batches_are_perturbed_on_the_device_with_a_generator_per_step(tiny_dataset, prepared, tmp_path,
                                                                                  monkeypatch):
    """With perturbations on the device (where: device; auto picks it with CUDA), every training batch (not a val
    batch) goes through DevicePerturb as uint8, with the object's mask (loaded for the shadow even without a mask
    head) and a generator of its own (seed, epoch, step)."""
    from fgbg.training import perturb_device

    calls = []
    real = perturb_device.DevicePerturb.__call__

    def recording(self, x, mask, g):
        calls.append((x.dtype, tuple(x.shape[1:]), None if mask is None else tuple(mask.shape[1:]),
                      torch.rand(1, generator=g.clone_state()).item()))
        return real(self, x, mask, g)

    monkeypatch.setattr(perturb_device.DevicePerturb, "__call__", recording)
    loader_engines = []
    real_perturb = train_mod.Perturb
    monkeypatch.setattr(train_mod, "Perturb", lambda cfg, jpeg_only=False: loader_engines.append(jpeg_only)
                        or real_perturb(cfg, jpeg_only))
    heads = {"depth": {"losses": {"l1": 1.0}}}  # no mask head: the shadow still gets the mask
    _train(tiny_dataset, prepared, tmp_path, epochs=2, heads=heads, model={"depth": "learned"},
           train={"crop": 8, "image_every": 0, "perturb": {"shadow": 1.0, "jpeg": 0.0, "where": "device"}})
    assert calls and {c[:3] for c in calls} == {(torch.uint8, (16, 8, 6), (1, 16, 8))}  # full-height strips
    first_draws = [c[3] for c in calls]
    assert len(set(first_draws)) == len(first_draws)  # a generator of its own for each step of each epoch
    assert loader_engines == [True]  # the loader keeps JPEG alone: the shadow is not cast twice


def test_each_rank_perturbs_its_batches_with_a_generator_of_its_own():
    from fgbg.core.config import PerturbConfig
    from fgbg.training.distributed import Dist
    from fgbg.training.perturb_device import DevicePerturb

    def first_draw(rank: int, epoch: int = 1, step: int = 2) -> float:
        trainer = Trainer.__new__(Trainer)  # only what _perturb_step reads
        trainer.params = from_dict(Params, merge(TINY, {"train": {"perturb": {"noise": 1.0}}}))
        trainer.heads, trainer.dist = Heads.__new__(Heads), Dist(rank=rank, world=2)
        trainer.heads.device = torch.device("cpu")
        trainer.perturb = DevicePerturb(PerturbConfig(noise=1.0))
        x = torch.full((1, 4, 4, 6), 128, dtype=torch.uint8)
        return trainer._perturb_step(epoch, step)(x, None).float().sum().item()

    assert first_draw(0) == first_draw(0) and first_draw(0) != first_draw(1)
    assert first_draw(0) != first_draw(0, epoch=2) and first_draw(0) != first_draw(0, step=3)


def test_raw_targets_keep_their_values_and_only_a_binary_one_is_uint8(tiny_dataset):
    from fgbg.core.config import ModelConfig
    from fgbg.dataset.data import PairDataset, SampleView

    store = ComposedStore(tiny_dataset)
    the_contract = contract(ModelConfig(width=4, levels=2), heads=("mask", "depth", "bg_depth", "alpha"))
    targets = PairDataset(store, [5], the_contract, SampleView(raw=True))[0][1]
    sample = store.sample(5)
    assert targets["mask"].dtype == torch.uint8 and torch.equal(targets["mask"][0], torch.from_numpy(sample.mask).byte())
    for head in ("depth", "bg_depth", "alpha"):
        assert targets[head].dtype == torch.float32
        assert torch.equal(targets[head][0], torch.from_numpy(np.ascontiguousarray(getattr(sample, head))))


def test_loader_worker_processes_draw_each_epochs_crops_and_augmentations(tiny_dataset, prepared, tmp_path, monkeypatch):
    """Persistent DataLoader workers hold their own copy of the dataset, so the epoch must travel with each
    index: with 1 worker process, every epoch trains on the batches that the main process alone draws."""
    def run(workers: int) -> list[torch.Tensor]:
        inputs = []
        monkeypatch.undo()  # the real build_model again, hooked afresh
        hook_forward(monkeypatch, lambda m, inp, out: inputs.append(inp[0].detach().clone()) if m.training else None)
        _train(tiny_dataset, prepared, tmp_path / str(workers), epochs=3,
               train={"crop": 8, "crop_height": 0, "threads": 1, "workers": workers, "image_every": 0})
        return inputs

    alone, with_worker = run(0), run(1)
    assert len(alone) == len(with_worker) == 9  # 3 epochs of 3 batches

    def drawn(batches):  # the epoch's inputs, whatever their order
        return sorted(tuple(x.flatten().tolist()) for batch in batches for x in batch)

    assert drawn(alone[:3]) != drawn(alone[3:6]) != drawn(alone[6:])  # each epoch draws its own crops
    for step, (a, b) in enumerate(zip(alone, with_worker)):
        assert torch.equal(a, b), f"step {step} (epoch {step // 3}) trained on other samples in a worker process"


def test_whole_epochs_train_the_last_epochs_on_whole_images_of_a_crop_epochs_pixels(tiny_dataset, prepared, tmp_path,
                                                                                    monkeypatch):
    """FixRes: with 8 px crops of the 16 px images, the last of 3 epochs trains on whole images, a quarter as many
    (24 train samples -> 6), each once; the cosine schedule counts those steps and ends at lr 0 with the run."""
    seen = []  # (epoch, input shape) of every training forward
    epochs = []
    real_epoch = train_mod._epoch
    hook_forward(monkeypatch, lambda m, inp, out: seen.append((epochs[-1], tuple(inp[0].shape))) if m.training else None)

    def recording_epoch(trainer, loaders, epoch):
        epochs.append(epoch)
        result = real_epoch(trainer, loaders, epoch)
        lrs.append(trainer.opt.param_groups[0]["lr"])
        return result

    lrs = []
    monkeypatch.setattr(train_mod, "_epoch", recording_epoch)
    summary = _train(tiny_dataset, prepared, tmp_path, epochs=3, batch_size=4,
                     train={"crop": 8, "crop_height": 0, "whole_epochs": 1, "scheduler": "cosine"})
    assert [shape for epoch, shape in seen if epoch in (0, 1)] == [(4, 6, 8, 8)] * 12  # 24 crops in batches of 4
    assert [shape for epoch, shape in seen if epoch == 2] == [(4, 6, 16, 16), (2, 6, 16, 16)]  # 24 x 8 x 8 / 16 x 16
    assert summary["samples"]["train"] == 6 and summary["image_size"] == 16
    assert lrs[0] > lrs[1] > 0 and lrs[2] == pytest.approx(0, abs=1e-12)  # the schedule ends with the run's last step


def test_whole_samples_have_the_pixels_of_a_crop_epoch_by_hand():
    default = from_dict(Params, {})  # 192 x 24 strips of 192 px images: an eighth of an image each
    assert train_mod.whole_samples(default, 1920) == 240
    assert train_mod.whole_samples(default, 13) == 2 and train_mod.whole_samples(default, 1) == 1  # 1.625; never 0
    taller = from_dict(Params, {"compose": {"bg_size": 16, "fg_size": 8}, "model": {"levels": 2},
                                "train": {"crop": 8, "crop_height": 64}})  # strips taller than the image: its height
    assert train_mod.whole_samples(taller, 24) == 12


def test_validation_batches_whole_images_by_the_cpu_pixel_budget(tiny_dataset, prepared, monkeypatch):
    """Validation forwards the dataset's whole 16 px images without gradients: on a CPU as many as
    CPU_BATCH_PIXELS holds (3 images' worth; batch_size 8 when 20 fit), while training keeps batch_size. The
    prediction grid still shows 4 val samples when a batch holds 1."""
    import fgbg.core.runtime as runtime
    from fgbg.training.distributed import Dist

    params = from_dict(Params, merge(TINY, {"compose": {"bg_size": 32}}))  # the store's size decides, not params'
    split = json.loads((prepared / "split.json").read_text())
    the_contract = contract(params.model, heads=tuple(params.heads))

    def loaders(images: int):
        monkeypatch.setattr(runtime, "CPU_BATCH_PIXELS", images * 16 * 16 + 5)
        return train_mod._loaders(params, ComposedStore(tiny_dataset), split, the_contract, Dist(0, 1),
                                  torch.device("cpu"))

    three = loaders(3)
    assert three.val.batch_size == 3 and three.crops.loader.batch_size == 8
    assert loaders(20).val.batch_size == 8
    shown = []
    monkeypatch.setattr(train_mod, "sample_rows", lambda x, *rest: shown.append(x) or [])
    monkeypatch.setattr(train_mod, "grid_image", lambda *args: None)
    torch.manual_seed(0)
    heads = Heads(params, torch.device("cpu"), the_contract)
    train_mod._prediction_grid(build_model(the_contract), loaders(1).val, heads)
    first_four = heads.to_device(*next(iter(loaders(20).val)))[0][:4]  # the first val samples, in order
    assert len(shown) == 1 and torch.equal(shown[0], first_four)


@pytest.mark.parametrize("world", [1, 4])
def test_each_pass_draws_each_sample_once_per_epoch_on_every_rank(tiny_dataset, prepared, world):
    """The crop pass is a new permutation of train each epoch (this rank's share under DDP); the whole pass the
    first ceil(6 / world) of it per rank, disjoint across ranks, the epoch in every key."""
    from fgbg.training.distributed import Dist

    params = from_dict(Params, merge(TINY, {"epochs": 3, "train": {"crop": 8, "crop_height": 0, "whole_epochs": 1}}))
    split = json.loads((prepared / "split.json").read_text())
    store = ComposedStore(tiny_dataset)
    the_contract = contract(params.model, heads=tuple(params.heads))
    whole_keys = []
    for rank in range(world):
        loaders = train_mod._loaders(params, store, split, the_contract, Dist(rank, world), torch.device("cpu"))
        orders = []
        for epoch in (0, 1):
            loaders.generator.manual_seed(epoch)
            loaders.crops.sampler.set_epoch(epoch)
            keys = list(loaders.crops.sampler)
            assert {e for e, _ in keys} == {epoch} and len({k for _, k in keys}) == -(-24 // world)
            orders.append([k for _, k in keys])
        assert orders[0] != orders[1]  # a new order each epoch, also from DistributedSampler
        loaders.whole.sampler.set_epoch(2)
        whole_keys += list(loaders.whole.sampler)
        assert loaders.whole.samples == min(24, -(-6 // world) * world)
    assert {e for e, _ in whole_keys} == {2} and len({k for _, k in whole_keys}) == len(whole_keys) == -(-6 // world) * world


def test_a_measured_only_loss_skips_the_prior_s_samples_in_training_and_validation(tiny_data, prepared, tmp_path):
    """On data whose every bg takes the ground-plane prior, log_l1 on measured depth only trains the very
    weights that no log_l1 does, and validation logs 0 for it; taken on every sample, it trains others."""
    import shutil

    from fgbg.composing.build import compose_dataset
    from tests.conftest import TINY_COMPOSE

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns("bg_depth"))
    compose_dataset(data_dir=data, out_dir=tmp_path / "prior", cfg=TINY_COMPOSE)

    def run(name, bg_depth):
        heads = {"mask": {"losses": {"bce": 1.0}}, "depth": {"losses": {}}, "bg_depth": bg_depth}
        summary = _train(tmp_path / "prior", prepared, tmp_path / name, heads=heads, epochs=1)
        return summary, _weights(tmp_path / name / "models" / "last.pt")

    _, without = run("without", {"losses": {"l1": 1.0}})
    summary, measured = run("measured", {"losses": {"l1": 1.0, "log_l1": 1.0}, "measured_only": ["log_l1"]})
    _, everywhere = run("everywhere", {"losses": {"l1": 1.0, "log_l1": 1.0}})
    assert _same(without, measured) and not _same(without, everywhere)
    assert summary["val"]["bg_depth_log_l1"] == 0 and summary["val"]["bg_depth_l1"] > 0
