"""The params schema: typed, frozen config objects loaded from params.yaml.

Every section is a frozen dataclass whose defaults sit beside the field, and whose checks
name the key, the value and what is allowed. A key has the name of the argument it feeds.
Reading the YAML and converting it by the annotations (unknown keys with a "did you mean",
wrong types) is fgbg.core.typed_yaml's; this module knows what the keys mean.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml.error import YAMLError

from fgbg.core.errors import ConfigError
from fgbg.core.heads import HEADS, HIGHER_IS_BETTER, KIND_METRICS, LOGIT_LOSSES, MEASURABLE, metric_keys
from fgbg.core.typed_yaml import from_dict, read_yaml, require


def identity(config: Any, runtime_keys: tuple[str, ...]) -> dict:
    """`config` (a dataclass, its unused keys already at their defaults by its `decisive`) as a dict,
    less its runtime keys, which say how a stage runs, not what it makes: what a fingerprint hashes."""
    out = dataclasses.asdict(config)
    for key in runtime_keys:
        out.pop(key)
    return out


def params_hash(params: dict) -> "hashlib._Hash":
    """A sha256 begun with `params` as key-sorted JSON (tuples as lists, anything else as str); the caller
    adds the bytes of whatever else the result depends on, then takes its hexdigest."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())


def _with_defaults(config: Any, names: list[str]) -> Any:
    """`config` with the fields `names` put back to their defaults: how a key that the chosen option
    does not use is left out of what a stage's result depends on, without moving other fingerprints."""
    defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(config) if f.name in names}
    return dataclasses.replace(config, **defaults)


@dataclass(frozen=True)
class TeacherConfig:
    model: str = ""
    output: Literal["inverse_depth", "depth"] = "inverse_depth"
    input_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    batch: int = 32

    def __post_init__(self) -> None:
        require(self.input_size >= 0, "compose.teacher.input_size", self.input_size, "an int >= 0 (0 = bg_size)")
        require(self.batch >= 1, "compose.teacher.batch", self.batch, "an int >= 1")
        require(all(v > 0 for v in self.std), "compose.teacher.std", self.std, "three numbers > 0")


@dataclass(frozen=True)
class ComposeConfig:
    bg_size: int = 192
    fg_size: int = 96
    positions: int = 4
    layout: Literal["random", "grid"] = "random"
    scale_range: tuple[float, float] = (1.0, 1.0)
    seed: int = 0
    mask_threshold: int = 128
    fg_bg_format: Literal["png", "jpeg"] = "png"
    jpeg_quality: int = 90
    depth: Literal["geometry", "teacher"] = "geometry"
    prior_horizon: float = 0.4
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    shard_size: int = 1000
    workers: int = 2

    def __post_init__(self) -> None:
        require(self.bg_size >= 8, "compose.bg_size", self.bg_size, "an int >= 8")
        require(
            1 <= self.fg_size <= self.bg_size,
            "compose.fg_size", self.fg_size, f"an int in [1, compose.bg_size={self.bg_size}]",
        )
        require(self.positions >= 1, "compose.positions", self.positions, "an int >= 1")
        require(
            self.layout != "grid" or self.positions == 20,
            "compose.positions", self.positions, "20 with layout: grid (the original fixed 5 x 4 grid)",
        )
        lo, hi = self.scale_range
        require(
            0 < lo <= hi and hi * self.fg_size <= self.bg_size,
            "compose.scale_range", list(self.scale_range),
            f"[min, max] with 0 < min <= max and max * fg_size <= bg_size ({self.bg_size})",
        )
        require(
            1 <= self.mask_threshold <= 255,
            "compose.mask_threshold", self.mask_threshold, "an int in [1, 255] (alpha level)",
        )
        require(1 <= self.jpeg_quality <= 100, "compose.jpeg_quality", self.jpeg_quality, "an int in [1, 100]")
        require(0 <= self.prior_horizon < 1, "compose.prior_horizon", self.prior_horizon,
                "a float in [0, 1): the horizon's height as a share of the image from its top")
        require(
            self.depth != "teacher" or bool(self.teacher.model),
            "compose.teacher.model", self.teacher.model, "the path of an ONNX depth model when depth: teacher",
        )
        require(self.shard_size >= 1, "compose.shard_size", self.shard_size, "an int >= 1")
        require(self.workers >= 1, "compose.workers", self.workers, "an int >= 1 (processes)")

    def unused(self) -> list[str]:
        """The keys that the chosen options do not use: accepted, and left out of the dataset's fingerprint."""
        return ((["jpeg_quality"] if self.fg_bg_format == "png" else [])
                + (["teacher"] if self.depth == "geometry" else [])
                + (["seed"] if self.layout == "grid" and self.scale_range[0] == self.scale_range[1] else []))

    def decisive(self) -> "ComposeConfig":
        """This config with its unused keys at their defaults: what decides the dataset's bytes."""
        return _with_defaults(self, self.unused())


