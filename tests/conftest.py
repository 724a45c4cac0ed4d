"""Shared fixtures: tiny sources written by the real generator, and a tiny composed dataset;
`compose_sample`, one whole sample composed by the library's rules, to check the store against;
`prepared` (its stats and split), a small model `contract`, `write_checkpoint` and
`predict_stored_pair` for inference tests; `load_script`, a module of scripts/."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgbg.composing.build import compose_dataset
from fgbg.composing.compose import compose_patches, prepare_fg
from fgbg.composing.synth import write_default_data
from fgbg.core.checkpoint import Checkpoint, save_checkpoint
from fgbg.core.config import ComposeConfig, ModelConfig, Params
from fgbg.core.contract import Contract, NormStats

ROOT = Path(__file__).resolve().parents[1]
TINY_COMPOSE = ComposeConfig(bg_size=16, fg_size=8, positions=2, shard_size=10, workers=1)


def load_script(name: str):
    """scripts/<name>.py as a module (scripts/ is no package). A script that imports another beside it needs
    scripts/ on sys.path first (monkeypatch.syspath_prepend)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "data"
    write_default_data(out, n_bg=3, n_fg=4, bg_size=32, fg_size=24)
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tiny_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dataset") / "composed"
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
    return out


@pytest.fixture(scope="session")
def prepared(tiny_dataset, tmp_path_factory) -> Path:
    """A folder with the tiny dataset's stats.json and split.json (by fg, a quarter each for val and test)."""
    from fgbg.core.imageio import atomic_write_json
    from fgbg.dataset.split import split_index
    from fgbg.dataset.stats import dataset_stats
    from fgbg.dataset.store import ComposedStore

    d = tmp_path_factory.mktemp("prep")
    ds = ComposedStore(tiny_dataset)
    atomic_write_json(d / "stats.json", dataset_stats(ds))
    atomic_write_json(d / "split.json", split_index(ds.index, group_by="fg", val_fraction=0.25, test_fraction=0.25, seed=0))
    return d


def predict_stored_pair(checkpoint: Path, store, i: int, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sample i's bg and fg_bg written as folder/bg.png and folder/scene.png and run through `fgbg predict`
    into folder/out; returns (bg, fg_bg)."""
    from fgbg.inference.predict import predict_paths

    bg, fg_bg, _, _ = store.read(i)
    Image.fromarray(bg).save(folder / "bg.png")
    Image.fromarray(fg_bg).save(folder / "scene.png")
    predict_paths(checkpoint, folder / "bg.png", folder / "scene.png", folder / "out", device="cpu")
    return bg, fg_bg


def compose_sample(
    bg: np.ndarray, bg_depth: np.ndarray, fg: np.ndarray, x: int, y: int, mask_threshold: int = 128,
    foot_cap: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bg S, S, 3 uint8; bg_depth S, S; fg h, w, 4 uint8 at column x, row y -> (fg_bg S, S, 3 uint8;
    mask S, S bool; depth S, S float32): the whole sample, where the store keeps only the fg's box."""
    prepared = prepare_fg(fg, mask_threshold)
    patches, obj_depths = compose_patches(bg, bg_depth, prepared, [x], [y], foot_cap)
    patch, obj_depth = patches[0], obj_depths[0]
    h, w = prepared.obj.shape
    fg_bg = bg.copy()
    fg_bg[y : y + h, x : x + w] = patch
    mask = np.zeros(bg.shape[:2], bool)
    mask[y : y + h, x : x + w] = prepared.obj
    depth = np.array(bg_depth, dtype=np.float32)
    depth[mask] = obj_depth
    return fg_bg, mask, depth


STATS = NormStats((0.5,) * 3, (0.25,) * 3, (0.5,) * 3, (0.25,) * 3)  # x / 255 - 0.5, over 0.25: inputs in [-2, 2]


def contract(config: ModelConfig = ModelConfig(width=4, levels=2, depth="learned"),
             heads: tuple[str, ...] | None = None, stats: NormStats = STATS) -> Contract:
    """A model contract for tests: a small UNet; its heads by default mask and depth, or under ground contact
    the default params' heads (mask, depth, bg_depth, alpha)."""
    if heads is None:
        heads = tuple(Params().heads) if config.depth == "ground_contact" else ("mask", "depth")
    return Contract(config, stats, heads)


def write_checkpoint(path: Path, model: torch.nn.Module, the_contract: Contract, input_size: int = 16,
                     epoch: int = 0) -> Path:
    """`model`'s weights saved as a checkpoint that inference loads."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(path, Checkpoint(the_contract, weights, input_size, epoch))
    return path


def grid_columns(grid: Image.Image) -> int:
    """How many cells wide a grid of fgbg.core.plots without row labels is."""
    from fgbg.core.plots import CELL, GAP

    columns, rest = divmod(grid.width + GAP, CELL + GAP)
    assert rest == 0, f"a grid {grid.width} px wide is no whole number of cells"
    return columns


def speck_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bg, fg_bg, the network's alpha) of a blue speck beside a red edge: bg 50; a red object (200, 50, 50) on
    columns 0-7 of 9 x 12, the network sure of it, with one blue inner pixel (50, 50, 200) at (4, 6); column 8 truly
    0.5 red (I = (125, 50, 50)), the network's 0.8. The speck is (4, 8)'s nearest inner pixel, not its colour."""
    bg = np.full((9, 12, 3), 50, np.uint8)
    fg_bg = bg.copy()
    net = np.zeros((9, 12), np.float32)
    fg_bg[:, :8], net[:, :8] = (200, 50, 50), 1.0
    fg_bg[4, 6] = (50, 50, 200)
    fg_bg[:, 8], net[:, 8] = (125, 50, 50), 0.8
    return bg, fg_bg, net
