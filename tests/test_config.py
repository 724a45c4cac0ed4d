"""Params loading: the real params.yaml loads, and bad keys and values name the fix."""

import dataclasses

import pytest

from fgbg.core.config import ConfigError, ModelConfig, Params, from_dict, load_params
from tests.conftest import ROOT


def test_project_params_load_with_their_documented_values():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert p.lr == 0.003 and p.split.group_by == "fg" and p.split.val_fraction == 0.2 and p.split.test_fraction == 0.2
    assert p.heads["mask"].losses == {"bce": 1.0, "dice": 1.0} and list(p.heads) == ["mask", "depth", "bg_depth", "alpha"]
    assert p.model.depth == "ground_contact" and p.heads["depth"].losses == {}  # derived (README "Depth recipes")


def test_every_params_yaml_line_with_a_value_has_a_comment():
    for line in (ROOT / "params.yaml").read_text().splitlines():
        s = line.strip()
        if s and not s.startswith("#") and not s.endswith(":"):
            assert "#" in s, f"params.yaml line without a comment: {line!r}"


def test_unknown_key_names_the_key_the_allowed_ones_and_a_suggestion():
    with pytest.raises(ConfigError) as e:
        from_dict(Params, {"train": {"optimiser": "adam"}})
    msg = str(e.value)
    assert "train.optimiser" in msg and "optimizer" in msg and "Did you mean" in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'"):
        from_dict(Params, {"learning_rate": 0.1})


@pytest.mark.parametrize(
    "data, key",
    [
        ({"lr": "fast"}, "lr"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"split": {"group_by": "colour"}}, "split.group_by"),
        ({"split": {"val_fraction": 1.0}}, "split.val_fraction"),
        ({"split": {"val_fraction": 0.5, "test_fraction": 0.5}}, "split.test_fraction"),
        ({"compose": {"fg_size": 200}}, "compose.fg_size"),
        ({"heads": {"mask": {"losses": {"dice": -1}}}}, "heads.mask.losses.dice"),
        ({"heads": {"mask": {"losses": []}}}, "heads.mask.losses"),
        ({"heads": {"mask": []}}, "heads.mask"),
    ],
)
def test_bad_values_name_the_key(data, key):
    with pytest.raises(ConfigError) as e:
        from_dict(Params, data)
    assert key in str(e.value)


@pytest.mark.parametrize("model, expected", [
    ({"context": "rows"}, "model.context = 'rows' has the wrong type; expected one of 'none', 'columns' or null"),
    ({"width": "wide"}, "model.width = 'wide' has the wrong type; expected int or null"),
])
def test_a_value_that_may_be_null_says_so_in_words(model, expected):
    with pytest.raises(ConfigError) as e:
        from_dict(Params, {"model": model})
    assert str(e.value) == f"params: {expected}"


def test_ints_are_accepted_for_floats_and_configs_are_frozen():
    p = from_dict(Params, {"lr": 1, "model": {"width": 8}})
    assert p.lr == 1.0 and isinstance(p.lr, float)
    assert p.model == ModelConfig(width=8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lr = 2.0


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no params file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("lr: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_defaults_in_code_match_params_yaml():
    assert load_params(ROOT / "params.yaml") == Params()
    assert Params().heads["bg_depth"].losses == {"l1": 1.0, "ssim": 0.5, "log_l1": 0.5}
    assert Params().heads["bg_depth"].measured_only == ("log_l1",)


def test_stages_import_the_src_beside_them(tmp_path):
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "src" / "fgbg", tmp_path / "src" / "fgbg", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "stages").mkdir()
    shutil.copy(ROOT / "stages" / "_src.py", tmp_path / "stages" / "_src.py")
    (tmp_path / "stages" / "probe.py").write_text("import _src  # noqa\nimport fgbg\nprint(fgbg.__file__)\n")
    out = subprocess.run([sys.executable, str(tmp_path / "stages" / "probe.py")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(tmp_path / "src" / "fgbg" / "__init__.py")


def test_a_stage_with_a_bad_key_exits_2_with_the_message_and_no_traceback(tmp_path):
    import subprocess
    import sys

    (tmp_path / "params.yaml").write_text("split:\n  group_by: fg\n  val_fraktion: 0.2\n")
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "split.py"), "--params", str(tmp_path / "params.yaml"),
                        "--dataset", str(tmp_path), "--out", str(tmp_path / "split.json")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "error:" in r.stderr and "split.val_fraktion" in r.stderr and "Did you mean 'split.val_fraction'" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "split.json").exists()


@pytest.mark.parametrize("text, value", [
    ("lr: 1e-05", 1e-5),  # what `dvc exp run -S lr=1e-5` writes
    ("lr: 3e-4", 3e-4),
    ("lr: 1.0e-3", 1e-3),
    ("lr: .5", 0.5),
    ("lr: 2", 2.0),
])
def test_params_are_read_as_yaml_1_2_like_dvc_writes_them(tmp_path, text, value):
    path = tmp_path / "params.yaml"
    path.write_text(text + "\n")
    p = load_params(path)
    assert p.lr == value and isinstance(p.lr, float)


def test_yaml_1_1_booleans_stay_strings_so_they_are_refused(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  channels_last: yes\n")  # YAML 1.2 has only true/false
    with pytest.raises(ConfigError, match="train.channels_last = 'yes'"):
        load_params(path)
