"""Capture perturbations, on both engines (per sample in the loader, batched on the device): each changes
what it names, its strength reaches it, a seed repeats it, and its draws are what it promises."""

import numpy as np
import pytest
import torch

from fgbg.core.config import PerturbConfig
from fgbg.training.perturb import Perturb
from fgbg.training.perturb_device import DEVICE_PERTURBATIONS, DevicePerturb, batch_generator, gaussian_blur

OFF = {name: 0.0 for name in (*DEVICE_PERTURBATIONS, "jpeg")}  # every probability off (jpeg is on by default)


def make_batch(n: int, h: int, w: int, box: tuple[slice, slice]):
    """(x N, H, W, 6 uint8: bg a grey textured ramp, fg_bg the same with a flat object over `box`; mask N, 1, H, W)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(60, 180, w)[None, :, None] + np.linspace(0, 30, h)[:, None, None]  # h, w, 1
    bg = np.clip(ramp + rng.normal(0, 8, (n, h, w, 1)), 0, 255).astype(np.uint8).repeat(3, axis=3)
    fg_bg = bg.copy()
    mask = np.zeros((n, 1, h, w), np.float32)
    mask[:, 0][(slice(None), *box)] = 1
    fg_bg[mask[:, 0] > 0] = 230
    return torch.from_numpy(np.concatenate([bg, fg_bg], axis=3)), torch.from_numpy(mask)


@pytest.fixture
def batch():
    return make_batch(6, 48, 48, (slice(10, 30), slice(15, 30)))


ENGINES = ("loader", "device")


def perturb(cfg: dict, x, mask, seed: int = 3, engine: str = "device", **strengths) -> torch.Tensor:
    """x N, H, W, 6 uint8 perturbed by `engine`: the device's batch step, or the loader's Perturb sample by sample
    (sample i with seed 1000 seed + i)."""
    config = PerturbConfig(**{**OFF, **cfg}, **strengths)
    if engine == "device":
        return DevicePerturb(config)(x, mask, batch_generator(seed, 0, 0, 0))
    loader, out = Perturb(config), x.clone()
    for i in range(len(x)):
        m = mask[i, 0].numpy() > 0 if mask is not None else np.zeros(x.shape[1:3], bool)
        bg, fg_bg = loader(x[i, ..., :3].numpy(), x[i, ..., 3:6].numpy(), m, 1000 * seed + i)
        out[i, ..., :3], out[i, ..., 3:6] = torch.from_numpy(bg), torch.from_numpy(fg_bg)
    return out


# perturbation -> (which inputs it changes, the strength params that, at zero, make it a no-op)
CHANGES = {
    "shadow": ({"fg_bg"}, {"shadow_strength": 0.0}),
    "bg_jitter": ({"bg"}, {"bg_jitter_strength": 0.0}),
    "misalign": ({"bg"}, {"misalign_degrees": 0.0, "misalign_shift": 0.0}),
    "blur": ({"bg", "fg_bg"}, None),  # blur_sigma >= 0.1: see below
    "noise": ({"bg", "fg_bg"}, {"noise_sigma": 0.0}),
}


def changed(x, out) -> set[str]:
    return {name for name, part in (("bg", slice(0, 3)), ("fg_bg", slice(3, 6))) if (x[..., part] != out[..., part]).any()}


@pytest.mark.parametrize("name", sorted(CHANGES))
@pytest.mark.parametrize("engine", ENGINES)
def test_each_perturbation_changes_what_it_names(batch, name, engine):
    x, mask = batch
    out = perturb({name: 1.0}, x, mask, engine=engine)
    assert changed(x, out) == CHANGES[name][0] and out.dtype == torch.uint8 and out.shape == x.shape


@pytest.mark.parametrize("name", sorted(n for n, (_, off) in CHANGES.items() if off))
@pytest.mark.parametrize("engine", ENGINES)
def test_each_strength_reaches_its_perturbation(batch, name, engine):
    x, mask = batch
    assert torch.equal(perturb({name: 1.0}, x, mask, engine=engine, **CHANGES[name][1]), x)


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_each_perturbation_takes_full_height_strips_and_a_rows_channel(name):
    """192 x 24 strips are taller than wide (the shadow once swapped width and height and crashed on them); a
    7th channel (the rows levels) passes through."""
    x, mask = make_batch(4, 60, 12, (slice(20, 40), slice(3, 9)))
    rows = torch.randint(0, 256, (4, 60, 12, 1), dtype=torch.uint8)
    out = perturb({name: 1.0}, torch.cat([x, rows], dim=3), mask)
    assert out.shape == (4, 60, 12, 7) and torch.equal(out[..., 6:], rows)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_shadow_falls_below_the_object_never_on_it_and_only_darkens(batch, engine):
    x, mask = batch
    out = perturb({"shadow": 1.0}, x, mask, engine=engine, shadow_strength=1.0)
    on = mask[:, 0] > 0
    fg_in, fg_out = x[..., 3:].int(), out[..., 3:].int()
    assert torch.equal(fg_out[on], fg_in[on]) and (fg_out[~on] <= fg_in[~on]).all()
    darker = (fg_out < fg_in).any(dim=3)  # N, H, W
    assert darker.any() and darker[:, 31:].sum() > darker[:, :10].sum()  # shifted down: below the object (rows 10-29)


@pytest.mark.parametrize("engine, name", [(e, n) for e in ENGINES for n in DEVICE_PERTURBATIONS] + [("loader", "jpeg")])
def test_a_probability_applies_to_its_share_of_the_samples(engine, name):
    x, mask = make_batch(200, 16, 16, (slice(4, 10), slice(4, 10)))
    out = perturb({name: 0.3}, x, mask, engine=engine, misalign_degrees=5.0, misalign_shift=0.1, noise_sigma=0.2)
    share = (out != x).flatten(1).any(dim=1).float().mean()
    assert 0.2 < share < 0.4  # 60 of 200 expected; binomial sd 6.5


@pytest.mark.parametrize("engine", ENGINES)
def test_noise_has_the_drawn_sigma(engine):
    """Each input's sigma is drawn in [0, noise_sigma]: on mid-grey, the per-image std of the change spreads
    over [0, 0.1] x 255 with a mean of 0.05 x 255."""
    x = torch.full((300, 32, 32, 6), 128, dtype=torch.uint8)
    out = perturb({"noise": 1.0}, x, None, engine=engine, noise_sigma=0.1)
    std = (out.float() - 128).flatten(1, 2).std(dim=1)  # 300, 6 (per image and channel)
    assert std.max() < 0.1 * 255 * 1.1 and abs(std.mean() - 0.05 * 255) < 0.05 * 255 * 0.1


@pytest.mark.parametrize("engine", ENGINES)
def test_blur_sigma_sets_how_much_changes(batch, engine):
    x, mask = batch
    error = {s: (perturb({"blur": 1.0}, x, mask, engine=engine, blur_sigma=s).int() - x.int()).abs().float().mean() for s in (0.6, 2.0)}
    assert 0 < error[0.6] < error[2.0] / 1.5


def test_gaussian_blur_by_hand():
    """An impulse blurred with sigma 1 is the normalised Gaussian: its centre tap 1 / sum(exp(-k^2 / 2), k = -3..3)
    squared (separable), and a flat image stays flat (mirrored borders)."""
    impulse = torch.zeros(1, 1, 9, 9)
    impulse[0, 0, 4, 4] = 1
    out = gaussian_blur(impulse, torch.tensor([1.0]))
    taps = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    assert out[0, 0, 4, 4].item() == pytest.approx((1 / taps.sum()) ** 2, rel=1e-5)
    assert out.sum().item() == pytest.approx(1.0, rel=1e-5)
    flat = torch.full((2, 3, 6, 5), 0.25)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.5, 1.5])), flat)


def ramp(n: int, h: int, w: int, axis: int) -> torch.Tensor:
    """N, H, W, 6 uint8: 100 + the column (axis 1) or the row (axis 0), 1 level a px, in every channel."""
    levels = torch.arange(w if axis else h, dtype=torch.uint8) + 100
    shape = (1, 1, w, 1) if axis else (1, h, 1, 1)
    return levels.view(shape).expand(n, h, w, 6).clone()


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("h, w, axis", [(24, 60, 1), (60, 24, 0)])
def test_misalignment_shifts_the_bg_by_at_most_its_share_of_each_side(engine, h, w, axis):
    """degrees 0, shift 0.1: a wide image moves across by up to 6 px (0.1 of its width), a tall one down by up to
    6 px (0.1 of its height); over 40 draws the largest move comes near the bound. A ramp of 1 level a px along
    the axis shows the move as the change of the mean level, away from the mirrored borders."""
    x = ramp(40, h, w, axis)
    out = perturb({"misalign": 1.0}, x, None, engine=engine, misalign_degrees=0.0, misalign_shift=0.1)
    centre = (slice(None), slice(h // 4, 3 * h // 4), slice(w // 4, 3 * w // 4))
    moved = (out[..., :3].float() - x[..., :3].float())[centre].mean(dim=(1, 2, 3)).abs()
    assert moved.max() <= 6.5 and moved.max() > 4.5 and torch.equal(out[..., 3:], x[..., 3:])


@pytest.mark.parametrize("engine", ENGINES)
def test_misalignment_rotates_by_at_most_its_degrees_keeping_angles_on_a_wide_image(engine):
    """shift 0, up to 10 degrees, on an 80 x 40 image of rows 1 level apart: rotated by t, the levels' gradient
    at the centre turns by t, so atan(|d/dx| / |d/dy|) estimates |t|: at most 10 degrees, and near 10 for one
    of 40 draws. A rotation that forgot the aspect ratio would turn it by up to about 20 or 5 degrees."""
    x = ramp(40, 40, 80, axis=0)
    out = perturb({"misalign": 1.0}, x, None, engine=engine, misalign_degrees=10.0, misalign_shift=0.0)[..., 0].float()
    centre = out[:, 10:30, 20:60]
    dx = (centre[:, :, 1:] - centre[:, :, :-1]).mean(dim=(1, 2)).abs()
    dy = (centre[:, 1:, :] - centre[:, :-1, :]).mean(dim=(1, 2)).abs()
    angle = torch.rad2deg(torch.atan2(dx, dy))
    assert angle.max() <= 10.5 and angle.max() > 7.5


@pytest.mark.parametrize("engine", ENGINES)
def test_a_flat_image_blurred_stays_exactly_flat(engine):
    """A blur of a flat image changes no level: the float round trip rounds (truncating would take 128 to 127)."""
    x = torch.full((8, 16, 16, 6), 128, dtype=torch.uint8)
    assert torch.equal(perturb({"blur": 1.0}, x, None, engine=engine), x)


def test_the_device_jitter_by_hand():
    """Levels 0.2 and 0.8 (mean 0.5), brightness 1.25, contrast 0.5, gamma 2: (0.25 - 0.5) 0.5 + 0.5 = 0.375,
    squared 0.140625; (1 - 0.5) 0.5 + 0.5 = 0.75, squared 0.5625."""
    from fgbg.training.perturb_device import jitter

    img = torch.tensor([0.2, 0.8]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    one = torch.ones(1, 1, 1, 1)
    out = jitter(img, 1.25 * one, 0.5 * one, 2 * one)
    assert torch.allclose(out[0, :, 0], torch.tensor([0.140625, 0.5625]).expand(3, 2))


@pytest.mark.parametrize("engine", ENGINES)
def test_the_bg_jitter_is_brightness_contrast_and_gamma_around_the_mean(engine):
    """On a flat bg at level v the mean is v, so contrast does nothing: out = (v b) ^ g, b and g in 1 +- 0.2."""
    x = torch.full((100, 4, 4, 6), 153, dtype=torch.uint8)  # v = 0.6
    out = perturb({"bg_jitter": 1.0}, x, None, engine=engine, bg_jitter_strength=0.2)[:, 0, 0, 0].float() / 255
    lo, hi = (0.6 * 0.8) ** 1.2, min(1.0, 0.6 * 1.2) ** 0.8
    assert (out >= lo - 0.01).all() and (out <= hi + 0.01).all() and out.std() > 0.02


@pytest.mark.parametrize("engine", ENGINES)
def test_a_seed_repeats_its_perturbations(batch, engine):
    x, mask = batch
    every = {name: 0.5 for name in DEVICE_PERTURBATIONS}
    a, b, c = (perturb(every, x, mask, seed=s, engine=engine) for s in (11, 11, 12))
    assert torch.equal(a, b) and not torch.equal(a, c)
    draws = [torch.rand(4, generator=batch_generator(*args)) for args in
             ((0, 1, 2, 0), (0, 1, 2, 0), (1, 1, 2, 0), (0, 2, 2, 0), (0, 1, 3, 0), (0, 1, 2, 1))]
    assert torch.equal(draws[0], draws[1]) and all(not torch.equal(draws[0], d) for d in draws[2:])


def test_the_shadow_without_a_mask_is_refused(batch):
    with pytest.raises(ValueError, match="mask"):
        perturb({"shadow": 1.0}, batch[0], None)


def test_the_loaders_jpeg_changes_both_inputs_with_its_quality_and_seed():
    x, _ = make_batch(1, 48, 48, (slice(10, 30), slice(15, 30)))
    bg, fg_bg = x[0, ..., :3].numpy(), x[0, ..., 3:].numpy()

    def error(quality, seed=3):
        out_bg, out_fg_bg = Perturb(PerturbConfig(jpeg=1.0, jpeg_quality=(quality, quality)))(bg, fg_bg, None, seed)
        assert (out_fg_bg != fg_bg).any()
        return np.abs(out_bg.astype(int) - bg).mean()

    assert 0 < error(95) < error(20) / 2
    spread = Perturb(PerturbConfig(jpeg=1.0, jpeg_quality=(20, 95)))
    errors = [np.abs(spread(bg, fg_bg, None, seed)[0].astype(int) - bg).mean() for seed in range(12)]
    assert max(errors) > error(60) > min(errors)  # the quality is drawn from the whole range
    every = Perturb(PerturbConfig(jpeg=0.5, jpeg_quality=(20, 95)))
    runs = [every(bg, fg_bg, None, seed) for seed in (11, 11, *range(12, 20))]
    assert all((p == q).all() for p, q in zip(runs[0], runs[1]))
    assert any((p != q).any() for other in runs[2:] for p, q in zip(runs[0], other))
    assert not Perturb(PerturbConfig(jpeg=0.0)).enabled and Perturb(PerturbConfig()).enabled  # jpeg on by default
    assert not DevicePerturb(PerturbConfig()).enabled and DevicePerturb(PerturbConfig(blur=0.1)).enabled
    jpeg_only = Perturb(PerturbConfig(blur=1.0, jpeg=0.0), jpeg_only=True)  # the device takes the blur
    assert not jpeg_only.enabled and jpeg_only(bg, fg_bg, None, 0)[0] is bg


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


def test_the_jitter_table_is_the_per_pixel_formula():
    """The loader's _jitter maps each uint8 level through one table: the same as brightness, contrast around the
    image's mean and gamma computed pixel by pixel."""
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


@pytest.mark.parametrize("where, device, on_device", [("auto", "cuda", True), ("auto", "cpu", False),
                                                      ("device", "cpu", True), ("loader", "cuda", False)])
def test_where_picks_the_engine(where, device, on_device):
    assert PerturbConfig(blur=0.3, where=where).on_device(device) == on_device
    assert "where" in PerturbConfig().unused() and "where" not in PerturbConfig(blur=0.3).unused()
