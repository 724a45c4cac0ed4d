"""`fgbg predict` on pairs of any size and on folders, its errors, ONNX export, the README report."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fgbg.cli import main as cli
from fgbg.core.config import ModelConfig
from fgbg.core.model import build_model
from fgbg.core.plots import as_rgb
from fgbg.inference.onnx import ONNX_ATOL, export_onnx
from fgbg.inference.predict import predict_paths
from fgbg.report import END, START, results_markdown, update_readme
from tests.conftest import ROOT, contract, write_checkpoint


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    the_contract = contract(ModelConfig(width=4, levels=2, depth="learned"))  # mask and depth
    return write_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt", build_model(the_contract), the_contract)


def test_inference_loads_the_model_channels_last_with_the_same_outputs(ckpt):
    """predict, score and evaluate forward NHWC, which a CPU runs faster (benchmarks/bench_evaluate.py); the
    outputs are the contiguous model's to float rounding."""
    from fgbg.core.checkpoint import load_checkpoint, load_for_inference
    from fgbg.core.runtime import predict_padded

    loaded = load_for_inference(ckpt, "cpu")
    kernels = [p for p in loaded.model.parameters() if p.dim() == 4]
    assert kernels and all(k.is_contiguous(memory_format=torch.channels_last) for k in kernels)
    assert not all(k.is_contiguous() for k in kernels)  # not a layout that both formats share (1 x 1 kernels)
    plain, _ = load_checkpoint(ckpt, "cpu")
    x = torch.randn(3, 6, 20, 28, generator=torch.Generator().manual_seed(0))
    for head, out in predict_padded(loaded.model, x).items():
        assert torch.allclose(out, predict_padded(plain, x)[head], atol=1e-5)


def test_inference_batch_by_hand():
    """On a CPU at most CPU_BATCH_PIXELS (4 images of 192 px) a batch, at least 1; on a GPU batch_size."""
    from fgbg.core.runtime import CPU_BATCH_PIXELS, inference_batch

    cpu = torch.device("cpu")
    assert CPU_BATCH_PIXELS == 147456
    assert inference_batch(16, cpu, 192 * 192) == 4
    assert inference_batch(16, cpu, 96 * 96) == 16 and inference_batch(2, cpu, 96 * 96) == 2  # 16 fit: batch_size
    assert inference_batch(16, cpu, 150 * 150) == 6  # 6.55 images
    assert inference_batch(16, cpu, 1920 * 1080) == 1
    assert inference_batch(16, torch.device("cuda"), 1920 * 1080) == 16


