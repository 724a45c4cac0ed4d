"""Every accepted key changes what it names, or is refused, or is left out of what the stage's
result depends on (its fingerprint) when the option it belongs to is not chosen.

The rule per key (also in params.yaml's comments and the README):
- refused: a size given to a preset model (unet_original is built one way only);
  resize_schedule with crops (it would only upsample them); an unknown model, optimizer,
  scheduler or loss name, at load time.
- accepted and left out: momentum without sgd, plateau_* without the plateau scheduler,
  crop_object without crops, jpeg_quality with png, teacher.* with geometry depth, the
  compose seed when nothing is drawn (grid layout, fixed scale), and model.coarse_scale and
  refine_share but for model.name: two_stage.
"""

import typing
from typing import get_args

import pytest

from fgbg.composing.build import _identity as compose_identity
from fgbg.core.checkpoint import fingerprint, model_config_from_record
from fgbg.core.config import ComposeConfig, ConfigError, ModelConfig, Params, TrainConfig, from_dict, load_params
from fgbg.core.model import MODELS
from fgbg.training.losses import LOSSES
from fgbg.training.optim import OPTIMIZERS, SCHEDULERS
from fgbg.training.train import _training_identity


def test_a_preset_resolves_into_the_full_config_it_builds():
    assert ModelConfig(name="unet_original") == ModelConfig(name="unet_original", width=64, levels=4, half_output=True)
    assert (ModelConfig().width, ModelConfig().levels, ModelConfig().half_output) == (16, 3, False)
    assert from_dict(Params, {"model": {"name": "unet", "width": 8}}).model.width == 8  # unet takes a size


@pytest.mark.parametrize("key, value", [("width", 16), ("levels", 3), ("half_output", False), ("context", "columns")])
def test_a_preset_refuses_an_override_naming_both_keys(key, value):
    with pytest.raises(ConfigError, match=rf"model.{key} = {value!r} does not apply to model.name = 'unet_original', "
                                          r"which is built with width 64, levels 4, half_output True, context none; "
                                          rf"set model.{key} to null"):
        from_dict(Params, {"model": {"name": "unet_original", key: value}})


def test_a_checkpoint_of_the_old_format_that_recorded_ignored_sizes_still_loads_as_built():
    record = {"name": "unet_original", "width": 16, "levels": 3, "half_output": False, "rows": False}  # format 1 did this
    assert model_config_from_record(record) == ModelConfig(name="unet_original", depth="learned")
    assert model_config_from_record({"name": "unet", "width": 4, "levels": 2, "half_output": False, "rows": True}) == \
        ModelConfig(width=4, levels=2, rows=True, depth="learned", context="none")  # recorded before either: what it was


def test_a_record_of_each_model_key_wins_over_what_an_unrecorded_key_meant():
    record = {"name": "unet", "width": 4, "levels": 2, "half_output": False, "rows": False,
              "depth": "ground_contact", "input": "gray"}
    assert model_config_from_record(record) == ModelConfig(width=4, levels=2, depth="ground_contact", input="gray",
                                                           context="none")
    assert model_config_from_record({**record, "context": "columns"}).context == "columns"


