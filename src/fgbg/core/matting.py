"""The cut-out: the object alone, from a pair and its alpha.

Where the alpha is soft, a pixel of fg_bg mixes the object's colour F with the bg's B:
I = alpha F + (1 - alpha) B. The bg is known, so F = (I - (1 - alpha) B) / alpha, clipped to
[0, 255]: the bg colour that bleeds into a soft edge is taken out. The division multiplies the
noise of I and B by 1 / alpha, so below RECOVER_FROM F is I itself (a nearly transparent pixel,
drawn at that alpha); where alpha is 0 there is no object, and F is 0.
"""

from __future__ import annotations

import numpy as np

RECOVER_FROM = 0.1  # the alpha from which F is recovered: noise grows by at most 1 / 0.1 = 10x
CHECKER = 8  # px per square of the checkerboard that shows a cut-out's transparency
CHECKER_LEVELS = (204, 255)  # its two greys


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
    a = np.round(np.clip(alpha, 0, 1) * 255).astype(np.uint8)
    return np.concatenate([foreground(bg, fg_bg, alpha), a[..., None]], axis=2)


def on_checkerboard(rgba: np.ndarray, square: int = CHECKER) -> np.ndarray:
    """H, W, 4 uint8 -> H, W, 3 uint8: the cut-out over a grey checkerboard, as image editors show transparency."""
    h, w = rgba.shape[:2]
    light = ((np.arange(h)[:, None] // square + np.arange(w)[None, :] // square) % 2).astype(bool)
    board = np.where(light, CHECKER_LEVELS[1], CHECKER_LEVELS[0]).astype(np.float32)[..., None]
    a = rgba[..., 3:4].astype(np.float32) / 255
    return np.round(a * rgba[..., :3] + (1 - a) * board).astype(np.uint8)
