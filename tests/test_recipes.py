"""scripts/compare_recipes.py: every recipe of the README's tables is valid params, and sets what it names."""

import importlib.util

import pytest

from fgbg.core.config import Params, from_dict
from fgbg.core.typed_yaml import read_yaml
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("compare_recipes", ROOT / "scripts" / "compare_recipes.py")
recipes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipes)
BASE = read_yaml(ROOT / "params.yaml")


@pytest.mark.parametrize("table, name", [(t, n) for t, names in recipes.RECIPES.items() for n in names])
def test_every_recipe_is_valid_params_and_only_the_default_is_params_yaml(table, name):
    p, prior = recipes.recipe_params(BASE, recipes.RECIPES[table][name])
    assert isinstance(p, Params)
    same = p == from_dict(Params, BASE) and not prior
    assert same == name.endswith("(default)"), name
    # the rows measured before column context became the default keep measuring without it
    assert (p.model.context == "columns") == name.startswith("column context"), name


def test_a_set_key_reaches_its_param_and_a_mapping_replaces_the_whole():
    p, prior = recipes.recipe_params(BASE, ["train.perturb.noise=0.4", "data=prior", recipes.LEARNED_HEADS,
                                            "model.depth=learned"])
    assert p.train.perturb.noise == 0.4 and prior
    assert list(p.heads) == ["mask", "depth"] and p.heads["depth"].losses == {"l1": 1, "ssim": 0.5}
