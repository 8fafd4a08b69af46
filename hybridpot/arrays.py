"""Float64 arrays as JSON data, bit-exact (model files, uncertainty data); returning freed memory to the system."""

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


def _malloc_trim() -> "ctypes._CFuncPtr | None":
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``; nothing elsewhere).

    A pass over the data frees each batch's arrays (tens to hundreds of MB) when the batch is done,
    but glibc keeps most of that memory mapped for reuse, fragmented among small live objects, so
    the process's resident size grows well past what is alive. Called between batches and stages,
    it keeps the peak resident size close to the live peak.
    """
    if _TRIM is not None:
        _TRIM(0)
