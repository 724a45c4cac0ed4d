"""Capture perturbations on the training device, a batch at a time (after BackgroundMattingV2's recipe).

They run after the transfer and before the input encoding, as tensor operations on the
batch's device (the GPU when training on one): the loader's processes only read, crop and
flip. Each batch draws from a generator seeded by (train.seed, epoch, step, rank), so a
resumed run perturbs its batches as an uninterrupted one did, whatever the number of loader
workers. Each perturbation is drawn per sample with its probability, and applies to the
samples drawn only:

- shadow: the object's mask shifted down by 1 to H/10 px and sideways by up to H/10 px
  (H: the longer side), blurred (sigma H/40, at least 1 px), darkens fg_bg outside the
  object by `shadow_strength` times a factor in [0.3, 1];
- bg_jitter: brightness, contrast (around the bg's mean) and gamma of the bg input, each a
  factor in 1 +- `bg_jitter_strength`;
- misalign: the bg input rotated about its centre by up to `misalign_degrees` and shifted by
  up to `misalign_shift` of its width and height (bilinear, mirrored at the border);
- blur: a Gaussian blur of each input, sigma drawn in [`blur_sigma` / 2, `blur_sigma`] for each;
- noise: Gaussian noise on each input, sigma drawn in [0, `noise_sigma`] for each.

The result is rounded back to 8 bits, as a saved image is. JPEG re-encoding stays in the
loader (fgbg.training.perturb): torch has no JPEG codec on the CPU; it comes first there.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from fgbg.core.config import PerturbConfig

DEVICE_PERTURBATIONS = ("shadow", "bg_jitter", "misalign", "blur", "noise")


def batch_generator(device: torch.device, seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """A generator on `device` for one batch, seeded by (seed, epoch, step, rank)."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2, np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    """n draws in [lo, hi), shaped n, 1, 1, 1 to scale images."""
    return (lo + (hi - lo) * torch.rand(n, generator=g, device=device)).view(n, 1, 1, 1)


def jitter(images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """N, 3, H, W in [0, 1] with each image's brightness, contrast around its mean (over all channels) and
    gamma (each N, 1, 1, 1): clip((x b - m) c + m, 0, 1) ^ g."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images * brightness - mean) * contrast + mean).clamp(0, 1) ** gamma


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """N, C, H, W blurred, image i with sigma[i] px: separable, mirrored at the border."""
    n, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    radius = min(radius, h - 1, w - 1)  # reflect padding needs less than the side
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma.view(n, 1)) ** 2)  # N, K
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # N C, K
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(n * c, 1, -1, 1), groups=n * c)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, -1), groups=n * c)
    return flat.view(n, c, h, w)


def _affine(images: torch.Tensor, degrees: torch.Tensor, shift_px: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """N, C, H, W rotated about their centres by `degrees` (N) and shifted by `shift_px` (N, 2: x, y)."""
    n, _, h, w = images.shape
    a = torch.deg2rad(degrees)
    cos, sin = torch.cos(a), torch.sin(a)
    # output -> input sampling in normalised coordinates, the aspect ratio undone around the rotation
    theta = torch.stack([torch.stack([cos, -sin * h / w, -2 * shift_px[:, 0] / w], dim=1),
                         torch.stack([sin * w / h, cos, -2 * shift_px[:, 1] / h], dim=1)], dim=1)  # N, 2, 3
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding, align_corners=False)


class DevicePerturb:
    """Callable: (x N, H, W, C uint8 on the device, mask N, 1, H, W or None, generator) -> x perturbed
    (channels 0-2 bg, 3-5 fg_bg; any further channel, the rows, as it was)."""

    def __init__(self, cfg: PerturbConfig) -> None:
        self.cfg = cfg
        self.enabled = any(getattr(cfg, name) for name in DEVICE_PERTURBATIONS)
        self.needs_mask = cfg.shadow > 0

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None, g: torch.Generator) -> torch.Tensor:
        c, dev, n = self.cfg, x.device, x.shape[0]
        images = x[..., :6].permute(0, 3, 1, 2).float() / 255  # N, 6, H, W
        bg, fg_bg = images[:, :3], images[:, 3:]
        drawn = torch.rand(n, len(DEVICE_PERTURBATIONS), generator=g, device=dev) < torch.tensor(
            [getattr(c, name) for name in DEVICE_PERTURBATIONS], device=dev)  # N, 5: whether each applies
        h, w = images.shape[-2:]
        side = max(h, w)
        if self.needs_mask:
            if mask is None:
                raise ValueError("the shadow perturbation needs the object's mask")
            on = drawn[:, 0]
            k = int(on.sum())
            if k:
                shift = torch.stack([torch.randint(-(side // 10), side // 10 + 1, (k,), generator=g, device=dev),
                                     torch.randint(1, max(2, side // 10), (k,), generator=g, device=dev)], 1)
                obj = mask[on].float()
                shadow = _affine(obj, torch.zeros(k, device=dev), shift.float(), "nearest", "zeros")
                shadow = gaussian_blur(shadow, torch.full((k,), max(1.0, side / 40), device=dev))
                darkening = c.shadow_strength * _uniform(k, 0.3, 1.0, g, dev) * shadow * (1 - obj)
                fg_bg[on] = fg_bg[on] * (1 - darkening)
        on = drawn[:, 1]
        k = int(on.sum())
        if k:
            s = c.bg_jitter_strength
            bg[on] = jitter(bg[on], *(_uniform(k, 1 - s, 1 + s, g, dev) for _ in range(3)))
        on = drawn[:, 2]
        k = int(on.sum())
        if k:
            degrees = _uniform(k, -c.misalign_degrees, c.misalign_degrees, g, dev).view(k)
            shares = torch.cat([_uniform(k, -c.misalign_shift, c.misalign_shift, g, dev).view(k, 1) for _ in "xy"], 1)
            bg[on] = _affine(bg[on], degrees, shares * torch.tensor([w, h], device=dev), "bilinear", "reflection")
        for column, name in ((3, "blur"), (4, "noise")):
            on = drawn[:, column]
            k = int(on.sum())
            if not k:
                continue
            both = torch.cat([bg[on], fg_bg[on]])  # 2k, 3, H, W: each input draws its own strength
            if name == "blur":
                both = gaussian_blur(both, _uniform(2 * k, c.blur_sigma / 2, c.blur_sigma, g, dev).view(2 * k))
            else:
                both = both + torch.randn(both.shape, generator=g, device=dev) * _uniform(2 * k, 0, c.noise_sigma, g, dev)
            bg[on], fg_bg[on] = both[:k], both[k:]
        out = x.clone()
        out[..., :6] = (images * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return out
