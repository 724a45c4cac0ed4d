"""Scoring a model on image files, as a user's photos reach it.

Two users of the same code path as `fgbg predict` (files read from disk, EXIF applied,
the whole pair at native resolution):
- evaluate's `test_files`: every test sample written as two separate JPEG files (quality
  90, as the original dataset saved each bg and fg_bg) and read back;
- `fgbg score PAIRS`: a user's labelled pairs, PAIRS/bg/, PAIRS/fg_bg/, PAIRS/mask/ and
  optionally a folder for each other head, PAIRS/depth/ (16-bit, depth = value / 65535), paired
  by file name.
Each pair gets the metrics of fgbg.core.metrics and the trivial baselines of fgbg.evaluation.baselines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fgbg.core.checkpoint import LoadedModel, load_for_inference
from fgbg.core.contract import answers_as_outputs, kind_of, score
from fgbg.core.errors import InputError
from fgbg.core.heads import HEADLINE, HEADS, all_metric_keys
from fgbg.core.imageio import (
    atomic_write_bytes,
    atomic_write_json,
    image_files,
    paired_stems,
    read_image,
    uint16_to_depth,
)
from fgbg.core.matting import trust_of
from fgbg.core.plots import WORST, grid_png
from fgbg.core.progress import progress
from fgbg.core.runtime import predict_pair
from fgbg.evaluation.baselines import baseline_answers, choose_threshold, difference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledPair:
    """One pair of image files and its targets, {head: H, W} (a mask at least); bg_depth (H, W in [0, 1])
    is optional, for the depth baseline."""

    name: str
    bg: Path
    fg_bg: Path
    targets: dict[str, np.ndarray]
    bg_depth: np.ndarray | None = None


def _scores(answers: dict[str, np.ndarray], pair: LabelledPair, keys: dict) -> dict[str, float]:
    """Per-image metrics of each head's answer (H, W) against the pair's target, where it has one."""
    def batch(image):
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]  # 1, 1, H, W

    outputs = answers_as_outputs({head: batch(answer) for head, answer in answers.items()})
    targets = {head: batch(target) for head, target in pair.targets.items()}
    return {key: float(values[0]) for key, values in score(outputs, targets, keys).items()}


def _read_pair(pair: LabelledPair) -> tuple[np.ndarray, np.ndarray]:
    bg, fg_bg = read_image(pair.bg, "RGB"), read_image(pair.fg_bg, "RGB")
    for head, target in pair.targets.items():
        for path, img in ((pair.fg_bg, fg_bg), (pair.bg, bg)):
            if img.shape[:2] != target.shape:
                raise InputError(f"{path} is {img.shape[1]}x{img.shape[0]} but its {head} is {target.shape[1]}x"
                                 f"{target.shape[0]}; a bg, its fg_bg and their {head} must be the same size")
    return bg, fg_bg


def score_pairs(loaded: LoadedModel, pairs: list[LabelledPair], threshold: int | None = None,
                size: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int | None]:
    """(model metrics, baseline metrics, the difference threshold) per pair, one row each: every metric
    of each head's kind (fgbg.core.heads.all_metric_keys), for the heads that the pair has a target for.

    `threshold` None: chosen on these pairs (optimistic for the baseline, so fair to the model); None
    when they have no masks, and the mask baseline is left out."""
    keys = all_metric_keys(loaded.contract.heads)
    diffs = []
    rows, base_rows = [], []
    for pair in progress(pairs, desc="score", unit="pair"):
        bg, fg_bg = _read_pair(pair)
        answers = predict_pair(loaded.model, loaded.contract, bg, fg_bg, loaded.device, size,
                               trust_of(pair.bg, pair.fg_bg))
        rows.append({"name": pair.name, **_scores(answers, pair, keys)})
        diffs.append(difference(bg, fg_bg))
    if threshold is None and all("mask" in p.targets for p in pairs):
        threshold = choose_threshold(zip(diffs, (p.targets["mask"] for p in pairs)))
    for pair, diff in zip(pairs, diffs):
        base_rows.append({"name": pair.name, **_scores(baseline_answers(diff, threshold, pair.bg_depth), pair, keys)})
    return pd.DataFrame(rows), pd.DataFrame(base_rows), threshold


def means(df: pd.DataFrame, keys: dict[tuple[str, str], str]) -> dict:
    """{head: {metric: mean}} over the rows, for the (head, metric) `keys` that were scored (depth only where
    it was given)."""
    out: dict = {}
    for (head, metric), key in keys.items():
        if key in df:
            out.setdefault(head, {})[metric] = float(df[key].mean())
    return out


def _listing(folder: Path, optional: bool = False) -> dict[str, Path]:
    if not folder.is_dir():
        if optional:
            return {}
        raise InputError(f"{folder}/: missing; a pairs folder holds bg/, fg_bg/ and a folder for the model's first "
                         "head, mask/ (and optionally one for each other head, such as depth/)")
    return image_files(folder)


def read_target(path: Path, head: str) -> np.ndarray:
    """A head's target from its greyscale file: a binary head's as bool (>= 128), a unit head's as value / 255
    (8-bit) or value / 65535 (16-bit, as fgbg.core.imageio.depth_to_uint16 writes it)."""
    if kind_of(head).binary:
        return read_image(path, "L") >= 128
    levels = read_image(path)
    if levels.ndim != 2:
        raise InputError(f"{path}: a {head} target must be a greyscale image (8 or 16 bits), not colour; save it "
                         "as greyscale PNG")
    return levels.astype(np.float32) / 255 if levels.dtype == np.uint8 else uint16_to_depth(levels)


def labelled_pairs(root: str | Path, heads: tuple[str, ...] = ("mask", "depth")) -> list[LabelledPair]:
    """The pairs of a folder (see module doc), with a target for each head that has a folder there (the
    first head's folder is required); a file without its partners names it."""
    root = Path(root)
    first, *rest = heads
    bgs, fg_bgs, firsts = (_listing(root / kind) for kind in ("bg", "fg_bg", first))
    others = {head: _listing(root / head, optional=True) for head in rest}
    names = paired_stems([bgs, fg_bgs, firsts], f"each pair needs bg/<name>, fg_bg/<name> and {first}/<name> "
                         f"(and {', '.join(f'{head}/<name>' for head in others) or 'nothing else'} where given)",
                         optional=tuple(others.values()))
    if not names:
        raise InputError(f"{root}/bg/: no .jpg or .png images to score")
    pairs = []
    for name in names:
        files = {first: firsts[name], **{head: files[name] for head, files in others.items() if name in files}}
        targets = {head: read_target(path, head) for head, path in files.items()}
        pairs.append(LabelledPair(name, bgs[name], fg_bgs[name], targets))
    return pairs


def score_folder(checkpoint: str | Path, pairs_dir: str | Path, out: str | Path, device: str = "auto",
                 threshold: int | None = None, size: int | None = None) -> dict:
    """`fgbg score`: metrics and baseline of a pairs folder into `out` (JSON), and a grid of the
    worst pairs beside it (`<out stem>_worst.png`), ranked by the sum of the heads' errors."""
    loaded = load_for_inference(checkpoint, device)
    heads = loaded.contract.heads
    keys = all_metric_keys(heads)
    pairs = labelled_pairs(pairs_dir, heads)
    chosen = "given" if threshold is not None else "chosen on these pairs"
    df, base, threshold = score_pairs(loaded, pairs, threshold, size)
    rules = {"mask_rule": f"|fg_bg - bg| > {threshold} ({chosen})"} if threshold is not None else {}
    result = {**means(df, keys), "pairs": len(df), "checkpoint": str(checkpoint),
              "baseline": {**means(base, keys), **rules}, "per_pair": df.to_dict(orient="records")}
    out = Path(out)
    atomic_write_json(out, result)
    headlines = {head: keys[(head, HEADLINE[HEADS[head]])] for head in heads if keys[(head, HEADLINE[HEADS[head]])] in df}
    badness = sum(kind_of(head).error(df[key].fillna(0)) for head, key in headlines.items())
    worst = badness.sort_values(ascending=False, kind="stable").index[:WORST]
    rows = []
    for k in worst:
        pair = pairs[k]
        bg, fg_bg = _read_pair(pair)
        answers = predict_pair(loaded.model, loaded.contract, bg, fg_bg, loaded.device, size,
                               trust_of(pair.bg, pair.fg_bg))
        row = [bg, fg_bg]
        for head in headlines:
            truth = pair.targets.get(head, np.zeros(bg.shape[:2]))
            row += [truth.astype(np.float32), answers[head].astype(np.float32)]
        rows.append(tuple(row))
    labels = [f"{df['name'][k]}\n" + ", ".join(f"{key} {df[key][k]:.2f}" for key in headlines.values())
              for k in worst]
    columns = tuple(c for head in headlines for c in (head, f"{head}_pred"))
    atomic_write_bytes(out.with_name(f"{out.stem}_worst.png"), grid_png(rows, ("bg", "fg_bg", *columns), row_labels=labels))
    log.info("scored %d pairs: %s; wrote %s", len(df), ", ".join(
        f"{key} {df[key].mean():.4f}" for key in headlines.values()), out)
    return result
