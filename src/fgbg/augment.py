"""Training augmentations (albumentations), seeded per sample and epoch.

Geometric transforms (horizontal flip, affine) move bg, fg_bg, mask and depth together;
colour transforms change bg and fg_bg alike (so their difference still marks the object)
and leave mask and depth alone. Each sample's transform is seeded from (seed, epoch,
index), so a run resumed mid-way sees exactly the augmentations of an uninterrupted one,
whatever the number of DataLoader workers.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from fgbg.config import AugmentConfig


class Augment:
    """Callable: (bg, fg_bg, mask, depth, seed) -> the same four, transformed together."""

    def __init__(self, cfg: AugmentConfig) -> None:
        transforms = []
        if cfg.hflip:
            transforms.append(A.HorizontalFlip(p=cfg.hflip))
        if cfg.affine:
            transforms.append(A.Affine(
                scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-5, 5),
                interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_REFLECT_101, p=cfg.affine,
            ))
        if cfg.color:
            transforms.append(A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=cfg.color))
        self.enabled = bool(transforms)
        self.compose = A.Compose(transforms, additional_targets={"fg_bg": "image", "depth": "mask"}, seed=0)

    def __call__(self, bg: np.ndarray, fg_bg: np.ndarray, mask: np.ndarray, depth: np.ndarray, seed: int):
        if not self.enabled:
            return bg, fg_bg, mask, depth
        self.compose.set_random_seed(seed)
        out = self.compose(image=bg, fg_bg=fg_bg, mask=mask.astype(np.uint8), depth=depth)
        return out["image"], out["fg_bg"], out["mask"].astype(bool), out["depth"]
