"""The benchmarks' timing: each way to do a job run in turn for a number of rounds, and the median of each, because
these machines drift between runs (a ratio of two medians taken in the same rounds is what a benchmark reports)."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def alternating_medians(ways: dict[str, Callable[[], object]], rounds: int, indent: str = "") -> dict[str, float]:
    """Each way run once per round, in turn, for `rounds` rounds; {way: median seconds}, each printed with its
    rounds' times."""
    if rounds < 1:
        raise ValueError(f"--rounds {rounds}: give at least 1 round")
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            way()
            times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(f"{indent}{name}: median {statistics.median(seconds):.2f} s "
              f"(rounds {', '.join(f'{s:.2f}' for s in seconds)})")
    return {name: statistics.median(seconds) for name, seconds in times.items()}