@dataclass(frozen=True)
class SplitConfig:
    group_by: Literal["sample", "fg", "bg", "fg_and_bg"] = "fg"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            require(0.0 < value < 1.0, f"split.{name}", value, "a float strictly between 0 and 1")
        require(self.val_fraction + self.test_fraction < 1.0, "split.test_fraction", self.test_fraction,
                 f"a float below 1 - val_fraction ({1 - self.val_fraction:g}), so that some groups are left to train on")


MODEL_SIZES = {  # each model's own size and context; a preset is built with them only
    # small enough to train in minutes on a CPU; column context for the ground's depth (fgbg.core.model)
    "unet": {"width": 16, "levels": 3, "half_output": False, "context": "columns"},
    # the original 64-to-1024-channel UNet
    "unet_original": {"width": 64, "levels": 4, "half_output": True, "context": "none"},
    # that UNet at 1/coarse_scale, refined at full size: its base sees the whole image already
    "two_stage": {"width": 16, "levels": 3, "half_output": False, "context": "none"},
}
PRESETS = ("unet_original",)


@dataclass(frozen=True)
class ModelConfig:
    """The network by name; a size or context left at None (null in params.yaml) is the model's own
    (MODEL_SIZES), so the config always holds what is built."""

    name: Literal["unet", "unet_original", "two_stage"] = "unet"
    width: int | None = None
    levels: int | None = None
    half_output: bool | None = None
    rows: bool = False
    context: Literal["none", "columns"] | None = None
    depth: Literal["learned", "ground_contact"] = "ground_contact"
    input: Literal["rgb", "gray"] = "rgb"
    coarse_scale: int = 4
    refine_share: float = 0.1

    TWO_STAGE_KEYS = ("coarse_scale", "refine_share")  # two_stage only (fgbg.core.two_stage)

    def __post_init__(self) -> None:
        require(self.name in MODEL_SIZES, "model.name", self.name, "one of " + ", ".join(map(repr, MODEL_SIZES)))
        own = MODEL_SIZES[self.name]
        for key, value in own.items():
            given = getattr(self, key)
            if given is None:
                object.__setattr__(self, key, value)  # resolved once, here: frozen afterwards
            elif self.name in PRESETS and given != value:
                built = ", ".join(f"{k} {v}" for k, v in own.items())
                raise ConfigError(f"params: model.{key} = {given!r} does not apply to model.name = {self.name!r}, "
                                  f"which is built with {built}; set model.{key} to null (the model's own), "
                                  f"or use model.name: unet to choose the size")
        require(self.width >= 1, "model.width", self.width, "an int >= 1")
        require(1 <= self.levels <= 6, "model.levels", self.levels, "an int in [1, 6]")
        require(self.coarse_scale >= 2, "model.coarse_scale", self.coarse_scale,
                "an int >= 2: the base network sees the pair this many times smaller")
        require(0 < self.refine_share <= 1, "model.refine_share", self.refine_share,
                "a share in (0, 1] of the base's cells refined at full resolution")
        require(self.name != "two_stage" or not self.half_output, "model.half_output", self.half_output,
                "false or null with model.name: two_stage (its refiner works at full resolution)")

    @property
    def side_multiple(self) -> int:
        """What image and crop sides must be a multiple of: 2**levels for the network's poolings, times
        coarse_scale for two_stage's base (fgbg.core.model's side_multiple, checked before building)."""
        return 2 ** self.levels * (self.coarse_scale if self.name == "two_stage" else 1)

    @property
    def derived_heads(self) -> tuple[str, ...]:
        """The heads computed from the others, not learned: the depth under ground contact."""
        return ("depth",) if self.depth == "ground_contact" else ()

    def unused(self) -> list[str]:
        """coarse_scale and refine_share, but for two_stage: accepted, left out of the training fingerprint."""
        return [] if self.name == "two_stage" else list(self.TWO_STAGE_KEYS)


