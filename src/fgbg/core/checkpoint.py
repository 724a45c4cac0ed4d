"""Model checkpoints: a `Checkpoint` written atomically as a plain dict, loaded with `weights_only=True`.

A checkpoint holds the model's contract (config, normalisation stats, head names), its
weights, the size it was trained at and bookkeeping (epoch, val metrics). `last.pt` also
carries what resuming needs (`resume`): optimizer, scheduler and grad-scaler state, the RNG
state, the best score so far and a fingerprint of the params and data it was made with.
Everything a later `evaluate` or `predict` needs travels inside it.

Format 2 (this one) names the heads and keeps their weights under `heads.<name>`. Format 1,
the two fixed heads `mask_head` and `depth_head` with the resume state beside the rest, is
read and converted, so models shared before (the `fgbg-unet@v0.1.0` artifact) still load.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from fgbg.core.config import PRESETS, ModelConfig, params_hash
from fgbg.core.contract import Contract, NormStats
from fgbg.core.errors import InputError
from fgbg.core.heads import HEADS
from fgbg.core.imageio import atomic_write_bytes
from fgbg.core.model import build_model
from fgbg.core.runtime import pick_device
from fgbg.core.typed_yaml import from_dict

FORMAT_VERSION = 2
V1_HEADS = ("mask", "depth")  # format 1's heads, as attributes <head>_head
V1_RESUME_KEYS = ("fingerprint", "optimizer", "scheduler", "scaler", "rng", "best", "best_epoch", "accum")


@dataclass
class Checkpoint:
    contract: Contract
    weights: dict[str, torch.Tensor]  # the model's state_dict, on the CPU
    input_size: int  # the image side it was trained at (compose.bg_size)
    epoch: int = -1
    val: dict = field(default_factory=dict)  # val metrics of that epoch
    resume: dict = field(default_factory=dict)  # last.pt: what resuming needs (see module doc)

    def to_dict(self) -> dict:
        return {"format_version": FORMAT_VERSION, "model_config": dataclasses.asdict(self.contract.config),
                "heads": list(self.contract.heads), "stats": self.contract.stats.to_dict(), "model": self.weights,
                "mask_threshold": self.contract.mask_threshold,
                "input_size": self.input_size, "epoch": self.epoch, "val": self.val, "resume": self.resume}

    @classmethod
    def from_dict(cls, payload: dict) -> "Checkpoint":
        """From format 2, or format 1 converted (see module doc); a field of the wrong form is a ValueError."""
        if payload["format_version"] == 1:
            payload = _from_v1(payload)
        heads, weights, size = payload["heads"], payload["model"], payload["input_size"]
        if not (isinstance(heads, list) and heads and len(set(heads)) == len(heads) and all(h in HEADS for h in heads)):
            raise ValueError(f"heads {heads!r}: a list of distinct heads this fgbg knows ({', '.join(HEADS)})")
        if not (isinstance(weights, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                  for k, v in weights.items())):
            raise ValueError("the weights are not a mapping of names to tensors")
        if not (isinstance(size, int) and size > 0):
            raise ValueError(f"input_size {size!r} is not a positive int")
        threshold = payload.get("mask_threshold", 128)  # not recorded before the mask came from the alpha: 128
        if isinstance(threshold, bool) or not (isinstance(threshold, int) and 1 <= threshold <= 255):
            raise ValueError(f"mask_threshold {threshold!r} is not an alpha level, an int in [1, 255]")
        contract = Contract(model_config_from_record(payload["model_config"]), NormStats.from_dict(payload["stats"]),
                            tuple(heads), threshold)
        return cls(contract, weights, size, int(payload["epoch"]), dict(payload["val"]), dict(payload["resume"]))

    def build(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The model with these weights, in eval mode on `device`."""
        model = build_model(self.contract)
        model.load_state_dict(self.weights)
        return model.to(device).eval()


