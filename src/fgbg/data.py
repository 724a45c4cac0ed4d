"""PyTorch view of the composed dataset: normalised 6-channel inputs and the two targets."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from fgbg.runtime import model_input
from fgbg.store import Dataset

# (bg, fg_bg, mask, depth, seed) -> the same four transformed, e.g. fgbg.augment.Augment. Taken as
# a callable, so that evaluation, which reads samples as they are, does not import augmentation.
Transform = Callable[..., tuple]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 32-bit seed for one sample's augmentation in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class PairDataset(torch.utils.data.Dataset):
    """Samples `ids` of a composed dataset as (x 6,H,W; mask 1,H,W; depth 1,H,W) tensors.

    With `augment`, call `set_epoch` before each epoch: sample k of epoch e is always
    augmented the same way (see fgbg.augment).
    """

    def __init__(self, store: Dataset, ids: list[int], stats: dict, augment: Transform | None = None, seed: int = 0) -> None:
        self.store = store
        self.ids = list(ids)
        self.stats = {k: stats[k] for k in ("bg", "fg_bg")}
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bg, fg_bg, mask, depth = self.store.read(self.ids[k])
        if self.augment is not None:
            bg, fg_bg, mask, depth = self.augment(bg, fg_bg, mask, depth, sample_seed(self.seed, self.epoch, k))
        x = model_input(bg, fg_bg, self.stats)  # 6, H, W
        mask_t = torch.from_numpy(np.ascontiguousarray(mask[None], dtype=np.float32))  # 1, H, W
        depth_t = torch.from_numpy(np.ascontiguousarray(depth[None], dtype=np.float32))  # 1, H, W
        return x, mask_t, depth_t
