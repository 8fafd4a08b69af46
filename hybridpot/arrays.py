"""Float64 arrays as JSON data, bit-exact (model files, uncertainty data); the C heap's settings for large temporaries
(reusing freed blocks, returning freed memory to the system)."""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
from typing import Any, Mapping

import numpy as np

from hybridpot.errors import HybridpotError


def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A float64 array as JSON data: shape and little-endian bytes in base64 (bit-exact)."""
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"shape": list(a.shape), "dtype": "<f8", "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_array`.

    Raises:
        HybridpotError: malformed record (wrong dtype or a byte count that does not fit the shape).
    """
    if d.get("dtype") != "<f8":
        raise HybridpotError(f"array record with dtype {d.get('dtype')!r}, expected '<f8'")
    raw = base64.b64decode(d["base64"])
    shape = tuple(int(n) for n in d["shape"])
    if len(raw) != 8 * int(np.prod(shape, dtype=np.int64)):
        raise HybridpotError(f"array record of {len(raw)} bytes does not fit shape {shape}")
    return np.frombuffer(raw, dtype="<f8").reshape(shape).copy()


def _libc() -> "ctypes.CDLL | None":
    """The C library, or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
_TRIM = getattr(_LIBC, "malloc_trim", None)  # glibc only
_MALLOPT = getattr(_LIBC, "mallopt", None)
#: glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: :func:`reuse_freed_blocks` serves allocations up to this size (bytes) from the heap
HEAP_BLOCK_LIMIT = 1 << 30


def release_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``; nothing elsewhere).

    A pass over the data frees each batch's arrays (tens to hundreds of MB) when the batch is done,
    but glibc keeps most of that memory mapped for reuse, fragmented among small live objects, so
    the process's resident size grows well past what is alive. Called between batches and stages,
    it keeps the peak resident size close to the live peak.
    """
    if _TRIM is not None:
        _TRIM(0)


def reuse_freed_blocks() -> bool:
    """Serve allocations up to :data:`HEAP_BLOCK_LIMIT` from the C heap, where a freed block is reused by the next
    allocation, for the rest of the process (glibc ``mallopt``; nothing elsewhere).

    glibc maps every allocation above its mmap threshold (128 KiB, raised on its own to at most 32 MiB) afresh and
    unmaps it when freed, so each such temporary is page-faulted in again: the design pass's per-chunk temporaries
    (the bispectrum's per-atom Jacobians and their products with the pairs' dc/dr, the kernel model's pair gradients:
    30-60 MB each, hundreds of chunks per batch) spent about a fifth of the pass in page faults. Freed memory stays in the
    heap (the trim threshold is raised alike) until :func:`release_memory` returns it, between batches and stages.
    Called by :func:`hybridpot.fitting.job.run_fit` and by each design batch on a Dask worker.

    Returns:
        whether the C library took the settings (False where it has no ``mallopt``).
    """
    if _MALLOPT is None:
        return False
    return bool(_MALLOPT(_M_MMAP_THRESHOLD, HEAP_BLOCK_LIMIT)) and bool(_MALLOPT(_M_TRIM_THRESHOLD, HEAP_BLOCK_LIMIT))
