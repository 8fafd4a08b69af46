"""The C heap's settings for large temporaries (:mod:`hybridpot.arrays`): freed blocks kept for reuse, then returned."""

import os
import platform

import numpy as np
import pytest

from hybridpot.arrays import HEAP_BLOCK_LIMIT, release_memory, reuse_freed_blocks


def _resident_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="mallopt and malloc_trim are glibc's")
def test_freed_blocks_stay_in_the_heap_until_released():
    assert reuse_freed_blocks()
    size = 96 * 2**20  # above glibc's own mmap threshold (at most 32 MiB), below HEAP_BLOCK_LIMIT
    assert size < HEAP_BLOCK_LIMIT
    before = _resident_mib()
    block = np.ones(size // 8)  # touched: resident
    held = _resident_mib()
    del block
    kept = _resident_mib()
    release_memory()
    released = _resident_mib()
    assert held - before > 80  # the block was resident
    assert kept - before > 80  # freed, but kept in the heap for the next allocation (not unmapped)
    assert kept - released > 80  # handed back by release_memory
