"""PyTorch view of the composed dataset: a model's inputs and a target for each of its heads.

A head's target comes from the stored sample (bg, fg_bg, mask, depth, bg_depth, alpha) after cropping and
augmentation, by the function `TARGETS` registers under the head's name.

Training can take square crops at native resolution instead of whole images, so that a
CPU step on a 192 px dataset costs what a 64 px step does. A share `object_share` of the
crops sits on the object: it holds the object's foot (its lowest row, where its depth comes
from) and its centre column; the rest are taken anywhere. The network is fully
convolutional, so evaluation and prediction still run on whole images.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch

from fgbg.core.contract import Contract, kind_of, rows_to_uint8
from fgbg.core.registry import Registry
from fgbg.dataset.store import ComposedStore, Sample

# (Sample, seed) -> the Sample transformed, e.g. fgbg.training.augment.Augment. Taken as a callable, so that
# evaluation, which reads samples as they are, does not import augmentation.
Transform = Callable[..., tuple]
# (bg, fg_bg, mask, seed) -> (bg, fg_bg), e.g. fgbg.training.perturb.Perturb; a callable for the same reason.
Perturbation = Callable[..., tuple]


TARGETS: Registry = Registry("head target")  # head name -> (Sample -> H, W float32)
# Not a head's: 1 where the sample's bg depth is a measured map (data/bg_depth/), 0 where it is the
# ground-plane prior, shaped 1, 1, 1 (N, 1, 1, 1 in a batch). A loss in a head's `measured_only` takes it.
MEASURED = "measured"


@TARGETS.register("mask")
def mask_target(sample: Sample) -> np.ndarray:
    return sample.mask.astype(np.float32)


@TARGETS.register("depth")
def depth_target(sample: Sample) -> np.ndarray:
    return sample.depth


@TARGETS.register("bg_depth")
def bg_depth_target(sample: Sample) -> np.ndarray:
    return sample.bg_depth


@TARGETS.register("alpha")
def alpha_target(sample: Sample) -> np.ndarray:
    return sample.alpha


@dataclass(frozen=True)
class Crop:
    size: int  # width of the crop in px (and its height, for a square one)
    object_share: float  # probability that a crop sits on the object, else anywhere
    height: int = 0  # height in px; 0: square. The image's height (or more): full-height strips

    @property
    def shape(self) -> tuple[int, int]:
        return self.height or self.size, self.size


def crop_window(image_size: int, crop: Crop, box: tuple[int, int, int, int], rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of a crop.shape window in an image_size square, for an object box (x, y, h, w)."""
    height, width = crop.shape
    room_h, room_w = image_size - height, image_size - width
    if room_h <= 0 and room_w <= 0:
        return 0, 0
    x, y, h, w = box
    if rng.random() < crop.object_share:
        foot, centre = y + h - 1, x + w // 2  # the object's lowest row and its centre column
        top = rng.integers(max(0, foot - height + 1), min(foot, room_h) + 1) if room_h > 0 else 0
        left = rng.integers(max(0, centre - width + 1), min(centre, room_w) + 1) if room_w > 0 else 0
        return int(top), int(left)
    return (int(rng.integers(0, room_h + 1)) if room_h > 0 else 0), (int(rng.integers(0, room_w + 1)) if room_w > 0 else 0)


def sample_seed(seed: int, epoch: int, index: int, stream: int = 0) -> int:
    """A 32-bit seed for one sample in one epoch: stream 0 augments it, 2 perturbs it (crops draw
    from [seed, epoch, index, 1]), so that no two draws share a seed."""
    return int(np.random.SeedSequence([seed, epoch, index] + ([stream] if stream else [])).generate_state(1)[0])


