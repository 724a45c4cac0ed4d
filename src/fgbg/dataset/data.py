"""PyTorch view of the composed dataset: normalised 6-channel inputs and the two targets.

Training can take square crops at native resolution instead of whole images, so that a
CPU step on a 192 px dataset costs what a 64 px step does. A share `object_share` of the
crops sits on the object: it holds the object's foot (its lowest row, where its depth comes
from) and its centre column; the rest are taken anywhere. The network is fully
convolutional, so evaluation and prediction still run on whole images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from fgbg.core.runtime import model_input, rows_channel, rows_to_uint8
from fgbg.dataset.store import ComposedStore

# (bg, fg_bg, mask, depth, seed) -> the same four transformed, e.g. fgbg.training.augment.Augment. Taken as
# a callable, so that evaluation, which reads samples as they are, does not import augmentation.
Transform = Callable[..., tuple]
# (bg, fg_bg, mask, seed) -> (bg, fg_bg), e.g. fgbg.training.perturb.Perturb; a callable for the same reason.
Perturbation = Callable[..., tuple]


@dataclass(frozen=True)
class Crop:
    size: int  # side of the square crop in px
    object_share: float  # probability that a crop sits on the object, else anywhere


def crop_window(image_size: int, crop: Crop, box: tuple[int, int, int, int], rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of a crop.size square in an image_size square, for an object box (x, y, h, w)."""
    room = image_size - crop.size
    if room <= 0:
        return 0, 0
    x, y, h, w = box
    if rng.random() < crop.object_share:
        foot, centre = y + h - 1, x + w // 2  # the object's lowest row and its centre column
        top = rng.integers(max(0, foot - crop.size + 1), min(foot, room) + 1)
        left = rng.integers(max(0, centre - crop.size + 1), min(centre, room) + 1)
        return int(top), int(left)
    return int(rng.integers(0, room + 1)), int(rng.integers(0, room + 1))


def sample_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 32-bit seed for one sample in one epoch: stream 0 augments it, 2 perturbs it (crops draw
    from [seed, epoch, index, 1]), so that no two draws share a seed."""
    return int(np.random.SeedSequence([seed, epoch, index] + ([stream] if stream else [])).generate_state(1)[0])


@dataclass(frozen=True)
class SampleView:
    """How a PairDataset shows each sample: as stored (the default, what evaluation reads) or
    cropped, augmented and perturbed, as training sees it.

    `seed`: the draws of crops, augmentations and perturbations (with the epoch and the index);
    `crop`: square crops (None: whole images); `fixed_crops`: the same crop every epoch (validation);
    `augment`: e.g. fgbg.training.augment.Augment; `perturb`: capture perturbations of the inputs
    (fgbg.training.perturb.Perturb), after augmentation; `raw`: x as uint8 (bg then fg_bg),
    normalised later on the device (runtime.normalise_on_device); `rows`: a 7th channel, each
    pixel's row in the whole image (runtime.rows_channel)."""

    seed: int = 0
    crop: Crop | None = None
    fixed_crops: bool = False
    augment: Transform | None = None
    perturb: Perturbation | None = None
    raw: bool = False
    rows: bool = False


class PairDataset(torch.utils.data.Dataset):
    """Samples `ids` of a composed dataset as (x 6,H,W; mask 1,H,W; depth 1,H,W) tensors, shown as `view` says.

    With an augmenting or cropping view, call `set_epoch` before each epoch: sample k of epoch e
    is always augmented the same way (see fgbg.training.augment).
    """

    def __init__(self, store: ComposedStore, ids: list[int], stats: dict, view: SampleView = SampleView()) -> None:
        self.store = store
        self.ids = list(ids)
        self.stats = {k: stats[k] for k in ("bg", "fg_bg")}
        self.view = view
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        view = self.view
        bg, fg_bg, mask, depth = self.store.read(self.ids[k])  # S, S, 3 uint8 x 2; S, S bool; S, S float32
        full_height, top = bg.shape[0], 0
        if view.crop is not None:
            rng = np.random.default_rng([view.seed, 0 if view.fixed_crops else self.epoch, k, 1])
            top, left = crop_window(bg.shape[0], view.crop, self.store.box(self.ids[k]), rng)
            window = (slice(top, top + view.crop.size), slice(left, left + view.crop.size))
            bg, fg_bg, mask, depth = bg[window], fg_bg[window], mask[window], depth[window]
        if view.augment is not None:
            bg, fg_bg, mask, depth = view.augment(bg, fg_bg, mask, depth, sample_seed(view.seed, self.epoch, k))
        if view.perturb is not None:
            bg, fg_bg = view.perturb(bg, fg_bg, mask, sample_seed(view.seed, self.epoch, k, stream=2))
        h, w = bg.shape[:2]
        if view.raw:
            planes = [bg, fg_bg] + ([rows_to_uint8(top, h, w, full_height)[..., None]] if view.rows else [])
            x = torch.from_numpy(np.concatenate(planes, axis=2)).permute(2, 0, 1).contiguous()  # 6 or 7, H, W uint8
        else:
            x = model_input(bg, fg_bg, self.stats, rows_channel(top, h, w, full_height) if view.rows else None)
        mask_t = torch.from_numpy(np.ascontiguousarray(mask[None], dtype=np.float32))  # 1, H, W
        depth_t = torch.from_numpy(np.ascontiguousarray(depth[None], dtype=np.float32))  # 1, H, W
        return x, mask_t, depth_t