def _img(path, w, h, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def test_predict_one_pair_of_any_size(ckpt, tmp_path):
    _img(tmp_path / "bg.png", 37, 23)
    _img(tmp_path / "scene.jpg", 37, 23, seed=1)
    assert predict_paths(ckpt, tmp_path / "bg.png", tmp_path / "scene.jpg", tmp_path / "out", device="cpu") == 1
    mask = np.asarray(Image.open(tmp_path / "out" / "scene_mask.png"))
    depth = Image.open(tmp_path / "out" / "scene_depth.png")
    preview = Image.open(tmp_path / "out" / "scene_depth_preview.png")
    assert mask.shape == (23, 37) and set(np.unique(mask)) <= {0, 255}
    assert depth.size == (37, 23) and np.asarray(depth).dtype == np.uint16
    assert preview.mode == "RGB" and preview.size == (37, 23)
    # the preview shows the depth in the grids' colours (magma_r, near bright): the same level of the same map,
    # but where the 16-bit file rounds a value across a level's edge (a few pixels at most)
    same = (np.asarray(preview) == as_rgb(np.asarray(depth) / 65535, "depth")).all(axis=2)
    assert same.mean() > 0.97


def test_predict_folders_paired_by_name_and_the_errors(ckpt, tmp_path):
    for stem in ("a", "b"):
        _img(tmp_path / "bg" / f"{stem}.png", 20, 20)
        _img(tmp_path / "fg_bg" / f"{stem}.png", 20, 20, seed=2)
    cli(["predict", str(tmp_path / "bg"), str(tmp_path / "fg_bg"), "-o", str(tmp_path / "out"), "--checkpoint", str(ckpt)])
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == ["a_mask.png", "b_mask.png"]
    _img(tmp_path / "bg" / "c.png", 20, 20)
    with pytest.raises(ValueError, match=r"no partner with the same name for: .*bg/c"):
        predict_paths(ckpt, tmp_path / "bg", tmp_path / "fg_bg", tmp_path / "out")
    _img(tmp_path / "x.png", 20, 20)
    _img(tmp_path / "y.png", 21, 20)
    with pytest.raises(ValueError, match="must be the same size"):
        predict_paths(ckpt, tmp_path / "x.png", tmp_path / "y.png", tmp_path / "out")


def test_a_checkpoint_of_another_model_version_is_refused(ckpt, tmp_path, capsys):
    other = torch.load(ckpt, weights_only=True)
    other["model_config"]["width"] = 8  # weights of width 4 do not fit
    torch.save(other, tmp_path / "other.pt")
    _img(tmp_path / "a.png", 16, 16)
    with pytest.raises(SystemExit) as e:
        cli(["predict", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(tmp_path), "--checkpoint", str(tmp_path / "other.pt")])
    assert e.value.code == 2
    assert "do not fit" in capsys.readouterr().err


def test_onnx_export_matches_pytorch(ckpt, tmp_path):
    import onnxruntime as ort

    from fgbg.core.checkpoint import load_checkpoint
    from fgbg.inference.onnx import ONNX_RTOL

    result = export_onnx(ckpt, tmp_path / "model.onnx")
    assert result["atol"] == ONNX_ATOL and result["input"] == [None, 6, 16, 16]
    assert result["outputs"] == ["mask_logits", "depth"]
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["mask_logits", "depth"]
    x = torch.rand(3, 6, 16, 16, generator=torch.Generator().manual_seed(5))  # another batch size and data
    got = session.run(None, {"x": x.numpy()})
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        want = [t.numpy() for t in model(x).values()]
    for g, w in zip(got, want):
        assert g.shape == (3, 1, 16, 16)
        np.testing.assert_allclose(g, w, rtol=ONNX_RTOL, atol=ONNX_ATOL)


def test_readme_results_match_the_committed_metrics():
    readme = (ROOT / "README.md").read_text()
    section = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == results_markdown(ROOT / "metrics" / "eval.json", ROOT / "metrics" / "eval_by_source.json"), (
        "README results are stale: run `fgbg report`")
    iou = json.loads((ROOT / "metrics" / "eval.json").read_text())["mask"]["iou"]
    assert f"| mask | `iou` | {iou:.4f} |" in section


def test_update_readme_replaces_only_the_section(tmp_path):
    mask_keys = ("iou", "dice", "pixel_acc", "precision", "recall")
    depth_keys = ("rmse", "mae", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "ssim")
    ev = {"split": "test", "unseen": "backgrounds never seen in training", "samples": 2, "checkpoint_epoch": 0,
          "mask": {k: 0.5 for k in mask_keys}, "depth": {k: 0.1 for k in depth_keys},
          "baseline": {"mask": {k: 0.25 for k in mask_keys}, "depth": {k: 0.3 for k in depth_keys},
                       "mask_rule": "|fg_bg - bg| > 7", "depth_rule": "the bg depth"},
          "test_files": {"mask": {"iou": 0.45}, "depth": {"rmse": 0.12}, "files": "two JPEG files",
                         "baseline": {"mask": {"iou": 0.2}, "depth": {"rmse": 0.31}}}}
    by = {"fg_class": {"cat": {"samples": 2, "mask": {"iou": 0.5}, "depth": {"rmse": 0.1}}}}
    (tmp_path / "e.json").write_text(json.dumps(ev))
    (tmp_path / "b.json").write_text(json.dumps(by))
    (tmp_path / "R.md").write_text(f"# top\n{START}\nold\n{END}\nbottom\n")
    assert update_readme(tmp_path / "R.md", tmp_path / "e.json", tmp_path / "b.json")
    text = (tmp_path / "R.md").read_text()
    assert text.startswith("# top\n") and text.endswith("bottom\n") and "old" not in text
    assert "| cat | 2 | 0.5000 | 0.1000 |" in text
    assert "Test split of the default run: 2 samples, backgrounds never seen in training" in text
    assert "as a user's files (two JPEG files): mask IoU 0.4500 (baseline 0.2000), depth RMSE 0.1200" in text
    assert "| mask | `iou` | 0.5000 | 0.2500 | higher |" in text and "| depth | `rmse` | 0.1000 | 0.3000 | lower |" in text
    assert not update_readme(tmp_path / "R.md", tmp_path / "e.json", tmp_path / "b.json")


def test_predict_on_a_dataset_sample_gives_evaluates_mask(ckpt, tiny_dataset, tmp_path):
    """The same pixels through `fgbg predict` (image files) and through evaluate (the store)."""
    from fgbg.core.checkpoint import load_checkpoint
    from fgbg.core.runtime import predict_batch
    from fgbg.dataset.data import PairDataset
    from fgbg.dataset.store import ComposedStore

    store = ComposedStore(tiny_dataset)
    model, meta = load_checkpoint(ckpt)
    for i in (0, 5):
        bg, fg_bg, _, _ = store.read(i)
        Image.fromarray(bg).save(tmp_path / f"bg{i}.png")
        Image.fromarray(fg_bg).save(tmp_path / f"s{i}.png")
        predict_paths(ckpt, tmp_path / f"bg{i}.png", tmp_path / f"s{i}.png", tmp_path / "out", device="cpu")
        logits = predict_batch(model, PairDataset(store, [i], meta.contract)[0][0][None])["mask"]
        got = np.asarray(Image.open(tmp_path / "out" / f"s{i}_mask.png")) > 0
        assert got.shape == (16, 16) and (got == (logits[0, 0] > 0).numpy()).all()


class _Recorder(torch.nn.Module):
    """A stand-in model: mask logits = fg_bg red - bg red (normalised), depth 0.5; records input shapes."""

    side_multiple = 4  # 2 poolings

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        logits = x[:, 3:4] - x[:, 0:1]  # N, 1, H, W
        return {"mask": logits, "depth": torch.full_like(logits, 0.5)}


def test_a_non_square_pair_keeps_its_aspect_ratio(tmp_path):
    from fgbg.core.runtime import predict_pair

    model = _Recorder()
    bg = np.full((240, 320, 3), 100, np.uint8)
    fg_bg = bg.copy()
    fg_bg[60:180, 40:100] = 200  # a tall object on the left: 120 x 60 px
    answers = predict_pair(model, contract(), bg, fg_bg, "cpu", size=16)
    mask, depth = answers["mask"], answers["depth"]
    # shorter side 240 -> 16, so 320 -> 21, padded to 24 (a multiple of 2**levels); not squashed to 16 x 16
    assert model.shapes == [(1, 6, 16, 24)]
    assert mask.shape == depth.shape == (240, 320)
    rows, cols = np.nonzero(mask)
    # the stand-in marks every model pixel the object touches, and bilinear enlarging spreads that by
    # half a pixel: edges within 1.5 model pixels (23 px)
    assert abs(rows.min() - 60) <= 23 and abs(rows.max() - 179) <= 23
    assert abs(cols.min() - 40) <= 23 and abs(cols.max() - 99) <= 23
    assert not mask[:, 120:].any()  # nothing from the padding on the right


def test_predict_runs_at_native_resolution_by_default():
    from fgbg.core.runtime import predict_pair

    model = _Recorder()
    bg = np.full((30, 50, 3), 100, np.uint8)
    mask = predict_pair(model, contract(), bg, bg, "cpu")["mask"]
    assert model.shapes == [(1, 6, 32, 52)] and mask.shape == (30, 50)  # padded to multiples of 4, no scaling


def test_an_exif_rotated_pair_gives_a_mask_of_the_displayed_orientation(ckpt, tmp_path):
    """A camera stores a portrait photo as landscape pixels with EXIF orientation 6 (rotate 90 clockwise)."""
    stored = np.zeros((20, 40, 3), np.uint8)  # 40 wide, 20 tall as stored
    exif = Image.Exif()
    exif[0x0112] = 6
    for name in ("bg", "fg_bg"):
        Image.fromarray(stored).save(tmp_path / f"{name}.jpg", exif=exif)
    predict_paths(ckpt, tmp_path / "bg.jpg", tmp_path / "fg_bg.jpg", tmp_path / "out", device="cpu")
    assert Image.open(tmp_path / "out" / "fg_bg_mask.png").size == (20, 40)  # displayed: 20 wide, 40 tall


class Payload:
    """What a malicious pickle would carry: torch's safe loader must refuse to build it."""

    def __reduce__(self):
        return (print, ("payload ran",))


@pytest.mark.parametrize("damage", ["payload", "truncated", "not_a_checkpoint"])
@pytest.mark.parametrize("command", ["predict", "onnx"])
def test_a_bad_checkpoint_is_one_clear_error_that_never_suggests_unsafe_loading(ckpt, tmp_path, capsys, damage, command):
    bad = tmp_path / "bad.pt"
    if damage == "payload":
        torch.save({"format_version": 1, "x": Payload()}, bad)
    elif damage == "truncated":
        data = ckpt.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_text("hello")
    _img(tmp_path / "a.png", 16, 16)
    args = (["predict", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(tmp_path / "out")]
            if command == "predict" else ["onnx", "--out", str(tmp_path / "m.onnx")])
    with pytest.raises(SystemExit) as e:
        cli(args + ["--checkpoint", str(bad)])
    err = capsys.readouterr()
    assert e.value.code == 2 and "payload ran" not in err.out
    lines = err.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: not an fgbg checkpoint, or damaged"), err.err
    assert "weights_only" not in err.err and "dvc checkout models" in err.err


def test_a_missing_input_says_no_such_file(ckpt, tmp_path, capsys):
    _img(tmp_path / "a.png", 16, 16)
    with pytest.raises(SystemExit):
        cli(["predict", str(tmp_path / "a.png"), str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"),
             "--checkpoint", str(ckpt)])
    assert capsys.readouterr().err.strip() == f"error: no such file: {tmp_path / 'nope.png'}"


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(ckpt, tmp_path, monkeypatch):
    _img(tmp_path / "a.png", 40, 30)
    monkeypatch.setattr("fgbg.core.imageio.MAX_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"a.png: absurd size 40x30 \(over 1,000 pixels\)"):
        predict_paths(ckpt, tmp_path / "a.png", tmp_path / "a.png", tmp_path / "out")


def test_atomic_files_get_the_mode_of_an_ordinary_new_file(tmp_path):
    import os

    from fgbg.core.imageio import atomic_write_bytes

    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        (tmp_path / "plain.bin").write_bytes(b"x")
        os.umask(0o077)
        atomic_write_bytes(tmp_path / "b.bin", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o644 == (tmp_path / "plain.bin").stat().st_mode & 0o777
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o600


def _write_pairs(root, tiny_dataset, ids):
    """Dataset samples as a user's labelled pairs: separate JPEG files, PNG masks, 16-bit depth."""
    from fgbg.core.imageio import depth_to_uint16
    from fgbg.dataset.store import ComposedStore

    ds = ComposedStore(tiny_dataset)
    for kind in ("bg", "fg_bg", "mask", "depth"):
        (root / kind).mkdir(parents=True, exist_ok=True)
    for i in ids:
        bg, fg_bg, mask, depth = ds.read(i)
        Image.fromarray(bg).save(root / "bg" / f"s{i}.jpg", quality=90)
        Image.fromarray(fg_bg).save(root / "fg_bg" / f"s{i}.jpg", quality=90)
        Image.fromarray(mask.astype(np.uint8) * 255).save(root / "mask" / f"s{i}.png")
        Image.fromarray(depth_to_uint16(depth)).save(root / "depth" / f"s{i}.png")
    return ds


def test_score_a_folder_of_labelled_jpeg_pairs(ckpt, tiny_dataset, tmp_path):
    from fgbg.core.imageio import read_image
    from fgbg.evaluation.baselines import difference

    _write_pairs(tmp_path / "pairs", tiny_dataset, [0, 7, 20])
    cli(["score", str(tmp_path / "pairs"), "-o", str(tmp_path / "score.json"), "--checkpoint", str(ckpt),
         "--threshold", "10"])
    result = json.loads((tmp_path / "score.json").read_text())
    assert result["pairs"] == 3 and set(result["mask"]) == {"iou", "dice", "pixel_acc", "precision", "recall"}
    assert "rmse" in result["depth"] and result["baseline"]["mask_rule"] == "|fg_bg - bg| > 10 (given)"
    ious = []  # the baseline by hand: the difference of the files as read, against the mask files
    for name in ("s0", "s20", "s7"):
        pred = difference(read_image(tmp_path / "pairs" / "bg" / f"{name}.jpg"),
                          read_image(tmp_path / "pairs" / "fg_bg" / f"{name}.jpg")) > 10
        mask = read_image(tmp_path / "pairs" / "mask" / f"{name}.png") >= 128
        union = (pred | mask).sum()
        ious.append((pred & mask).sum() / union if union else 1.0)
    assert result["baseline"]["mask"]["iou"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert (tmp_path / "score_worst.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("damage, message", [
    ("lonely", "no partner with the same name for: .*mask/s0.png"),
    ("size", "s0.jpg is 8x8 but its mask is 16x16"),
    ("unreadable", "fg_bg/s0.jpg: not an image"),
])
def test_score_names_the_file_at_fault(ckpt, tiny_dataset, tmp_path, damage, message):
    from fgbg.evaluation.scoring import score_folder

    root = tmp_path / "pairs"
    _write_pairs(root, tiny_dataset, [0])
    if damage == "lonely":
        (root / "bg" / "s0.jpg").unlink()
    elif damage == "size":
        Image.new("RGB", (8, 8)).save(root / "bg" / "s0.jpg")
    else:
        (root / "fg_bg" / "s0.jpg").write_bytes(b"nope")
    with pytest.raises(ValueError, match=message):
        score_folder(ckpt, root, tmp_path / "score.json")