@pytest.mark.parametrize("over, key, valid", [
    ({"model": {"name": "unet3"}}, "model.name", "'unet', 'unet_original'"),
    ({"train": {"optimizer": "adamx"}}, "train.optimizer", "'adam', 'adamw', 'sgd'"),
    ({"train": {"scheduler": "step"}}, "train.scheduler", "'plateau', 'onecycle', 'cosine', 'none'"),
    ({"heads": {"mask": {"losses": {"focal": 1.0}}}}, "heads.mask.losses.focal", "bce, dice, grad, l1, log_l1, rmse, sobel, ssim"),
    ({"heads": {"depth": {"losses": {"bce": 1.0}}}}, "heads.depth.losses.bce", "dice, grad, l1, log_l1, rmse, sobel, ssim"),
    ({"heads": {"depht": {"losses": {"l1": 1.0}}}}, "heads", "mask, depth"),
    ({"heads": {"depth": {"losses": {"l1": 1.0}, "metrics": ["iou"]}}}, "heads.depth.metrics", "rmse, mae, abs_rel"),
    ({"train": {"best_metric": "accuracy"}}, "train.best_metric", "loss, or a metric of the heads: iou, dice"),
    ({"model": {"name": "unet_original"}}, "train.crop = 24", "a multiple of 2**model.levels = 16 (the network pools 4 "
                                                             "times), e.g. 32"),
    ({"train": {"crop_height": 100}}, "train.crop_height = 100", "a multiple of 2**model.levels = 8"),
    ({"model": {"depth": "learned"}}, "heads.depth.losses = {}", "e.g. {l1: 1, ssim: 0.5} (or model.depth: "
                                                                 "ground_contact, which derives the depth with none)"),
    ({"heads": {"mask": {"losses": {"bce": 1}}, "depth": {"losses": {"l1": 0}}, "bg_depth": {"losses": {"l1": 1}}}},
     "heads.depth.losses = {'l1': 0.0}", "at least one loss with a weight > 0, or none"),  # derived: none, not zeros
    ({"heads": {"mask": {"losses": {"l1": 1}, "measured_only": ["l1"]}}}, "heads.mask.measured_only = ['l1']",
     "[] on a head that is not a depth"),
    ({"heads": {"bg_depth": {"losses": {"l1": 1}, "measured_only": ["l1", "l1"]}}},
     "heads.bg_depth.measured_only = ['l1', 'l1']", "each loss once"),
    ({"heads": {"alpha": {"losses": {"l1": 1}, "measured_only": ["l1"]}}}, "heads.alpha.measured_only = ['l1']",
     "[] on a head that is not a depth"),
    ({"heads": {"bg_depth": {"losses": {"l1": 1}, "measured_only": ["log_l1"]}}},
     "heads.bg_depth.measured_only = ['log_l1']", "losses of heads.bg_depth.losses (l1) that are one of l1, log_l1"),
    ({"heads": {"bg_depth": {"losses": {"dice": 1}, "measured_only": ["dice"]}}},
     "heads.bg_depth.measured_only = ['dice']", "that are one of l1, log_l1, rmse, ssim, grad, sobel"),
    ({"compose": {"depth": "teacher", "teacher": {"model": "m.onnx"}}, "model": {"depth": "learned"},
      "heads": {"depth": {"losses": {"l1": 1}, "measured_only": ["l1"]}}},
     "heads.depth.measured_only = ['l1']", "[] with compose.depth: teacher (every depth label is the teacher's"),
])
def test_names_are_checked_when_params_are_loaded(tmp_path, over, key, valid):
    import yaml

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(over))
    with pytest.raises(ConfigError) as e:
        load_params(tmp_path / "params.yaml")
    assert key in str(e.value) and valid in str(e.value), str(e.value)


def test_the_names_params_accept_are_the_registries_names():
    assert sorted(_literal(ModelConfig, "name")) == MODELS.names()
    assert sorted(_literal(TrainConfig, "optimizer")) == OPTIMIZERS.names()
    assert sorted(_literal(TrainConfig, "scheduler")) == SCHEDULERS.names()
    from fgbg.core.config import LOSS_NAMES

    assert sorted(LOSS_NAMES) == LOSSES.names()


def _literal(cls, field: str) -> tuple:
    return get_args(typing.get_type_hints(cls)[field])


def test_resize_schedule_with_crops_is_refused_naming_both_keys():
    with pytest.raises(ConfigError, match=r"train.resize_schedule = \[\[128, 2\]\] does not apply with train.crop = 64"):
        from_dict(Params, {"train": {"resize_schedule": [[128, 2]], "crop": 64}})
    assert from_dict(Params, {"train": {"resize_schedule": [[128, 2]], "crop": 0}}).train.resize_schedule == ((128, 2),)


def _train_id(over: dict) -> dict:
    return _training_identity(from_dict(Params, over))


def _compose_id(over: dict) -> dict:
    return compose_identity(from_dict(ComposeConfig, over))


TEACHER = {"depth": "teacher", "teacher": {"model": "depth.onnx"}}