@dataclass(frozen=True)
class AugmentConfig:
    hflip: float = 0.5
    affine: float = 0.0
    color: float = 0.0

    def __post_init__(self) -> None:
        for name in ("hflip", "affine", "color"):
            v = getattr(self, name)
            require(0 <= v <= 1, f"train.augment.{name}", v, "a probability in [0, 1]")


@dataclass(frozen=True)
class PerturbConfig:
    """Capture perturbations of training pairs (fgbg.training.perturb): probabilities and strengths."""

    shadow: float = 0.0
    shadow_strength: float = 0.3
    bg_jitter: float = 0.0
    bg_jitter_strength: float = 0.15
    misalign: float = 0.0
    misalign_degrees: float = 1.0
    misalign_shift: float = 0.01
    blur: float = 0.0
    blur_sigma: float = 0.8
    noise: float = 0.0
    noise_sigma: float = 0.03
    jpeg: float = 0.5
    jpeg_quality: tuple[int, int] = (70, 95)
    where: Literal["auto", "loader", "device"] = "auto"  # shadow, bg_jitter, misalign, blur and noise: see below

    DEVICE_SIDE = ("shadow", "bg_jitter", "misalign", "blur", "noise")  # what `where` may move to the device

    def __post_init__(self) -> None:
        for name in (*self.DEVICE_SIDE, "jpeg"):
            v = getattr(self, name)
            require(0 <= v <= 1, f"train.perturb.{name}", v, "a probability in [0, 1]")
        require(0 <= self.shadow_strength <= 1, "train.perturb.shadow_strength", self.shadow_strength, "a float in [0, 1]")
        require(0 <= self.bg_jitter_strength < 1, "train.perturb.bg_jitter_strength", self.bg_jitter_strength,
                 "a float in [0, 1)")
        for name in ("misalign_degrees", "misalign_shift", "noise_sigma"):
            require(getattr(self, name) >= 0, f"train.perturb.{name}", getattr(self, name), "a float >= 0")
        require(self.blur_sigma >= 0.1, "train.perturb.blur_sigma", self.blur_sigma, "a float >= 0.1 (px)")
        lo, hi = self.jpeg_quality
        require(1 <= lo <= hi <= 100, "train.perturb.jpeg_quality", list(self.jpeg_quality),
                 "[low, high] with 1 <= low <= high <= 100")
        require(self.where in ("auto", "loader", "device"), "train.perturb.where", self.where,
                "auto (on the device with CUDA, else in the loader), loader or device")

    def on_device(self, device_type: str) -> bool:
        """Whether shadow, bg_jitter, misalign, blur and noise run batched on the training device
        (fgbg.training.perturb_device) rather than per sample in the loader: `where`, auto = with CUDA."""
        return self.where == "device" or (self.where == "auto" and device_type == "cuda")

    STRENGTHS = {"shadow": ("shadow_strength",), "bg_jitter": ("bg_jitter_strength",),
                 "misalign": ("misalign_degrees", "misalign_shift"), "blur": ("blur_sigma",),
                 "noise": ("noise_sigma",), "jpeg": ("jpeg_quality",)}  # each probability's strengths

    def unused(self) -> list[str]:
        """The strengths of perturbations whose probability is 0, and `where` when only JPEG may be on."""
        device_side = any(getattr(self, name) for name in self.DEVICE_SIDE)
        return ([key for name, keys in self.STRENGTHS.items() if getattr(self, name) == 0 for key in keys]
                + ([] if device_side else ["where"]))


