"""Integrity of stored data: canonical checksums of JSON sections and searches for NaN/inf values.

A section's checksum is the SHA-256 of its canonical JSON text (keys sorted, no spaces, floats
as Python's shortest round-trip repr), computed on the section as read back from JSON, so that
writing and reading give the same text bit for bit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from typing import Any

import numpy as np


def canonical_digest(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON text of ``obj`` (a value read back from JSON)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def non_finite_paths(obj: Any, path: str, limit: int = 5) -> list[str]:
    """JSON paths (``model.coef[0][17]``) of NaN or infinite numbers in ``obj``, at most ``limit``.

    Float64 arrays stored as ``{"shape", "dtype": "<f8", "base64"}`` records
    (:func:`hybridpot.uq.encode_array`) are decoded and searched too (path ``...base64[k]``, k the flat index).
    """
    out: list[str] = []

    def walk(x: Any, p: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(x, float):
            if not math.isfinite(x):
                out.append(f"{p} = {x}")
        elif isinstance(x, dict):
            if x.get("dtype") == "<f8" and isinstance(x.get("base64"), str):
                try:
                    a = np.frombuffer(base64.b64decode(x["base64"]), dtype="<f8")
                except ValueError:
                    return  # malformed: the reader of the record reports it
                for k in np.flatnonzero(~np.isfinite(a))[: limit - len(out)]:
                    out.append(f"{p}.base64[{int(k)}] = {a[k]}")
                return
            for k, v in x.items():
                walk(v, f"{p}.{k}")
        elif isinstance(x, list):
            for k, v in enumerate(x):
                walk(v, f"{p}[{k}]")

    walk(obj, path)
    return out


def non_finite_tensors(module, limit: int = 5) -> list[str]:
    """Names of a torch module's floating-point parameters and buffers that hold NaN or inf,
    with the count and the first bad index, at most ``limit``."""
    import torch

    out = []
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = (~torch.isfinite(t.detach())).nonzero()
            out.append(f"{name}: {bad.shape[0]} non-finite value(s), first at index {tuple(bad[0].tolist())}")
            if len(out) >= limit:
                break
    return out
