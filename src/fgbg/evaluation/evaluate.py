"""Evaluation of a checkpoint on the test split, beside the trivial baselines.

`best.pt` and the lr schedule were chosen on val, so the figures come from test, which
nothing was chosen on. The baselines (fgbg.evaluation.baselines) are scored on the same test samples;
the one choice they make, the difference threshold, is made on val.

Writes
- metrics/eval.json: each head's metrics (params.yaml `heads:`) per image, averaged over the
  test split, and a `baseline` block with the same names (for the heads that have a baseline);
- metrics/eval_by_source.json: the same averaged per fg, per bg and per fg class (the
  fg name up to its first "_", e.g. cat_003 -> cat), and the 10 worst samples;
- plots/per_fg.csv, plots/per_bg.csv: each head's headline metric (IoU, RMSE) per source, and
  the IoU's error 1 - IoU, for bar charts (the per-fg chart draws the error: every IoU is near 1,
  where bars look alike);
- plots/samples.png: evenly spaced samples (bg, fg_bg, then each head's target and prediction,
  and a unit head's |error|); plots/worst.png: the 10 worst the same way; plots/cutouts.png: the
  same samples as a user gets them (the alpha, or the mask where there is no alpha head; the
  cut-out; depth);
- with a mask and an alpha head, `mask_as_alpha` (the mask a user gets scored as an alpha),
  and the network's own answers before the pair refined them: `mask_network` (the mask head's)
  and `alpha_network` (the `mask` and `alpha` blocks score what `predict` writes:
  fgbg.core.runtime.final_answers, the alpha refined and the mask that alpha at the threshold).
"Worst" ranks by the sum of the heads' headline errors, (1 - IoU) + RMSE (+ SAD for an alpha), so a sample is bad
when any head fails.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from fgbg.core.checkpoint import LoadedModel, load_for_inference
from fgbg.core.config import Params
from fgbg.core.contract import answers_as_outputs, kind_of, score
from fgbg.core.errors import ConfigError
from fgbg.core.heads import (
    HEADLINE,
    HEADLINE_NAMES,
    HEADS,
    HIGHER_IS_BETTER,
    KIND_METRICS,
    all_metric_keys,
    metric_keys,
)
from fgbg.core.imageio import atomic_path, atomic_write_json
from fgbg.core.matting import HALF_CHROMA, LOSSLESS, Trust, as_written, cutout, on_checkerboard
from fgbg.core.plots import WORST, sample_columns, sample_rows, save_grid
from fgbg.core.progress import progress
from fgbg.core.runtime import final_answers, inference_batch, predict_padded, predict_pair
from fgbg.dataset.data import TARGETS, PairDataset
from fgbg.dataset.store import ComposedStore
from fgbg.evaluation.baselines import baseline_answers, choose_threshold, difference
from fgbg.evaluation.scoring import LabelledPair, means, score_pairs

log = logging.getLogger(__name__)

FILE_QUALITY = 90  # test_files: each bg and fg_bg saved as its own JPEG, as the original dataset was


def _per_image(loaded: LoadedModel, ds: PairDataset, batch_size: int, keys: dict) -> pd.DataFrame:
    """Each test image's metrics (`keys`) of the answers a user gets (fgbg.core.runtime.final_answers, as
    `predict` writes them), and the crossed blocks (`_crossed`)."""
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False)
    cols: dict[str, list] = {}
    done = 0
    for x, targets in progress(loader, desc="evaluate", unit="batch"):
        network, outputs = _answers(loaded, x, ds.store, ds.ids[done : done + len(x)])
        done += len(x)
        for k, v in {**score(outputs, targets, keys), **_crossed(outputs, network, targets)}.items():
            cols.setdefault(k, []).extend(v.tolist())
    return pd.DataFrame(cols)


def stored_trust(store: ComposedStore) -> Trust:
    """How the store's pairs keep their colour (fgbg.core.matting.trust_of for files): fg_bg composed as JPEG
    (OpenCV's, 4:2:0 chroma) halves it."""
    return HALF_CHROMA if store.meta["compose"]["fg_bg_format"] == "jpeg" else LOSSLESS


def _answers(loaded: LoadedModel, x: torch.Tensor, store: ComposedStore, ids: list[int]):
    """(the network's outputs, the answers a user gets as outputs that `score` takes), N, 1, H, W each, for the
    batch `x` of samples `ids`: each sample's final_answers with its own (bg, fg_bg) pair, as predict_pair gives."""
    network = {head: out.cpu() for head, out in predict_padded(loaded.model, x.to(loaded.device)).items()}
    trust = stored_trust(store)
    answers = [final_answers(loaded.contract, {head: out[k : k + 1] for head, out in network.items()},
                             *store.read(i)[:2], trust) for k, i in enumerate(ids)]
    stacked = {head: torch.from_numpy(np.stack([a[head] for a in answers]))[:, None] for head in network}
    return network, answers_as_outputs(stacked)


# block -> the head whose target and metrics it takes
CROSSED = {"mask_as_alpha": "alpha", "mask_network": "mask", "alpha_network": "alpha"}


def _crossed(outputs: dict, network: dict, targets: dict) -> dict[str, torch.Tensor]:
    """With a mask and an alpha head, as `<block>/<metric>` columns: the mask a user gets scored as an alpha
    (0 / 1, what a binary mask gives a cut-out), and each of the network's own answers before the pair refined
    them (`network`): the mask head's, and the alpha in 8 bits, as the refined one is scored."""
    if not {"mask", "alpha"} <= set(outputs):
        return {}
    crossed = {"mask_as_alpha": kind_of("mask").answer(outputs["mask"]).float(),
               "mask_network": network["mask"],
               "alpha_network": as_written(network["alpha"])}
    columns = {}
    for block, output in crossed.items():
        head = CROSSED[block]
        keys = {(head, metric): f"{block}/{metric}" for metric in KIND_METRICS[HEADS[head]]}
        columns.update(score({head: output}, targets, keys))
    return columns


def _baseline_per_image(store: ComposedStore, ids: list[int], threshold: int, batch_size: int, keys: dict) -> pd.DataFrame:
    """Metrics of the baselines (fgbg.evaluation.baselines) for the model's heads that have one."""
    model_heads = {head for head, _ in keys}
    cols: dict[str, list] = {}
    for start in range(0, len(ids), batch_size):
        batch_ids = ids[start : start + batch_size]
        samples = [store.sample(i) for i in batch_ids]
        answers = [baseline_answers(difference(s.bg, s.fg_bg), threshold, s.bg_depth) for s in samples]
        stacked = {head: torch.from_numpy(np.stack([a[head] for a in answers]))[:, None]
                   for head in answers[0] if head in model_heads}
        targets = {head: torch.from_numpy(np.stack([TARGETS.get(head)(s) for s in samples]))[:, None]
                   for head in stacked}  # N, 1, H, W each
        for k, v in score(answers_as_outputs(stacked), targets, keys).items():
            cols.setdefault(k, []).extend(v.tolist())
    return pd.DataFrame(cols)


def _difference_threshold(store: ComposedStore, val_ids: list[int]) -> int:
    """The |fg_bg - bg| threshold with the best mean IoU on val."""
    pairs = ((difference(bg, fg_bg), mask) for bg, fg_bg, mask, _ in (store.read(i) for i in val_ids))
    return choose_threshold(pairs)


def _test_files(loaded: LoadedModel, store: ComposedStore, ids: list[int], threshold: int, keys: dict) -> dict:
    """The test split as a user's files: each bg and fg_bg written as its own JPEG, read back and
    scored through predict's code path, beside the same baselines."""
    with tempfile.TemporaryDirectory(prefix="fgbg-test-files-") as tmp:
        pairs = []
        for i in ids:
            sample = store.sample(i)
            paths = (Path(tmp) / f"{i}_bg.jpg", Path(tmp) / f"{i}_fg_bg.jpg")
            for img, path in zip((sample.bg, sample.fg_bg), paths):
                Image.fromarray(img).save(path, quality=FILE_QUALITY)
            targets = {head: TARGETS.get(head)(sample) for head in loaded.contract.heads}
            pairs.append(LabelledPair(str(i), *paths, targets, sample.bg_depth))
        df, base, _ = score_pairs(loaded, pairs, threshold)
    return {**means(df, keys), "baseline": means(base, keys), "samples": len(df),
            "files": f"bg and fg_bg as separate JPEG files, quality {FILE_QUALITY}, read as `fgbg predict` reads them"}


def _depth_rule(depth_mode: str) -> str:
    """What the depth baseline is. The store's bg depth is always on the geometry scale, so under
    teacher depth it is not on the labels' scale, and says so."""
    rule = "the bg depth, as if the object were not there"
    if depth_mode == "teacher":
        rule += ("; not like for like under teacher depth: the bg depth is on the geometry scale (data/bg_depth/ "
                 "or the ground-plane prior), the labels on the teacher's relative scale")
    return rule


def _grid(path: Path, loaded: LoadedModel, ds: PairDataset, positions, labels: list[str] | None = None) -> None:
    """The samples at `positions` of `ds`: inputs, targets and the answers a user gets (the alpha refined)."""
    x, targets = torch.utils.data.default_collate([ds[int(k)] for k in positions])
    _, outputs = _answers(loaded, x, ds.store, [ds.ids[int(k)] for k in positions])
    save_grid(path, sample_rows(x, targets, outputs, loaded.contract), sample_columns(loaded.contract.heads),
              row_labels=labels)


def _cutouts(path: Path, loaded: LoadedModel, store: ComposedStore, ids: list[int]) -> None:
    """plots/cutouts.png, what the model gives a user: bg, fg_bg, the predicted alpha (the alpha head's, else
    the mask's 0 / 1), the cut-out on a checkerboard, and the predicted depth, as the model has them."""
    heads = loaded.contract.heads
    alpha_from = next((head for head in ("alpha", "mask") if head in heads), None)
    shown = [head for head in (alpha_from, "depth") if head in heads]
    rows, trust = [], stored_trust(store)
    for i in ids:
        sample = store.sample(i)
        answers = predict_pair(loaded.model, loaded.contract, sample.bg, sample.fg_bg, loaded.device, trust=trust)
        row = [sample.bg, sample.fg_bg, *(answers[head].astype(np.float32) for head in shown)]
        if alpha_from:
            row.insert(3, on_checkerboard(cutout(sample.bg, sample.fg_bg, answers[alpha_from].astype(np.float32))))
        rows.append(tuple(row))
    titles = ["bg", "fg_bg", *(f"{head}_pred" for head in shown)]
    if alpha_from:
        titles.insert(3, "cutout")
    save_grid(path, rows, tuple(titles))


def _checked_heads(loaded: LoadedModel, metrics: dict[str, tuple[str, ...]], checkpoint: str | Path) -> None:
    if tuple(metrics) != loaded.contract.heads:
        raise ConfigError(f"params: heads = {list(metrics)}, but {checkpoint} has the heads "
                          f"{list(loaded.contract.heads)}; list the checkpoint's heads, or retrain with `dvc repro train`")


DIGITS = {"iou": 2, "rmse": 3, "sad": 3}  # how worst.png writes each kind's headline metric


def _headlines(heads: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """{head: (its headline metric, the key of its per-image column)}: iou for the mask, rmse for depth."""
    keys = all_metric_keys(heads)
    return {head: (HEADLINE[HEADS[head]], keys[(head, HEADLINE[HEADS[head]])]) for head in heads}


def _worst_label(row: pd.Series, headlines: dict[str, tuple[str, str]]) -> str:
    lines = [row["fg"], row["bg"]]
    for head, (metric, key) in headlines.items():
        lines.append(("" if key == metric else f"{head} ") + f"{HEADLINE_NAMES[metric]} {row[key]:.{DIGITS[metric]}f}")
    return "\n".join(lines)


def _per_source(df: pd.DataFrame, keys: dict, headlines: dict, worst: pd.DataFrame, by_source_path, plots_dir) -> None:
    """metrics/eval_by_source.json (means per fg class, fg and bg; the worst samples) and plots/per_{fg,bg}.csv
    (each head's headline metric, and 1 - it where higher is better: the error that a bar chart shows)."""
    columns = [key for _, key in headlines.values()]
    by_source = {
        group: {str(name): {**means(g, keys), "samples": len(g)} for name, g in df.groupby(group, sort=True)}
        for group in ("fg_class", "fg", "bg")
    }
    by_source["worst"] = worst[["sample", "fg", "bg", "flip", "x", "y", *columns]].to_dict(orient="records")
    atomic_write_json(by_source_path, by_source)
    for group in ("fg", "bg"):
        table = df.groupby(group, sort=True)[columns].mean().reset_index()
        for metric, key in headlines.values():
            if metric in HIGHER_IS_BETTER:
                table[f"{key}_error"] = 1 - table[key]
        with atomic_path(Path(plots_dir) / f"per_{group}.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.6f")


def evaluate_model(
    *, checkpoint: str | Path, dataset_dir: str | Path, split_path: str | Path, metrics_path: str | Path,
    plots_dir: str | Path, by_source_path: str | Path, params: Params,
) -> dict:
    """Per-image metrics on the test split beside the baselines: averages, per-source breakdowns,
    grids (see module doc). From `params`: the heads' metrics, batch_size, evaluate.grid_samples and
    train.device."""
    loaded = load_for_inference(checkpoint, params.train.device)
    heads = loaded.contract.heads
    metrics = {head: cfg.metrics for head, cfg in params.heads.items()}
    _checked_heads(loaded, metrics, checkpoint)
    batch_size = params.batch_size
    keys = metric_keys(metrics)  # what eval.json reports
    split = json.loads(Path(split_path).read_text())
    store = ComposedStore(dataset_dir)
    store.check_ids(split["val"] + split["test"], str(split_path))
    size, trained_at = store.meta["compose"]["bg_size"], loaded.checkpoint.input_size
    if size != trained_at:
        log.warning("%s is composed at %d px but %s was trained at %d px: evaluating at %d px as composed (the network "
                    "is fully convolutional), so these are not the figures of its training size; compose at %d px "
                    "to get those", dataset_dir, size, checkpoint, trained_at, size, trained_at)
    if loaded.contract.mask_threshold != store.mask_threshold:
        log.warning("%s answers masks at alpha %d but %s was composed at %d: its mask targets are another outline "
                    "than the one the model answers; compose at %d to compare like with like", checkpoint,
                    loaded.contract.mask_threshold, dataset_dir, store.mask_threshold, loaded.contract.mask_threshold)
    ids = split["test"]
    ds = PairDataset(store, ids, loaded.contract)
    df = _per_image(loaded, ds, inference_batch(batch_size, loaded.device, size * size), all_metric_keys(heads))
    info = store.index.iloc[ids][["sample", "fg", "bg", "flip", "x", "y"]].reset_index(drop=True)
    df = pd.concat([info, df], axis=1)
    df["fg_class"] = df["fg"].str.split("_").str[0]
    threshold = _difference_threshold(store, split["val"])
    baseline = {**means(_baseline_per_image(store, ids, threshold, batch_size, keys), keys)}
    if "mask" in heads:
        baseline["mask_rule"] = f"|fg_bg - bg| > {threshold} (largest channel difference, 0-255; threshold chosen on val)"
    if "depth" in heads:
        baseline["depth_rule"] = _depth_rule(store.meta["compose"]["depth"])
    if "alpha" in heads:
        baseline["alpha_rule"] = "the difference mask (mask_rule) used as an alpha"
    crossed = {block: {m: float(df[f"{block}/{m}"].mean()) for m in KIND_METRICS[HEADS[head]]}
               for block, head in CROSSED.items() if f"{block}/{HEADLINE[HEADS[head]]}" in df}
    result = {"split": "test", "unseen": split["unseen"], **means(df, keys), **crossed, "baseline": baseline,
              "samples": len(df),
              "checkpoint_epoch": loaded.checkpoint.epoch, "image_size": size, "trained_at": trained_at,
              "test_files": _test_files(loaded, store, ids, threshold, keys)}
    atomic_write_json(metrics_path, result)

    headlines = _headlines(heads)
    df["badness"] = sum(kind_of(head).error(df[key]) for head, (_, key) in headlines.items())
    worst = df.sort_values("badness", ascending=False, kind="stable").head(WORST)
    _per_source(df, keys, headlines, worst, by_source_path, plots_dir)
    picks = np.linspace(0, len(ds) - 1, min(params.evaluate.grid_samples, len(ds))).round().astype(int)
    _grid(Path(plots_dir) / "samples.png", loaded, ds, picks)
    labels = [_worst_label(row, headlines) for _, row in worst.iterrows()]
    _grid(Path(plots_dir) / "worst.png", loaded, ds, worst.index.to_numpy(), labels)
    _cutouts(Path(plots_dir) / "cutouts.png", loaded, store, [ids[k] for k in picks])
    store.close()
    log.info("eval on %d test samples: %s", len(df), ", ".join(
        f"{key} {df[key].mean():.4f} (baseline {baseline.get(head, {}).get(metric, float('nan')):.4f})"
        for head, (metric, key) in headlines.items()))
    return result
