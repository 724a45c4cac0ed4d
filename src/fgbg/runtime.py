"""How a model runs, shared by training, evaluation and prediction (the core beneath them).

- the device: `auto` is CUDA when visible, else the CPU;
- the precision: an autocast dtype, or None for fp32;
- the input: bg and fg_bg, each normalised by the stats it was trained with, as 6 channels;
- the forward pass under autocast, with float32 outputs resized to the input's size.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from fgbg.errors import ConfigError


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


def normalise(img: np.ndarray, mean: list[float], std: list[float]) -> torch.Tensor:
    """H, W, 3 uint8 -> 3, H, W float32, (x / 255 - mean) / std per channel."""
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0  # 3, H, W
    m = torch.tensor(mean, dtype=torch.float32)[:, None, None]
    s = torch.tensor(std, dtype=torch.float32)[:, None, None]
    return (x - m) / s


def model_input(bg: np.ndarray, fg_bg: np.ndarray, stats: dict) -> torch.Tensor:
    """6, H, W: bg then fg_bg, each normalised by its own stats."""
    return torch.cat([
        normalise(bg, stats["bg"]["mean"], stats["bg"]["std"]),
        normalise(fg_bg, stats["fg_bg"]["mean"], stats["fg_bg"]["std"]),
    ])


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
