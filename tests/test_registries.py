"""Every registry entry carries every param it is given (segmentation_models.pytorch's
tests/test_models.py does the same over its whole registry).

For each optimizer, scheduler, loss and model, each of its params is set to a value other
than the default, the object is built, and the object must carry that value; the object built
from the defaults must not. A param that is checked and then ignored fails here.
"""

import pytest
import torch

from fgbg.core.config import ModelConfig, Params, from_dict
from fgbg.core.model import MODELS, ColumnContext, build_model, count_parameters
from fgbg.training.losses import LOSSES, HeadLoss
from fgbg.training.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from tests.conftest import contract

# Non-default values: an object built from params.yaml's defaults holds none of them (tested below).
LR, WEIGHT_DECAY, MOMENTUM = 0.0123, 0.0456, 0.5
OPTIMIZER_PARAMS = {"lr": LR, "train": {"weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM}}
EXPECTED_GROUP = {  # what each optimizer's param group must hold
    "adam": {"lr": LR, "weight_decay": WEIGHT_DECAY},
    "adamw": {"lr": LR, "weight_decay": WEIGHT_DECAY},
    "sgd": {"lr": LR, "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM},
}


def params(over: dict) -> Params:
    return from_dict(Params, over)


def test_every_optimizer_is_covered():
    assert sorted(EXPECTED_GROUP) == OPTIMIZERS.names()


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_optimizer_carries_its_params(name):
    p = params({**OPTIMIZER_PARAMS, "train": {**OPTIMIZER_PARAMS["train"], "optimizer": name}})
    opt = build_optimizer(torch.nn.Linear(2, 2), p)
    group = opt.param_groups[0]
    for key, value in EXPECTED_GROUP[name].items():
        assert group[key] == value, f"{name}: {key} = {group[key]}, params say {value}"


SCHEDULER_PARAMS = {
    "plateau": {"train": {"plateau_patience": 3, "plateau_factor": 0.25, "plateau_threshold": 0.05}},
    "onecycle": {"lr": LR, "epochs": 3},
    "cosine": {"epochs": 3},
    "none": {},
}
STEPS_PER_EPOCH = 7


def scheduler_state(name: str, sched) -> dict:
    if name == "plateau":
        return {"plateau_patience": sched.patience, "plateau_factor": sched.factor, "plateau_threshold": sched.threshold}
    if name == "onecycle":
        return {"lr": max(g["max_lr"] for g in sched.optimizer.param_groups), "steps": sched.total_steps}
    if name == "cosine":
        return {"steps": sched.T_max}
    return {"scheduler": sched}


EXPECTED_SCHEDULER = {
    "plateau": {"plateau_patience": 3, "plateau_factor": 0.25, "plateau_threshold": 0.05},
    "onecycle": {"lr": LR, "steps": 3 * STEPS_PER_EPOCH},
    "cosine": {"steps": 3 * STEPS_PER_EPOCH},
    "none": {"scheduler": None},
}


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_an_optimizer_built_from_the_defaults_holds_none_of_the_test_values(name):
    """Else an ignored param would leave its default and still pass the test above."""
    group = build_optimizer(torch.nn.Linear(2, 2), params({"train": {"optimizer": name}})).param_groups[0]
    assert all(group[key] != value for key, value in EXPECTED_GROUP[name].items()), group


@pytest.mark.parametrize("name", [n for n in SCHEDULERS.names() if n != "none"])
def test_a_scheduler_built_from_the_defaults_holds_none_of_the_test_values(name):
    p = params({"train": {"scheduler": name}})
    state = scheduler_state(name, build_scheduler(build_optimizer(torch.nn.Linear(2, 2), p), p, p.epochs * STEPS_PER_EPOCH))
    assert all(state[key] != value for key, value in EXPECTED_SCHEDULER[name].items()), state


def test_every_scheduler_is_covered():
    assert sorted(SCHEDULER_PARAMS) == SCHEDULERS.names() == sorted(EXPECTED_SCHEDULER)


@pytest.mark.parametrize("name", SCHEDULERS.names())
def test_scheduler_carries_its_params(name):
    over = SCHEDULER_PARAMS[name]
    p = params({**over, "train": {**over.get("train", {}), "scheduler": name}})
    opt = build_optimizer(torch.nn.Linear(2, 2), p)
    assert scheduler_state(name, build_scheduler(opt, p, p.epochs * STEPS_PER_EPOCH)) == EXPECTED_SCHEDULER[name]


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_weight_scales_its_term(name):
    head = "mask" if name == "bce" else "depth"
    gen = torch.Generator().manual_seed(0)
    raw = torch.rand(2, 1, 12, 12, generator=gen)
    target = (torch.rand(2, 1, 12, 12, generator=gen) > 0.5).float()
    one, terms = HeadLoss(head, {name: 1.0})(raw, target)
    scaled, _ = HeadLoss(head, {name: 2.5})(raw, target)
    assert one.item() > 0 and terms[f"{head}_{name}"] == pytest.approx(one.item())
    assert scaled.item() == pytest.approx(2.5 * one.item(), rel=1e-6)


MODEL_PARAMS = {"width": 6, "levels": 2, "half_output": True, "rows": True, "input": "gray", "context": "none"}


def built_unet(cfg: ModelConfig) -> dict:
    """What a built model does with each param: its first width, its poolings, its output size for
    a 16 px input (half_output: 8), its input channels (rows: 7 or 3; gray: 2 or 3), a column context."""
    model = build_model(contract(cfg))
    channels = model.encoders[0][0].in_channels
    outputs = model(torch.zeros(1, channels, 16, 16))
    logits = outputs["mask"]
    assert outputs["depth"].shape == logits.shape
    return {"width": model.encoders[0][0].out_channels, "levels": len(model.encoders),
            "half_output": logits.shape[-1] == 8, "rows": channels in (3, 7), "input": "gray" if channels < 6 else "rgb",
            "context": "columns" if any(isinstance(m, ColumnContext) for m in model.modules()) else "none"}


def test_the_default_model_holds_none_of_the_test_values():
    built = built_unet(ModelConfig())
    assert all(built[key] != value for key, value in MODEL_PARAMS.items()), built


@pytest.mark.parametrize("key", sorted(MODEL_PARAMS))
def test_unet_carries_each_of_its_params(key):
    assert built_unet(ModelConfig(name="unet", **{key: MODEL_PARAMS[key]}))[key] == MODEL_PARAMS[key]


def test_unet_original_preset_is_the_original_network():
    """64 to 1024 channels, 4 poolings, outputs at half the input (96 px for 192 px)."""
    model = build_model(contract(ModelConfig(name="unet_original", depth="learned")))
    assert model.encoders[0][0].out_channels == 64 and model.bottleneck[0].out_channels == 1024
    assert len(model.encoders) == 4
    assert model(torch.zeros(1, 6, 32, 32))["mask"].shape[-1] == 16
    # By hand: a double conv a->b has 9ab + 9bb weights and 4b BatchNorm params; encoders 6-64-128-256-512,
    # bottleneck 512-1024, three up-steps (2x2 transposed conv 4hl + l, then a double conv 2l->l) to 128,
    # and two 1x1 heads of 128 + 1 params.
    def double(a, b):
        return 9 * a * b + 9 * b * b + 4 * b

    encoders = double(6, 64) + double(64, 128) + double(128, 256) + double(256, 512)
    ups = sum(4 * h * lo + lo + double(2 * lo, lo) for h, lo in ((1024, 512), (512, 256), (256, 128)))
    expected = encoders + double(512, 1024) + ups + 2 * 129
    assert expected == 30_895_874 and count_parameters(model) == expected


def test_every_model_is_covered():
    assert MODELS.names() == ["two_stage", "unet", "unet_original"]
