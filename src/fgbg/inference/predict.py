"""`fgbg predict`: a trained model on your own (bg, fg_bg) pairs (ONNX export: fgbg.inference.onnx).

A pair is two images of the same size, turned upright by their EXIF orientation. The
network is fully convolutional, so it runs on the whole non-square image at its native
resolution, padded (edge pixels repeated) to a multiple of the model's side_multiple and cropped back.
With `size`, the pair is first scaled (area when shrinking, bilinear when enlarging) so
that its shorter side is `size`, aspect kept, and the outputs (mask logits and depth,
bilinear) are resized back: less detail, less time and memory. For each pair it writes a file
per head (fgbg.core.heads, `WRITERS` by kind): a binary head's as 0 / 255, a unit head's as 16 bits
with a preview, a matte head's as 8 bits, and with an alpha head the cut-out:
    <stem>_mask.png           0 / 255
    <stem>_depth.png          16-bit, depth = value / 65535 (0 = nearest, 1 = farthest)
    <stem>_depth_preview.png  colour-mapped depth (magma, near = bright)
    <stem>_alpha.png          8-bit alpha, value / 255, refined on its soft edge by the pair, as far as its
                              files kept their colour (fgbg.core.matting.trust_of)
    <stem>_cutout.png         RGBA: the object alone, its colours recovered from the known bg (fgbg.core.matting)
Folders are paired by file stem; a bg without a fg_bg (or the reverse) is an error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fgbg.core.checkpoint import load_for_inference
from fgbg.core.contract import KINDS, kind_of
from fgbg.core.errors import InputError
from fgbg.core.imageio import (
    atomic_save_image,
    depth_to_uint16,
    image_files,
    paired_stems,
    read_image,
)
from fgbg.core.matting import alpha_levels, cutout, trust_of
from fgbg.core.plots import coloured
from fgbg.core.progress import progress
from fgbg.core.runtime import predict_pair

log = logging.getLogger(__name__)


def _binary(out: Path, name: str, answer: np.ndarray) -> None:
    atomic_save_image(out / f"{name}.png", answer.astype(np.uint8) * 255)


def _unit(out: Path, name: str, answer: np.ndarray) -> None:
    atomic_save_image(out / f"{name}.png", depth_to_uint16(answer))
    atomic_save_image(out / f"{name}_preview.png", coloured(answer, KINDS["unit"].cmap))


def _matte(out: Path, name: str, answer: np.ndarray) -> None:
    atomic_save_image(out / f"{name}.png", alpha_levels(answer).astype(np.uint8))


WRITERS = {"binary": _binary, "unit": _unit, "matte": _matte}  # head kind -> (folder, file stem, answer H, W)


def write_outputs(out: Path, stem: str, answers: dict[str, np.ndarray], bg: np.ndarray, fg_bg: np.ndarray) -> None:
    """Each head's answer (H, W) as its file(s), and the cut-out where there is an alpha; see module doc."""
    for head, answer in answers.items():
        WRITERS[kind_of(head).name](out, f"{stem}_{head}", answer)
    if "alpha" in answers:
        atomic_save_image(out / f"{stem}_cutout.png", cutout(bg, fg_bg, answers["alpha"]))


def _pairs(bg: Path, fg_bg: Path) -> list[tuple[str, Path, Path]]:
    if bg.is_file() and fg_bg.is_file():
        return [(fg_bg.stem, bg, fg_bg)]
    if bg.is_dir() and fg_bg.is_dir():
        bgs, fg_bgs = image_files(bg), image_files(fg_bg)
        stems = paired_stems([bgs, fg_bgs], "name each bg and its fg_bg alike (street1.jpg and street1.png)")
        if not stems:
            raise InputError(f"{bg}: no .jpg or .png images to predict on")
        return [(stem, bgs[stem], fg_bgs[stem]) for stem in stems]
    for path in (bg, fg_bg):
        if not path.exists():
            raise InputError(f"no such file: {path}")
    raise InputError(f"give two image files or two folders, got {bg} and {fg_bg}")


def predict_paths(checkpoint: str | Path, bg: str | Path, fg_bg: str | Path, out: str | Path, device: str = "auto",
                  size: int | None = None) -> int:
    """Predict every pair (see module doc) into `out`; returns the number of pairs."""
    loaded = load_for_inference(checkpoint, device)
    pairs = _pairs(Path(bg), Path(fg_bg))
    out = Path(out)
    for stem, bg_path, fg_bg_path in progress(pairs, desc="predict", unit="pair", disable=len(pairs) == 1):
        bg_img, fg_bg_img = read_image(bg_path, "RGB"), read_image(fg_bg_path, "RGB")
        if bg_img.shape != fg_bg_img.shape:
            raise InputError(f"{bg_path} is {bg_img.shape[1]}x{bg_img.shape[0]} but {fg_bg_path} is "
                             f"{fg_bg_img.shape[1]}x{fg_bg_img.shape[0]}; a bg and its fg_bg must be the same size")
        answers = predict_pair(loaded.model, loaded.contract, bg_img, fg_bg_img, loaded.device, size,
                               trust_of(bg_path, fg_bg_path))
        write_outputs(out, stem, answers, bg_img, fg_bg_img)
    log.info("wrote predictions for %d pair(s) into %s", len(pairs), out)
    return len(pairs)
