"""Typed, frozen config objects loaded from params.yaml.

Every section is a frozen dataclass whose defaults sit beside the field. Loading rejects
unknown keys (with a "did you mean"), wrong types and out-of-range values, and the error
names the key, the value and what is allowed. A key has the name of the argument it feeds.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ConfigError(ValueError):
    """A params value is missing, unknown, mistyped or out of range."""


def _require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"params: {key} = {value!r} is not allowed; expected {allowed}")


@dataclass(frozen=True)
class ComposeConfig:
    bg_size: int = 64
    fg_size: int = 32
    positions: int = 4
    seed: int = 0
    mask_threshold: int = 128
    shard_size: int = 512

    def __post_init__(self) -> None:
        _require(self.bg_size >= 8, "compose.bg_size", self.bg_size, "an int >= 8")
        _require(
            1 <= self.fg_size <= self.bg_size,
            "compose.fg_size", self.fg_size, f"an int in [1, compose.bg_size={self.bg_size}]",
        )
        _require(self.positions >= 1, "compose.positions", self.positions, "an int >= 1")
        _require(
            1 <= self.mask_threshold <= 255,
            "compose.mask_threshold", self.mask_threshold, "an int in [1, 255] (alpha level)",
        )
        _require(self.shard_size >= 1, "compose.shard_size", self.shard_size, "an int >= 1")


@dataclass(frozen=True)
class SplitConfig:
    group_by: Literal["sample", "fg", "bg", "fg_and_bg"] = "fg"
    val_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        _require(
            0.0 < self.val_fraction < 1.0,
            "split.val_fraction", self.val_fraction, "a float strictly between 0 and 1",
        )


@dataclass(frozen=True)
class ModelConfig:
    name: str = "unet"
    width: int = 16
    levels: int = 3

    def __post_init__(self) -> None:
        _require(self.width >= 1, "model.width", self.width, "an int >= 1")
        _require(1 <= self.levels <= 6, "model.levels", self.levels, "an int in [1, 6]")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"
    weight_decay: float = 0.0
    scheduler: str = "plateau"
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    mask_loss: dict[str, float] = field(default_factory=lambda: {"bce": 1.0, "dice": 1.0})
    depth_loss: dict[str, float] = field(default_factory=lambda: {"l1": 1.0, "ssim": 0.5})
    seed: int = 0
    workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        _require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a float >= 0")
        _require(
            0 < self.plateau_factor < 1,
            "train.plateau_factor", self.plateau_factor, "a float in (0, 1)",
        )
        _require(self.plateau_patience >= 0, "train.plateau_patience", self.plateau_patience, ">= 0")
        for name in ("mask_loss", "depth_loss"):
            terms = getattr(self, name)
            _require(bool(terms), f"train.{name}", terms, "at least one loss with a weight")
            for loss, w in terms.items():
                _require(w >= 0, f"train.{name}.{loss}", w, "a weight >= 0")
        _require(self.workers >= 0, "train.workers", self.workers, "an int >= 0")
        _require(self.threads >= 0, "train.threads", self.threads, "an int >= 0 (0 = torch default)")


@dataclass(frozen=True)
class EvaluateConfig:
    grid_samples: int = 6

    def __post_init__(self) -> None:
        _require(self.grid_samples >= 1, "evaluate.grid_samples", self.grid_samples, "an int >= 1")


@dataclass(frozen=True)
class Params:
    lr: float = 3e-3
    epochs: int = 10
    batch_size: int = 16
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        _require(self.lr > 0, "lr", self.lr, "a float > 0")
        _require(self.epochs >= 1, "epochs", self.epochs, "an int >= 1")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "an int >= 1")


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    """`value` checked against the annotation `tp`; ints are accepted where floats are."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if origin is Literal:
        _require(value in get_args(tp), key, value, _type_name(tp))
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _convert(arg, value, key)
            except ConfigError:
                continue
        raise ConfigError(f"params: {key} = {value!r} has the wrong type; expected {tp}")
    if origin is dict:
        _, vt = get_args(tp)
        _require(isinstance(value, dict), key, value, "a mapping of name: value")
        return {str(k): _convert(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is type(None):
        _require(value is None, key, value, "null")
        return None
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        _require(ok, key, value, "a number")
        return float(value)
    if tp is int:
        _require(isinstance(value, int) and not isinstance(value, bool), key, value, "an int")
        return value
    _require(isinstance(value, tp), key, value, f"a {_type_name(tp)}")
    return value


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """An instance of dataclass `cls` from a mapping; unknown keys are an error."""
    prefix = f"{where}." if where else ""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"params: {where or 'the file'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(
                f"params: unknown key '{prefix}{key}'. Allowed keys"
                f"{' in ' + where if where else ''}: {', '.join(names)}.{hint}"
            )
    kwargs = {k: _convert(hints[k], v, prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Params from a YAML file; a missing file or bad key names the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no params file here; run from the project root, or pass --params")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e}); fix the syntax at the line shown") from e
    try:
        return from_dict(Params, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
