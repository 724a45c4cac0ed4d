"""benchmarks/bench_refine.py: its synthetic pair, and a run at a small size."""

import importlib.util
import sys

import numpy as np

from tests.conftest import ROOT


def _bench():
    """benchmarks/bench_refine.py as a module; it imports benchmarks/timing.py beside it, as a script does."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_refine", ROOT / "benchmarks" / "bench_refine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_synthetic_pair_is_an_exact_composite_with_a_3_px_edge(capsys):
    """Along the middle row of a 90 x 120 pair the ellipse's half-width is 120 / 3 = 40 px, r = |x - 60| / 40, and
    alpha = (1 - r) x 90 / 9 + 0.5 is strictly between 0 and 1 for r in (0.95, 1.05): |x - 60| in (38, 42), 3 px
    each side (columns 19-21 and 99-101; float32 leaves residues of about 5e-7 at 18 and 102, not counted)."""
    bench = _bench()
    bg, fg_bg, alpha = bench.synthetic_pair(90, 120)
    assert alpha[45, 60] == 1 and alpha[0, 0] == 0
    soft = np.flatnonzero((alpha[45] > 1e-3) & (alpha[45] < 1 - 1e-3))
    assert soft.tolist() == [19, 20, 21, 99, 100, 101]
    composite = alpha[..., None] * bench.COLOUR + (1 - alpha[..., None]) * bg
    assert np.abs(fg_bg - composite).max() <= 1.0  # exact up to the rounding of bg (at most 0.5) and of fg_bg (0.5)
    bench.main(["--height", "30", "--width", "40", "--rounds", "1"])
    out = capsys.readouterr().out
    assert "the time of solving every pixel; its 25 candidates take" in out and "the time of 9" in out
