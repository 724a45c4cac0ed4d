"""The cut-out: the object's colours recovered where its alpha is soft, on a composite of known colours."""

import numpy as np

from fgbg.core.matting import cutout, foreground, on_checkerboard


def test_foreground_by_hand():
    """alpha 0.5, F blue (0, 0, 200), B red (200, 0, 0): I = (100, 0, 100); F = (I - 0.5 B) / 0.5 = (0, 0, 200)."""
    bg = np.array([[[200, 0, 0]]], np.uint8)
    fg_bg = np.array([[[100, 0, 100]]], np.uint8)
    assert foreground(bg, fg_bg, np.array([[0.5]])).tolist() == [[[0, 0, 200]]]
    assert foreground(bg, bg, np.array([[0.0]])).tolist() == [[[0, 0, 0]]]  # no object: nothing to recover
    # F = (I - (1 - a) B) / a rounds: 100 / 0.7 = 142.86 -> 143; 200 / 0.7 = 285.7 is clipped to 255
    assert foreground(np.zeros((1, 1, 3), np.uint8), np.array([[[100, 200, 0]]], np.uint8),
                      np.array([[0.7]])).tolist() == [[[143, 255, 0]]]
    # below RECOVER_FROM = 0.1 the noise would grow past 10x: F is fg_bg's colour itself
    assert foreground(bg, np.array([[[190, 3, 1]]], np.uint8), np.array([[0.05]])).tolist() == [[[190, 3, 1]]]


def test_the_cutout_recovers_a_known_foreground_without_the_bg_bleeding_in():
    rng = np.random.default_rng(0)
    fg = rng.integers(0, 256, (16, 16, 3)).astype(np.float32)
    bg = rng.integers(0, 256, (16, 16, 3)).astype(np.float32)
    alpha = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))  # soft all the way across
    image = np.round(alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.uint8)
    rgba = cutout(bg.astype(np.uint8), image, alpha)
    soft = alpha >= 0.25  # rounding I to uint8 costs at most 0.5 / alpha levels
    assert np.abs(rgba[..., :3][soft].astype(float) - fg[soft]).max() <= 2
    assert np.abs(image[soft].astype(float) - fg[soft]).max() > 50  # fg_bg itself carries the bg's colour
    assert np.array_equal(rgba[..., 3], np.round(alpha * 255).astype(np.uint8))
    assert cutout(bg.astype(np.uint8), image, np.full((16, 16), 0.9))[0, 0, 3] == 230  # 229.5 rounds (to even)


def test_on_checkerboard_by_hand():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: the board shows
    rgba[1, 0] = (0, 0, 0, 0)
    rgba[1, 1] = (0, 0, 0, 51)  # 20% black over the board
    shown = on_checkerboard(rgba, square=1)
    half = rgba.copy()
    half[1, 1, 3] = 128  # (1 - 128/255) x 204 = 101.6: 102
    assert shown[0, 0].tolist() == [255, 0, 0]
    assert shown[0, 1].tolist() == [255] * 3 and shown[1, 0].tolist() == [255] * 3  # the light squares
    assert shown[1, 1].tolist() == [163] * 3  # 0.8 * 204, a dark square
    assert on_checkerboard(half, square=1)[1, 1].tolist() == [102] * 3
