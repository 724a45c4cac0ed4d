"""Progress bars that read well in a terminal and in a log file.

On a terminal: tqdm's live bar. Anywhere else (`make repro > log`, CI, the logs of
`dvc exp run --queue`), a live bar writes every update, and a 10-epoch run left hundreds
of KB of them. There the bar writes whole lines instead, one at most every
`LOG_INTERVAL_S` seconds, plus the last one of each loop.
"""

from __future__ import annotations

import sys
from typing import Iterable, TextIO

from tqdm import tqdm

LOG_INTERVAL_S = 30.0


class _Lines:
    """A stream for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable | None = None, *, stream: TextIO | None = None, **kwargs) -> tqdm:
    """tqdm(iterable, **kwargs), live on a terminal, a line every LOG_INTERVAL_S seconds elsewhere."""
    stream = stream or sys.stderr
    if stream.isatty():
        return tqdm(iterable, file=stream, **kwargs)
    return tqdm(iterable, file=_Lines(stream), mininterval=LOG_INTERVAL_S, maxinterval=LOG_INTERVAL_S,
                dynamic_ncols=False, ncols=100, **kwargs)
