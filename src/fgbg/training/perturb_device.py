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

DEVICE_PERTURBATIONS = PerturbConfig.DEVICE_SIDE  # the order of the draws


def batch_generator(seed: int, epoch: int, step: int, rank: int) -> torch.Generator:
    """The host generator of one batch's draws, seeded by (seed, epoch, step, rank)."""
    state = np.random.SeedSequence([seed, epoch, step, rank]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    """n draws in [lo, hi) on the host, shaped n, 1, 1, 1 to scale images."""
    return (lo + (hi - lo) * torch.rand(n, generator=g)).view(n, 1, 1, 1)


def jitter(images: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """N, 3, H, W in [0, 1] with each image's brightness, contrast around its mean (over all channels) and
    gamma (each N, 1, 1, 1): clip((x b - m) c + m, 0, 1) ^ g."""
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images * brightness - mean) * contrast + mean).clamp(0, 1) ** gamma


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """N, C, H, W blurred, image i with sigma[i] px (a host tensor: the kernels are made there, so the
    device is never read back): separable, mirrored at the border."""
    n, c, h, w = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    radius = min(radius, h - 1, w - 1)  # reflect padding needs less than the side
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma.float().view(n, 1)) ** 2)  # N, K
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # N C, K
    kernel = kernel.to(images.device, images.dtype, non_blocking=True)
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(n * c, 1, -1, 1), groups=n * c)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, -1), groups=n * c)
    return flat.view(n, c, h, w)


def _affine(images: torch.Tensor, degrees: torch.Tensor, shift_px: torch.Tensor, mode: str, padding: str) -> torch.Tensor:
    """N, C, H, W rotated about their centres by `degrees` (N) and shifted by `shift_px` (N, 2: x, y), both
    host tensors."""
    n, _, h, w = images.shape
    a = torch.deg2rad(degrees)
    cos, sin = torch.cos(a), torch.sin(a)
    # output -> input sampling in normalised coordinates, the aspect ratio undone around the rotation
    theta = torch.stack([torch.stack([cos, -sin * h / w, -2 * shift_px[:, 0] / w], dim=1),
                         torch.stack([sin * w / h, cos, -2 * shift_px[:, 1] / h], dim=1)], dim=1)  # N, 2, 3
    grid = F.affine_grid(theta.to(images.device, non_blocking=True), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode=padding, align_corners=False)


class DevicePerturb:
    """Callable: (x N, H, W, C uint8 on the device, mask N, 1, H, W or None, generator) -> x perturbed
    (channels 0-2 bg, 3-5 fg_bg; any further channel, the rows, as it was)."""

    def __init__(self, cfg: PerturbConfig) -> None:
        self.cfg = cfg
        self.enabled = any(getattr(cfg, name) for name in DEVICE_PERTURBATIONS)
        self.needs_mask = cfg.shadow > 0

    def __call__(self, x: torch.Tensor, mask: torch.Tensor | None, g: torch.Generator) -> torch.Tensor:
        """Every draw comes from the host generator `g` (batch_generator), and only the noise fields are made
        on the device (from a seed drawn from `g`): the host never waits for the device."""
        c, dev, n = self.cfg, x.device, x.shape[0]
        images = x[..., :6].permute(0, 3, 1, 2).float() / 255  # N, 6, H, W
        bg, fg_bg = images[:, :3], images[:, 3:]
        drawn = torch.rand(n, len(DEVICE_PERTURBATIONS), generator=g) < torch.tensor(
            [getattr(c, name) for name in DEVICE_PERTURBATIONS])  # N, 5 on the host: whether each applies
        picked = [torch.nonzero(drawn[:, j]).view(-1) for j in range(len(DEVICE_PERTURBATIONS))]
        on = [idx.to(dev, non_blocking=True) for idx in picked]  # the samples each applies to
        h, w = images.shape[-2:]
        side = max(h, w)
        if self.needs_mask:
            if mask is None:
                raise ValueError("the shadow perturbation needs the object's mask")
            k = len(picked[0])
            if k:
                shift = torch.stack([torch.randint(-(side // 10), side // 10 + 1, (k,), generator=g),
                                     torch.randint(1, max(2, side // 10), (k,), generator=g)], 1)
                obj = mask[on[0]].float()
                shadow = _affine(obj, torch.zeros(k), shift.float(), "nearest", "zeros")
                shadow = gaussian_blur(shadow, torch.full((k,), max(1.0, side / 40)))
                strength = (c.shadow_strength * _uniform(k, 0.3, 1.0, g)).to(dev, non_blocking=True)
                fg_bg[on[0]] = fg_bg[on[0]] * (1 - strength * shadow * (1 - obj))
        k = len(picked[1])
        if k:
            s = c.bg_jitter_strength
            factors = [_uniform(k, 1 - s, 1 + s, g).to(dev, non_blocking=True) for _ in range(3)]
            bg[on[1]] = jitter(bg[on[1]], *factors)
        k = len(picked[2])
        if k:
            degrees = _uniform(k, -c.misalign_degrees, c.misalign_degrees, g).view(k)
            shares = torch.cat([_uniform(k, -c.misalign_shift, c.misalign_shift, g).view(k, 1) for _ in "xy"], 1)
            bg[on[2]] = _affine(bg[on[2]], degrees, shares * torch.tensor([w, h]), "bilinear", "reflection")
        for j, name in ((3, "blur"), (4, "noise")):
            k = len(picked[j])
            if not k:
                continue
            both = torch.cat([bg[on[j]], fg_bg[on[j]]])  # 2k, 3, H, W: each input draws its own strength
            if name == "blur":
                both = gaussian_blur(both, _uniform(2 * k, c.blur_sigma / 2, c.blur_sigma, g).view(2 * k))
            else:
                fields = torch.Generator(device=dev).manual_seed(int(torch.randint(0, 2**62, (1,), generator=g)))
                sigma = _uniform(2 * k, 0, c.noise_sigma, g).to(dev, non_blocking=True)
                both = both + torch.randn(both.shape, generator=fields, device=dev) * sigma
            bg[on[j]], fg_bg[on[j]] = both[:k], both[k:]
        out = x.clone()
        out[..., :6] = (images * 255 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return out
