"""Capture perturbations: each changes what it names, its strength reaches it, and a seed repeats it."""

import numpy as np
import pytest

from fgbg.core.config import PerturbConfig
from fgbg.training.perturb import Perturb


def make_pair(h: int, w: int, box: tuple[slice, slice]):
    """(bg, fg_bg, mask): a grey textured ramp h x w, and a flat object over `box`."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(60, 180, w)[None, :, None] + np.linspace(0, 30, h)[:, None, None]  # h, w, 1
    bg = np.clip(ramp + rng.normal(0, 8, (h, w, 1)), 0, 255).astype(np.uint8).repeat(3, axis=2)
    fg_bg = bg.copy()
    mask = np.zeros((h, w), bool)
    mask[box] = True
    fg_bg[mask] = 230
    return bg, fg_bg, mask


@pytest.fixture
def pair():
    return make_pair(48, 48, (slice(10, 30), slice(15, 30)))


# perturbation -> (which inputs it changes, the strength param that, at zero, makes it a no-op)
CHANGES = {
    "shadow": ({"fg_bg"}, {"shadow_strength": 0.0}),
    "bg_jitter": ({"bg"}, {"bg_jitter_strength": 0.0}),
    "misalign": ({"bg"}, {"misalign_degrees": 0.0, "misalign_shift": 0.0}),
    "blur": ({"bg", "fg_bg"}, None),  # blur_sigma: see below
    "noise": ({"bg", "fg_bg"}, {"noise_sigma": 0.0}),
    "jpeg": ({"bg", "fg_bg"}, None),  # jpeg_quality: see below
}


ALONE = {name: 0.0 for name in CHANGES}  # every probability off (jpeg is on by default), to set one alone


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_each_perturbation_changes_what_it_names(pair, name):
    bg, fg_bg, mask = pair
    out_bg, out_fg_bg = Perturb(PerturbConfig(**{**ALONE, name: 1.0}))(bg, fg_bg, mask, seed=3)
    changed = {k for k, (a, b) in {"bg": (bg, out_bg), "fg_bg": (fg_bg, out_fg_bg)}.items() if (a != b).any()}
    assert changed == CHANGES[name][0]
    assert out_bg.dtype == np.uint8 and out_bg.shape == bg.shape


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_each_perturbation_takes_a_full_height_strip(name):
    """train.crop 24 x crop_height 192 crops are taller than wide: each perturbation keeps their shape (the shadow
    once swapped width and height, and every run with train.perturb.shadow > 0 on strips crashed)."""
    bg, fg_bg, mask = make_pair(60, 12, (slice(20, 40), slice(3, 9)))
    for seed in range(4):
        out_bg, out_fg_bg = Perturb(PerturbConfig(**{**ALONE, name: 1.0}))(bg, fg_bg, mask, seed=seed)
        assert out_bg.shape == bg.shape and out_fg_bg.shape == fg_bg.shape


def test_a_shadow_never_falls_on_the_object(pair):
    bg, fg_bg, mask = pair
    _, out = Perturb(PerturbConfig(**{**ALONE, "shadow": 1.0}, shadow_strength=1.0))(bg, fg_bg, mask, seed=1)
    assert (out[mask] == fg_bg[mask]).all() and (out[~mask] <= fg_bg[~mask]).all() and (out != fg_bg).any()


@pytest.mark.parametrize("name", sorted(n for n, (_, off) in CHANGES.items() if off))
def test_each_strength_reaches_its_perturbation(pair, name):
    bg, fg_bg, mask = pair
    off = CHANGES[name][1]
    out_bg, out_fg_bg = Perturb(PerturbConfig(**{**ALONE, name: 1.0}, **off))(bg, fg_bg, mask, seed=3)
    assert (out_bg == bg).all() and (out_fg_bg == fg_bg).all()


@pytest.mark.parametrize("name, weak, strong", [("jpeg_quality", (95, 95), (20, 20)), ("blur_sigma", 0.6, 2.0)])
def test_jpeg_quality_and_blur_sigma_set_how_much_changes(pair, name, weak, strong):
    bg, fg_bg, mask = pair
    kind = name.split("_")[0]

    def error(value):
        out_bg, _ = Perturb(PerturbConfig(**{**ALONE, kind: 1.0, name: value}))(bg, fg_bg, mask, seed=3)
        return np.abs(out_bg.astype(int) - bg).mean()

    assert 0 < error(weak) < error(strong) / 2


def test_a_seed_repeats_its_perturbations_and_all_off_is_disabled(pair):
    bg, fg_bg, mask = pair
    every = PerturbConfig(shadow=0.5, bg_jitter=0.5, misalign=0.5, blur=0.5, noise=0.5, jpeg=0.5)
    a = Perturb(every)(bg, fg_bg, mask, seed=11)
    b = Perturb(every)(bg, fg_bg, mask, seed=11)
    c = Perturb(every)(bg, fg_bg, mask, seed=12)
    assert all((x == y).all() for x, y in zip(a, b)) and any((x != y).any() for x, y in zip(a, c))
    assert not Perturb(PerturbConfig(jpeg=0.0)).enabled and Perturb(PerturbConfig()).enabled  # jpeg on by default


def test_a_sample_is_perturbed_by_seed_epoch_and_index_so_a_resumed_run_sees_the_same(tiny_dataset):
    from fgbg.dataset.data import PairDataset, SampleView
    from fgbg.dataset.store import ComposedStore
    from tests.conftest import contract

    every = Perturb(PerturbConfig(shadow=0.5, bg_jitter=0.5, misalign=0.5, blur=0.5, noise=0.5, jpeg=0.5))

    def sample(epoch, k, seed=0):
        ds = PairDataset(ComposedStore(tiny_dataset), list(range(12)), contract(), SampleView(seed=seed, perturb=every, raw=True))
        ds.set_epoch(epoch)
        return ds[k][0]

    assert (sample(3, 5) == sample(3, 5)).all()  # a fresh dataset, as after a resume
    assert (sample(3, 5) != sample(4, 5)).any() and (sample(3, 5) != sample(3, 5, seed=1)).any()


def test_the_bg_jitter_table_is_the_per_pixel_formula():
    """_jitter maps each uint8 level through one table: the same as brightness, contrast around the image's mean
    and gamma computed pixel by pixel, as the recipe defines them."""
    from fgbg.training.perturb import _jitter

    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = _jitter(img, 0.3, np.random.default_rng(7))
    b, c, g = np.random.default_rng(7).uniform(0.7, 1.3, 3)
    x = img / 255
    assert np.allclose(out, np.clip((x * b - x.mean()) * c + x.mean(), 0, 1) ** g, atol=1e-6)


def test_noise_windows_are_standard_normal_and_repeat_with_their_seed():
    from fgbg.training.perturb import gaussian_noise

    a = gaussian_noise((192, 192, 3), np.random.default_rng(5))
    assert abs(a.mean()) < 0.01 and abs(a.std() - 1) < 0.01 and a.dtype == np.float32
    assert np.array_equal(a, gaussian_noise((192, 192, 3), np.random.default_rng(5)))
    assert not np.array_equal(a, gaussian_noise((192, 192, 3), np.random.default_rng(6)))
    big = gaussian_noise((700, 700, 3), np.random.default_rng(5))  # more than a quarter of the bank: it grows
    assert big.shape == (700, 700, 3) and abs(big.std() - 1) < 0.01