@pytest.mark.parametrize("identity, unused_under, used_under, change", [
    (_train_id, {"train": {"optimizer": "adam"}}, {"train": {"optimizer": "sgd"}}, {"train": {"momentum": 0.5}}),
    (_train_id, {"train": {"optimizer": "adamw"}}, {"train": {"optimizer": "sgd"}}, {"train": {"momentum": 0.5}}),
    (_train_id, {"train": {"scheduler": "cosine"}}, {"train": {"scheduler": "plateau"}}, {"train": {"plateau_patience": 4}}),
    (_train_id, {"train": {"scheduler": "onecycle"}}, {"train": {"scheduler": "plateau"}}, {"train": {"plateau_factor": 0.1}}),
    (_train_id, {"train": {"scheduler": "none"}}, {"train": {"scheduler": "plateau"}}, {"train": {"plateau_threshold": 0.1}}),
    (_train_id, {"train": {"crop": 0}}, {"train": {"crop": 64}}, {"train": {"crop_object": 0.3}}),
    (_train_id, {"train": {"crop": 192}}, {"train": {"crop": 64}}, {"train": {"crop_object": 0.3}}),
    (_train_id, {"train": {"crop": 192}}, {"train": {"crop": 24, "crop_height": 192}}, {"train": {"crop_object": 0.3}}),
    (_train_id, {"train": {"crop": 0}}, {"train": {"crop": 64}}, {"train": {"crop_height": 0}}),
    (_train_id, {"train": {"crop": 192}}, {"train": {"crop": 64}}, {"train": {"whole_epochs": 1}}),
    (_train_id, {"train": {"crop": 192, "crop_height": 0}}, {"train": {"crop": 64}}, {"train": {"whole_epochs": 1}}),
    (_train_id, {"train": {"optimizer": "sgd", "scheduler": "onecycle"}}, {"train": {"optimizer": "sgd"}},
     {"train": {"momentum": 0.5}}),
    *[(_train_id, {"train": {"perturb": {name: 0.0}}}, {"train": {"perturb": {name: 0.5}}},
       {"train": {"perturb": {key: value}}})
      for name, key, value in [("shadow", "shadow_strength", 0.9), ("bg_jitter", "bg_jitter_strength", 0.5),
                               ("misalign", "misalign_degrees", 3.0), ("misalign", "misalign_shift", 0.1),
                               ("blur", "blur_sigma", 2.0), ("noise", "noise_sigma", 0.2),
                               ("jpeg", "jpeg_quality", [10, 20])]],
    (_train_id, {"train": {"perturb": {"jpeg": 0.5}}}, {"train": {"perturb": {"blur": 0.5}}},
     {"train": {"perturb": {"where": "device"}}}),
    *[(_train_id, {}, {"model": {"name": "two_stage"}, "train": {"crop": 0}}, {"model": {key: value}})
      for key, value in (("coarse_scale", 2), ("refine_share", 0.3))],
    (_compose_id, {"fg_bg_format": "png"}, {"fg_bg_format": "jpeg"}, {"jpeg_quality": 50}),
    (_compose_id, {"depth": "geometry", "teacher": {"model": "depth.onnx"}}, TEACHER, {"teacher": {"batch": 4}}),
    (_compose_id, {"layout": "grid", "positions": 20}, {"layout": "random"}, {"seed": 7}),
    (_compose_id, {"layout": "grid", "positions": 20}, {"layout": "grid", "positions": 20, "scale_range": [0.5, 1.0]},
     {"seed": 7}),
], ids=["momentum-adam", "momentum-adamw", "patience-cosine", "factor-onecycle", "threshold-none", "crop_object",
        "crop_object-whole", "crop_object-strips", "crop_height", "whole_epochs-whole", "whole_epochs-square",
        "momentum-onecycle", "shadow_strength", "bg_jitter_strength", "misalign_degrees",
        "misalign_shift", "blur_sigma", "noise_sigma", "perturb-jpeg_quality", "perturb-where",
        "coarse_scale", "refine_share", "jpeg_quality", "teacher", "seed-grid", "seed-grid-scaled"])
def test_a_key_that_does_not_apply_changes_no_fingerprint_and_one_that_does_applies(identity, unused_under, used_under,
                                                                                     change):
    def merged(base):
        return _deep_merge(base, change)

    assert identity(merged(unused_under)) == identity(unused_under)
    assert identity(merged(used_under)) != identity(used_under)


def _deep_merge(base: dict, over: dict) -> dict:
    return {**base, **{k: _deep_merge(base.get(k, {}), v) if isinstance(v, dict) else v for k, v in over.items()}}


def test_the_runtime_keys_are_left_out_of_the_training_fingerprint():
    base = _train_id({})
    for key, value in (("workers", 3), ("device", "cpu"), ("threads", 2), ("image_every", 1)):
        assert _train_id({"train": {key: value}}) == base, key
    assert _train_id({"train": {"seed": 1}}) != base  # and a key that is not one does move it