def _from_v1(payload: dict) -> dict:
    """A format-1 checkpoint dict in format 2's layout."""
    if not isinstance(payload["model"], dict):
        raise ValueError("the weights are not a mapping of names to tensors")
    weights = {}
    for key, value in payload["model"].items():
        key = str(key)
        head = next((h for h in V1_HEADS if key.startswith(f"{h}_head.")), None)
        weights[f"heads.{head}.{key[len(head) + 6:]}" if head else key] = value
    return {**payload, "format_version": 2, "heads": list(V1_HEADS), "model": weights,
            "epoch": payload.get("epoch", -1), "val": payload.get("val", {}),
            "resume": {k: payload[k] for k in V1_RESUME_KEYS if k in payload}}


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    buf = io.BytesIO()  # saved through a buffer: torch.save names the archive after a file's name,
    torch.save(checkpoint.to_dict(), buf)  # and the random temporary name would make equal checkpoints differ
    atomic_write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | Path) -> Checkpoint:
    """The checkpoint at `path`; a missing, foreign or too-old file says what to do."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here; train one with `dvc repro train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch's own message suggests weights_only=False, which would run a payload
        raise InputError(
            f"{path}: not an fgbg checkpoint, or damaged ({type(e).__name__}); it was not loaded. Use a checkpoint "
            "that fgbg wrote: `dvc checkout models` restores the pipeline's, `dvc repro train` makes a new one"
        ) from None
    version = payload.get("format_version") if isinstance(payload, dict) else None
    if version not in (1, FORMAT_VERSION):
        raise InputError(f"{path}: checkpoint format {version!r}, this fgbg reads formats 1 and {FORMAT_VERSION}; "
                         "retrain with `dvc repro train` or use the fgbg version that wrote it")
    if "input_size" not in payload:
        raise InputError(f"{path}: checkpoint has no input_size (made by an older fgbg); retrain with `dvc repro train`")
    try:
        return Checkpoint.from_dict(payload)
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise InputError(f"{path}: a damaged format-{version} checkpoint ({type(e).__name__}: {e}); retrain with "
                         "`dvc repro train`") from None


class LoadedModel(NamedTuple):
    model: torch.nn.Module  # in eval mode, on `device`
    checkpoint: Checkpoint
    device: torch.device

    @property
    def contract(self) -> Contract:
        return self.checkpoint.contract


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """(model in eval mode on `device`, its Checkpoint); weights of another model version say so."""
    checkpoint = read_checkpoint(path)
    try:
        return checkpoint.build(device), checkpoint
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        raise InputError(f"{path}: these weights do not fit this fgbg's {checkpoint.contract.config.name!r} "
                         f"model ({str(e).splitlines()[0]}); retrain with `dvc repro train`") from None


def load_for_inference(path: str | Path, device: str = "auto") -> LoadedModel:
    """The model in eval mode, its checkpoint and the device it is on, for `device` as params name it
    (auto, cpu, cuda): how evaluate, `fgbg score` and `fgbg predict` load a model."""
    dev = pick_device(device)
    model, checkpoint = load_checkpoint(path, dev)
    # NHWC: on this project's 2 CPU cores a 192 px forward took 26 ms in place of 34, a 1080p one 2.5 to 3.3 s in
    # place of 4.8 to 5.0 (benchmarks/bench_evaluate.py); training runs it too (train.channels_last)
    return LoadedModel(model.to(memory_format=torch.channels_last), checkpoint, dev)


# what a model key meant in a checkpoint that does not record it: the default when the key was added, before
# the default moved (model.depth was learned until ground contact became the default, model.context none
# until columns did)
RECORD_DEFAULTS = {"depth": "learned", "input": "rgb", "context": "none"}


def model_config_from_record(record: dict) -> ModelConfig:
    """The ModelConfig a checkpoint records, checked as params are (typed_yaml.from_dict). Format 1 recorded a
    preset's params as given, sizes it ignored included; a preset is built at its own size, so those are dropped."""
    if not isinstance(record, dict):
        raise ValueError(f"model_config {record!r} is not a mapping")
    if record.get("name") in PRESETS:
        record = {k: v for k, v in record.items() if k not in ("width", "levels", "half_output")}
    return from_dict(ModelConfig, {**RECORD_DEFAULTS, **record}, "model")


def fingerprint(params: dict, *files: str | Path) -> str:
    """A hash of the training params and the bytes of the data files a run depends on."""
    digest = params_hash(params)
    for path in files:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()
