"""Keep the loader's large blocks on the heap (glibc malloc).

A batch of whole 192 px images is a few tensors of several MB each. By default glibc serves
a block that large from a fresh mmap and unmaps it on free, so every batch faults its pages
in afresh: about a fifth of the loader's time on one core (benchmarks/bench_train.py). Raising
the mmap threshold to 32 MB (its largest) and the trim threshold to 256 MB keeps freed blocks
on the heap for the next batch, at the cost of a resident heap of a few hundred MB. DataLoader
workers forked after the call inherit it. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def reuse_large_blocks() -> bool:
    """Set glibc's mmap and trim thresholds (module doc); whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl), without mallopt
        return False
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
