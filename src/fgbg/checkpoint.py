"""Model checkpoints: written atomically, loaded with `weights_only=True`.

A checkpoint is a plain dict: format version, model config, the normalisation stats the
model was trained with, the weights, and bookkeeping (epoch, metrics). Everything a
later `evaluate` or `predict` needs travels inside it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from fgbg.config import ModelConfig
from fgbg.imageio import atomic_path
from fgbg.model import build_model

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: torch.nn.Module, model_cfg: ModelConfig, stats: dict, **extra: Any) -> None:
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "model_config": dataclasses.asdict(model_cfg),
        "stats": {k: stats[k] for k in ("bg", "fg_bg")},
        "model": state,
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "module", model)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on `device`, the checkpoint dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train one with `dvc repro train`")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format {version!r}, this fgbg reads format {FORMAT_VERSION}; "
            "retrain with `dvc repro train` or use the fgbg version that wrote it"
        )
    model = build_model(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt
