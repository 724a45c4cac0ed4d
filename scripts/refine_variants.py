"""Variants of the alpha's refinement on a split, as stored and as JPEG files: what README "The sure region's
border", "F among candidates" and "Each kind of pair its own trust" report.

    python scripts/refine_variants.py --study border [--split val] [--priors 1000 3000 10000 30000] [--every 1]
    python scripts/refine_variants.py --study candidates [--split val] [--radii 2 3 4 6] [--every 1]
    python scripts/refine_variants.py --study trust [--split val] [--noise 2 4] [--every 1]
    python scripts/refine_variants.py --study edge [--split val] [--noise 2 4] [--every 1]

The network runs once per pair (as stored; with bg and fg_bg each round-tripped through a JPEG at evaluate's
`test_files` quality, refined as predict refines such files: fgbg.core.matting.HALF_CHROMA; and, with --noise,
with Gaussian noise of each level added to bg and fg_bg, as two photographs carry, refined as lossless pairs).
Its alpha is then refined as `predict` does (fgbg.core.matting.refine_alpha, the mask threshold as `keep`) in each
variant, each answer in 8 bits, its mask at the dataset's mask threshold.
- border: the sure region's border with each BORDER_PRIOR, with the border left at 1 as before (prior "none"),
  with the border at the network's own alpha (a prior that outweighs any colour), and with the default prior but
  no `keep`; and, with the border at 1, how much of the SAD lies on the border and the true alpha there;
- candidates: F from the nearest inner pixel alone (as before), and from the nearest inner pixels of the pixel and
  of 8 points on a circle of each radius around it, for both trusts;
- trust: the lossless pairs' prior weight (--lossless-priors) with 9, 17 or 25 candidates, and the JPEG files'
  (--half-chroma-priors) with 9 or 17;
- edge: each trust's sure threshold (0.9, 0.85) and floor (0.02, 0.01, 0.005 for lossless pairs, 0.02, 0.005 for
  JPEG files).
Prints, per variant, the mean mask IoU, and the alpha's SAD and Grad (fgbg.core.metrics.matte_metrics) with their
ratio to the mask's used as an alpha, as eval.json gives them.
"""

from __future__ import annotations

import argparse
import json
from typing import NamedTuple

import numpy as np
import torch
from mask_from_alpha import as_jpeg_file, iou  # scripts/, beside this one

from fgbg.core import matting
from fgbg.core.checkpoint import load_for_inference
from fgbg.core.contract import kind_of
from fgbg.core.matting import HALF_CHROMA, LEVELS, LOSSLESS, Trust, alpha_levels, as_written, refine_alpha, sure_border
from fgbg.core.metrics import matte_metrics
from fgbg.core.runtime import predict_padded
from fgbg.dataset.store import ComposedStore
from fgbg.evaluation.evaluate import stored_trust

NETWORK_ONLY = 1e12  # a prior weight that outweighs any colour: the border solves to the network's alpha


def refined(bg, fg_bg, network, trust, prior: float | None, keep: float) -> np.ndarray:
    """The 8-bit alpha of `refine_alpha` with the border's prior weight `prior` and the `trust` (its colour weights
    and F's candidates); prior None: every sure pixel 1, as before the border was solved (the soft edge's solve does
    not depend on the border's)."""
    alpha = refine_alpha(bg, fg_bg, network, trust, keep=keep,
                         border_prior=matting.BORDER_PRIOR if prior is None else prior)
    if prior is None:
        alpha[network >= trust.sure] = 1.0
    return as_written(alpha)


def ring(radius: float) -> tuple[tuple[int, int], ...]:
    """(0, 0) and 8 points on a circle of `radius` px around it, rounded to pixels: F's candidates."""
    turns = np.arange(8) * np.pi / 4
    return ((0, 0), *((round(radius * np.sin(t)), round(radius * np.cos(t))) for t in turns))


