"""scripts/refine_variants.py: the border's variants and F's rings by hand, and the module's BORDER_PRIOR left as it is."""

import argparse

import numpy as np
import pytest

from fgbg.core import matting
from fgbg.core.matting import HALF_CHROMA, LOSSLESS
from tests.conftest import ROOT, load_script, speck_scene


@pytest.fixture()
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports mask_from_alpha beside it
    return load_script("refine_variants")


def test_each_variant_of_the_border_by_hand(script):
    """bg 50, an object (200, 50, 50) on columns 0-2, its border column 3 truly 0.9 (I = 185), the network 0.97:
    solved with F from column 2 and a prior p, (135 x 150 + 0.97 p) / (150^2 + p): 29,950 / 32,500 = 0.92154 at
    10,000, written as 235 / 255; 21,220 / 23,500 = 0.90298 at 1,000, as 230 / 255. None: 1, as before; NETWORK_ONLY:
    the network's 0.97, as 247 / 255 (247.35 rounds down). `keep` 0.95 lifts 0.92154 to 0.95, 242.25: 242 / 255."""
    bg = np.full((5, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    fg_bg[:, :3], fg_bg[:, 3] = (200, 50, 50), (185, 50, 50)
    net = np.zeros((5, 12), np.float32)
    net[:, :3], net[:, 3] = 1.0, 0.97
    assert 29950 / 32500 * 255 == pytest.approx(235, abs=0.5) and 21220 / 23500 * 255 == pytest.approx(230, abs=0.5)
    assert (script.refined(bg, fg_bg, net, LOSSLESS, 10000.0, 0.5)[:, 3] == np.float32(235 / 255)).all()
    assert (script.refined(bg, fg_bg, net, LOSSLESS, 1000.0, 0.5)[:, 3] == np.float32(230 / 255)).all()
    assert (script.refined(bg, fg_bg, net, LOSSLESS, None, 0.5)[:, :4] == 1.0).all()
    assert (script.refined(bg, fg_bg, net, LOSSLESS, script.NETWORK_ONLY, 0.5)[:, 3] == np.float32(247 / 255)).all()
    assert (script.refined(bg, fg_bg, net, LOSSLESS, 10000.0, 0.95)[:, 3] == np.float32(242 / 255)).all()  # kept
    assert matting.BORDER_PRIOR == 1000.0  # the module's own weight, untouched
    for text in ("0", "-1", "nan", "inf", "1e309"):
        with pytest.raises(Exception, match="a prior weight must be a finite number above 0"):
            script.positive("a prior weight")(text)
    for text in ("0.3", "nan", "inf"):
        with pytest.raises(Exception, match="a ring's radius must be a finite number of px, at least 1"):
            script.radius(text)
    assert script.positive("a prior weight")("1e-3") == 1e-3 and script.radius("1") == 1.0


def test_a_ring_of_candidates_by_hand(script):
    """Radius 3: (0, 0), then (dy, dx) = (3 sin t, 3 cos t) for t = 0, 45, ... 315 degrees, 2.12 rounded to 2."""
    assert script.ring(3) == ((0, 0), (0, 3), (2, 2), (3, 0), (2, -2), (0, -3), (-2, -2), (-3, 0), (-2, 2))
    assert set(script.ring(3)) == set(matting.NEAR_CANDIDATES)  # a JPEG pair's: the ring of radius 3
    assert matting.WIDE_CANDIDATES == tuple(dict.fromkeys(script.ring(2) + script.ring(4) + script.ring(6)))  # lossless


def test_the_candidates_reach_the_refined_alpha(script):
    """The blue speck beside a red edge (tests/test_matting.py): from the pixel's own nearest inner pixel alone, F is
    the speck's blue and (4, 8) solves to 8 / 22,510 = 0.00036, written as 0; among the default candidates F is red
    and it solves to 11,258 / 22,510 = 0.50013, written as 128 / 255."""
    bg, fg_bg, net = speck_scene()
    assert script.refined(bg, fg_bg, net, LOSSLESS._replace(candidates=((0, 0),)), 10000.0, 0.5)[4, 8] == 0.0
    assert script.refined(bg, fg_bg, net, LOSSLESS, 10000.0, 0.5)[4, 8] == np.float32(128 / 255)


def test_the_trust_study_tries_each_prior_and_candidate_set_on_its_own_kind_of_pair(script):
    """Lossless rows: chroma 1, each prior with 9, 17 and 25 candidates, not tried on JPEG files; JPEG rows: chroma
    0.1, each prior with 9 and 17, not tried on lossless pairs; every row with the default border weight and keep."""
    args = argparse.Namespace(lossless_priors=[10.0, 3.0], half_chroma_priors=[100.0])
    rows = script.variants("trust", args, keep=0.5)
    lossless = [v.lossless for v in rows.values() if v.files is None]
    files = [v.files for v in rows.values() if v.lossless is None]
    assert len(rows) == 8 and len(lossless) == 6 and len(files) == 2
    assert [(t.chroma, t.prior, len(t.candidates)) for t in lossless] == [
        (1.0, 10.0, 9), (1.0, 10.0, 17), (1.0, 10.0, 25), (1.0, 3.0, 9), (1.0, 3.0, 17), (1.0, 3.0, 25)]
    assert [(t.chroma, t.prior, len(t.candidates)) for t in files] == [(0.1, 100.0, 9), (0.1, 100.0, 17)]
    assert all((t.sure, t.floor) == (LOSSLESS.sure, LOSSLESS.floor) for t in lossless)  # today's, as --study edge chose
    assert all((t.sure, t.floor) == (HALF_CHROMA.sure, HALF_CHROMA.floor) for t in files)
    assert set(lossless[1].candidates) == set(script.ring(3)) | set(script.ring(6))
    assert all(v.border_prior == matting.BORDER_PRIOR and v.keep == 0.5 for v in rows.values())


def test_the_candidates_and_border_studies_keep_each_kind_of_pairs_trust(script):
    args = argparse.Namespace(radii=[2.0], priors=[300.0])
    rings = script.variants("candidates", args, keep=0.5)["a ring of radius 2"]
    assert rings.lossless == LOSSLESS._replace(candidates=script.ring(2))
    assert rings.files == HALF_CHROMA._replace(candidates=script.ring(2))
    border = script.variants("border", args, keep=0.5)
    assert border["300"] == script.Variant(300.0, 0.5, LOSSLESS, HALF_CHROMA)
    assert border[f"{matting.BORDER_PRIOR:g}, no keep"].keep == 0.0
    assert border["none (the border at 1, before)"].border_prior is None


def test_noise_has_its_sigma_and_is_clipped_to_8_bits(script):
    """Grey 128 with noise of sigma 4: the added noise's standard deviation is 4 within 0.1 over 90,000 values; at
    255 half the noise is clipped away, so the image stays 8-bit."""
    rng = np.random.default_rng(0)
    grey = np.full((100, 300, 3), 128, np.uint8)
    noisy = script.noisy(grey, 4.0, rng)
    assert noisy.dtype == np.uint8 and abs(float(noisy.astype(float).std()) - 4.0) < 0.1
    assert script.noisy(np.full((10, 10, 3), 255, np.uint8), 4.0, rng).max() == 255


def test_the_edge_study_tries_each_sure_and_floor_on_its_own_kind_of_pair(script):
    rows = script.variants("edge", argparse.Namespace(), keep=0.5)
    lossless = [(v.lossless.chroma, v.lossless.sure, v.lossless.floor) for v in rows.values() if v.files is None]
    files = [(v.files.chroma, v.files.sure, v.files.floor) for v in rows.values() if v.lossless is None]
    assert lossless == [(1.0, sure, floor) for sure in (0.9, 0.85) for floor in (0.02, 0.01, 0.005)]
    assert files == [(0.1, sure, floor) for sure in (0.9, 0.85) for floor in (0.02, 0.005)]


def test_with_the_border_at_1_the_trusts_sure_pixels_are_1(script):
    """prior None (the border at 1, as before it was solved): a 3 x 3 square at 0.87 in a flat 5 x 5 pair is sure in a
    lossless pair (from 0.85), so all 1, its border too (solved, with I = B = F, it would stay 0.87); in a JPEG pair
    (from 0.9) it is not sure, and stays the network's (0.87, written as 222 / 255)."""
    flat = np.zeros((5, 5, 3), np.uint8)
    net = np.zeros((5, 5), np.float32)
    net[1:4, 1:4] = 0.87
    assert (script.refined(flat, flat, net, LOSSLESS, None, 0.5)[1:4, 1:4] == 1.0).all()
    assert (script.refined(flat, flat, net, LOSSLESS, 1000.0, 0.5)[1, 1:4] == np.float32(222 / 255)).all()
    assert (script.refined(flat, flat, net, HALF_CHROMA, None, 0.5)[1:4, 1:4] == np.float32(222 / 255)).all()