# fgbg.training.losses.LOSSES (a test keeps them equal)
LOSS_NAMES = ("bce", "dice", "l1", "log_l1", "rmse", "ssim", "grad", "sobel")
TRAIN_RUNTIME_KEYS = ("workers", "device", "threads", "image_every")  # how a run goes, not what it learns
COMPOSE_RUNTIME_KEYS = ("workers",)  # processes: the dataset's bytes are the same with any number


@dataclass(frozen=True)
class TrainConfig:
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: Literal["plateau", "onecycle", "cosine", "none"] = "cosine"
    plateau_patience: int = 1
    plateau_factor: float = 0.5
    plateau_threshold: float = 1e-4
    grad_clip: float = 0.0
    best_metric: str = "loss"
    resize_schedule: tuple[tuple[int, int], ...] = ()
    crop: int = 24
    crop_object: float = 0.8
    crop_height: int = 192
    val_samples: int = 160
    whole_epochs: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    deterministic: bool = False
    image_every: int = 5
    seed: int = 0
    workers: int = -1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 0

    def __post_init__(self) -> None:
        require(self.weight_decay >= 0, "train.weight_decay", self.weight_decay, "a float >= 0")
        require(0 <= self.momentum < 1, "train.momentum", self.momentum, "a float in [0, 1)")
        require(
            0 < self.plateau_factor < 1,
            "train.plateau_factor", self.plateau_factor, "a float in (0, 1)",
        )
        require(self.plateau_patience >= 0, "train.plateau_patience", self.plateau_patience, ">= 0")
        require(self.plateau_threshold >= 0, "train.plateau_threshold", self.plateau_threshold, ">= 0")
        require(self.grad_clip >= 0, "train.grad_clip", self.grad_clip, "a float >= 0 (0 = off)")
        schedule = [list(entry) for entry in self.resize_schedule]
        for size, epochs in self.resize_schedule:
            require(size >= 8 and epochs >= 1, "train.resize_schedule", schedule, "a list of [size >= 8, epochs >= 1] pairs")
        require(self.crop >= 0, "train.crop", self.crop, "an int >= 0 (0 = whole images)")
        if self.resize_schedule and self.crop:
            raise ConfigError(f"params: train.resize_schedule = {schedule} does not apply with train.crop = {self.crop}: "
                              "it resizes whole images, and crops would only be upsampled; set train.crop: 0 to train "
                              "progressively on whole images, or train.resize_schedule: [] to train on crops")
        require(0 <= self.crop_object <= 1, "train.crop_object", self.crop_object, "a probability in [0, 1]")
        require(self.crop_height >= 0, "train.crop_height", self.crop_height, "an int >= 0 (0 = square crops)")
        require(self.val_samples >= 0, "train.val_samples", self.val_samples, "an int >= 0 (0 = every val sample)")
        require(self.whole_epochs >= 0, "train.whole_epochs", self.whole_epochs, "an int >= 0 (0 = off)")
        if self.whole_epochs and not self.crop:
            raise ConfigError(f"params: train.whole_epochs = {self.whole_epochs} does not apply with train.crop = 0: "
                              "every epoch already trains on whole images; set train.crop to train on crops first, or "
                              "train.whole_epochs: 0")
        require(self.image_every >= 0, "train.image_every", self.image_every, "an int >= 0 (0 = never)")
        require(self.workers >= -1, "train.workers", self.workers, "an int >= 0, or -1 for auto")
        require(self.threads >= 0, "train.threads", self.threads, "an int >= 0 (0 = torch default)")

    def unused(self, image_size: int) -> list[str]:
        """The keys that the chosen options do not use, for images of `image_size`: accepted, and left
        out of the training fingerprint. OneCycle sets the momentum itself (0.95 down to 0.85 and back)."""
        return ((["momentum"] if self.optimizer != "sgd" or self.scheduler == "onecycle" else [])
                + (["plateau_patience", "plateau_factor", "plateau_threshold"] if self.scheduler != "plateau" else [])
                + (["crop_object", "whole_epochs"] if self.crop_is_whole(image_size) else [])
                + (["crop_height"] if self.crop == 0 else []))  # a crop of the whole image is the image

    def crop_is_whole(self, image_size: int) -> bool:
        """Whether the crops are the whole image (or there are none)."""
        return self.crop == 0 or (self.crop == image_size and (self.crop_height == 0 or self.crop_height >= image_size))

    def decisive(self, image_size: int) -> "TrainConfig":
        """This config with its unused keys (and its perturbations') at their defaults: with the runtime
        keys, what decides the trained weights."""
        return dataclasses.replace(_with_defaults(self, self.unused(image_size)),
                                   perturb=_with_defaults(self.perturb, self.perturb.unused()))


