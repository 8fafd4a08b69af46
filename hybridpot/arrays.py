"""Float64 arrays as JSON data, bit-exact (model files, uncertainty data)."""

from __future__ import annotations

import base64
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
