"""benchmarks/bench_refine.py: its synthetic pair, and a run at a small size."""

import importlib.util

import numpy as np

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_refine", ROOT / "benchmarks" / "bench_refine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_pair_is_an_exact_composite_with_a_3_px_edge(capsys):
    """Along the middle row of a 90 x 120 pair the ellipse's half-width is 120 / 3 = 40 px, so alpha runs from 0 to
    1 as (1 - r) x 90 / 9 + 0.5 runs from 0 to 1, over r from 1.05 to 0.95: 4 px each side on the row (3 px along the
    shorter axis, 30 px long)."""
    bench = _bench()
    bg, fg_bg, alpha = bench.synthetic_pair(90, 120)
    assert alpha[45, 60] == 1 and alpha[0, 0] == 0
    soft = np.flatnonzero((alpha[45] > 0) & (alpha[45] < 1))
    assert len(soft) == 2 * 4 and soft.min() >= 60 - 42 and soft.max() <= 60 + 42
    composite = alpha[..., None] * bench.COLOUR + (1 - alpha[..., None]) * bg
    assert np.abs(fg_bg - composite).max() <= 1.0  # exact up to the rounding of bg (at most 0.5) and of fg_bg (0.5)
    bench.main(["--height", "30", "--width", "40", "--rounds", "1"])
    assert "the time of solving every pixel" in capsys.readouterr().out