@dataclass(frozen=True)
class HeadConfig:
    """One head of the model (fgbg.core.heads): its losses, name -> weight, the metrics
    reported for it (none listed: every metric of its kind), and the losses taken only on samples
    whose bg depth is a measured map (data/bg_depth/), not the ground-plane prior."""

    losses: dict[str, float] = field(default_factory=dict)
    metrics: tuple[str, ...] = ()
    measured_only: tuple[str, ...] = ()

    def checked(self, head: str, derived: bool = False) -> "HeadConfig":
        """This config checked for the head `head`, its metrics resolved. A `derived` head (computed
        from the others, as the depth under ground contact) may have no losses."""
        require(head in HEADS, "heads", head, "heads named one of " + ", ".join(HEADS))
        kind = HEADS[head]
        names = [n for n in LOSS_NAMES if kind == "binary" or n not in LOGIT_LOSSES]
        for loss, weight in self.losses.items():
            require(loss in names, f"heads.{head}.losses.{loss}", weight, f"a loss named one of {', '.join(sorted(names))}")
            require(weight >= 0, f"heads.{head}.losses.{loss}", weight, "a weight >= 0")
        example = "{l1: 1, ssim: 0.5}" if kind == "unit" else "{l1: 1}" if kind == "matte" else "{bce: 1, dice: 1}"
        require(any(w > 0 for w in self.losses.values()) or (derived and not self.losses), f"heads.{head}.losses",
                self.losses, "at least one loss with a weight > 0" + (", or none" if derived else
                f", e.g. {example}" + (" (or model.depth: ground_contact, which derives the depth with none)"
                                       if head == "depth" else "")
                + f"; to leave the head out, delete heads.{head} from params.yaml"))
        require(len(set(self.measured_only)) == len(self.measured_only), f"heads.{head}.measured_only",
                list(self.measured_only), "each loss once")
        for loss in self.measured_only:
            require(kind == "unit", f"heads.{head}.measured_only", list(self.measured_only),
                    "[] on a head that is not a depth (only a depth label is measured or the ground-plane prior)")
            require(loss in self.losses and loss in MEASURABLE, f"heads.{head}.measured_only", list(self.measured_only),
                    f"losses of heads.{head}.losses ({', '.join(self.losses) or 'none'}) that are one of "
                    f"{', '.join(MEASURABLE)}")
        for metric in self.metrics:
            require(metric in KIND_METRICS[kind], f"heads.{head}.metrics", list(self.metrics),
                    f"metrics named one of {', '.join(KIND_METRICS[kind])}")
        return dataclasses.replace(self, metrics=self.metrics or KIND_METRICS[kind])


def _default_heads() -> dict[str, HeadConfig]:
    return {"mask": HeadConfig({"bce": 1.0, "dice": 1.0}, KIND_METRICS["binary"]),
            "depth": HeadConfig({}, KIND_METRICS["unit"]),  # derived by ground contact: no loss of its own
            "bg_depth": HeadConfig({"l1": 1.0, "ssim": 0.5, "log_l1": 0.5}, KIND_METRICS["unit"], ("log_l1",)),
            "alpha": HeadConfig({"l1": 1.0, "sobel": 1.0}, KIND_METRICS["matte"])}


@dataclass(frozen=True)
class EvaluateConfig:
    grid_samples: int = 6

    def __post_init__(self) -> None:
        require(self.grid_samples >= 1, "evaluate.grid_samples", self.grid_samples, "an int >= 1")


