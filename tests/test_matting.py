"""The cut-out: the object's colours recovered where its alpha is soft, on a composite of known colours."""

import cv2
import numpy as np
import pytest
from PIL import Image

from fgbg.core.matting import (
    BORDER_PRIOR,
    HALF_CHROMA,
    LOSSLESS,
    NEAR_CANDIDATES,
    REACH,
    WIDE_CANDIDATES,
    Trust,
    cutout,
    foreground,
    on_checkerboard,
    refine_alpha,
    trust_of,
)
from tests.conftest import speck_scene

PRIOR = LOSSLESS.prior  # the network's alpha's weight on a lossless pair's soft edge
SURE_LOSSLESS, FLOOR_LOSSLESS = 0.85, 0.005  # a lossless pair's sure threshold and floor


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


def _edge_scene(true_alpha_col: float, net_alpha_col: float):
    """A 5 x 16 scene: bg (50, 50, 50); an object of colour (200, 50, 50) on columns 0-3 (alpha 1), a soft
    column 4 of alpha `true_alpha_col`, composited exactly; the network says 1 on 0-3 and `net_alpha_col` on 4."""
    bg = np.full((5, 16, 3), 50, np.uint8)
    true = np.zeros((5, 16), np.float32)
    true[:, :4], true[:, 4] = 1, true_alpha_col
    fg_bg = np.round(true[..., None] * np.float32([200, 50, 50]) + (1 - true[..., None]) * 50).astype(np.uint8)
    net = true.copy()
    net[:, 4] = net_alpha_col
    return bg, fg_bg, net


def test_the_soft_edge_is_solved_from_the_pair_by_hand():
    """Column 4: I - B = (45, 0, 0) (0.3 x 200 + 0.7 x 50 = 95), F - B = (150, 0, 0), the network says 0.6:
    alpha = (45 x 150 + PRIOR x 0.6) / (150^2 + PRIOR) = 6,756 / 22,510 = 0.30013 (the truth 0.3)."""
    bg, fg_bg, net = _edge_scene(0.3, 0.6)
    refined = refine_alpha(bg, fg_bg, net)
    assert PRIOR == 10.0 and refined[:, 4] == pytest.approx(6756 / 22510, abs=1e-6)
    assert np.array_equal(refined[:, :4], net[:, :4]) and np.array_equal(refined[:, 5:], net[:, 5:])


def test_where_the_object_looks_like_the_bg_the_networks_alpha_stands():
    """An object of the bg's colour: |F - B|^2 = 0, so alpha = PRIOR x 0.6 / PRIOR = 0.6."""
    bg = np.full((3, 8, 3), 50, np.uint8)
    net = np.zeros((3, 8), np.float32)
    net[:, :3], net[:, 3] = 1, 0.6
    assert refine_alpha(bg, bg.copy(), net)[:, 3] == pytest.approx(0.6)


def test_only_the_soft_edge_near_a_sure_pixel_and_above_the_floor_is_refined():
    bg, fg_bg, net = _edge_scene(0.3, 0.6)
    far = 3 + REACH + 1  # beyond the reach of the last sure column, 3: the network's 0.5 stands
    fg_bg[:, far], net[:, far] = 120, 0.5
    floor = np.float32(LOSSLESS.floor)
    fg_bg[:, 6], net[:, 6] = 80, floor  # at the floor: "no object" stands (solved, it would be about 0.2)
    refined = refine_alpha(bg, fg_bg, net)
    assert (refined[:, far] == 0.5).all() and (refined[:, 6] == floor).all()
    net[:, far] = 0.5
    fg_bg[:, far - 1], net[:, far - 1] = 95, 0.6  # within the reach: solved, as column 4
    assert refined[:, 4] == pytest.approx(6756 / 22510, abs=1e-6)
    assert refine_alpha(bg, fg_bg, net)[:, far - 1] == pytest.approx(6756 / 22510, abs=1e-6)
    assert np.array_equal(refine_alpha(bg, fg_bg, net * 0.8), net * 0.8)  # no pixel at or above the sure: unchanged


