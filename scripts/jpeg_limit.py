"""How much mask IoU two JPEG files cost a per-pixel solve that knows the object's true colours and has no
prior: a reference for the refinement's `test_files` gap, not a bound on it.

    python scripts/jpeg_limit.py [--split val] [--every 2]

For each sample of the split (every `--every`-th), the object's true colour F is recovered from the pair as
stored and the true alpha, F = (I - (1 - alpha) B) / alpha where alpha >= 0.05, and elsewhere the nearest such
pixel's. Then, on the pair as stored and on bg and fg_bg each round-tripped through a JPEG at evaluate's
`test_files` quality (PIL's 4:2:0 chroma), each pixel within 2 px of the outline (a 5 x 5 square) where F and B
differ by at least 1 level (|F - B|^2 >= 1, unweighted, the same pixels for both weightings) gets the
least-squares alpha of I = alpha F + (1 - alpha) B with that F and no prior: dot(I - B, F - B) / dot(F - B, F - B),
the dot products weighting colour off the luma axis as fgbg.core.matting does (1: LOSSLESS; 0.1: HALF_CHROMA, how
`predict` trusts such files). Every other pixel keeps the true mask. The mask is that alpha in 8 bits at the
dataset's mask_threshold. Prints the mean IoU of each, and the share of the band's pixels solved.

As stored the solve returns the true alpha by construction (F was recovered from the same pixels): a check of
the code, not of the data. As files it is generous (the true F; the true mask off the band and where F = B) and
weak (no prior: a low-contrast pixel is a coin flip in the codecs' noise, where `predict` leans on the network),
so it is neither an upper nor a lower bound for a refinement with a prior.
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
from mask_from_alpha import as_jpeg_file, iou  # scripts/, beside this one
from scipy import ndimage

from fgbg.core.matting import HALF_CHROMA, LOSSLESS, alpha_levels, weighted_dot
from fgbg.dataset.store import ComposedStore

KNOWN_FROM = 0.05  # alpha from which F is recovered from the stored pair
BAND = 2  # px each side of the outline that are solved


def true_colour(bg: np.ndarray, fg_bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H, W, 3 float32: the object's colour where alpha >= KNOWN_FROM, the nearest such pixel's elsewhere."""
    a = alpha[..., None]
    colour = (fg_bg - (1 - a) * bg) / np.maximum(a, KNOWN_FROM)
    known = alpha >= KNOWN_FROM
    if not known.any():
        return colour
    _, (rows, cols) = ndimage.distance_transform_edt(~known, return_indices=True)
    return colour[rows, cols]


def solved_alpha(bg: np.ndarray, fg_bg: np.ndarray, colour: np.ndarray, chroma: float) -> tuple[np.ndarray, np.ndarray]:
    """(the least-squares alpha with F = colour, no prior, clipped to [0, 1]; where F and B differ by 1 level or more)."""
    mixed, contrast = fg_bg - bg, colour - bg
    informative = (contrast**2).sum(-1) >= 1.0  # unweighted: the same pixels whichever the weighting
    den = np.where(informative, weighted_dot(contrast, contrast, chroma), 1.0)
    return np.clip(weighted_dot(mixed, contrast, chroma) / np.maximum(den, 1e-6), 0, 1), informative


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--split-file", default="dataset/split.json")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--every", type=int, default=2)
    args = ap.parse_args()
    store = ComposedStore(args.dataset)
    ids = json.loads(open(args.split_file).read())[args.split][:: args.every]
    kernel = np.ones((2 * BAND + 1, 2 * BAND + 1), np.uint8)
    scores: dict[str, list[float]] = {}
    solved_share = []
    for i in ids:
        sample = store.sample(i)
        alpha, mask = sample.alpha.astype(np.float32), sample.mask
        bg, fg_bg = sample.bg.astype(np.float32), sample.fg_bg.astype(np.float32)
        colour = true_colour(bg, fg_bg, alpha)
        band = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
        files = (as_jpeg_file(sample.bg).astype(np.float32), as_jpeg_file(sample.fg_bg).astype(np.float32))
        for pair_name, pair in (("as stored", (bg, fg_bg)), ("as JPEG files", files)):
            for trust_name, trust in (("LOSSLESS", LOSSLESS), ("HALF_CHROMA", HALF_CHROMA)):
                solved, informative = solved_alpha(*pair, colour, trust.chroma)
                solved_share.append((band & informative).sum() / max(band.sum(), 1))
                answer = np.where(band & informative, alpha_levels(solved) >= store.mask_threshold, mask)
                scores.setdefault(f"{pair_name}, colours weighed {trust_name}", []).append(iou(answer, mask))
    print(f"{args.split}: {len(ids)} samples; {np.mean(solved_share):.1%} of the band's pixels solved (the rest: the "
          "true mask); per-pixel solve with the true F and no prior, mask IoU:")
    for name, values in scores.items():
        print(f"  {name}: {np.mean(values):.4f}")


if __name__ == "__main__":
    main()