@dataclass(frozen=True)
class Params:
    lr: float = 3e-3
    epochs: int = 10
    batch_size: int = 16
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    heads: dict[str, HeadConfig] = field(default_factory=_default_heads)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def __post_init__(self) -> None:
        require(self.lr > 0, "lr", self.lr, "a float > 0")
        require(self.epochs >= 1, "epochs", self.epochs, "an int >= 1")
        require(self.batch_size >= 1, "batch_size", self.batch_size, "an int >= 1")
        require(bool(self.heads), "heads", self.heads, "at least one head, e.g. mask")
        object.__setattr__(self, "heads", {head: cfg.checked(head, head in self.model.derived_heads)
                                           for head, cfg in self.heads.items()})
        keys = self.metric_keys()
        if "depth" in self.heads:
            require(not self.heads["depth"].measured_only or self.compose.depth == "geometry",
                    "heads.depth.measured_only", list(self.heads["depth"].measured_only),
                    "[] with compose.depth: teacher (every depth label is the teacher's, none measured)")
        if self.model.depth == "ground_contact":
            require({"mask", "bg_depth", "depth"} <= set(self.heads), "heads", list(self.heads),
                    "mask, bg_depth and depth with model.depth: ground_contact (depth is derived from the other two)")
            require(self.compose.depth == "geometry", "model.depth", self.model.depth,
                    "learned with compose.depth: teacher (a teacher's depth does not follow the ground-contact rule): "
                    "add -S model.depth=learned -S 'heads.depth.losses={l1: 1, ssim: 0.5}'")
        require(self.train.best_metric == "loss" or self.train.best_metric in keys.values(), "train.best_metric",
                self.train.best_metric, "loss, or a metric of the heads: " + ", ".join(keys.values()))
        step = self.model.side_multiple
        why = (f"{step} (model.coarse_scale {self.model.coarse_scale} x 2**model.levels {2 ** self.model.levels}: the "
               "base network sees the image shrunk, then pools)" if self.model.name == "two_stage" else
               f"2**model.levels = {step} (the network pools {self.model.levels} times)")
        sizes = {"compose.bg_size": self.compose.bg_size, "train.crop": self.train.crop,
                 "train.crop_height": min(self.train.crop_height, self.compose.bg_size),  # taller: the image's height
                 **{f"train.resize_schedule[{i}]": size for i, (size, _) in enumerate(self.train.resize_schedule)}}
        for key, size in sizes.items():
            require(size % step == 0, key, size, f"a multiple of {why}, e.g. {max(step, -(-size // step) * step)}"
                    + (" (or 0: whole images)" if key == "train.crop" else ""))
        require(self.train.crop <= self.compose.bg_size, "train.crop", self.train.crop,
                f"at most compose.bg_size = {self.compose.bg_size}")  # crop_height may be more: the image's height
        start = 0
        for size, epochs in self.train.resize_schedule:
            require(start < self.epochs, "train.resize_schedule", [size, epochs],
                     f"an entry that starts before the last epoch: it would start at epoch {start}, and epochs = "
                     f"{self.epochs}; shorten the schedule or raise epochs")
            start += epochs
        require(self.train.whole_epochs < self.epochs, "train.whole_epochs", self.train.whole_epochs,
                f"fewer than epochs = {self.epochs}: the last epochs of a run on crops train on whole images (to "
                "train on whole images only, set train.crop: 0 and train.whole_epochs: 0)")

    def metric_keys(self) -> dict[tuple[str, str], str]:
        """(head, metric) -> its key in the val metrics (fgbg.core.heads.metric_keys)."""
        return metric_keys({head: cfg.metrics for head, cfg in self.heads.items()})

    def best_is_higher(self) -> bool:
        """Whether a higher train.best_metric is better (the loss, RMSE and such: lower)."""
        names = {key: metric for (_, metric), key in self.metric_keys().items()}
        return names.get(self.train.best_metric) in HIGHER_IS_BETTER


def load_params(path: str | Path = "params.yaml") -> Params:
    """Params from a YAML file; a missing file or bad key names the fix."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no params file here; run from the project root, or pass --params")
    try:
        data = read_yaml(path)
    except YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e}); fix the syntax at the line shown") from e
    try:
        return from_dict(Params, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