def test_each_edge_pixel_takes_the_colour_of_its_own_object():
    """Two objects, red on the left and blue on the right, each with a soft column of alpha 0.5 next to it:
    each column is solved with its own object's colour, so both come out 0.5 (with the other's colour they
    would not: red's F - B is orthogonal to blue's, which would give PRIOR x 0.8 / (150^2 + PRIOR))."""
    bg = np.full((4, 16, 3), 50, np.uint8)
    true = np.zeros((4, 16), np.float32)
    colour = np.zeros((4, 16, 3), np.float32)
    true[:, :3], true[:, 3] = 1, 0.5
    true[:, 13:], true[:, 12] = 1, 0.5
    colour[:, :4] = (200, 50, 50)
    colour[:, 12:] = (50, 50, 200)
    fg_bg = np.round(true[..., None] * colour + (1 - true[..., None]) * 50).astype(np.uint8)
    net = np.where(true == 0.5, 0.8, true).astype(np.float32)
    refined = refine_alpha(bg, fg_bg, net)
    expected = (75 * 150 + PRIOR * 0.8) / (150**2 + PRIOR)  # I - B = 75 along F - B
    assert refined[:, 3] == pytest.approx(expected, abs=1e-6) and refined[:, 12] == pytest.approx(expected, abs=1e-6)


def test_f_is_the_candidate_whose_line_from_b_passes_through_the_pixel():
    """bg 50; a red object (200, 50, 50) on columns 0-7, the network sure of it, with one blue inner pixel (50, 50,
    200) at (4, 6); column 8 truly 0.5 red (I = 125, 50, 50), the network's 0.8. The blue pixel is (4, 8)'s nearest
    inner pixel: with its F, F - B = (0, 0, 150) is orthogonal to I - B = (75, 0, 0), and the solve would give
    (0 + 10 x 0.8) / (150^2 + 10) = 0.00036. Among the candidates, the nearest inner pixels of the points 2 to 6 px
    around, red's line from B passes through I exactly (a = 0.5, nothing left over), so F is red: (75 x 150 + 10 x
    0.8) / 22,510 = 11,258 / 22,510 = 0.50013, as in every other row of column 8; the border pixel (4, 7) beside
    the blue one takes red too: (150 x 150 + 1,000) / (150^2 + 1,000) = 1."""
    bg, fg_bg, net = speck_scene()
    refined = refine_alpha(bg, fg_bg, net)
    assert refined[:, 8] == pytest.approx(np.full(9, 11258 / 22510), abs=1e-6)
    assert refined[4, 7] == 1.0 and refined[4, 6] == 1.0


def test_the_solution_is_clipped_and_sure_pixels_inside_the_sure_region_are_the_objects():
    """bg 100, the object white (F - B = 155 per channel), a soft pixel that is black: I - B = -100 per channel,
    so the solution (-100 x 155 x 3 + PRIOR x 0.5) / (155^2 x 3 + PRIOR) < 0 is clipped to 0; a pixel of
    fg_bg at 255 over bg 100 with the network's 0.2 solves to (155^2 x 3 + 2) / (155^2 x 3 + 10) < 1.
    Pixels at exactly the trust's sure, or above it but below 1, are the object's inside the sure region: alpha 1,
    as their colour is taken for F. Column 2 is on the sure region's border (column 3 is not sure): solved with
    BORDER_PRIOR, its own colour that of column 1, (72,075 + 1,000 x 0.97) / (72,075 + 1,000) = 0.99959."""
    bg = np.full((1, 8, 3), 100, np.uint8)
    fg_bg = bg.copy()
    fg_bg[0, :3] = fg_bg[0, 5] = 255
    fg_bg[0, 3] = 0
    net = np.float32([[1.0, LOSSLESS.sure, 0.97, 0.5, 0.0, 0.2, 0.0, 0.0]])
    refined = refine_alpha(bg, fg_bg, net)
    assert refined[0, 3] == 0.0 and refined[0, :2].tolist() == [1.0, 1.0]
    assert BORDER_PRIOR == 1000.0 and refined[0, 2] == pytest.approx(73045 / 73075, abs=1e-6)
    assert refined[0, 5] == pytest.approx((155**2 * 3 + PRIOR * 0.2) / (155**2 * 3 + PRIOR), abs=1e-6)


