"""scripts/compare_recipes.py: every recipe of the README's tables is valid params, and sets what it names."""

import re

import pytest

from fgbg.core.config import Params, from_dict
from fgbg.core.typed_yaml import read_yaml
from tests.conftest import ROOT, load_script

recipes = load_script("compare_recipes")
BASE = read_yaml(ROOT / "params.yaml")


@pytest.mark.parametrize("table, name", [(t, n) for t, names in recipes.RECIPES.items() for n in names])
def test_every_recipe_is_valid_params_and_only_the_default_is_params_yaml(table, name):
    p, prior = recipes.recipe_params(BASE, recipes.RECIPES[table][name])
    assert isinstance(p, Params)
    same = p == from_dict(Params, BASE) and not prior
    assert same == name.endswith("(default)"), name
    # the rows measured before column context became the default keep measuring without it; log_l1 is named
    assert (p.model.context == "columns") == name.startswith("column context"), name
    bg_depth = p.heads.get("bg_depth")
    named = re.search(r"log_l1 ([0-9.]+)", name)
    assert (bg_depth.losses.get("log_l1") if bg_depth else None) == (float(named[1]) if named else None), name
    if bg_depth and "log_l1" in name:
        assert bg_depth.losses["l1"] == 1 and bg_depth.losses["ssim"] == 0.5, name  # added to, not replacing
    assert (bg_depth.measured_only if bg_depth else ()) == (("log_l1",) if "on measured bg depth only" in name
                                                           else ()), name
    assert prior == name.endswith("prior-only data"), name


def test_a_set_key_reaches_its_param_and_a_mapping_replaces_the_whole():
    p, prior = recipes.recipe_params(BASE, ["train.perturb.noise=0.4", "data=prior", recipes.LEARNED_HEADS,
                                            "model.depth=learned"])
    assert p.train.perturb.noise == 0.4 and prior
    assert list(p.heads) == ["mask", "depth"] and p.heads["depth"].losses == {"l1": 1, "ssim": 0.5}


def test_score_only_scores_the_recorded_run_and_trains_nothing(tmp_path, monkeypatch):
    """compare_recipes --score-only: no training, the recorded training time, evaluate on the run's best.pt; a
    recipe without a finished run is refused before anything is written."""
    from fgbg.core.errors import ConfigError

    name = "column context, log_l1 0.5 on measured bg depth only: the default (default)"
    work = tmp_path / "depth" / "column_context_log_l1_0.5_on_measured_bg_depth_only_the_default_default"
    scored = []
    monkeypatch.setattr(recipes, "train_model", lambda **kw: pytest.fail("--score-only trained"))
    monkeypatch.setattr(recipes, "evaluate_model", lambda **kw: scored.append(kw["checkpoint"]) or EVAL)
    with pytest.raises(ConfigError, match="holds no finished run"):
        recipes.main(["depth", "--only", name, "--out", str(tmp_path), "--score-only"])
    assert not work.exists()
    work.mkdir(parents=True)
    (work / "time.json").write_text('{"train_s": 123.4}')
    recipes.main(["depth", "--only", name, "--out", str(tmp_path), "--score-only"])
    assert scored == [work / "models" / "best.pt"]


def test_seed_spread_score_only_trains_nothing(tmp_path, monkeypatch):
    from fgbg.core.errors import ConfigError

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))  # it imports compare_recipes beside it
    spread = load_script("seed_spread")
    monkeypatch.setattr(spread, "train_model", lambda **kw: pytest.fail("--score-only trained"))
    monkeypatch.setattr(spread, "evaluate_model", lambda **kw: EVAL)
    args = ["--seeds", "1", "2", "--out", str(tmp_path), "--score-only"]
    with pytest.raises(ConfigError, match="does not exist; train seed 1 first"):
        spread.main(args)
    for seed in (1, 2):
        (tmp_path / f"seed_{seed}" / "models").mkdir(parents=True)
        (tmp_path / f"seed_{seed}" / "models" / "best.pt").write_bytes(b"")
    spread.main(args)
    written = (tmp_path / "spread.json").read_text()
    assert '"mask.iou": 0.98' in written and '"alpha.grad": 0.3' in written and '"mask_as_alpha.grad": 0.6' in written


EVAL = {"mask": {"iou": 0.98, "dice": 0.99}, "depth": {k: 0.5 for k in ("rmse", "mae", "abs_rel", "sq_rel", "delta1",
                                                                         "delta2", "delta3", "ssim")},
        "baseline": {"depth": {k: 0.6 for k in ("rmse", "mae", "abs_rel", "sq_rel", "delta1", "delta2", "delta3",
                                                "ssim")}},
        "test_files": {"mask": {"iou": 0.96}}, "alpha": {"sad": 0.1, "grad": 0.3},
        "mask_as_alpha": {"sad": 0.2, "grad": 0.6}}
