"""Variants of the alpha's refinement on a split, as stored and as JPEG files: what README "The sure region's
border" and "F among candidates" report.

    python scripts/refine_variants.py --study border [--split val] [--priors 1000 3000 10000 30000] [--every 1]
    python scripts/refine_variants.py --study candidates [--split val] [--radii 2 3 4 6] [--every 1]

The network runs once per pair (as stored, and with bg and fg_bg each round-tripped through a JPEG at evaluate's
`test_files` quality, refined as predict refines such files: fgbg.core.matting.HALF_CHROMA). Its alpha is then
refined as `predict` does (fgbg.core.matting.refine_alpha, the mask threshold as `keep`) in each variant, each
answer in 8 bits, its mask at the dataset's mask threshold.
- border: the sure region's border with each BORDER_PRIOR, with the border left at 1 as before (prior "none"),
  with the border at the network's own alpha (a prior that outweighs any colour), and with the default prior but
  no `keep`; and, with the border at 1, how much of the SAD lies on the border and the true alpha there;
- candidates: F from the nearest inner pixel alone (as before), from the default CANDIDATES, and from the nearest
  inner pixels of the pixel and of 8 points on a circle of each radius around it.
Prints, per variant, the mean mask IoU, and the alpha's SAD and Grad (fgbg.core.metrics.matte_metrics) with their
ratio to the mask's used as an alpha, as eval.json gives them.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from mask_from_alpha import as_jpeg_file, iou  # scripts/, beside this one

from fgbg.core import matting
from fgbg.core.checkpoint import load_for_inference
from fgbg.core.contract import kind_of
from fgbg.core.matting import HALF_CHROMA, LEVELS, LOSSLESS, alpha_levels, as_written, refine_alpha, sure_border
from fgbg.core.metrics import matte_metrics
from fgbg.core.runtime import predict_padded
from fgbg.dataset.store import ComposedStore

NETWORK_ONLY = 1e12  # a prior weight that outweighs any colour: the border solves to the network's alpha


def refined(bg, fg_bg, network, trust, prior: float | None, keep: float,
            candidates=matting.CANDIDATES) -> np.ndarray:
    """The 8-bit alpha of `refine_alpha` with the border's prior weight `prior` and F's `candidates`; prior None:
    every sure pixel 1, as before the border was solved (the soft edge's solve does not depend on the border's)."""
    alpha = refine_alpha(bg, fg_bg, network, trust, keep=keep,
                         border_prior=matting.BORDER_PRIOR if prior is None else prior, candidates=candidates)
    if prior is None:
        alpha[network >= matting.SURE] = 1.0
    return as_written(alpha)


def ring(radius: float) -> tuple[tuple[int, int], ...]:
    """(0, 0) and 8 points on a circle of `radius` px around it, rounded to pixels: F's candidates."""
    turns = np.arange(8) * np.pi / 4
    return ((0, 0), *((round(radius * np.sin(t)), round(radius * np.cos(t))) for t in turns))


def positive(what: str):
    """An argparse type: a number above 0, `what` named in the error (a prior weight at 0 would solve a border pixel
    of the bg's colour to 0 / 0; a ring of radius 0 is the pixel alone)."""
    def parse(text: str) -> float:
        value = float(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text}: {what} must be above 0")
        return value
    return parse


def summary(answers: list[np.ndarray], truths: list[np.ndarray], masks: list[np.ndarray], threshold: int) -> str:
    ious = [iou(alpha_levels(a) >= threshold, m) for a, m in zip(answers, masks)]
    pred = torch.from_numpy(np.stack(answers))[:, None]
    binary = (alpha_levels(pred) >= threshold).float()
    truth = torch.from_numpy(np.stack(truths).astype(np.float32))[:, None]
    soft, hard = matte_metrics(pred, truth), matte_metrics(binary, truth)
    ratio = {k: float(soft[k].mean() / hard[k].mean()) for k in ("sad", "grad")}
    return (f"IoU {np.mean(ious):.4f}, SAD {float(soft['sad'].mean()):.4f} ({ratio['sad']:.3f}x), "
            f"Grad {float(soft['grad'].mean()):.4f} ({ratio['grad']:.3f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--split-file", default="dataset/split.json")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--study", default="border", choices=("border", "candidates"))
    ap.add_argument("--priors", type=positive("a prior weight"), nargs="+", default=[1000, 3000, 10000, 30000])
    ap.add_argument("--radii", type=positive("a ring's radius in px"), nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--every", type=int, default=1, help="take every n-th sample of the split")
    args = ap.parse_args()
    loaded = load_for_inference(args.checkpoint, "cpu")
    store = ComposedStore(args.dataset)
    threshold = store.mask_threshold
    keep = threshold / LEVELS
    default = matting.BORDER_PRIOR
    if args.study == "border":
        variants = {"none (the border at 1, before)": (None, keep, matting.CANDIDATES),
                    **{f"{prior:g}": (prior, keep, matting.CANDIDATES) for prior in args.priors},
                    "the network's own alpha": (NETWORK_ONLY, keep, matting.CANDIDATES),
                    f"{default:g}, no keep": (default, 0.0, matting.CANDIDATES)}
    else:
        variants = {"the nearest inner pixel alone (before)": (default, keep, ((0, 0),)),
                    "CANDIDATES (the default)": (default, keep, matting.CANDIDATES),
                    **{f"a ring of radius {radius:g}": (default, keep, ring(radius)) for radius in args.radii}}
    answers: dict[tuple[str, bool], list[np.ndarray]] = {}
    truths, masks = [], []
    border_sad, border_truth = [], []  # with the border at 1: the SAD on it, and its true alpha
    for i in json.loads(open(args.split_file).read())[args.split][:: args.every]:
        sample = store.sample(i)
        truths.append(sample.alpha)
        masks.append(sample.mask)
        for files, (bg, fg_bg) in ((False, (sample.bg, sample.fg_bg)),
                                   (True, (as_jpeg_file(sample.bg), as_jpeg_file(sample.fg_bg)))):
            outputs = predict_padded(loaded.model, loaded.contract.encode(bg, fg_bg)[None].to(loaded.device))
            network = kind_of("alpha").answer(outputs["alpha"])[0, 0].cpu().numpy()
            if not files:
                _, border = sure_border(network >= matting.SURE)  # the pixels refine_alpha solves as the border
                border_sad.append((1 - sample.alpha[border]).sum() / 1000)  # the border at 1
                border_truth.extend(sample.alpha[border].tolist())
            for name, (prior, keep_from, candidates) in variants.items():
                trust = HALF_CHROMA if files else LOSSLESS
                answers.setdefault((name, files), []).append(
                    refined(bg, fg_bg, network, trust, prior, keep_from, candidates))
    print(f"{args.split}, {len(truths)} samples; with the border at 1, its SAD {np.mean(border_sad):.4f} an image "
          f"as stored, its true alpha {np.mean(border_truth):.3f} on average; {args.study}:")
    for name in variants:
        print(f"  {name}: as stored {summary(answers[name, False], truths, masks, threshold)}; "
              f"as JPEG files {summary(answers[name, True], truths, masks, threshold)}")


if __name__ == "__main__":
    main()
