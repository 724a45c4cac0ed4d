"""Source loading: size rules, and errors that name every bad file and the fix."""

import numpy as np
import pytest
from PIL import Image

from fgbg.sources import SourceError, load_sources


def _write(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)


def test_size_rules(tmp_path):
    _write(tmp_path / "bg" / "wide.png", np.zeros((20, 40, 3), np.uint8))
    fg = np.zeros((30, 10, 4), np.uint8)
    fg[..., 3] = 255
    _write(tmp_path / "fg" / "tall.png", fg)
    src = load_sources(tmp_path, bg_size=10, fg_size=6)
    assert src.bg.shape == (1, 10, 10, 3)  # shorter side to 10, centre crop
    assert src.fg[0].shape == (6, 2, 4)  # longer side to 6, aspect kept
    assert src.bg_depth == [None]


def test_missing_data_dir_says_how_to_get_it(tmp_path):
    with pytest.raises(SourceError, match="fgbg synth data"):
        load_sources(tmp_path / "data", 16, 8)


def test_every_problem_is_reported_at_once(tmp_path):
    _write(tmp_path / "bg" / "ok.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "bg" / "broken.jpg").write_bytes(b"not an image")
    _write(tmp_path / "fg" / "no_alpha.png", np.zeros((4, 4, 3), np.uint8))
    _write(tmp_path / "fg" / "empty_alpha.png", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(SourceError) as e:
        load_sources(tmp_path, 8, 4)
    msg = str(e.value)
    assert "3 problem(s)" in msg
    assert "broken.jpg: cannot read" in msg
    assert "no_alpha.png: foreground has no alpha" in msg
    assert "empty_alpha.png: foreground alpha is empty" in msg
