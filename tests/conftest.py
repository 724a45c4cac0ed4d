"""Shared fixtures: tiny sources written by the real generator, and a tiny composed dataset."""

from pathlib import Path

import pytest

from fgbg.composing.build import compose_dataset
from fgbg.composing.synth import write_default_data
from fgbg.core.config import ComposeConfig

ROOT = Path(__file__).resolve().parents[1]
TINY_COMPOSE = ComposeConfig(bg_size=16, fg_size=8, positions=2, shard_size=10, workers=1)


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
