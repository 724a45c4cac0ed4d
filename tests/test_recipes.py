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
    p, which = recipes.recipe_params(BASE, recipes.RECIPES[table][name])
    assert isinstance(p, Params)
    same = p == from_dict(Params, BASE) and not which
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
    assert which == ("prior" if name.endswith("prior-only data") else "mixed" if name.endswith("mixed data") else ""), name


def test_a_set_key_reaches_its_param_and_a_mapping_replaces_the_whole():
    p, which = recipes.recipe_params(BASE, ["train.perturb.noise=0.4", "data=prior", recipes.LEARNED_HEADS,
                                            "model.depth=learned"])
    assert p.train.perturb.noise == 0.4 and which == "prior"
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


def test_the_prior_and_mixed_data_keep_no_depth_map_and_every_other_one(tmp_path):
    from fgbg.core.errors import ConfigError

    data = tmp_path / "data"
    for kind in ("bg", "bg_depth", "fg"):
        (data / kind).mkdir(parents=True)
    for name in ("a", "b", "c", "d", "e"):
        (data / "bg" / f"{name}.png").write_bytes(b"bg")
        (data / "bg_depth" / f"{name}.png").write_bytes(b"depth")
    (data / "fg" / "x.png").write_bytes(b"fg")
    mixed = recipes.source_data(data, tmp_path / "out", "mixed")
    assert sorted(p.name for p in (mixed / "bg_depth").iterdir()) == ["a.png", "c.png", "e.png"]
    assert len(list((mixed / "bg").iterdir())) == 5 and (mixed / "fg" / "x.png").is_file()
    prior = recipes.source_data(data, tmp_path / "out", "prior")
    assert not (prior / "bg_depth").exists() and len(list((prior / "bg").iterdir())) == 5
    assert len(list((data / "bg_depth").iterdir())) == 5  # the sources are left as they were
    with pytest.raises(ConfigError, match="data=half: the data a recipe takes is one of prior, mixed"):
        recipes.recipe_params(BASE, ["data=half"])


def test_mixed_data_reports_the_depth_of_measured_and_prior_bgs_apart(tiny_data, tmp_path):
    """The tiny data's 3 bgs with every other depth map: bgs 0 and 2 measured, 1 on the prior; each group's
    figure is the mean over its bgs."""
    from fgbg.composing.build import compose_dataset
    from tests.conftest import TINY_COMPOSE

    data = recipes.source_data(tiny_data, tmp_path, "mixed")
    compose_dataset(data_dir=data, out_dir=tmp_path / "c", cfg=TINY_COMPOSE)
    names = sorted(p.stem for p in (data / "bg").iterdir())
    by_source = {"bg": {names[0]: {"depth": {"rmse": 0.01, "delta1": 0.9}}, names[1]: {"depth": {"rmse": 0.5, "delta1": 0.1}},
                        names[2]: {"depth": {"rmse": 0.03, "delta1": 0.7}}}}
    assert recipes.by_depth_source(tmp_path / "c", by_source) == (
        "measured bgs (2): depth RMSE 0.0200, delta1 0.800; prior bgs (1): depth RMSE 0.5000, delta1 0.100")
    del by_source["bg"][names[1]]
    assert recipes.by_depth_source(tmp_path / "c", by_source).endswith("prior bgs: none in test")