@pytest.mark.parametrize("over, message", [
    ({"heads": {"mask": {"losses": {"bce": 0.0, "dice": 0.0}}}},
     r"heads.mask.losses = \{'bce': 0.0, 'dice': 0.0\} is not allowed; expected at least one loss with a weight > 0"),
    ({"heads": {}}, r"heads = \{\} is not allowed; expected at least one head"),
    ({"epochs": 3, "train": {"whole_epochs": 3}},
     r"train.whole_epochs = 3 is not allowed; expected fewer than epochs = 3: the last epochs of a run on crops"),
    ({"train": {"whole_epochs": -1}}, r"train.whole_epochs = -1 is not allowed; expected an int >= 0"),
    ({"train": {"crop": 0, "whole_epochs": 1}},
     r"train.whole_epochs = 1 does not apply with train.crop = 0: every epoch already trains on whole images"),
    ({"epochs": 10, "train": {"crop": 0, "resize_schedule": [[32, 10], [64, 5]]}},
     r"train.resize_schedule = \[64, 5\] is not allowed; expected an entry that starts before the last epoch: it "
     r"would start at epoch 10, and epochs = 10"),
])
def test_settings_that_would_train_nothing_are_refused(over, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Params, over)


def test_the_default_fingerprints_are_what_they_were():
    """Leaving unused keys out puts them at their defaults, so the default run's fingerprints, and so
    its dataset bytes, do not move (last moved: compose.prior_horizon joined it, with dataset format 4)."""
    assert compose_identity(ComposeConfig()) == {
        "bg_size": 192, "fg_size": 96, "positions": 4, "layout": "random", "scale_range": (1.0, 1.0), "seed": 0,
        "mask_threshold": 128, "fg_bg_format": "png", "jpeg_quality": 90, "depth": "geometry", "prior_horizon": 0.4,
        "teacher": {"model": "", "output": "inverse_depth", "input_size": 256, "mean": (0.485, 0.456, 0.406),
                    "std": (0.229, 0.224, 0.225), "batch": 32}, "shard_size": 1000}


def test_the_default_training_identity_is_what_it_was():
    """The default run's checkpoint fingerprint hashes this dict (then the stats and split files): a refactor
    that moves it makes an interrupted `last.pt` start afresh instead of resuming, so it moves only on purpose
    (last: log_l1 on measured bg depth only, when it became the default)."""
    perturb = {"shadow": 0.0, "shadow_strength": 0.3, "bg_jitter": 0.0, "bg_jitter_strength": 0.15, "misalign": 0.0,
               "misalign_degrees": 1.0, "misalign_shift": 0.01, "blur": 0.0, "blur_sigma": 0.8, "noise": 0.0,
               "noise_sigma": 0.03, "jpeg": 0.5, "jpeg_quality": (70, 95), "where": "auto"}
    identity = _training_identity(Params())
    assert identity == {
        "lr": 0.003, "epochs": 10, "batch_size": 16,
        "model": {"name": "unet", "width": 16, "levels": 3, "half_output": False, "rows": False,
                  "context": "columns", "depth": "ground_contact", "input": "rgb"},
        "train": {"optimizer": "adam", "weight_decay": 0.0, "momentum": 0.9, "scheduler": "cosine",
                  "plateau_patience": 1, "plateau_factor": 0.5, "plateau_threshold": 0.0001, "grad_clip": 0.0,
                  "best_metric": "loss", "resize_schedule": (), "crop": 24, "crop_object": 0.8, "crop_height": 192,
                  "val_samples": 160, "whole_epochs": 0, "augment": {"hflip": 0.5, "affine": 0.0, "color": 0.0}, "perturb": perturb,
                  "precision": "auto", "channels_last": True, "compile": False, "deterministic": False, "seed": 0},
        "heads": [["mask", {"bce": 1.0, "dice": 1.0}], ["depth", {}], ["bg_depth", {"l1": 1.0, "ssim": 0.5, "log_l1": 0.5}, ["log_l1"]],
                  ["alpha", {"l1": 1.0, "sobel": 1.0}]]}  # ordered: the order builds the model
    assert fingerprint(identity) == "8020b8196baeded1d78636f34ec5300178dda7b7aea9591e43ffc155378d5d0b"
