"""How a model runs, shared by training, evaluation and prediction (the core beneath them).

- the device: `auto` is CUDA when visible, else the CPU;
- the precision: an autocast dtype, or None for fp32;
- the input: bg and fg_bg, each normalised by the stats it was trained with, as 6 channels;
- the forward pass under autocast, with float32 outputs resized to the input's size;
- a whole (bg, fg_bg) pair of any size and aspect, at native resolution or scaled: what
  `fgbg predict`, `fgbg score` and evaluate's file round trip all run.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fgbg.core.errors import ConfigError


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("params: train.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(f"cuda:{local_rank}") if name == "cuda" else torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for fp32."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def mean_std(stats: dict, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of the 6 image channels, bg's then fg_bg's, each 6, 1, 1 float32: the one reading
    of a stats dict that normalising (normalise) and undoing it (fgbg.core.plots.denormalise) share."""
    mean = torch.tensor(stats["bg"]["mean"] + stats["fg_bg"]["mean"], dtype=torch.float32, device=device)
    std = torch.tensor(stats["bg"]["std"] + stats["fg_bg"]["std"], dtype=torch.float32, device=device)
    return mean[:, None, None], std[:, None, None]


def normalise(images: torch.Tensor, stats: dict) -> torch.Tensor:
    """6, H, W or N, 6, H, W uint8 (bg then fg_bg) -> float32 (x / 255 - mean) / std per channel, on
    the images' device."""
    mean, std = mean_std(stats, images.device)
    return (images.float() / 255.0 - mean) / std


def normalise_on_device(x: torch.Tensor, stats: dict) -> torch.Tensor:
    """N, 6 (or 7), H, W uint8 (bg, fg_bg and the rows levels, as the loader sends them) -> float32,
    normalised as model_input, on x's device: a quarter of the bytes cross to the GPU, and the
    CPU does no float work."""
    images = normalise(x[:, :6], stats)  # N, 6, H, W
    return images if x.shape[1] == 6 else torch.cat([images, uint8_to_rows(x[:, 6:])], dim=1)


def rows_channel(top: int, height: int, width: int, full_height: int) -> np.ndarray:
    """height, width float32: the row of each pixel in an image full_height tall, -1 (top) to 1
    (bottom), for a window starting at row `top` (0 and the full height for a whole image).

    Values sit on a grid of 256 levels, so that the loader can send them as uint8 (rows_to_uint8)
    and training sees exactly what evaluation and prediction compute here."""
    return uint8_to_rows(rows_to_uint8(top, height, width, full_height))


def rows_to_uint8(top: int, height: int, width: int, full_height: int) -> np.ndarray:
    """rows_channel as uint8 levels: 0 at the top of the whole image, 255 at its bottom."""
    rows = (top + np.arange(height, dtype=np.float64)) / max(full_height - 1, 1)
    return np.repeat(np.round(rows * 255).astype(np.uint8)[:, None], width, axis=1)


def uint8_to_rows(levels):
    """uint8 levels (numpy or torch) -> rows in [-1, 1], float32."""
    return levels.astype(np.float32) / 255 * 2 - 1 if isinstance(levels, np.ndarray) else levels.float() / 255 * 2 - 1


def model_input(bg: np.ndarray, fg_bg: np.ndarray, stats: dict, rows: np.ndarray | None = None) -> torch.Tensor:
    """6, H, W: bg then fg_bg (H, W, 3 uint8 each), each normalised by its own stats; 7 with `rows` (rows_channel)."""
    images = torch.from_numpy(np.concatenate([bg, fg_bg], axis=2)).permute(2, 0, 1)  # 6, H, W uint8
    parts = [normalise(images, stats)]
    if rows is not None:
        parts.append(torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))[None])
    return torch.cat(parts)


def upsample_like(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """N, C, h, w -> N, C, H, W of `target` (bilinear); unchanged when the sizes agree."""
    if pred.shape[-2:] == target.shape[-2:]:
        return pred
    return F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=False)


def forward(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x: N, 6, H, W -> (mask logits, depth) as float32, at the model's output size, under autocast in `dtype`."""
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits, depth = model(x)  # N, 1, h, w each
    return logits.float(), depth.float()


@torch.no_grad()
def predict_batch(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x: N, 6, H, W -> (mask logits, depth), float32 N, 1, H, W (upsampled from a half-size output)."""
    logits, depth = forward(model, x, dtype)
    return upsample_like(logits, x[:, :1]), upsample_like(depth, x[:, :1])


@torch.no_grad()
def predict_padded(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x: N, C, H, W of any size -> (mask logits, depth), float32 N, 1, H, W. The network takes sides
    divisible by 2**levels, so x is padded at the bottom and right (edge pixels repeated) and the
    outputs are cut back: what evaluate, predict and score all run."""
    h, w = x.shape[-2:]
    step = 2 ** unwrap(model).levels
    x = F.pad(x, (0, -w % step, 0, -h % step), mode="replicate")  # N, C, H + pad, W + pad
    logits, depth = predict_batch(model, x, dtype)  # N, 1, H + pad, W + pad each
    return logits[..., :h, :w], depth[..., :h, :w]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DistributedDataParallel and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def scaled_size(h: int, w: int, shorter: int) -> tuple[int, int]:
    """(h, w) scaled so that the shorter side is `shorter`, aspect kept."""
    scale = shorter / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """H, W, 3 uint8 to h x w: area averaging when shrinking (no aliasing), bilinear when enlarging."""
    if img.shape[:2] == (h, w):
        return img
    shrink = h * w < img.shape[0] * img.shape[1]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@torch.no_grad()
def predict_pair(model, ckpt: dict, bg: np.ndarray, fg_bg: np.ndarray, device,
                 size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """bg, fg_bg: H, W, 3 uint8 of one size -> (mask H, W bool, depth H, W float32 in [0, 1]).

    At native resolution, or with the shorter side scaled to `size` and the outputs back."""
    h, w = bg.shape[:2]
    sh, sw = scaled_size(h, w, size) if size else (h, w)
    rows = rows_channel(0, sh, sw, sh) if ckpt["model_config"].get("rows") else None
    x = model_input(_resize(bg, sh, sw), _resize(fg_bg, sh, sw), ckpt["stats"], rows)[None]  # 1, 6 or 7, sh, sw
    logits, depth = predict_padded(model, x.to(device))  # 1, 1, sh, sw each
    logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
    depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=False)
    return (logits[0, 0] > 0).cpu().numpy(), depth[0, 0].clamp(0, 1).cpu().numpy()