def positive(what: str):
    """An argparse type: a finite number above 0, `what` named in the error (a prior weight at 0 would solve a border
    pixel of the bg's colour to 0 / 0; an infinite one to inf / inf)."""
    def parse(text: str) -> float:
        value = float(text)
        if not (np.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text}: {what} must be a finite number above 0")
        return value
    return parse


def radius(text: str) -> float:
    """An argparse type: a ring's radius, a finite number of px, at least 1 (under 1 every point rounds to the pixel
    itself)."""
    value = float(text)
    if not (np.isfinite(value) and value >= 1):
        raise argparse.ArgumentTypeError(f"{text}: a ring's radius must be a finite number of px, at least 1")
    return value


def summary(answers: list[np.ndarray], truths: list[np.ndarray], masks: list[np.ndarray], threshold: int) -> str:
    ious = [iou(alpha_levels(a) >= threshold, m) for a, m in zip(answers, masks)]
    pred = torch.from_numpy(np.stack(answers))[:, None]
    binary = (alpha_levels(pred) >= threshold).float()
    truth = torch.from_numpy(np.stack(truths).astype(np.float32))[:, None]
    soft, hard = matte_metrics(pred, truth), matte_metrics(binary, truth)
    ratio = {k: float(soft[k].mean() / hard[k].mean()) for k in ("sad", "grad")}
    return (f"IoU {np.mean(ious):.4f}, SAD {float(soft['sad'].mean()):.4f} ({ratio['sad']:.3f}x), "
            f"Grad {float(soft['grad'].mean()):.4f} ({ratio['grad']:.3f}x)")


class Variant(NamedTuple):
    """One way to refine: the border's prior weight (None: the border at 1), the least alpha a border pixel keeps,
    and the trust for lossless pairs (as stored, and with noise) and for JPEG files; None: not tried on them."""

    border_prior: float | None
    keep: float
    lossless: Trust | None
    files: Trust | None


def variants(study: str, args, keep: float) -> dict[str, Variant]:
    default = matting.BORDER_PRIOR
    if study == "border":
        return {"none (the border at 1, before)": Variant(None, keep, LOSSLESS, HALF_CHROMA),
                **{f"{prior:g}": Variant(prior, keep, LOSSLESS, HALF_CHROMA) for prior in args.priors},
                "the network's own alpha": Variant(NETWORK_ONLY, keep, LOSSLESS, HALF_CHROMA),
                f"{default:g}, no keep": Variant(default, 0.0, LOSSLESS, HALF_CHROMA)}
    if study == "candidates":
        sets = {"the nearest inner pixel alone (before)": ((0, 0),),
                **{f"a ring of radius {radius:g}": ring(radius) for radius in args.radii}}
        return {name: Variant(default, keep, LOSSLESS._replace(candidates=points),
                              HALF_CHROMA._replace(candidates=points)) for name, points in sets.items()}
    if study == "edge":
        return {**{f"lossless: sure {sure:g}, floor {floor:g}":
                   Variant(default, keep, LOSSLESS._replace(sure=sure, floor=floor), None)
                   for sure in (0.9, 0.85) for floor in (0.02, 0.01, 0.005)},
                **{f"half chroma: sure {sure:g}, floor {floor:g}":
                   Variant(default, keep, None, HALF_CHROMA._replace(sure=sure, floor=floor))
                   for sure in (0.9, 0.85) for floor in (0.02, 0.005)}}
    sets = {"9 (3 px)": matting.NEAR_CANDIDATES, "17 (3 and 6 px)": tuple(dict.fromkeys(ring(3) + ring(6))),
            "25 (2, 4 and 6 px)": matting.WIDE_CANDIDATES}
    return {**{f"lossless: prior {prior:g}, candidates {name}":
               Variant(default, keep, LOSSLESS._replace(prior=prior, candidates=points), None)
               for prior in args.lossless_priors for name, points in sets.items()},
            **{f"half chroma: prior {prior:g}, candidates {name}":
               Variant(default, keep, None, HALF_CHROMA._replace(prior=prior, candidates=points))
               for prior in args.half_chroma_priors for name, points in list(sets.items())[:2]}}  # 25 cost IoU with 17


