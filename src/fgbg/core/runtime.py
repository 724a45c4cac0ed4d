"""How a model runs, shared by training, evaluation and prediction (the core beneath them).

- the device: `auto` is CUDA when visible, else the CPU;
- the precision: an autocast dtype, or None for fp32;
- the forward pass under autocast, {head: float32 output} resized to the input's size;
- a whole (bg, fg_bg) pair of any size and aspect, at native resolution or scaled: what
  `fgbg predict`, `fgbg score` and evaluate's file round trip all run;
- the answers a user gets (`final_answers`): an alpha head's answer refined on its soft edge and the
  sure region's border by the pair itself (fgbg.core.matting.refine_alpha; the border kept at least at
  the mask threshold), in 8 bits; with a mask head too, the mask is that
  alpha at the mask threshold, which beat the mask head on the val split as stored and as JPEG
  files (README "The mask from the refined alpha"), and a depth derived by ground contact follows it.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fgbg.core.contract import Contract
from fgbg.core.errors import ConfigError
from fgbg.core.heads import HEADS
from fgbg.core.matting import LEVELS, LOSSLESS, Trust, alpha_levels, as_written, refine_alpha
from fgbg.core.model import ground_contact


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


def upsample_like(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """N, C, h, w -> N, C, H, W of `target` (bilinear); unchanged when the sizes agree."""
    if pred.shape[-2:] == target.shape[-2:]:
        return pred
    return F.interpolate(pred, size=target.shape[-2:], mode="bilinear", align_corners=False)


def forward(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None,
            **kwargs) -> dict[str, torch.Tensor]:
    """x: N, C, H, W -> {head: output} as float32, at the model's output size, under autocast in `dtype`;
    `kwargs` go to the model (a two-stage model's `coarse`)."""
    with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        outputs = model(x, **kwargs)  # N, 1, h, w each
    return {head: out.float() for head, out in outputs.items()}


@torch.no_grad()
def predict_batch(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """x: N, C, H, W -> {head: output}, float32 N, 1, H, W (upsampled from a half-size output)."""
    return {head: upsample_like(out, x[:, :1]) for head, out in forward(model, x, dtype).items()}


@torch.no_grad()
def predict_padded(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """x: N, C, H, W of any size -> {head: output}, float32 N, 1, H, W. The network takes sides divisible
    by its `side_multiple`, so x is padded at the bottom and right (edge pixels repeated) and the outputs
    are cut back: what evaluate, predict and score all run."""
    h, w = x.shape[-2:]
    step = unwrap(model).side_multiple
    x = F.pad(x, (0, -w % step, 0, -h % step), mode="replicate")  # N, C, H + pad, W + pad
    return {head: out[..., :h, :w] for head, out in predict_batch(model, x, dtype).items()}


CPU_BATCH_PIXELS = 4 * 192 * 192  # on a CPU a batch of more pixels outgrows the cache: batch 16 of 192 px images
# took 36 ms an image, batch 4 25 ms (NHWC, this project's 2 cores; benchmarks/bench_evaluate.py)


def inference_batch(batch_size: int, device: torch.device, pixels: int) -> int:
    """How many images of `pixels` pixels to forward at once without gradients (validation, evaluate):
    `batch_size` on a GPU; on a CPU at most CPU_BATCH_PIXELS' worth, at least 1."""
    if device.type != "cpu":
        return batch_size
    return max(1, min(batch_size, CPU_BATCH_PIXELS // pixels))


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
def predict_pair(model, contract: Contract, bg: np.ndarray, fg_bg: np.ndarray, device,
                 size: int | None = None, trust: Trust = LOSSLESS) -> dict[str, np.ndarray]:
    """bg, fg_bg: H, W, 3 uint8 of one size -> {head: its answer, H, W} as a user gets it (`final_answers`;
    `trust`: how the pair's files stored its colour, fgbg.core.matting.trust_of).

    At native resolution, or with the shorter side scaled to `size` and the outputs back."""
    h, w = bg.shape[:2]
    sh, sw = scaled_size(h, w, size) if size else (h, w)
    x = contract.encode(_resize(bg, sh, sw), _resize(fg_bg, sh, sw))[None]  # 1, 6 or 7, sh, sw
    outputs = {head: F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
               for head, out in predict_padded(model, x.to(device)).items()}  # 1, 1, h, w each
    return final_answers(contract, outputs, bg, fg_bg, trust)


def mask_of(alpha, threshold: int):
    """An alpha (numpy or torch) -> the mask at an alpha level (0-255): its 8 bits at or above `threshold`."""
    return alpha_levels(alpha) >= threshold


@torch.no_grad()
def final_answers(contract: Contract, outputs: dict[str, torch.Tensor], bg: np.ndarray, fg_bg: np.ndarray,
                  trust: Trust = LOSSLESS) -> dict[str, np.ndarray]:
    """One pair's network outputs {head: 1, 1, H, W} -> {head: its answer, H, W} as a user gets it (module doc):
    the mask as bool, depth as float32 in [0, 1] (fgbg.core.contract.HeadKind.answer), a matte head's alpha
    refined by the pair in 8 bits; with an alpha and a mask head, the mask is the alpha at
    contract.mask_threshold, and a ground-contact depth is derived again from that mask."""
    answers = {head: answer[0, 0].cpu().numpy() for head, answer in contract.answers(outputs).items()}
    for head in answers:
        if HEADS[head] == "matte":
            answers[head] = as_written(refine_alpha(bg, fg_bg, answers[head], trust,
                                                    keep=contract.mask_threshold / LEVELS))
    if {"mask", "alpha"} <= set(answers):
        answers["mask"] = mask_of(answers["alpha"], contract.mask_threshold)
        if contract.config.depth == "ground_contact":
            mask_logits = torch.from_numpy(answers["mask"].astype(np.float32) * 2 - 1)[None, None]
            bg_depth = torch.from_numpy(answers["bg_depth"])[None, None]
            answers["depth"] = ground_contact(mask_logits, bg_depth)[0, 0].numpy()
    return answers