def _ringed_square():
    """A 12 x 12 scene, bg grey 50: a square the network is sure of (1.0) on rows and columns 1-10, the object
    (200, 50, 50) inside; its outer ring truly 0.9 (I = 185); a hole at (5, 5) truly 0.3 (I = 95, the network's
    0.6), whose diagonal neighbour (4, 4) is truly 0.9 too; and (1, 5), on the ring, brighter than the object
    (I = 255)."""
    bg = np.full((12, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((12, 12), np.float32)
    net[1:11, 1:11] = 1.0
    fg_bg[1:11, 1:11] = (185, 50, 50)
    fg_bg[2:10, 2:10] = (200, 50, 50)
    fg_bg[4, 4], fg_bg[5, 5], net[5, 5] = (185, 50, 50), (95, 50, 50), 0.6
    fg_bg[1, 5] = (255, 50, 50)
    return bg, fg_bg, net


def test_the_border_of_a_square_by_hand():
    """_ringed_square, F - B = (150, 0, 0) from the inner pixels. The ring and (4, 4), a diagonal neighbour of the
    hole (a 3 x 3 erosion, not a cross), solve to (135 x 150 + 1,000) / (150^2 + 1,000) = 21,250 / 23,500 =
    0.90426; so does the corner (1, 1), whose nearest inner pixel, (2, 2), is diagonal (1.41 px, within
    INNER_SLACK). (1, 5) solves to (205 x 150 + 1,000) / 23,500 = 1.3511, clipped to 1. The hole is the soft edge:
    6,756 / 22,510. An inner pixel stays 1.
    HALF_CHROMA: I - B = 0.9 (F - B), so with W = (F - B) weighed, 67.085^2 + 0.1 (150^2 - 67.085^2) = 6,300.4,
    the ring is (0.9 W + 1,000) / (W + 1,000) = 0.91370: BORDER_PRIOR whatever the trust. `keep` 240 / 255 =
    0.94118 lifts the ring to it."""
    scene = _ringed_square()
    refined = refine_alpha(*scene)
    ring = 21250 / 23500
    assert refined[1, 3] == pytest.approx(ring, abs=1e-6) and refined[10, 7] == pytest.approx(ring, abs=1e-6)
    assert refined[4, 4] == pytest.approx(ring, abs=1e-6) and refined[1, 1] == pytest.approx(ring, abs=1e-6)
    assert (205 * 150 + 1000) / 23500 > 1.35 and refined[1, 5] == 1.0
    assert refined[5, 5] == pytest.approx(6756 / 22510, abs=1e-6) and refined[7, 7] == 1.0
    w = 67.085**2 + 0.1 * (150**2 - 67.085**2)
    half = refine_alpha(*scene, HALF_CHROMA)
    assert w == pytest.approx(6300.4, abs=0.1)
    assert half[1, 3] == pytest.approx((0.9 * w + 1000) / (w + 1000), abs=1e-4)
    assert (refine_alpha(*scene, keep=240 / 255)[1, 3] == np.float32(240 / 255)).all()


def test_a_thin_parts_border_has_no_f_and_stays_1_and_keep_is_an_alpha():
    """A 1 px line the network is sure of (0.92), dimmer than a body would be: no inner pixel, so no F but its own
    colour, which would solve to a mix of 1 and 0.92; it stays 1, as every sure pixel did before the border was
    solved. A `keep` outside [0, 1] is refused."""
    bg = np.full((5, 9, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((5, 9), np.float32)
    fg_bg[2, 1:8], net[2, 1:8] = (60, 50, 50), 0.92
    assert (refine_alpha(bg, fg_bg, net)[2, 1:8] == 1.0).all()
    with pytest.raises(ValueError, match="keep = 2"):
        refine_alpha(bg, fg_bg, net, keep=2)


def _border_scene(border: tuple[int, int, int], net_border: float):
    """bg 50, an object (200, 50, 50) on columns 0-2; column 3, which the network is sure of (`net_border`), has the
    colour `border`; column 4 soft at the truth 0.3 (I = 95), the network's 0.6."""
    bg = np.full((5, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    fg_bg[:, :3], fg_bg[:, 3], fg_bg[:, 4] = (200, 50, 50), border, (95, 50, 50)
    net = np.zeros((5, 12), np.float32)
    net[:, :3], net[:, 3], net[:, 4] = 1.0, net_border, 0.6
    return bg, fg_bg, net


def test_the_objects_colour_comes_from_inside_the_sure_region_and_its_border_is_solved_too():
    """Column 3 the network is sure of (0.97) though it is truly 0.9 (I = 185, the bg bleeding in, as on a real
    border). F from column 3, F - B = (135, 0, 0), would solve column 4 to (45 x 135 + 6) / (135^2 + 10) = 0.3335;
    F from column 2, one pixel inside the sure region, solves (45 x 150 + 6) / (150^2 + 10) = 0.30013. Column 3,
    on the sure region's border, is solved with that F and the network's alpha weighing BORDER_PRIOR: (135 x 150 +
    1,000 x 0.97) / (150^2 + 1,000) = 21,220 / 23,500 = 0.90298 (the truth 0.9; before, 1)."""
    refined = refine_alpha(*_border_scene((185, 50, 50), 0.97))
    assert refined[:, 4] == pytest.approx(6756 / 22510, abs=1e-6)
    assert refined[:, 3] == pytest.approx(21220 / 23500, abs=1e-6)
    assert (refined[:, :3] == 1.0).all()


def test_a_sure_border_pixel_keeps_at_least_the_mask_threshold():
    """Column 3 the network is sure of (0.95) looks like the bg (I - B = 0): solved, (0 + 1,000 x 0.95) / (150^2 +
    1,000) = 0.040426, below the mask threshold; the network was sure, so it keeps `keep` (0.5 by default; predict
    passes the mask threshold, 128 / 255). With `keep` 0 the solve stands."""
    scene = _border_scene((50, 50, 50), 0.95)
    assert refine_alpha(*scene, keep=0.0)[:, 3] == pytest.approx(950 / 23500, abs=1e-6)
    assert (refine_alpha(*scene)[:, 3] == 0.5).all()
    assert (refine_alpha(*scene, keep=128 / 255)[:, 3] == np.float32(128 / 255)).all()


def test_the_reach_is_euclidean():
    """A sure pixel at (0, 0): (6, 6) is 8.49 px away, beyond REACH = 8 (a city-block 12, a chessboard 6); (5, 6)
    is 7.81 px away, within it."""
    bg = np.zeros((10, 10, 3), np.uint8)
    fg_bg = np.zeros((10, 10, 3), np.uint8)
    fg_bg[0, 0] = 200
    fg_bg[6, 6] = fg_bg[5, 6] = 100
    net = np.zeros((10, 10), np.float32)
    net[0, 0], net[6, 6], net[5, 6] = 1.0, 0.8, 0.8
    refined = refine_alpha(bg, fg_bg, net)
    assert refined[6, 6] == np.float32(0.8)
    assert refined[5, 6] == pytest.approx((100 * 200 * 3 + PRIOR * 0.8) / (200**2 * 3 + PRIOR), abs=1e-6)


def _chroma_only_scene():
    """bg grey 100; an object (160, 64, 128) of the bg's luma (F - B = (60, -36, 28): 0.299 x 60 - 0.587 x 36 +
    0.114 x 28 = 0), so it differs in colour alone; a soft column 4 at the truth 0.5, I = (130, 82, 114); the
    network says 0.8 there."""
    bg = np.full((3, 12, 3), 100, np.uint8)
    fg_bg = bg.copy()
    fg_bg[:, :4] = (160, 64, 128)
    fg_bg[:, 4] = (130, 82, 114)
    net = np.zeros((3, 12), np.float32)
    net[:, :4], net[:, 4] = 1.0, 0.8
    return bg, fg_bg, net


def test_a_half_chroma_jpeg_trusts_the_colour_that_no_luma_carries_less():
    """On the chroma-only edge, |F - B|^2 = 60^2 + 36^2 + 28^2 = 5,680 and (I - B) . (F - B) = 2,840, all of it
    off the luma axis. Lossless: (2,840 + 10 x 0.8) / (5,680 + 10) = 0.50053. A JPEG that stored its colour at
    half resolution (HALF_CHROMA: that part weighs 0.1, the prior 100): (284 + 80) / (568 + 100) = 0.54491,
    nearer the network's. With no weight at all the network's 0.8 stands."""
    bg, fg_bg, net = _chroma_only_scene()
    assert LOSSLESS[:2] == (1.0, PRIOR) and HALF_CHROMA[:2] == (0.1, 100.0)
    assert refine_alpha(bg, fg_bg, net)[:, 4] == pytest.approx(2848 / 5690, abs=1e-5)
    assert refine_alpha(bg, fg_bg, net, HALF_CHROMA)[:, 4] == pytest.approx(364 / 668, abs=1e-5)
    assert refine_alpha(bg, fg_bg, net, HALF_CHROMA._replace(chroma=0.0))[:, 4] == pytest.approx(0.8, abs=1e-5)


def test_a_luma_edge_is_solved_alike_at_any_chroma_weight():
    """A grey object (200, 200, 200) on grey 50 with a soft column at 0.3: I - B = (45, 45, 45). The part of the
    difference off the luma axis (0.299, 0.587, 0.114) counts less in HALF_CHROMA, yet the luma alone fixes the
    alpha: with a tiny prior both trusts give 0.3."""
    bg = np.full((3, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    fg_bg[:, :4], fg_bg[:, 4] = 200, 95
    net = np.zeros((3, 12), np.float32)
    net[:, :4], net[:, 4] = 1.0, 0.6
    for trust in (LOSSLESS._replace(prior=1e-3), HALF_CHROMA._replace(prior=1e-3)):
        assert refine_alpha(bg, fg_bg, net, trust)[:, 4] == pytest.approx(0.3, abs=1e-4)


def _save_with_opencv(path, image, factor):
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, factor])


@pytest.mark.parametrize(("save", "halved"), [
    ({"format": "JPEG", "quality": 90}, True),
    ({"format": "JPEG", "quality": 90, "subsampling": "4:2:2"}, True),
    ({"format": "JPEG", "quality": 90, "subsampling": "4:4:4"}, False),
    ({"format": "MPO", "quality": 90, "save_all": True}, True),  # a phone's multi-picture JPEG: PIL says MPO
    ("opencv 4:4:0", True), ("opencv 4:1:1", True),
    ({"format": "JPEG", "quality": 90, "mode": "L"}, False),  # grey: no colour to halve
    ({"format": "PNG"}, False)])
def test_the_trust_of_a_pair_of_files_follows_how_they_stored_their_colour(tmp_path, save, halved):
    """PIL's default JPEG, like most cameras', keeps the colour at half resolution (4:2:0); such a file in a pair
    (any chroma sampled coarser than the luma: 4:2:2, 4:4:0, 4:1:1 too, and inside an MPO) makes the pair
    HALF_CHROMA. A 4:4:4 JPEG, a grey one or a PNG keeps it whole: LOSSLESS."""
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    lossy, png = tmp_path / "a.jpg", tmp_path / "b.png"
    if isinstance(save, str):
        factor = {"4:4:0": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440, "4:1:1": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411}
        _save_with_opencv(lossy, image, factor[save.split()[1]])
    else:
        options = dict(save)
        picture = Image.fromarray(image).convert(options.pop("mode", "RGB"))
        if options.get("save_all"):
            options["append_images"] = [picture]
        picture.save(lossy, **options)
    Image.fromarray(image).save(png)
    assert trust_of(png, png) == LOSSLESS
    assert trust_of(png, lossy) == trust_of(lossy, png) == (HALF_CHROMA if halved else LOSSLESS)


def test_a_thin_sure_part_keeps_its_own_colour():
    """A red body (columns 0-7) with a blue handle 2 px thin (rows 5-6 of columns 8-15), which a 3 x 3 erosion
    removes whole; the handle's soft edge below it (row 7, truth 0.5: I = (50, 50, 125), the network's 0.7) must
    still take the handle's blue as F: (75 x 150 + 100 x 0.7) / (150^2 + 100) = 0.50088, not the far red body's
    colour (which solves to about 0)."""
    bg = np.full((12, 24, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((12, 24), np.float32)
    fg_bg[:, :8], net[:, :8] = (200, 50, 50), 1.0
    fg_bg[5:7, 8:16], net[5:7, 8:16] = (50, 50, 200), 1.0
    fg_bg[7, 8:16], net[7, 8:16] = (50, 50, 125), 0.7
    refined = refine_alpha(bg, fg_bg, net)
    assert refined[7, 10:16] == pytest.approx([(75 * 150 + PRIOR * 0.7) / (150**2 + PRIOR)] * 6, abs=1e-6)


@pytest.mark.parametrize(("trust", "sure"), [(LOSSLESS, SURE_LOSSLESS), (HALF_CHROMA, 0.9)])
def test_each_trust_has_its_sure_threshold(trust, sure):
    """At the trust's sure a pixel is the object's (1); just below it is not, and stands where nothing is sure."""
    flat = np.zeros((3, 3, 3), np.uint8)
    assert trust.sure == sure
    assert refine_alpha(flat, flat, np.full((3, 3), sure, np.float32), trust).tolist() == [[1.0] * 3] * 3
    below = np.full((3, 3), sure - 0.001, np.float32)
    assert refine_alpha(flat, flat, below, trust) == pytest.approx(below)


@pytest.mark.parametrize(("trust", "floor"), [(LOSSLESS, FLOOR_LOSSLESS), (HALF_CHROMA, 0.02)])
def test_each_trust_has_its_floor(trust, floor):
    """A pixel beside the object at the floor keeps the network's alpha; just above it, it is solved: with I = B,
    to prior x a / (|F - B|^2 + prior), far below."""
    bg = np.full((3, 8, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((3, 8), np.float32)
    fg_bg[:, :3], net[:, :3] = 200, 1.0
    assert trust.floor == floor
    net[:, 3] = floor
    assert (refine_alpha(bg, fg_bg, net, trust)[:, 3] == np.float32(floor)).all()
    net[:, 3] = floor * 2
    assert (refine_alpha(bg, fg_bg, net, trust)[:, 3] < floor).all()


def test_half_chroma_splits_a_difference_along_the_luma_axis_by_hand():
    """F - B = (150, 0, 0), I - B = (45, 45, 45): not proportional, so the weighting shows. With u the unit luma
    axis (0.299, 0.587, 0.114) / 0.66856: (F - B) . u = 67.085, (I - B) . u = 67.309; (I - B) . (F - B) = 6,750
    and |F - B|^2 = 22,500. HALF_CHROMA: (67.309 x 67.085 + 0.1 x (6,750 - 4,515.4) + 100 x 0.6)
    / (67.085^2 + 0.1 x (22,500 - 4,500.4) + 100) = 4,798.9 / 6,400.4 = 0.74978 (LOSSLESS: 6,756 / 22,510)."""
    bg = np.full((3, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((3, 12), np.float32)
    fg_bg[:, :4], net[:, :4] = (200, 50, 50), 1.0
    fg_bg[:, 4], net[:, 4] = (95, 95, 95), 0.6
    norm = np.sqrt(0.299**2 + 0.587**2 + 0.114**2)
    lc, lm = 150 * 0.299 / norm, 45 * (0.299 + 0.587 + 0.114) / norm
    assert (lc, lm) == pytest.approx((67.085, 67.309), abs=1e-3)
    expected = (lm * lc + 0.1 * (6750 - lm * lc) + 60) / (lc**2 + 0.1 * (22500 - lc**2) + 100)
    assert expected == pytest.approx(0.74978, abs=1e-5)
    assert refine_alpha(bg, fg_bg, net, HALF_CHROMA)[:, 4] == pytest.approx(expected, abs=1e-5)


def _two_colour_scene(soft: tuple[int, int, int]):
    """bg 80; an object of colour A = (241, 131, 100) on columns 0-7, the network sure of it, but for one inner pixel
    of colour C = (93, 106, 85) at (2, 6); one soft pixel (4, 8) of colour `soft`, the network's 0.5. Of (4, 8)'s
    NEAR_CANDIDATES, the nearest inner pixels of the points (-2, 2) and (-2, -2), the last, are C; the other 7 are A;
    of its WIDE_CANDIDATES, that of (-2, 0) is C."""
    bg = np.full((9, 12, 3), 80, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((9, 12), np.float32)
    fg_bg[:, :8], net[:, :8] = (241, 131, 100), 1.0
    fg_bg[2, 6] = (93, 106, 85)
    fg_bg[4, 8], net[4, 8] = soft, 0.5
    return bg, fg_bg, net


def test_the_candidates_fit_is_weighed_as_the_trust_weighs_colour_at_its_best_alpha_in_0_1():
    """I - B = (27, 53, 10), A - B = (161, 51, 20), C - B = (13, 26, 5). With u the unit luma axis, a vector v splits
    into (v . u) u and the rest; HALF_CHROMA weighs the rest's squares 0.1. The least |I - B - a (F - B)|^2 over a
    in [0, 1]:
    - lossless: A at a = 7,250 / 28,922 = 0.2507 leaves 3,638 - 7,250^2 / 28,922 = 1,820.6; C would want a = 2.045,
      clipped to 1 it leaves |(14, 27, 5)|^2 = 950. C fits better: F = C, and the solve clips (1,784 / 880) to 1;
    - HALF_CHROMA: A leaves 331.3 at a = 0.456; C at a = 1 still 949.9. F = A: (7,299.5) / (15,994.0) = 0.45639.
    Unclipped, C would fit nearly exactly (0.25 left at a = 2.045), and with a fixed at 1 A would leave 5,033: either
    would pick C."""
    scene = _two_colour_scene((107, 133, 90))
    assert refine_alpha(*scene)[4, 8] == 1.0
    u = np.array([0.299, 0.587, 0.114]) / np.linalg.norm([0.299, 0.587, 0.114])

    def dot(a, b):  # HALF_CHROMA's weighted dot product
        return (a @ u) * (b @ u) + 0.1 * (a @ b - (a @ u) * (b @ u))

    mixed, a_colour, c_colour = np.array([27, 53, 10.0]), np.array([161, 51, 20.0]), np.array([13, 26, 5.0])
    a_fit = dot(mixed, a_colour) / dot(a_colour, a_colour)
    assert a_fit == pytest.approx(0.45612, abs=1e-5)
    assert dot(mixed, mixed) - a_fit * dot(mixed, a_colour) == pytest.approx(331.29, abs=0.01)
    assert dot(mixed - c_colour, mixed - c_colour) == pytest.approx(949.90, abs=0.01)
    expected = (dot(mixed, a_colour) + 100 * 0.5) / (dot(a_colour, a_colour) + 100)
    assert expected == pytest.approx(0.45639, abs=1e-5)
    assert refine_alpha(*scene, HALF_CHROMA)[4, 8] == pytest.approx(expected, abs=1e-5)


def test_candidates_that_fit_alike_leave_f_the_pixels_own_nearest():
    """A soft pixel that looks like the bg (I = B) fits every candidate at a = 0, exactly: a tie, which keeps the
    first candidate, the pixel's own nearest inner pixel A: 10 x 0.5 / (28,922 + 10) = 0.00017282 (the last, C,
    would give 5 / 880 = 0.0056818)."""
    own_then_c = LOSSLESS._replace(candidates=((0, 0), (-2, -2)))
    assert refine_alpha(*_two_colour_scene((80, 80, 80)), own_then_c)[4, 8] == pytest.approx(5 / 28932, abs=1e-7)


@pytest.mark.parametrize("candidates", [(), None, (0, 0), ((0, 0.5),), ((0, 0, 1),), np.zeros((2, 2), int)])
def test_refine_refuses_candidates_that_are_not_int_pairs(candidates):
    scene = _two_colour_scene((107, 133, 90))
    with pytest.raises(ValueError, match=r"are not a non-empty sequence of \(dy, dx\) int pairs; give at least"):
        refine_alpha(*scene, LOSSLESS._replace(candidates=candidates))


@pytest.mark.parametrize(("trust", "border_prior"), [
    (LOSSLESS._replace(prior=0.0), BORDER_PRIOR), (LOSSLESS._replace(prior=np.inf), BORDER_PRIOR),
    (LOSSLESS._replace(prior=np.nan), BORDER_PRIOR), (LOSSLESS._replace(chroma=1.5), BORDER_PRIOR),
    (LOSSLESS, 0.0), (LOSSLESS, np.inf)])
def test_refine_refuses_weights_that_would_solve_to_nan(trust, border_prior):
    """A prior of 0 solves a pixel of the bg's colour to 0 / 0, an infinite one to inf / inf."""
    with pytest.raises(ValueError, match="give a chroma weight in \\[0, 1\\] and finite priors above 0"):
        refine_alpha(*_two_colour_scene((107, 133, 90)), trust, border_prior=border_prior)


def test_each_trusts_candidates_start_with_the_pixels_own_nearest():
    """A lossless pair's F is sought among 25 points (rings of 2, 4 and 6 px), a JPEG pair's among 9 (3 px); the first
    is (0, 0), which ties keep."""
    assert LOSSLESS.candidates == WIDE_CANDIDATES and len(WIDE_CANDIDATES) == 25
    assert HALF_CHROMA.candidates == NEAR_CANDIDATES and len(NEAR_CANDIDATES) == 9
    assert WIDE_CANDIDATES[0] == NEAR_CANDIDATES[0] == (0, 0)


def test_a_lossless_pairs_candidates_reach_6_px():
    """A red object (200, 50, 50) on columns 0-7 of 13 rows, with a blue patch (50, 50, 200) on rows 2-10 of columns 3-6;
    (6, 8) truly 0.5 red (I = (125, 50, 50)), the network's 0.8. The points 3 px around it find blue alone
    (NEAR_CANDIDATES: blue's line from B misses I, (0 + 10 x 0.8) / 22,510 = 0.00036); 6 px away, (12, 8), (0, 8)
    and (6, 2), find red, whose line passes through I: LOSSLESS, with WIDE_CANDIDATES, solves (75 x 150 + 10 x 0.8)
    / 22,510 = 0.50013."""
    bg = np.full((13, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((13, 12), np.float32)
    fg_bg[:, :8], net[:, :8] = (200, 50, 50), 1.0
    fg_bg[2:11, 3:7] = (50, 50, 200)
    fg_bg[6, 8], net[6, 8] = (125, 50, 50), 0.8
    assert refine_alpha(bg, fg_bg, net)[6, 8] == pytest.approx(11258 / 22510, abs=1e-6)
    near = LOSSLESS._replace(candidates=NEAR_CANDIDATES)
    assert refine_alpha(bg, fg_bg, net, near)[6, 8] == pytest.approx(8 / 22510, abs=1e-6)


def test_candidate_points_keep_their_sign_and_order_and_stop_at_the_frame():
    """The two-colour scene, lossless, I - B = (27, 53, 10), where C fits better than A (1,820.6 against 950 left):
    - candidates ((0, 0), (-2, 0)): (dy, dx) = (-2, 0) from (4, 8) is (2, 8), whose nearest inner pixel is C's (2, 6):
      F = C, solved (1,779 + 5) / 880 > 1, clipped to 1 (read as (dx, dy), or as (+2, 0), it would find A:
      (7,250 + 5) / 28,932 = 0.25076);
    - C moved to (8, 6), on the bottom row, and the soft pixel to (7, 8), with candidates ((0, 0), (3, 0)): (10, 8) is
      off the frame and stops at its last row, (8, 8), whose nearest inner pixel is C: 1 again."""
    bg, fg_bg, net = _two_colour_scene((107, 133, 90))
    assert refine_alpha(bg, fg_bg, net, LOSSLESS._replace(candidates=((0, 0), (-2, 0))))[4, 8] == 1.0
    assert refine_alpha(bg, fg_bg, net, LOSSLESS._replace(candidates=((0, 0),)))[4, 8] == pytest.approx(
        7255 / 28932, abs=1e-6)
    fg_bg[2, 6], fg_bg[8, 6] = fg_bg[1, 6], (93, 106, 85)
    fg_bg[7, 8], net[7, 8] = fg_bg[4, 8], net[4, 8]
    fg_bg[4, 8], net[4, 8] = bg[4, 8], 0.0
    assert refine_alpha(bg, fg_bg, net, LOSSLESS._replace(candidates=((0, 0), (3, 0))))[7, 8] == 1.0


def test_a_candidate_behind_the_bg_fits_at_alpha_0_not_below():
    """I - B = (-16, -5, -2), about -0.1 (A - B): A's line from B passes through I only at a = -0.0993, outside
    [0, 1]; at a = 0 both A and C leave |I - B|^2 = 285, a tie, which keeps the first candidate, C (at (-2, -2)).
    With a prior of 1,000 and the network's 0.85: ((I - B) . (C - B) + 850) / (870 + 1,000) = (-348 + 850) / 1,870
    = 0.26845. Left unclipped below 0, A would fit (nearly nothing left) and solve below 0, to 0."""
    bg, fg_bg, net = _two_colour_scene((64, 75, 78))
    net[4, 8] = 0.85
    c_first = Trust(chroma=1.0, prior=1000.0, candidates=((-2, -2), (0, 0)))
    assert refine_alpha(bg, fg_bg, net, c_first)[4, 8] == pytest.approx(502 / 1870, abs=1e-6)


def test_a_candidates_best_alpha_weighs_colour_as_the_trust_does():
    """The chroma-only edge (I - B = (30, -18, 14), half of F - B = (60, -36, 28), all of it off the luma axis),
    with one inner pixel (1, 1) of I's own colour, D: the candidate of (1, 4)'s point (0, -3). HALF_CHROMA: A fits
    at a = 0.1 x 2,840 / (0.1 x 5,680) = 0.5 and D at a = 1, each leaving nothing: a tie, which keeps A, the pixel's
    own nearest: (284 + 100 x 0.8) / (568 + 100) = 0.54491, as in the other rows. Were the chroma weighed in the
    product with I - B alone, A's a would be 5, clipped to 1, leaving 0.1 x 1,420 = 142, and D would solve to
    (142 + 80) / (142 + 100) = 0.91736."""
    bg, fg_bg, net = _chroma_only_scene()
    fg_bg[1, 1] = fg_bg[1, 4]
    assert refine_alpha(bg, fg_bg, net, HALF_CHROMA)[:, 4] == pytest.approx([364 / 668] * 3, abs=1e-5)


@pytest.mark.parametrize("change", [{"floor": 0.95}, {"floor": 0.85}, {"floor": -0.1}, {"sure": 1.5}])
def test_refine_refuses_a_floor_not_below_the_sure(change):
    with pytest.raises(ValueError, match="give 0 <= floor < sure <= 1"):
        refine_alpha(*_two_colour_scene((107, 133, 90)), LOSSLESS._replace(**change))


def test_refine_takes_the_limits_of_each_weight():
    """A floor of 0, a sure of 1, a chroma of 0 and numpy ints as candidates are all allowed; a negative chroma not."""
    scene = _two_colour_scene((107, 133, 90))
    for change in ({"floor": 0.0}, {"sure": 1.0}, {"chroma": 0.0}, {"candidates": ((np.int64(0), np.int64(0)),)}):
        assert refine_alpha(*scene, LOSSLESS._replace(**change)).shape == (9, 12)
    with pytest.raises(ValueError, match="give a chroma weight in"):
        refine_alpha(*scene, LOSSLESS._replace(chroma=-0.1))


def test_a_candidate_is_chosen_however_badly_it_fits():
    """bg black, the object red (255, 0, 0); a soft pixel of cyan (0, 255, 255), the network's 0.5: red's line from B
    misses I by all of |I - B|^2 = 130,050, yet red is the only colour there, so F is red and the solve gives
    10 x 0.5 / (255^2 + 10) = 0.0000769 (no F at all, F = B, would leave the network's 0.5)."""
    bg = np.zeros((5, 10, 3), np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((5, 10), np.float32)
    fg_bg[:, :5], net[:, :5] = (255, 0, 0), 1.0
    fg_bg[:, 5], net[:, 5] = (0, 255, 255), 0.5
    assert refine_alpha(bg, fg_bg, net)[:, 5] == pytest.approx([5 / 65035] * 5, abs=1e-7)