def noisy(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """The image with Gaussian noise of `sigma` 8-bit levels on each channel of each pixel, as a sensor adds."""
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).round().astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--split-file", default="dataset/split.json")
    ap.add_argument("--split", default="val", choices=("val", "test"))
    ap.add_argument("--study", default="border", choices=("border", "candidates", "trust", "edge"))
    ap.add_argument("--priors", type=positive("a prior weight"), nargs="+", default=[1000, 3000, 10000, 30000])
    ap.add_argument("--radii", type=radius, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--lossless-priors", type=positive("a prior weight"), nargs="+", default=[100, 30, 10, 3])
    ap.add_argument("--half-chroma-priors", type=positive("a prior weight"), nargs="+", default=[1000, 300, 100, 30])
    ap.add_argument("--noise", type=positive("a noise level"), nargs="*", default=[],
                    help="also refine the lossless pairs with Gaussian noise of these levels on bg and fg_bg")
    ap.add_argument("--every", type=int, default=1, help="take every n-th sample of the split")
    args = ap.parse_args()
    loaded = load_for_inference(args.checkpoint, "cpu")
    store = ComposedStore(args.dataset)
    threshold = store.mask_threshold
    tried = variants(args.study, args, threshold / LEVELS)
    stored = stored_trust(store)  # as evaluate refines the pairs as stored: HALF_CHROMA where fg_bg was composed as JPEG
    conditions = {"as stored": "files" if stored == HALF_CHROMA else "lossless", "as JPEG files": "files",
                  **{f"with noise {sigma:g}": "lossless" for sigma in args.noise}}
    rng = np.random.default_rng(0)
    answers: dict[tuple[str, str], list[np.ndarray]] = {}
    truths, masks = [], []
    border_sad, border_truth = [], []  # with the border at 1: the SAD on it, and its true alpha
    for i in json.loads(open(args.split_file).read())[args.split][:: args.every]:
        sample = store.sample(i)
        truths.append(sample.alpha)
        masks.append(sample.mask)
        pairs = {"as stored": (sample.bg, sample.fg_bg),
                 "as JPEG files": (as_jpeg_file(sample.bg), as_jpeg_file(sample.fg_bg)),
                 **{f"with noise {sigma:g}": (noisy(sample.bg, sigma, rng), noisy(sample.fg_bg, sigma, rng))
                    for sigma in args.noise}}
        for condition, (bg, fg_bg) in pairs.items():
            outputs = predict_padded(loaded.model, loaded.contract.encode(bg, fg_bg)[None].to(loaded.device))
            network = kind_of("alpha").answer(outputs["alpha"])[0, 0].cpu().numpy()
            if condition == "as stored":
                _, border = sure_border(network >= stored.sure)  # the pixels refine_alpha solves as the border
                border_sad.append((1 - sample.alpha[border]).sum() / 1000)  # the border at 1
                border_truth.extend(sample.alpha[border].tolist())
            for name, variant in tried.items():
                trust = getattr(variant, conditions[condition])
                if trust is not None:
                    answers.setdefault((name, condition), []).append(
                        refined(bg, fg_bg, network, trust, variant.border_prior, variant.keep))
    print(f"{args.split}, {len(truths)} samples; with the border at 1, its SAD {np.mean(border_sad):.4f} an image "
          f"as stored, its true alpha {np.mean(border_truth):.3f} on average; {args.study}:")
    for name in tried:
        print(f"  {name}: " + "; ".join(f"{condition} {summary(answers[name, condition], truths, masks, threshold)}"
                                        for condition in conditions if (name, condition) in answers))


if __name__ == "__main__":
    main()
