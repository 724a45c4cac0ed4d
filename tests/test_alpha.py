"""The alpha head: trained on the stored alpha, scored by the matting metrics beside the binary mask used as
an alpha, written by predict as an 8-bit alpha and an RGBA cut-out, and drawn by evaluate."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from fgbg.core.checkpoint import load_checkpoint, load_for_inference
from fgbg.core.config import Params, from_dict
from fgbg.core.matting import cutout, on_checkerboard
from fgbg.core.runtime import final_answers, predict_pair
from fgbg.evaluation.evaluate import _crossed, evaluate_model
from fgbg.inference.predict import WRITERS
from fgbg.training.train import train_model
from tests.conftest import grid_columns, predict_stored_pair
from tests.test_train import TINY, merge


def test_each_answer_scored_beside_the_networks_own_by_hand():
    """A 1 x 4 image: the alpha target 1, 0.6, 0.2, 0; the mask target (alpha >= 128/255) 1, 1, 0, 0.
    The mask a user gets says 1, 0, 0, 0: as an alpha its SAD is (0.6 + 0.2) / 1000, its MSE (0.36 + 0.04) / 4.
    The network's own mask head said 1, 0, 0, 0 too, then 1, 1, 1, 0 (IoU 2 / 3); its own alpha, 1, 0.6, 0.2,
    0.2 (153 and 51 / 255 in 8 bits), has SAD 0.2 / 1000, and 0.9, 0.55, 0.3, 0 scores in 8 bits: 230, 140, 76
    (76.5 rounds to even) and 0 / 255, SAD (25 + 13 + 25) / 255 / 1000."""
    targets = {"alpha": torch.tensor([1.0, 0.6, 0.2, 0.0]).view(1, 1, 1, 4),
               "mask": torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 1, 4)}
    outputs = {"mask": torch.tensor([1.0, -1.0, -1.0, -1.0]).view(1, 1, 1, 4),
               "alpha": torch.tensor([1.0, 0.6, 0.2, 0.0]).view(1, 1, 1, 4)}
    network = {"mask": torch.tensor([3.0, -1.0, -2.0, -5.0]).view(1, 1, 1, 4),
               "alpha": torch.tensor([1.0, 0.6, 0.2, 0.2]).view(1, 1, 1, 4)}
    got = _crossed(outputs, network, targets)
    assert got["mask_as_alpha/sad"].item() == pytest.approx(0.8 / 1000)
    assert got["mask_as_alpha/mse"].item() == pytest.approx((0.36 + 0.04) / 4)
    assert got["mask_network/iou"].item() == pytest.approx(0.5)
    assert got["alpha_network/sad"].item() == pytest.approx(0.2 / 1000)
    network["mask"] = torch.tensor([3.0, 1.0, 2.0, -5.0]).view(1, 1, 1, 4)
    network["alpha"] = torch.tensor([0.9, 0.55, 0.3, 0.0]).view(1, 1, 1, 4)
    got = _crossed(outputs, network, targets)
    assert got["mask_network/iou"].item() == pytest.approx(2 / 3)
    assert got["mask_as_alpha/sad"].item() == pytest.approx(0.8 / 1000)  # the mask a user gets, not the network's
    assert got["alpha_network/sad"].item() == pytest.approx((25 / 255 + 13 / 255 + 25 / 255) / 1000)
    assert _crossed({"mask": outputs["mask"]}, {"mask": network["mask"]}, targets) == {}  # only with both heads


def test_the_alpha_a_user_gets_is_the_8_bits_predict_writes_and_is_scored_so():
    """The network's alpha never reaches 0: a sigmoid's 0.0015 on each of 36,864 background pixels of a 192 px
    image would add 0.055 to its SAD, though the 8-bit file predict writes holds 0 there (0.0015 x 255 = 0.38
    rounds to 0). The answer and the network's alpha are scored as written: 0.0015 -> 0, 0.6 -> 153 / 255,
    0.0021 -> 1 / 255 (0.54 rounds up)."""
    from tests.conftest import contract

    flat = np.zeros((4, 4, 3), np.uint8)  # no sure pixel: nothing to refine, the alpha is the network's
    network = np.array([[0.0015, 0.6, 0.0021, 1.0]] * 4, np.float32)
    answer = final_answers(contract(heads=("alpha",)), {"alpha": torch.from_numpy(network)[None, None]},
                           flat, flat)["alpha"]
    assert answer.dtype == np.float32
    assert answer[0].tolist() == pytest.approx([0.0, 153 / 255, 1 / 255, 1.0])
    targets = {"alpha": torch.tensor([0.0, 0.6, 0.0, 1.0]).view(1, 1, 1, 4),
               "mask": torch.tensor([0.0, 1.0, 0.0, 1.0]).view(1, 1, 1, 4)}
    outputs = {"mask": torch.tensor([-3.0, 1.0, -2.0, 5.0]).view(1, 1, 1, 4),
               "alpha": torch.from_numpy(answer[:1, :]).view(1, 1, 1, 4)}
    raw = {**outputs, "alpha": torch.from_numpy(network[:1, :]).view(1, 1, 1, 4)}
    written_error = abs(153 / 255 - 0.6) + 1 / 255
    assert _crossed(outputs, raw, targets)["alpha_network/sad"].item() == pytest.approx(written_error / 1000)


def test_with_an_alpha_head_the_mask_is_the_refined_alpha_at_the_threshold_and_the_depth_follows_it():
    """No sure pixel, so the alpha stands as the network gave it: rows 0-1 at 127 / 255, rows 2-3 at 128 / 255,
    columns 1-2 only. At the threshold 128 the mask is rows 2-3 there, though the mask head said nothing; at 200,
    nothing. Ground contact derives the depth again from that mask: its lowest row, 3, has bg depth 0.2 and 0.4
    under the mask (median 0.3), so rows 2-3 of columns 1-2 take 0.3 and the rest keeps the bg depth."""
    from fgbg.core.config import ModelConfig
    from tests.conftest import contract

    flat = np.zeros((4, 4, 3), np.uint8)
    alpha = np.zeros((4, 4), np.float32)
    alpha[:2, 1:3], alpha[2:, 1:3] = 127 / 255, 128 / 255
    bg_depth = np.tile(np.float32([[0.1], [0.5], [0.7], [0.0]]), (1, 4))
    bg_depth[3] = [0.9, 0.2, 0.4, 0.9]
    outputs = {"mask": torch.full((1, 1, 4, 4), -5.0), "depth": torch.from_numpy(bg_depth)[None, None],
               "bg_depth": torch.from_numpy(bg_depth)[None, None], "alpha": torch.from_numpy(alpha)[None, None]}
    the_contract = contract(ModelConfig(width=4, levels=2))  # ground contact: mask, depth, bg_depth, alpha
    answers = final_answers(the_contract, outputs, flat, flat)
    expected_mask = np.zeros((4, 4), bool)
    expected_mask[2:, 1:3] = True
    assert np.array_equal(answers["mask"], expected_mask)
    expected_depth = bg_depth.copy()
    expected_depth[2:, 1:3] = 0.3
    assert answers["depth"] == pytest.approx(expected_depth)
    strict = dataclasses.replace(the_contract, mask_threshold=200)
    assert not final_answers(strict, outputs, flat, flat)["mask"].any()
    learned = dataclasses.replace(the_contract, config=ModelConfig(width=4, levels=2, depth="learned"))
    assert np.array_equal(final_answers(learned, outputs, flat, flat)["depth"], bg_depth)  # a learned depth stands
    without_alpha = dataclasses.replace(the_contract, heads=("mask", "depth", "bg_depth"))
    no_alpha = {head: out for head, out in outputs.items() if head != "alpha"}
    assert not final_answers(without_alpha, no_alpha, flat, flat)["mask"].any()  # the mask head's own


def test_mask_of_takes_the_8_bit_level_at_or_above_the_threshold():
    """127.4 / 255 rounds to 127, below 128; 127.7 / 255 rounds to 128, at it; values are clipped to [0, 1]."""
    from fgbg.core.runtime import mask_of

    alpha = np.float32([127.4 / 255, 127.7 / 255, 1.2, -0.1, 200 / 255])
    assert mask_of(alpha, 128).tolist() == [False, True, True, False, True]
    assert mask_of(torch.from_numpy(alpha), 201).tolist() == [False, False, True, False, False]


def test_an_alpha_without_a_mask_head_gives_no_mask():
    from tests.conftest import contract

    flat = np.zeros((4, 4, 3), np.uint8)
    answers = final_answers(contract(heads=("alpha",)), {"alpha": torch.full((1, 1, 4, 4), 0.95)}, flat, flat)
    assert set(answers) == {"alpha"} and (answers["alpha"] == 1.0).all()


def test_evaluate_refines_a_store_of_jpeg_composites_as_half_chroma():
    from types import SimpleNamespace

    from fgbg.core.matting import HALF_CHROMA, LOSSLESS
    from fgbg.evaluation.evaluate import stored_trust

    assert stored_trust(SimpleNamespace(meta={"compose": {"fg_bg_format": "jpeg"}})) == HALF_CHROMA
    assert stored_trust(SimpleNamespace(meta={"compose": {"fg_bg_format": "png"}})) == LOSSLESS


def test_a_checkpoint_keeps_the_mask_threshold_and_one_without_it_reads_128(tmp_path):
    from fgbg.core.checkpoint import Checkpoint
    from fgbg.core.model import build_model
    from tests.conftest import contract, write_checkpoint

    the_contract = dataclasses.replace(contract(), mask_threshold=200)
    path = write_checkpoint(tmp_path / "m.pt", build_model(the_contract), the_contract)
    assert load_checkpoint(path)[1].contract.mask_threshold == 200
    payload = torch.load(path, weights_only=True)
    del payload["mask_threshold"]
    assert Checkpoint.from_dict(payload).contract.mask_threshold == 128
    for bad in (0, 256, True, "128", 128.0, None):
        with pytest.raises(ValueError, match=f"mask_threshold {bad!r} is not an alpha level"):
            Checkpoint.from_dict({**payload, "mask_threshold": bad})


def test_the_matte_writer_saves_8_bits(tmp_path):
    WRITERS["matte"](tmp_path, "a", np.array([[0.0, 0.5, 1.0]]))
    assert np.asarray(Image.open(tmp_path / "a.png")).tolist() == [[0, 128, 255]]


def test_an_alpha_head_trains_evaluates_and_predicts_a_cutout(tiny_dataset, prepared, tmp_path):
    from fgbg.dataset.store import ComposedStore

    store = ComposedStore(tiny_dataset)
    params = from_dict(Params, merge(TINY, {"epochs": 1, "train": {"best_metric": "sad"}}))  # the default heads
    assert list(params.heads) == ["mask", "depth", "bg_depth", "alpha"]
    summary = train_model(params=params, dataset_dir=tiny_dataset, stats_path=prepared / "stats.json",
                          split_path=prepared / "split.json", model_dir=tmp_path / "models", live_dir=tmp_path / "live",
                          metrics_path=tmp_path / "train.json")
    assert {"alpha_l1", "alpha_sobel", "sad", "mse", "grad", "conn"} <= set(summary["val"])
    assert summary["best_val_sad"] == summary["val"]["sad"]

    result = evaluate_model(checkpoint=tmp_path / "models" / "best.pt", dataset_dir=tiny_dataset,
                            split_path=prepared / "split.json", metrics_path=tmp_path / "eval.json",
                            plots_dir=tmp_path / "plots", by_source_path=tmp_path / "by.json", params=params)
    for block in (result["alpha"], result["baseline"]["alpha"], result["mask_as_alpha"], result["alpha_network"]):
        assert set(block) == {"sad", "mse", "grad", "conn"}
    assert set(result["mask_network"]) == set(result["mask"])
    assert result["baseline"]["alpha_rule"].startswith("the difference mask")
    assert json.loads((tmp_path / "eval.json").read_text())["mask_as_alpha"] == result["mask_as_alpha"]
    assert grid_columns(Image.open(tmp_path / "plots" / "cutouts.png")) == 5  # bg, fg_bg, alpha, cut-out, depth

    bg, fg_bg = predict_stored_pair(tmp_path / "models" / "best.pt", store, 0, tmp_path)
    alpha = np.asarray(Image.open(tmp_path / "out" / "scene_alpha.png"))
    cut = Image.open(tmp_path / "out" / "scene_cutout.png")
    assert alpha.shape == (16, 16) and alpha.dtype == np.uint8
    assert cut.mode == "RGBA" and np.array_equal(np.asarray(cut)[..., 3], alpha)  # its opacity is the alpha
    model, ckpt = load_checkpoint(tmp_path / "models" / "best.pt")
    answer = predict_pair(model, ckpt.contract, bg, fg_bg, "cpu")["alpha"]
    assert np.array_equal(np.asarray(cut), cutout(bg, fg_bg, answer))  # the colours recovered from the known bg


def test_the_cutouts_figure_cuts_with_the_alpha_head_not_the_mask(tiny_dataset, tmp_path, monkeypatch):
    import fgbg.evaluation.evaluate as evaluate
    from fgbg.core.checkpoint import load_for_inference
    from fgbg.core.config import ModelConfig
    from fgbg.core.model import build_model
    from fgbg.dataset.store import ComposedStore
    from tests.conftest import contract, write_checkpoint

    the_contract = contract(ModelConfig(width=4, levels=2))  # the default heads: mask, depth, bg_depth, alpha
    torch.manual_seed(0)
    loaded = load_for_inference(write_checkpoint(tmp_path / "m.pt", build_model(the_contract), the_contract), "cpu")
    drawn = {}
    monkeypatch.setattr(evaluate, "save_grid", lambda path, rows, titles: drawn.update(rows=rows, titles=titles))
    store = ComposedStore(tiny_dataset)
    evaluate._cutouts(tmp_path / "c.png", loaded, store, [3])
    assert drawn["titles"] == ("bg", "fg_bg", "alpha_pred", "cutout", "depth_pred")
    sample = store.sample(3)
    answers = predict_pair(loaded.model, loaded.contract, sample.bg, sample.fg_bg, "cpu")
    assert np.array_equal(drawn["rows"][0][2], answers["alpha"])
    assert np.array_equal(drawn["rows"][0][3], on_checkerboard(cutout(sample.bg, sample.fg_bg, answers["alpha"])))


def test_the_report_sets_the_alpha_beside_the_mask_used_as_an_alpha(tmp_path):
    from fgbg.report import results_markdown

    ev = {"split": "test", "unseen": "unseen fgs", "samples": 2, "checkpoint_epoch": 0, "mask": {"iou": 0.9},
          "alpha": {"sad": 0.2, "mse": 0.01, "grad": 0.1, "conn": 0.2},
          "mask_as_alpha": {"sad": 0.5, "mse": 0.02, "grad": 0.4, "conn": 0.5}, "mask_network": {"iou": 0.89},
          "alpha_network": {"sad": 0.3, "mse": 0.02, "grad": 0.25, "conn": 0.3}, "baseline": {}}
    (tmp_path / "e.json").write_text(json.dumps(ev))
    (tmp_path / "b.json").write_text(json.dumps({"fg_class": {}}))
    text = results_markdown(tmp_path / "e.json", tmp_path / "b.json")
    assert ("used as an alpha (0 or 1): SAD 0.2000 against 0.5000 (0.40x), Grad 0.1000 against 0.4000 (0.25x). "
            "The mask is the refined alpha at the mask threshold: IoU 0.9000, where the mask head's own answer "
            "scores 0.8900. Before the pair refines it on its soft edge, the network's own alpha scores SAD 0.3000 "
            "and Grad 0.2500.") in text
    assert "| alpha | `sad` | 0.2000 | – | lower |" in text


def _oracle_alpha(x: torch.Tensor) -> torch.Tensor:
    """An alpha a network might give for one input C, H, W: 1 on a central square, 0 far from it, and on the ring
    around it a value of the image's own (0.3 to 0.7, from its mean), so that answers mixed up between the
    samples of a batch show; every image has sure pixels and a soft edge that its own pair refines."""
    _, h, w = x.shape
    alpha = torch.zeros(h, w)
    alpha[h // 2 - 4 : h // 2 + 4, w // 2 - 4 : w // 2 + 4] = 0.3 + 0.4 * abs(np.sin(10 * float(x.mean())))
    alpha[h // 2 - 3 : h // 2 + 3, w // 2 - 3 : w // 2 + 3] = 1.0
    return alpha


@pytest.fixture
def oracle(monkeypatch):
    """predict_padded replaced, in evaluate and in runtime, by a network answering `_oracle_alpha` for the alpha."""
    import fgbg.core.runtime as runtime
    import fgbg.evaluation.evaluate as evaluate

    def predict_padded(model, x, dtype=None):
        n, _, h, w = x.shape
        out = {head: torch.zeros(n, 1, h, w) for head in ("mask", "depth", "bg_depth")}
        return {**out, "alpha": torch.stack([_oracle_alpha(sample) for sample in x])[:, None]}

    monkeypatch.setattr(runtime, "predict_padded", predict_padded)
    monkeypatch.setattr(evaluate, "predict_padded", predict_padded)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_predict_and_evaluate_score_the_alpha_each_pair_refines(tiny_dataset, oracle, batch_size):
    """Each row of evaluate is the refined alpha of its own pair, as predict_pair gives it, whatever the batches,
    and the mask that alpha at the threshold; `alpha_network` and `mask_network` the network's own (the oracle's
    mask logits are all 0: no pixel)."""
    from types import SimpleNamespace

    from fgbg.core.matting import as_written, refine_alpha
    from fgbg.core.metrics import matte_metrics
    from fgbg.dataset.data import PairDataset
    from fgbg.dataset.store import ComposedStore
    from fgbg.evaluation.evaluate import _per_image
    from tests.conftest import contract

    store = ComposedStore(tiny_dataset)
    ids = list(range(11))[::-1]
    the_contract = contract(heads=("mask", "depth", "bg_depth", "alpha"))
    loaded = SimpleNamespace(model=None, device="cpu", contract=the_contract)
    keys = {("alpha", "sad"): "sad", ("mask", "recall"): "recall"}
    df = _per_image(loaded, PairDataset(store, ids, the_contract), batch_size, keys)
    refined_somewhere = False
    for row, i in enumerate(ids):
        sample = store.sample(i)
        network = _oracle_alpha(the_contract.encode(sample.bg, sample.fg_bg)).numpy()
        answers = predict_pair(None, the_contract, sample.bg, sample.fg_bg, "cpu")
        answer = answers["alpha"]
        assert np.array_equal(answers["mask"], answer >= 127.5 / 255)
        recall = (answers["mask"] & sample.mask).sum() / sample.mask.sum() if sample.mask.any() else 1.0
        assert df["recall"][row] == pytest.approx(recall) and df["mask_network/recall"][row] == (not sample.mask.any())
        assert np.array_equal(answer, as_written(refine_alpha(sample.bg, sample.fg_bg, network)))  # refined by its pair
        assert np.array_equal(np.round(answer * 255) / 255, answer)  # in the 8 bits that predict writes
        refined_somewhere |= not np.array_equal(answer, network)
        target = torch.from_numpy(sample.alpha)[None, None]
        sad = float(matte_metrics(torch.from_numpy(answer)[None, None], target)["sad"][0])
        assert df["sad"][row] == pytest.approx(sad), f"row {row} is not sample {i}'s refined alpha"
        own = float(matte_metrics(torch.from_numpy(as_written(network))[None, None], target)["sad"][0])
        assert df["alpha_network/sad"][row] == pytest.approx(own)
    assert refined_somewhere and df["sad"].nunique() > 1 and df["recall"].nunique() > 1


def test_predict_score_and_test_files_refine_a_half_chroma_jpeg_pair_by_its_trust(tiny_dataset, oracle, tmp_path,
                                                                                   monkeypatch):
    """The trust of each pair follows its files (fgbg.core.matting.trust_of): two PNGs are LOSSLESS; a pair with a
    default JPEG, as evaluate's test_files writes, is HALF_CHROMA, in predict and in score alike."""
    import fgbg.core.runtime as runtime
    from fgbg.core.config import ModelConfig
    from fgbg.core.matting import HALF_CHROMA, LOSSLESS, refine_alpha
    from fgbg.core.model import build_model
    from fgbg.dataset.store import ComposedStore
    from fgbg.evaluation.scoring import LabelledPair, score_pairs
    from fgbg.inference.predict import predict_paths
    from tests.conftest import contract, write_checkpoint

    seen, kept = [], set()
    monkeypatch.setattr(runtime, "refine_alpha", lambda *args, keep: seen.append(args[3]) or kept.add(keep)
                        or refine_alpha(*args, keep=keep))
    the_contract = contract(ModelConfig(width=4, levels=2))
    checkpoint = write_checkpoint(tmp_path / "m.pt", build_model(the_contract), the_contract)
    sample = ComposedStore(tiny_dataset).sample(0)
    for name, image in (("bg", sample.bg), ("fg_bg", sample.fg_bg)):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
        Image.fromarray(image).save(tmp_path / f"{name}.jpg", quality=90)
    predict_paths(checkpoint, tmp_path / "bg.png", tmp_path / "fg_bg.png", tmp_path / "out")
    predict_paths(checkpoint, tmp_path / "bg.png", tmp_path / "fg_bg.jpg", tmp_path / "out")
    loaded = load_for_inference(checkpoint, "cpu")
    targets = {"mask": sample.mask, "alpha": sample.alpha}
    score_pairs(loaded, [LabelledPair("a", tmp_path / "bg.jpg", tmp_path / "fg_bg.jpg", targets),
                         LabelledPair("b", tmp_path / "bg.png", tmp_path / "fg_bg.png", targets),
                         LabelledPair("c", tmp_path / "bg.png", tmp_path / "fg_bg.jpg", targets)], threshold=20)
    assert seen == [LOSSLESS, HALF_CHROMA, HALF_CHROMA, LOSSLESS, HALF_CHROMA]
    assert kept == {the_contract.mask_threshold / 255}  # the sure border stays in the mask at its threshold
