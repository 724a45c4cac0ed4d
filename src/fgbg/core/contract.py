"""What a trained model is: its config, the normalisation it was trained with, and its named heads.

- `NormStats`: per-channel mean and std of bg and fg_bg over the train split ([0, 1] pixels);
  it normalises uint8 images (on the CPU or on the training device) and undoes that for plots.
- the rows channel: with `model.rows`, a 7th input channel gives each pixel's row in the whole
  image, -1 at the top to 1 at the bottom, on a grid of 256 levels so that the loader can send
  it as uint8 and training sees exactly what evaluation and prediction compute.
- `HeadKind`: how a kind of head (fgbg.core.heads) turns the network's raw output into its
  output, a probability, a final answer and metrics, and how its targets are resized.
- `Contract`: the three together; it encodes a (bg, fg_bg) pair as the model's input and
  decodes the model's outputs into each head's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from fgbg.core.config import ModelConfig
from fgbg.core.errors import InputError
from fgbg.core.heads import HEADLINE, HEADS, HIGHER_IS_BETTER
from fgbg.core.metrics import depth_metrics, mask_metrics, matte_metrics

RGB = tuple[float, float, float]
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights: model.input gray, as PIL's "L" mode converts


@dataclass(frozen=True)
class NormStats:
    bg_mean: RGB
    bg_std: RGB
    fg_bg_mean: RGB
    fg_bg_std: RGB

    @classmethod
    def from_dict(cls, stats: dict) -> "NormStats":
        """From stats.json's (or a checkpoint's) {"bg": {"mean", "std"}, "fg_bg": {...}}; other keys are ignored.
        Three numbers each, the stds > 0, else a ValueError."""
        values = [tuple(float(v) for v in stats[image][moment]) for image in ("bg", "fg_bg") for moment in ("mean", "std")]
        if any(len(v) != 3 for v in values) or min(values[1] + values[3]) <= 0:
            raise InputError(f"normalisation stats need 3 means and 3 stds > 0 for bg and fg_bg, got {stats}")
        return cls(*values)

    def to_dict(self) -> dict:
        return {"bg": {"mean": list(self.bg_mean), "std": list(self.bg_std)},
                "fg_bg": {"mean": list(self.fg_bg_mean), "std": list(self.fg_bg_std)}}

    def mean_std(self, device: torch.device | str | None = None, gray: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, std) of the 6 image channels, bg's then fg_bg's, each 6, 1, 1 float32; `gray`: of their
        2 luma channels, 2, 1, 1 (the luma of the means, exact; of the stds, an upper bound: close enough
        to scale the inputs, and the same in training and inference)."""
        mean = torch.tensor(self.bg_mean + self.fg_bg_mean, dtype=torch.float32, device=device)
        std = torch.tensor(self.bg_std + self.fg_bg_std, dtype=torch.float32, device=device)
        if gray:
            mean, std = to_gray(mean[:, None, None])[:, 0, 0], to_gray(std[:, None, None])[:, 0, 0]
        return mean[:, None, None], std[:, None, None]

    def normalise(self, images: torch.Tensor, gray: bool = False) -> torch.Tensor:
        """6, H, W or N, 6, H, W uint8 (bg then fg_bg) -> float32 (x / 255 - mean) / std, on the images' device;
        `gray`: the 2 luma channels (bg's, fg_bg's) of x / 255, normalised by their own mean and std."""
        mean, std = self.mean_std(images.device, gray)
        x = images.float() / 255.0
        return ((to_gray(x) if gray else x) - mean) / std

    def denormalise(self, x: torch.Tensor, gray: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """6 (2 with `gray`), or one more with rows, H, W model input -> (bg, fg_bg) as H, W, 3 uint8:
        `normalise` undone (a gray input as three equal channels)."""
        mean, std = self.mean_std(gray=gray)
        n = len(mean)  # image channels; a last one (rows) is no image
        images = ((x[:n] * std + mean).clamp(0, 1) * 255).round().byte()  # n, H, W
        if gray:
            images = images.repeat_interleave(3, dim=0)
        return images[:3].permute(1, 2, 0).numpy(), images[3:].permute(1, 2, 0).numpy()


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """..., 6, H, W (bg's RGB then fg_bg's) -> ..., 2, H, W: each image's luma (LUMA)."""
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
    rgb = x.unflatten(-3, (2, 3))  # ..., 2, 3, H, W
    return (rgb * weights).sum(dim=-3)


def rows_to_uint8(top: int, height: int, width: int, full_height: int) -> np.ndarray:
    """height, width uint8: each pixel's row in an image full_height tall, 0 at its top, 255 at its
    bottom, for a window starting at row `top` (0 and the full height for a whole image)."""
    rows = (top + np.arange(height, dtype=np.float64)) / max(full_height - 1, 1)
    return np.repeat(np.round(rows * 255).astype(np.uint8)[:, None], width, axis=1)


def uint8_to_rows(levels):
    """uint8 levels (numpy or torch) -> rows in [-1, 1], float32."""
    return levels.astype(np.float32) / 255 * 2 - 1 if isinstance(levels, np.ndarray) else levels.float() / 255 * 2 - 1


def rows_channel(top: int, height: int, width: int, full_height: int) -> np.ndarray:
    """height, width float32: rows_to_uint8's levels as rows, -1 (top) to 1 (bottom)."""
    return uint8_to_rows(rows_to_uint8(top, height, width, full_height))


@dataclass(frozen=True)
class HeadKind:
    name: str
    activation: Callable[[torch.Tensor], torch.Tensor]  # the network's raw output -> the head's output
    probability: Callable[[torch.Tensor], torch.Tensor]  # the head's output -> values in [0, 1]
    metrics: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]  # (output, target) -> N each
    cmap: str = "gray"  # how plots show its maps

    @property
    def binary(self) -> bool:
        return self.name == "binary"

    def resize_target(self, target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """N, 1, H, W target to size (h, w): by area, then back to 0/1 for a binary head."""
        if tuple(target.shape[-2:]) == tuple(size):
            return target
        pooled = F.interpolate(target, size=tuple(size), mode="area")
        return (pooled > 0.5).float() if self.binary else pooled

    def answer(self, output: torch.Tensor) -> torch.Tensor:
        """The head's final answer: a bool map (logits > 0), or values clamped to [0, 1]."""
        return output > 0 if self.binary else output.clamp(0, 1)

    def error(self, value):
        """The kind's headline metric (fgbg.core.heads.HEADLINE) as an error, 0 when perfect: 1 - IoU, RMSE, SAD."""
        return 1 - value if HEADLINE[self.name] in HIGHER_IS_BETTER else value


KINDS = {
    "binary": HeadKind("binary", activation=lambda raw: raw, probability=torch.sigmoid, metrics=mask_metrics),
    "unit": HeadKind("unit", activation=torch.sigmoid, probability=lambda out: out, metrics=depth_metrics,
                     cmap="magma_r"),
    "matte": HeadKind("matte", activation=torch.sigmoid, probability=lambda out: out, metrics=matte_metrics),
}


def kind_of(head: str) -> HeadKind:
    return KINDS[HEADS[head]]


@dataclass(frozen=True)
class Contract:
    """A trained model's contract: build it from `config` with `heads`, feed it inputs normalised by `stats`; its
    mask target was the alpha at `mask_threshold` (compose.mask_threshold), and so is the mask it answers with an
    alpha head (fgbg.core.runtime.final_answers)."""

    config: ModelConfig
    stats: NormStats
    heads: tuple[str, ...]
    mask_threshold: int = 128

    @property
    def gray(self) -> bool:
        return self.config.input == "gray"

    @property
    def input_channels(self) -> int:
        """bg and fg_bg (3 + 3, or 1 + 1 gray), and with `rows` each pixel's row in the whole image."""
        return (2 if self.gray else 6) + self.config.rows

    def encode(self, bg: np.ndarray, fg_bg: np.ndarray, top: int = 0, full_height: int | None = None) -> torch.Tensor:
        """C, H, W float32 input from bg and fg_bg (H, W, 3 uint8 each), a window from row `top` of an image
        `full_height` tall (default: the whole image)."""
        images = torch.from_numpy(np.concatenate([bg, fg_bg], axis=2)).permute(2, 0, 1)  # 6, H, W uint8
        parts = [self.stats.normalise(images, self.gray)]
        if self.config.rows:
            h, w = bg.shape[:2]
            parts.append(torch.from_numpy(rows_channel(top, h, w, full_height or h))[None])
        return torch.cat(parts)

    def encode_uint8(self, x: torch.Tensor) -> torch.Tensor:
        """N, H, W, 6 (or 7) uint8 (bg, fg_bg and the rows levels, channels last as the loader sends them)
        -> N, C, H, W float32 (channels last in memory), as `encode` makes it, on x's device: a quarter
        of the bytes cross to the GPU, and the CPU does no float work and no transpose."""
        x = x.permute(0, 3, 1, 2)  # a view
        images = self.stats.normalise(x[:, :6], self.gray)  # N, 6 (2 gray), H, W
        return images if x.shape[1] == 6 else torch.cat([images, uint8_to_rows(x[:, 6:])], dim=1)

    def decode_images(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """One C, H, W input -> (bg, fg_bg) H, W, 3 uint8, for plots (NormStats.denormalise)."""
        return self.stats.denormalise(x, self.gray)

    def answers(self, outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each head's final answer from its output (HeadKind.answer)."""
        return {head: kind_of(head).answer(out) for head, out in outputs.items()}


def score(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
          keys: dict[tuple[str, str], str]) -> dict[str, torch.Tensor]:
    """{key: N values}: the metrics `keys` names (fgbg.core.heads.metric_keys) of each head that has both an
    output and a target, all N, 1, H, W of one size. A binary head's output is its logits."""
    per_head = {head: kind_of(head).metrics(outputs[head], targets[head]) for head in outputs if head in targets}
    return {key: per_head[head][metric] for (head, metric), key in keys.items() if head in per_head}


def answers_as_outputs(answers: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Final answers (a model's after HeadKind.answer, or a baseline's) as outputs that `score` takes:
    a binary answer as logits of +-1."""
    return {head: answer.float() * 2 - 1 if kind_of(head).binary else answer for head, answer in answers.items()}
