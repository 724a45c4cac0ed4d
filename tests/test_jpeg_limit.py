"""scripts/jpeg_limit.py: the oracle's true colour and per-pixel alpha, by hand."""

import numpy as np
import pytest

from fgbg.core.matting import HALF_CHROMA, LOSSLESS
from tests.conftest import ROOT, load_script


@pytest.fixture()
def limit(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports mask_from_alpha beside it
    return load_script("jpeg_limit")


def test_true_colour_and_the_oracle_alpha_by_hand(limit):
    """bg (100, 100, 100), F (200, 50, 100) at alpha 0.25: I = (125, 87.5, 100). F comes back where alpha >= 0.05,
    the nearest such pixel's elsewhere; the solve is (25 * 100 + 12.5 * 50) / (100^2 + 50^2) = 0.25 at either
    weight, since the oracle's F is exact; where F = B nothing is said."""
    bg = np.full((1, 4, 3), 100, np.float32)
    alpha = np.array([[0.25, 0.0, 0.0, 1.0]], np.float32)
    colour_f = np.array([200, 50, 100], np.float32)
    fg_bg = alpha[..., None] * colour_f + (1 - alpha[..., None]) * bg
    fg_bg[0, 3] = (100, 100, 100)  # an opaque pixel of the bg's own colour
    colour = limit.true_colour(bg, fg_bg, alpha)
    assert np.allclose(colour[0, 0], colour_f) and np.allclose(colour[0, 1], colour_f)  # nearest: (0, 0)
    assert np.allclose(colour[0, 2], (100, 100, 100)) and np.allclose(colour[0, 3], (100, 100, 100))  # (0, 3)
    for trust in (LOSSLESS, HALF_CHROMA):
        solved, informative = limit.solved_alpha(bg, fg_bg, colour, trust.chroma)
        assert solved[0, 0] == pytest.approx(0.25) and informative.tolist() == [[True, True, False, False]]
        assert solved[0, 1] == 0  # I = B: no object


def test_the_oracle_weighs_colour_off_the_luma_axis_by_hand(limit):
    """F - B = 10 u + c (u the unit luma axis, c a colour difference of norm 10 orthogonal to it), and I - B =
    0.5 (F - B) + 0.2 c: noise along the colour. LOSSLESS: (0.5 (100 + 100) + 0.2 * 100) / 200 = 0.6;
    HALF_CHROMA weighs the colour by 0.1: (0.5 (100 + 10) + 0.1 * 0.2 * 100) / 110 = 57 / 110."""
    from fgbg.core.matting import LUMA_AXIS

    u = LUMA_AXIS.astype(np.float64)
    c = np.cross(u, [1.0, 0.0, 0.0])
    c *= 10 / np.linalg.norm(c)
    bg = np.full((1, 1, 3), 100.0)
    colour = bg + 10 * u + c
    fg_bg = bg + 0.5 * (colour - bg) + 0.2 * c
    assert limit.solved_alpha(bg, fg_bg, colour, LOSSLESS.chroma)[0][0, 0] == pytest.approx(0.6)
    assert limit.solved_alpha(bg, fg_bg, colour, HALF_CHROMA.chroma)[0][0, 0] == pytest.approx(57 / 110)
