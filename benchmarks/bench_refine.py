"""The alpha's refinement by the pair on a large photo: what `fgbg predict` runs after the network, against
solving every pixel, in one run.

    python benchmarks/bench_refine.py [--height 3000 --width 4000] [--rounds 3]

A synthetic pair: a smooth bg, and an ellipse over a third of the image with a soft edge 3 px wide, of its own
colour, composited exactly; the network's alpha is the true alpha. `refine_alpha` (fgbg.core.matting) solves the
soft edge and the sure region's border only; the baseline solves the same least squares at every pixel, with F
the object's colour everywhere (no distance transforms: a lower bound on what a whole-image solve costs); and
`refine_alpha` with 9 candidates for F (NEAR_CANDIDATES, a JPEG pair's) against a lossless pair's. The rounds
alternate the three; the medians and their ratios are printed.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
from timing import alternating_medians  # noqa: E402  (benchmarks/, beside this one)

from fgbg.core.matting import LOSSLESS, NEAR_CANDIDATES, refine_alpha, weighted_dot  # noqa: E402

COLOUR = np.float32([200, 60, 40])


def synthetic_pair(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bg, fg_bg, alpha): an ellipse with a 3 px soft edge over a smooth bg."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([rows / height * 255, cols / width * 255, np.full_like(rows, 90)], -1)
    radius = np.hypot((rows - height / 2) / (height / 3), (cols - width / 2) / (width / 3))  # 1 on the outline
    alpha = np.clip((1 - radius) * min(height, width) / 9 + 0.5, 0, 1)  # 3 px from 0 to 1
    fg_bg = alpha[..., None] * COLOUR + (1 - alpha[..., None]) * bg
    return bg.round().astype(np.uint8), fg_bg.round().astype(np.uint8), alpha


def solve_everywhere(bg: np.ndarray, fg_bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The baseline: the least-squares alpha at every pixel, F the object's colour."""
    mixed = (fg_bg.astype(np.float32) - bg).reshape(-1, 3)
    contrast = (COLOUR - bg.astype(np.float32)).reshape(-1, 3)
    solved = ((weighted_dot(mixed, contrast, LOSSLESS.chroma) + LOSSLESS.prior * alpha.reshape(-1))
              / (weighted_dot(contrast, contrast, LOSSLESS.chroma) + LOSSLESS.prior))
    return np.clip(solved, 0, 1).reshape(alpha.shape)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--width", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    bg, fg_bg, alpha = synthetic_pair(args.height, args.width)
    nine = LOSSLESS._replace(candidates=NEAR_CANDIDATES)
    runs = {"refine_alpha": refine_alpha, "refine_alpha, 9 candidates": lambda *pair: refine_alpha(*pair, nine),
            "every pixel solved": solve_everywhere}
    median = alternating_medians({name: partial(run, bg, fg_bg, alpha) for name, run in runs.items()}, args.rounds)
    soft = ((alpha > 1e-3) & (alpha < 1 - 1e-3)).mean()  # not float32's residues of 0 and 1
    nine_ratio = median["refine_alpha"] / median["refine_alpha, 9 candidates"]
    print(f"{args.width} x {args.height}, {soft:.2%} of the pixels soft: refine_alpha takes "
          f"{median['refine_alpha'] / median['every pixel solved']:.2f}x the time of solving every pixel; its "
          f"{len(LOSSLESS.candidates)} candidates take {nine_ratio:.2f}x the time of 9")


if __name__ == "__main__":
    main()
