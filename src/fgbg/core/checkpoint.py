"""Model checkpoints: written atomically, loaded with `weights_only=True`.

A checkpoint is a plain dict: format version, model config, the normalisation stats the
model was trained with, the weights, and bookkeeping (epoch, metrics). `last.pt` also
carries what resuming needs: optimizer, scheduler and grad-scaler state, the RNG state,
and a fingerprint of the params and data it was made with. Everything a later
`evaluate` or `predict` needs travels inside it.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import torch

from fgbg.core.config import PRESETS, ModelConfig, params_hash
from fgbg.core.errors import InputError
from fgbg.core.imageio import atomic_write_bytes
from fgbg.core.model import build_model
from fgbg.core.runtime import pick_device, unwrap

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: torch.nn.Module, model_cfg: ModelConfig, stats: dict, **extra: Any) -> None:
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    payload = {
        "format_version": FORMAT_VERSION,
        "model_config": dataclasses.asdict(model_cfg),
        "stats": {k: stats[k] for k in ("bg", "fg_bg")},
        "model": state,
        **extra,
    }
    buf = io.BytesIO()  # saved through a buffer: torch.save names the archive after a file's name,
    torch.save(payload, buf)  # and the random temporary name would make equal checkpoints differ
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict, checked for format; a missing or foreign file says what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train one with `dvc repro train`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's own message suggests weights_only=False, which would run a payload
        raise InputError(
            f"{path}: not an fgbg checkpoint, or damaged ({type(e).__name__}); it was not loaded. Use a checkpoint "
            "that fgbg wrote: `dvc checkout models` restores the pipeline's, `dvc repro train` makes a new one"
        ) from None
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise InputError(
            f"{path}: checkpoint format {version!r}, this fgbg reads format {FORMAT_VERSION}; "
            "retrain with `dvc repro train` or use the fgbg version that wrote it"
        )
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """(model in eval mode on `device`, the checkpoint dict); weights of another model version say so."""
    ckpt = read_checkpoint(path)
    if "input_size" not in ckpt:
        raise InputError(f"{path}: checkpoint has no input_size (made by an older fgbg); retrain with `dvc repro train`")
    try:
        model = build_model(model_config_from_record(ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except (TypeError, KeyError, RuntimeError) as e:
        raise InputError(f"{path}: these weights do not fit this fgbg's {ckpt['model_config'].get('name')!r} "
                         f"model ({str(e).splitlines()[0]}); retrain with `dvc repro train`") from None
    return model.to(device).eval(), ckpt


def load_for_inference(path: str | Path, device: str = "auto") -> tuple[torch.nn.Module, dict, torch.device]:
    """(model in eval mode, checkpoint dict, the device it is on) for `device` as params name it
    (auto, cpu, cuda): how evaluate, `fgbg score` and `fgbg predict` load a model."""
    dev = pick_device(device)
    model, ckpt = load_checkpoint(path, dev)
    return model, ckpt, dev


def model_config_from_record(record: dict) -> ModelConfig:
    """The ModelConfig a checkpoint records. Format 1 recorded a preset's params as given, sizes it
    ignored included; a preset is built at its own size, so those are dropped."""
    if record.get("name") in PRESETS:
        record = {k: v for k, v in record.items() if k not in ("width", "levels", "half_output")}
    return ModelConfig(**record)


def fingerprint(params: dict, *files: str | Path) -> str:
    """A hash of the training params and the bytes of the data files a run depends on."""
    digest = params_hash(params)
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()
