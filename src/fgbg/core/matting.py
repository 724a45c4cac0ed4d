"""The alpha refined by the compositing equation, and the cut-out: the object alone, from a pair and its alpha.

Refining (`refine_alpha`): where the network's alpha is soft, near the object, each pixel's alpha is
solved from the pair itself. I = alpha F + (1 - alpha) B with B known. A pixel the network is sure of
(alpha at or above the trust's `sure`) is the object's: inside the sure region its alpha is 1, and
I = F there. Within REACH px of it, every pixel whose alpha is above the trust's `floor` is solved. F is taken
from the inner pixels, one pixel or more inside the sure region (its border pixels still mix in some
bg), unless the nearest is more than INNER_SLACK further than the nearest sure pixel, as for a part too
thin to have inner pixels: then F is the nearest sure pixel's colour. Of the inner pixels nearest to the
pixel and to the trust's candidate points around it, F is the colour whose line from B passes closest to I:
on a textured object the nearest inner pixel is often of another colour than the one that mixed into
the edge (sampling-based matting, as Wang and Cohen's robust matting and Gastal and Oliveira's shared
sampling choose among sampled colours; here B is known, so one line per candidate). Per pixel, the
least-squares alpha of |I - B - alpha (F - B)|^2 + prior (alpha - alpha_net)^2, that is
    alpha = ((I - B) . (F - B) + prior alpha_net) / (|F - B|^2 + prior),
clipped to [0, 1], with the trust's prior. Where the object's colour differs from the bg's this is the
alpha the pixels say; where they are alike (|F - B|^2 small against the prior) it stays the network's.
This is known-background matting (the difference matting of Smith and Blinn, 1996) with the
network's alpha as the prior.
The sure region's border pixels (those a 3 x 3 erosion removes; the image's edge does not erode, so an
object cut by the frame has no border there) are where the object's edge begins to soften, so they are
solved too, with F from the inner pixels as above and the network's alpha weighing BORDER_PRIOR, whatever
the trust: an object's alpha there is mostly near 1, and the network was sure. A border pixel with no
inner pixel within INNER_SLACK, a thin part's, has no F but its own colour, and stays 1. A border pixel
keeps at least `keep`, the mask threshold: the pair may soften a pixel the network is sure of, but not
take it out of the mask.

How far the pair's colours are trusted depends on how its files stored them (`trust_of`). Most JPEG
files, cameras' and PIL's alike, keep the colour at half resolution (4:2:0 or 4:2:2 chroma) and the
luma whole, so on an object's edge the colour is smeared over about two pixels while the luma is
not. For such a pair (HALF_CHROMA) the part of each difference that no luma change carries (all but
its component along the luma axis, BT.601's (0.299, 0.587, 0.114)) weighs 0.1 in the dot products
above, the network's alpha weighs more, and F has fewer candidates (more cost such files' mask some
IoU on val). For pairs stored without loss (LOSSLESS) every direction of colour weighs the
same, and the sure threshold and the floor are lower: with no codec halo to keep out, more of the
edge is solved. Both were chosen on the val split (README "Each kind of pair its own trust").

Where the alpha is soft, a pixel of fg_bg mixes the object's colour F with the bg's B:
I = alpha F + (1 - alpha) B. The bg is known, so F = (I - (1 - alpha) B) / alpha, clipped to
[0, 255]: the bg colour that bleeds into a soft edge is taken out. The division multiplies the
noise of I and B by 1 / alpha, so below RECOVER_FROM F is I itself (a nearly transparent pixel,
drawn at that alpha); where alpha is 0 there is no object, and F is 0.

The alpha a user gets is written in 8 bits (`as_written`: k / 255), and it is scored so: the network's
sigmoid never reaches 0, and its residue on the background (0.0015 is common) would add to a sum over the
image such as SAD what the written file does not hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image, JpegImagePlugin

RECOVER_FROM = 0.1  # the alpha from which F is recovered: noise grows by at most 1 / 0.1 = 10x
INNER_SLACK = 1.5  # px: an inner pixel further than this beyond the nearest sure one belongs to another part
REACH = 8  # px from a sure pixel within which the alpha is refined (the soft edge)
BORDER_PRIOR = 1000.0  # weight of the network's alpha on the sure region's border (32 levels rms), whatever the trust
NEAR_CANDIDATES = ((0, 0), (3, 0), (-3, 0), (0, 3), (0, -3), (2, 2), (2, -2), (-2, 2), (-2, -2))  # (dy, dx): points
# whose nearest inner pixels are F's candidates: the pixel itself and 8 around it about 3 px away
WIDE_CANDIDATES = ((0, 0), (0, 2), (1, 1), (2, 0), (1, -1), (0, -2), (-1, -1), (-2, 0), (-1, 1),  # and 8 about 2,
                   (0, 4), (3, 3), (4, 0), (3, -3), (0, -4), (-3, -3), (-4, 0), (-3, 3),  # 4
                   (0, 6), (4, 4), (6, 0), (4, -4), (0, -6), (-4, -4), (-6, 0), (-4, 4))  # and 6 px away
LUMA_AXIS = np.float32([0.299, 0.587, 0.114]) / np.linalg.norm([0.299, 0.587, 0.114])  # BT.601, as JPEG's Y


class Trust(NamedTuple):
    """How refine_alpha trusts a pair's colours against the network's alpha: their weights, the candidates F is
    sought among, and where it solves (from the floor up to the sure threshold)."""

    chroma: float  # weight of the colour difference that no luma change carries (1: as much as the luma's)
    prior: float  # weight of the network's alpha on the soft edge, in squared 8-bit levels summed over RGB
    candidates: tuple[tuple[int, int], ...]  # (dy, dx): the points whose nearest inner pixels are F's candidates
    sure: float = 0.9  # the network's alpha from which a pixel is surely the object's: inside the sure region alpha 1,
    # its colour F
    floor: float = 0.02  # alpha at or below which the network's "no object" stands: a JPEG's codec noise in I - B
    # would add a halo


LOSSLESS = Trust(chroma=1.0, prior=10.0, candidates=WIDE_CANDIDATES, sure=0.85, floor=0.005)  # PNG, or a JPEG that
# kept its colour whole
HALF_CHROMA = Trust(chroma=0.1, prior=100.0, candidates=NEAR_CANDIDATES)  # a JPEG with its colour at half
# resolution (4:2:0, 4:2:2), as most photos: each weight chosen on val (README "Each kind of pair its own trust")
LEVELS = 255  # an alpha is written as 8 bits: k / LEVELS
CHECKER = 8  # px per square of the checkerboard that shows a cut-out's transparency
CHECKER_LEVELS = (204, 255)  # its two greys


def trust_of(bg: str | Path, fg_bg: str | Path) -> Trust:
    """HALF_CHROMA when either file of a pair is a JPEG with its colour at half resolution, else LOSSLESS."""
    def halved(path) -> bool:
        with Image.open(path) as img:  # the header alone
            if not isinstance(img, JpegImagePlugin.JpegImageFile):  # an MPO (phones' multi-picture JPEG) is one
                return False
            (_, *luma, _), *others = img.layer  # each component's (id, horizontal, vertical sampling, table)
            return any(sampling != luma for _, *sampling, _ in others)  # 4:2:0, 4:2:2, 4:4:0, 4:1:1
    return HALF_CHROMA if halved(bg) or halved(fg_bg) else LOSSLESS


def weighted_dot(a: np.ndarray, b: np.ndarray, chroma: float) -> np.ndarray:
    """N, 3 each -> N: a . b with the part of a and b off the luma axis weighted by `chroma` (1: a . b)."""
    la, lb = a @ LUMA_AXIS, b @ LUMA_AXIS
    return la * lb + chroma * ((a * b).sum(-1) - la * lb)


def _nearest(where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An H, W bool region -> each pixel's distance to the region's nearest pixel, and that pixel's index in
    `image[where]` (raster order), H, W each."""
    dist, label = cv2.distanceTransformWithLabels((~where).astype(np.uint8), cv2.DIST_L2, 5,
                                                  labelType=cv2.DIST_LABEL_PIXEL)  # labels 1, 2, ...
    return dist, label - 1


def sure_border(sure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An H, W bool sure region -> (its inner pixels, its border): the border is what a 3 x 3 erosion removes (the
    image's edge does not erode, so an object cut by the frame has no border there)."""
    inner = cv2.erode(sure.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return inner, sure & ~inner


def refine_alpha(bg: np.ndarray, fg_bg: np.ndarray, alpha: np.ndarray, trust: Trust = LOSSLESS,
                 keep: float = 0.5, border_prior: float = BORDER_PRIOR) -> np.ndarray:
    """H, W, 3 uint8 each and the network's alpha H, W in [0, 1] -> the alpha refined on its soft edge and on the
    sure region's border (see module doc), float32; a border pixel keeps at least `keep` in [0, 1] (predict passes
    the mask threshold, so the mask keeps every pixel the network is sure of; the default 0.5 is written as level
    128, 127.5 rounding to even); `border_prior` weighs the network's alpha on the border (scripts/refine_variants.py
    tries others), and the `trust` weighs the pair's colours and names F's candidates; unchanged where no pixel is
    surely the object's."""
    if not 0 <= keep <= 1:
        raise ValueError(f"refine_alpha: keep = {keep} is not an alpha; give one in [0, 1] (the mask threshold / 255)")
    _check(trust, border_prior)
    alpha = np.asarray(alpha, np.float32)
    sure = alpha >= trust.sure
    if not sure.any():
        return alpha
    dist, nearest = _nearest(sure)
    inner, border = sure_border(sure)
    edge = ~sure & (dist <= REACH) & (alpha > trust.floor)  # solved there alone: a 12 MP photo's edge is a small share
    solve = edge | border
    image, back = fg_bg[solve].astype(np.float32), bg[solve].astype(np.float32)
    mixed = image - back  # I - B
    colour = fg_bg[sure][nearest[solve]].astype(np.float32)  # F: the nearest sure pixel's colour, or
    near = np.zeros(len(colour), bool)  # an inner pixel's near, unless the part is too thin to have any
    if inner.any():
        inner_dist, inner_nearest = _nearest(inner)
        near = inner_dist[solve] <= dist[solve] + INNER_SLACK
        colour[near] = _best_candidate(fg_bg[inner].astype(np.float32), inner_nearest, solve, near, mixed, back,
                                       trust.chroma, trust.candidates)
    contrast = colour - back  # F - B
    prior = np.where(border[solve], border_prior, trust.prior).astype(np.float32)
    solved = ((weighted_dot(mixed, contrast, trust.chroma) + prior * alpha[solve])
              / (weighted_dot(contrast, contrast, trust.chroma) + prior))
    refined = alpha.copy()
    refined[sure] = 1.0  # the object's, as F assumes
    refined[solve] = np.where(border[solve] & ~near, 1.0, np.clip(solved, 0, 1))  # a thin part's border has no F
    refined[border] = np.maximum(refined[border], keep)
    return refined


def _check(trust: Trust, border_prior: float) -> None:
    """A clear error for weights that would solve to NaN or ignore the colours, and for candidates that are not
    a non-empty sequence of (dy, dx) int pairs."""
    if not (0 <= trust.chroma <= 1 and 0 < trust.prior < np.inf and 0 < border_prior < np.inf):
        raise ValueError(f"refine_alpha: chroma {trust.chroma}, prior {trust.prior}, border prior {border_prior}: give "
                         "a chroma weight in [0, 1] and finite priors above 0 (at 0 a pixel of the bg's colour solves "
                         "to 0 / 0)")
    if not 0 <= trust.floor < trust.sure <= 1:
        raise ValueError(f"refine_alpha: the trust's floor {trust.floor} and sure {trust.sure}: give 0 <= floor < sure "
                         "<= 1 (alphas)")
    points = trust.candidates
    if not (isinstance(points, (tuple, list)) and points
            and all(isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(v, (int, np.integer)) for v in p)
                    for p in points)):
        raise ValueError(f"refine_alpha: the trust's candidates {points!r} are not a non-empty sequence of (dy, dx) "
                         "int pairs; give at least ((0, 0),), the pixel's own nearest inner pixel "
                         "(matting.NEAR_CANDIDATES are the pixel and 8 points 3 px around it)")


def _best_candidate(inner_colours: np.ndarray, inner_nearest: np.ndarray, solve: np.ndarray, near: np.ndarray,
                    mixed: np.ndarray, back: np.ndarray, chroma: float, candidates) -> np.ndarray:
    """F for the solved pixels that have an inner pixel near: of the `candidates`' inner pixels (the nearest inner
    pixel of each point (dy, dx) from the solved pixel; (0, 0) first), the colour whose line from B passes closest to I,
    |I - B - a (F - B)|^2 least at its own best a in [0, 1] (the dot products weighted as `weighted_dot`)."""
    ys, xs = np.nonzero(solve)
    ys, xs, mixed, back = ys[near], xs[near], mixed[near], back[near]
    h, w = inner_nearest.shape
    best, chosen = np.full(len(ys), np.inf, np.float32), np.zeros((len(ys), 3), np.float32)
    for dy, dx in candidates:
        colour = inner_colours[inner_nearest[np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)]]
        contrast = colour - back  # F - B
        a = np.clip(weighted_dot(mixed, contrast, chroma) / np.maximum(weighted_dot(contrast, contrast, chroma), 1e-6),
                    0, 1)
        miss = mixed - a[:, None] * contrast
        residual = weighted_dot(miss, miss, chroma)
        better = residual < best  # ties keep the earlier candidate: the pixel's own nearest first
        best, chosen = np.where(better, residual, best), np.where(better[:, None], colour, chosen)
    return chosen


def alpha_levels(alpha):
    """An alpha (numpy array or torch tensor, any shape) -> its 8-bit levels as written, round(255 a) (ties to
    even), as floats: the one rounding of the file, the cut-out's opacity, the score and the mask (runtime.mask_of)."""
    return (alpha.clip(0, 1) * LEVELS).round()


def as_written(alpha):
    """An alpha (numpy array or torch tensor, any shape) at the 8-bit levels predict writes: round(255 a) / 255."""
    return alpha_levels(alpha) / LEVELS


def foreground(bg: np.ndarray, fg_bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H, W, 3 uint8 each and alpha H, W in [0, 1] -> the object's colours F, H, W, 3 uint8 (see module doc)."""
    a = np.asarray(alpha, np.float32)[..., None]
    image = fg_bg.astype(np.float32)
    mixed = image - (1 - a) * bg.astype(np.float32)
    colour = np.divide(mixed, a, out=image.copy(), where=a >= RECOVER_FROM)  # below it: I
    colour[np.broadcast_to(a <= 0, colour.shape)] = 0
    return np.clip(np.round(colour), 0, 255).astype(np.uint8)


def cutout(bg: np.ndarray, fg_bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """H, W, 4 uint8 RGBA: the object's recovered colours, its alpha as opacity."""
    a = alpha_levels(np.asarray(alpha)).astype(np.uint8)
    return np.concatenate([foreground(bg, fg_bg, alpha), a[..., None]], axis=2)


def on_checkerboard(rgba: np.ndarray, square: int = CHECKER) -> np.ndarray:
    """H, W, 4 uint8 -> H, W, 3 uint8: the cut-out over a grey checkerboard, as image editors show transparency."""
    h, w = rgba.shape[:2]
    light = ((np.arange(h)[:, None] // square + np.arange(w)[None, :] // square) % 2).astype(bool)
    board = np.where(light, CHECKER_LEVELS[1], CHECKER_LEVELS[0]).astype(np.float32)[..., None]
    a = rgba[..., 3:4].astype(np.float32) / 255
    return np.round(a * rgba[..., :3] + (1 - a) * board).astype(np.uint8)
