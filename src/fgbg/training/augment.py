"""Training augmentations, seeded per sample and epoch.

Geometric transforms (horizontal flip, affine) move every image and map of the sample together
(bg, fg_bg, mask, depth, the bg depth).
The colour jitter draws once per sample and applies the same per-pixel map to bg and
fg_bg: brightness, contrast around one shared level (the bg's mean grey; each image's own
mean would move every pixel of fg_bg off bg's), saturation, hue. Equal pixels stay equal,
so the difference still marks exactly the object. Mask and depth are left alone. Each sample's transform is seeded from (seed, epoch,
index), so a run resumed mid-way sees exactly the augmentations of an uninterrupted one,
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from fgbg.core.config import AugmentConfig
from fgbg.dataset.data import Sample


class Augment:
    """Callable: (Sample, seed) -> the Sample, transformed together.

    The flip needs no engine (cv2.flip for the images, views of the maps); the affine runs on
    albumentations; the colour jitter is `shared_color_jitter`. Each draws from its own stream of
    the sample's seed."""

    def __init__(self, cfg: AugmentConfig) -> None:
        self.hflip, self.color = cfg.hflip, cfg.color
        self.affine = A.Compose([A.Affine(
            scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-5, 5),
            interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
            border_mode=cv2.BORDER_REFLECT_101, p=cfg.affine,
        )], additional_targets={"fg_bg": "image", "depth": "mask", "bg_depth": "mask", "alpha": "mask"},
            seed=0) if cfg.affine else None
        self.enabled = bool(cfg.hflip or cfg.affine or cfg.color)

    def __call__(self, sample: Sample, seed: int) -> Sample:
        if not self.enabled:
            return sample
        rng = np.random.default_rng([seed, 1])  # the flip and colour draws, apart from albumentations' stream
        flip, colour = rng.random(2)
        if flip < self.hflip:  # the images by OpenCV (contiguous copies, which the loader merges fast), the maps as views
            sample = Sample(cv2.flip(sample.bg, 1), cv2.flip(sample.fg_bg, 1), *(m[:, ::-1] for m in sample[2:]))
        if self.affine is not None:
            self.affine.set_random_seed(seed)
            out = self.affine(image=sample.bg, fg_bg=sample.fg_bg, mask=sample.mask.astype(np.uint8),
                              depth=sample.depth, bg_depth=sample.bg_depth, alpha=sample.alpha)
            sample = Sample(out["image"], out["fg_bg"], out["mask"].astype(bool), out["depth"], out["bg_depth"],
                            out["alpha"])
        if colour < self.color:
            sample = sample._replace(**dict(zip(("bg", "fg_bg"), shared_color_jitter(sample.bg, sample.fg_bg, rng))))
        return sample


def shared_color_jitter(bg: np.ndarray, fg_bg: np.ndarray, rng: np.random.Generator,
                        strength: float = 0.2, hue: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """One draw of brightness, contrast, saturation (each a factor in 1 +- strength) and a hue
    shift (+- hue of a turn), applied as the same per-pixel map to both H, W, 3 uint8 images."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, 3)
    shift = rng.uniform(-hue, hue)
    level = float((bg.astype(np.float32) @ GREY).mean()) * brightness  # the shared contrast centre
    out = []
    for img in (bg, fg_bg):
        x = img.astype(np.float32) * brightness  # H, W, 3
        x = (x - level) * contrast + level
        grey = (x @ GREY)[..., None]  # H, W, 1
        x = np.clip(grey + (x - grey) * saturation, 0, 255).round().astype(np.uint8)
        if shift:
            hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # hue in 0..179
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + round(shift * 180)) % 180).astype(np.uint8)
            x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        out.append(x)
    return out[0], out[1]


GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 luma weights
