"""How real pairs are captured, applied to training pairs (after BackgroundMattingV2's recipe).

A composed pair differs only inside the object's box, pixel for pixel. A pair shot with a
camera differs everywhere: sensor noise, exposure, a slight shift between the two shots,
JPEG, blur, and the shadow the object casts. Each perturbation below has a probability and
a strength (params `train.perturb`). The targets stay those of the object: the model must
learn that these differences are not the object.

Two engines apply the same recipe (tests/test_perturb.py holds both to each promise):
- here, in the loader, per sample, drawn from (seed, epoch, index), in the order below,
  JPEG last: what `train.perturb.where: auto` runs on the CPU, where OpenCV per sample
  is faster than batched tensor operations (benchmarks/bench_train.py);
- fgbg.training.perturb_device, batched on the training device after the transfer, for
  all but JPEG, which stays here, so it comes first: what `auto` runs with CUDA, where
  it takes that work off the loader's cores.

- shadow: the mask shifted down and sideways, blurred, darkens fg_bg outside the object
  by up to `shadow_strength`;
- bg_jitter: brightness, contrast and gamma of the bg input only, each by up to
  `bg_jitter_strength`;
- misalign: the bg input rotated by up to `misalign_degrees` and shifted by up to
  `misalign_shift` of its side;
- blur: a Gaussian blur of sigma between `blur_sigma` / 2 and `blur_sigma`, drawn for each input;
- noise: Gaussian noise of sigma up to `noise_sigma`, drawn for each input;
- jpeg: each input re-encoded as JPEG at a quality drawn from `jpeg_quality`.
"""

from __future__ import annotations

import cv2
import numpy as np

from fgbg.core.config import PerturbConfig
from fgbg.core.imageio import decode_image, encode_image


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT_101)


def cast_shadow(fg_bg: np.ndarray, mask: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """fg_bg H, W, 3 float32 in [0, 1], darkened by the object's shadow outside the mask H, W bool."""
    h, w = mask.shape
    side = max(h, w)  # the shift and the blur scale with the crop's longer side
    down = int(rng.integers(1, max(2, side // 10)))
    sideways = int(rng.integers(-(side // 10), side // 10 + 1))
    matrix = np.float32([[1, 0, sideways], [0, 1, down]])
    shadow = cv2.warpAffine(mask.view(np.uint8), matrix, (w, h))  # 0 / 1; cv2 takes (width, height)
    shadow = _blur(shadow.astype(np.float32), max(1.0, side / 40))
    shadow *= np.float32(strength * rng.uniform(0.3, 1.0))
    shadow[mask] = 0  # never on the object
    return fg_bg * (1 - shadow)[..., None]


def _jitter(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """uint8 img -> float32 in [0, 1]: brightness, contrast (around the image mean) and gamma, each by up
    to `strength`; one 256-entry table, as every pixel of a level maps alike."""
    brightness, contrast, gamma = rng.uniform(1 - strength, 1 + strength, 3)
    mean = float(np.mean(cv2.mean(img)[: img.shape[2]])) / 255
    levels = np.arange(256) / 255
    table = np.clip((levels * brightness - mean) * contrast + mean, 0, 1) ** gamma
    return cv2.LUT(img, table.astype(np.float32))


def _misalign(img: np.ndarray, degrees: float, shift: float, rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-degrees, degrees), 1.0)
    matrix[:, 2] += rng.uniform(-shift, shift, 2) * (w, h)
    return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def _as_float(img: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; a float image as it is."""
    return img.astype(np.float32) * np.float32(1 / 255) if img.dtype == np.uint8 else img


def _as_uint8(img: np.ndarray) -> np.ndarray:
    """float32 in [0, 1] -> uint8, rounded, in place; a uint8 image as it is."""
    if img.dtype == np.uint8:
        return img
    img *= 255
    img += 0.5
    return np.clip(img, 0, 255, out=img).astype(np.uint8)


_NOISE_BANK = np.zeros(0, np.float32)


def gaussian_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """N(0, 1) float32 noise of `shape`: a window, at an offset drawn from `rng`, of a fixed bank of
    draws at least four times its size (made once per process). Each window's values are independent
    draws; drawing them afresh for each sample took 2 ms at 192 px, most of the loader's time."""
    global _NOISE_BANK
    n = int(np.prod(shape))
    if len(_NOISE_BANK) < 4 * n:
        _NOISE_BANK = np.random.default_rng(0).standard_normal(max(1 << 20, 4 * n), np.float32)
    start = int(rng.integers(0, len(_NOISE_BANK) - n + 1))
    return _NOISE_BANK[start : start + n].reshape(shape)


class Perturb:
    """Callable: (bg, fg_bg, mask, seed) -> (bg, fg_bg) perturbed as a camera would; uint8 H, W, 3.
    `jpeg_only`: the rest runs on the device (fgbg.training.perturb_device).

    An image stays uint8 until a perturbation drawn for it needs floats; the bg jitter works
    on the uint8 levels by table."""

    def __init__(self, cfg: PerturbConfig, jpeg_only: bool = False) -> None:
        if jpeg_only:
            cfg = PerturbConfig(jpeg=cfg.jpeg, jpeg_quality=cfg.jpeg_quality)
        self.cfg = cfg
        self.enabled = any(getattr(cfg, name) for name in (*cfg.DEVICE_SIDE, "jpeg"))

    def __call__(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        c = self.cfg
        rng = np.random.default_rng(seed)
        draws = rng.random(6)  # one per perturbation, in a fixed order, so each is drawn whatever the others do
        if draws[0] < c.shadow:
            fg_bg = cast_shadow(_as_float(fg_bg), mask, c.shadow_strength, rng)
        if draws[1] < c.bg_jitter:
            bg = _jitter(bg, c.bg_jitter_strength, rng)  # bg is still uint8 here
        if draws[2] < c.misalign:
            bg = _misalign(_as_float(bg), c.misalign_degrees, c.misalign_shift, rng)
        if draws[3] < c.blur:
            bg, fg_bg = (_blur(_as_float(img), rng.uniform(c.blur_sigma / 2, c.blur_sigma)) for img in (bg, fg_bg))
        if draws[4] < c.noise:
            bg, fg_bg = (_as_float(img) + gaussian_noise(img.shape, rng) * np.float32(rng.uniform(0, c.noise_sigma))
                         for img in (bg, fg_bg))
        bg, fg_bg = _as_uint8(bg), _as_uint8(fg_bg)
        if draws[5] < c.jpeg:
            lo, hi = c.jpeg_quality
            bg, fg_bg = (decode_image(encode_image(img, "jpeg", int(rng.integers(lo, hi + 1)))) for img in (bg, fg_bg))
        return bg, fg_bg
