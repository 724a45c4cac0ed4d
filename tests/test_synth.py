"""The built-in sources: deterministic, soft-edged, three classes, and what data.dvc records."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from PIL import Image

from fgbg.composing.synth import FG_CLASSES, render_scene, render_sprite, write_default_data
from tests.conftest import ROOT


def test_same_seed_same_bytes(tmp_path):
    write_default_data(tmp_path / "a", n_bg=2, n_fg=3, bg_size=32, fg_size=32)
    write_default_data(tmp_path / "b", n_bg=2, n_fg=3, bg_size=32, fg_size=32)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 2 + 2 + 3
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert sorted(p.stem.split("_")[0] for p in (tmp_path / "a" / "fg").iterdir()) == sorted(FG_CLASSES)


def test_sprites_have_soft_alpha_and_differ_by_class():
    shapes = {}
    for kind in FG_CLASSES:
        rgba = render_sprite(np.random.default_rng(0), kind, 64)
        a = rgba[..., 3]
        assert a.max() == 255 and ((a > 0) & (a < 255)).any()  # anti-aliased edges
        shapes[kind] = rgba.shape[0] / rgba.shape[1]
    assert shapes["person"] > 1.2 > shapes["cat"]  # people stand tall, animals are wide


def test_scene_depth_is_exact_geometry():
    rgb, depth = render_scene(np.random.default_rng(3), 64)
    assert rgb.shape == (64, 64, 3) and depth.shape == (64, 64)
    assert depth[0].min() == pytest.approx(1.0)  # sky on the top row
    assert depth[-1].max() < 0.15  # the ground near the camera
    assert (np.diff(depth[40:, 5]) <= 1e-9).all()  # nearer towards the bottom


def test_fresh_generation_hashes_to_what_data_dvc_records(tmp_path):
    recorded = yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]
    dvc = shutil.which("dvc", path=str(ROOT / ".venv" / "bin")) or shutil.which("dvc")
    subprocess.run([sys.executable, "-m", "fgbg.cli", "synth", "data", "--out", str(tmp_path / "data")], check=True)
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    subprocess.run([dvc, "add", "-q", "data"], cwd=tmp_path, check=True)
    fresh = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    assert (fresh["md5"], fresh["nfiles"], fresh["size"]) == (recorded["md5"], recorded["nfiles"], recorded["size"])
    assert Image.open(tmp_path / "data" / "bg_depth" / "scene_000.png").mode.startswith("I")  # 16-bit
