"""benchmarks/timing.py: the ways alternate round by round, and each gets the median of its rounds."""

import importlib.util

import pytest

from tests.conftest import ROOT


def _timing():
    spec = importlib.util.spec_from_file_location("timing", ROOT / "benchmarks" / "timing.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ways_alternate_and_each_gets_the_median_of_its_rounds(monkeypatch, capsys):
    """A fake clock: way a takes 1, 5 and 2 s in its three rounds (median 2), way b 3, 3 and 9 s (median 3); the
    calls go a, b, a, b, a, b."""
    timing = _timing()
    clock, calls = [0.0], []
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    durations = {"a": iter([1.0, 5.0, 2.0]), "b": iter([3.0, 3.0, 9.0])}

    def way(name):
        def run():
            calls.append(name)
            clock[0] += next(durations[name])
        return run

    assert timing.alternating_medians({"a": way("a"), "b": way("b")}, 3, "  ") == {"a": 2.0, "b": 3.0}
    assert calls == ["a", "b"] * 3
    assert "  a: median 2.00 s (rounds 1.00, 5.00, 2.00)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--rounds 0: give at least 1 round"):
        timing.alternating_medians({"a": way("a")}, 0)
