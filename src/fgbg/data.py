"""PyTorch view of the composed dataset: normalised 6-channel inputs and the two targets."""

from __future__ import annotations

import numpy as np
import torch

from fgbg.store import Dataset


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


class PairDataset(torch.utils.data.Dataset):
    """Samples `ids` of a composed dataset as (x 6,H,W; mask 1,H,W; depth 1,H,W) tensors."""

    def __init__(self, store: Dataset, ids: list[int], stats: dict) -> None:
        self.store = store
        self.ids = list(ids)
        self.stats = {k: stats[k] for k in ("bg", "fg_bg")}

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        bg, fg_bg, mask, depth = self.store.read(self.ids[k])
        x = model_input(bg, fg_bg, self.stats)  # 6, H, W
        return x, torch.from_numpy(mask[None].astype(np.float32)), torch.from_numpy(depth[None])
