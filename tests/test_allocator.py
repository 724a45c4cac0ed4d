"""fgbg.core.allocator: once it is called, freed blocks of several MB are reused, not faulted in afresh."""

import subprocess
import sys

import pytest

PROBE = """
import resource, numpy as np
{setup}
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def batch():  # as a collated batch: a few blocks of several MB alive together, written, then freed
    return [np.ones(n << 20, np.uint8) for n in (7, 5, 5, 5)]
batch()  # the first time, the blocks must be faulted in either way
before = faults()
for _ in range(20):
    batch()
print(faults() - before)
"""


def page_faults(setup: str) -> int:
    return int(subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], capture_output=True, text=True,
                              check=True).stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_blocks_of_several_mb_are_reused_without_page_faults():
    from fgbg.core.allocator import reuse_large_blocks

    assert reuse_large_blocks()
    default = page_faults("")
    tuned = page_faults("from fgbg.core.allocator import reuse_large_blocks; assert reuse_large_blocks()")
    assert default > 20 * 1000  # 22 MB a batch: glibc trims it and each batch faults most of its 5,632 pages again
    assert tuned < 1000  # the heap keeps the block: next to none