@dataclass(frozen=True)
class SampleView:
    """How a PairDataset shows each sample: as stored (the default, what evaluation reads) or
    cropped, augmented and perturbed, as training sees it.

    `seed`: the draws of crops, augmentations and perturbations (with the epoch and the index);
    `crop`: square crops (None: whole images);
    `augment`: e.g. fgbg.training.augment.Augment; `perturb`: the loader's capture perturbations of the
    inputs (fgbg.training.perturb.Perturb), after augmentation; `raw`: x as H, W, C uint8 (bg, fg_bg and the
    rows levels), encoded later on the device (fgbg.core.contract.Contract.encode_uint8)."""

    seed: int = 0
    crop: Crop | None = None
    augment: Transform | None = None
    perturb: Perturbation | None = None
    raw: bool = False
    targets: tuple[str, ...] | None = None  # the heads whose targets to load (None: every head of the contract),
    # and MEASURED for losses on measured depth only


class PairDataset(torch.utils.data.Dataset):
    """Samples `ids` of a composed dataset as (x C,H,W; {head: target 1,H,W}) for the model of `contract`
    (its input encoding and heads), shown as `view` says.

    Sample k of epoch e is always cropped, augmented and perturbed the same way (see
    fgbg.training.augment). The epoch comes with the key, `ds[epoch, k]` (what an EpochSampler gives a
    DataLoader), or else from `set_epoch`.
    """

    def __init__(self, store: ComposedStore, ids: list[int], contract: Contract, view: SampleView = SampleView()) -> None:
        for head in contract.heads + tuple(name for name in view.targets or () if name != MEASURED):
            TARGETS.get(head, "heads")
        self.store = store
        self.ids = list(ids)
        self.contract = contract
        self.view = view
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        epoch, k = key if isinstance(key, tuple) else (self.epoch, key)
        view = self.view
        sample = self.store.sample(self.ids[k])  # S, S maps
        full_height, top = sample.bg.shape[0], 0
        if view.crop is not None:
            rng = np.random.default_rng([view.seed, epoch, k, 1])
            top, left = crop_window(full_height, view.crop, self.store.box(self.ids[k]), rng)
            height, width = view.crop.shape
            window = (slice(top, top + height), slice(left, left + width))
            sample = Sample(*(image[window] for image in sample))
        if view.augment is not None:
            sample = view.augment(sample, sample_seed(view.seed, epoch, k))
        bg, fg_bg = sample.bg, sample.fg_bg
        if view.perturb is not None:
            bg, fg_bg = view.perturb(bg, fg_bg, sample.mask, sample_seed(view.seed, epoch, k, stream=2))
        h, w = bg.shape[:2]
        if view.raw:
            rows = [rows_to_uint8(top, h, w, full_height)[..., None]] if self.contract.config.rows else []
            x = torch.from_numpy(cv2.merge([bg, fg_bg, *rows]))  # H, W, C uint8 (numpy's concatenate: 6x slower)
        else:
            x = self.contract.encode(bg, fg_bg, top, full_height)
        names = self.contract.heads if view.targets is None else view.targets
        targets = {head: torch.from_numpy(np.ascontiguousarray(TARGETS.get(head)(sample)[None], dtype=self._dtype(head)))
                   for head in names if head != MEASURED}
        if MEASURED in names:
            targets[MEASURED] = torch.full((1, 1, 1), float(self.store.measured(self.ids[k])))
        return x, targets  # 1, H, W each

    def _dtype(self, head: str) -> type:
        return np.uint8 if self.view.raw and kind_of(head).binary else np.float32


class EpochSampler(torch.utils.data.Sampler):
    """The indices of `inner` (a shuffling or distributed sampler), the first `limit` of them, as (epoch, index)
    keys of a PairDataset.

    DataLoader worker processes, persistent ones above all, hold a copy of the dataset made when they
    started, which a later `set_epoch` on this process's copy does not reach: the epoch travels with each
    key instead, so that every epoch draws its own crops, augmentations and perturbations."""

    def __init__(self, inner: torch.utils.data.Sampler, limit: int | None = None) -> None:
        self.inner, self.limit, self.epoch = inner, limit, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, k) for k in itertools.islice(self.inner, self.limit))

    def __len__(self) -> int:
        return len(self.inner) if self.limit is None else min(len(self.inner), self.limit)
