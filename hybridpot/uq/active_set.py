"""MaxVol active sets of the training atoms' descriptor rows and the extrapolation grade gamma.

Per element an active set of M = K + 1 training rows x = [1, B] of maximal volume
(:mod:`hybridpot.maxvol`); gamma(x) = max_k |(x A^-1)_k| <= 1 means interpolation, > 1 extrapolation
(D-optimality).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from hybridpot.arrays import decode_array, encode_array
from hybridpot.errors import HybridpotError
from hybridpot.maxvol import grade, maxvol


@dataclass
class ActiveSet:
    """Per-element MaxVol active sets of descriptor rows x = [1, B].

    Attributes:
        elements: chemical symbols (type index = position).
        rows: per element the (M, M) active rows, M = K + 1 (or None for an element without
            enough training atoms).
    """

    elements: list[str]
    rows: list[np.ndarray | None]
    _inverse: list[np.ndarray | None] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.rows) != len(self.elements):
            raise HybridpotError(f"active set: {len(self.rows)} row blocks for {len(self.elements)} elements")
        self._inverse = [None if r is None else np.linalg.inv(r) for r in self.rows]

    @property
    def n_columns(self) -> int:
        """M = K + 1."""
        return next(r.shape[1] for r in self.rows if r is not None)

    def inverse(self, t: int) -> np.ndarray:
        """(M, M) A_t^-1.

        Raises:
            HybridpotError: the element has no active set.
        """
        inv = self._inverse[t]
        if inv is None:
            raise HybridpotError(f"no active set for {self.elements[t]}: too few or degenerate training environments")
        return inv

    @classmethod
    def from_descriptors(cls, B: np.ndarray, types: np.ndarray, elements: Sequence[str], strict: bool = True,
                         tol: float = 1.0 + 1e-6) -> "ActiveSet":
        """MaxVol active sets of the rows [1, B] of each element.

        Args:
            B: (N, K) descriptors; types: (N,) type index of each row.
            strict: raise if an element has fewer than M independent rows (else leave it out).
            tol: MaxVol stops when every |coefficient| <= tol (so training rows have gamma <= tol).

        Raises:
            HybridpotError: (strict) an element with too few or rank-deficient rows.
        """
        X = _rows(B, types)
        out: list[np.ndarray | None] = []
        for t, element in enumerate(elements):
            Xt = X[np.asarray(types) == t]
            try:
                out.append(Xt[_maxvol_scaled(Xt, tol)])
            except ValueError as exc:
                if strict:
                    raise HybridpotError(
                        f"MaxVol active set for {element}: {exc} ({Xt.shape[0]} atoms, {X.shape[1]} columns [1, B]); "
                        "add more varied training environments or use fewer descriptor components"
                    ) from exc
                out.append(None)
        return cls(list(elements), out)

    def extend(self, B: np.ndarray, types: np.ndarray, tol: float = 1.0 + 1e-6) -> "ActiveSet":
        """The active set of (current active rows + new rows [1, B]): MaxVol over their union.

        Elements without an active set are built from the new rows alone when possible.
        """
        X = _rows(B, types)
        out: list[np.ndarray | None] = []
        for t, (element, A) in enumerate(zip(self.elements, self.rows)):
            new = X[np.asarray(types) == t]
            Xt = new if A is None else np.vstack([A, new])
            try:
                out.append(Xt[_maxvol_scaled(Xt, tol)])
            except ValueError:
                out.append(A)
        return ActiveSet(list(self.elements), out)

    def coefficients(self, B: np.ndarray, types: np.ndarray) -> np.ndarray:
        """(N, M) c = x A_t^-1 of each row (NaN for elements without an active set)."""
        X = _rows(B, types)
        C = np.full(X.shape, np.nan)
        for t in range(len(self.elements)):
            sel = np.asarray(types) == t
            if sel.any() and self._inverse[t] is not None:
                C[sel] = X[sel] @ self._inverse[t]
        return C

    def grade(self, B: np.ndarray, types: np.ndarray) -> np.ndarray:
        """(N,) extrapolation grade gamma = max_k |(x A^-1)_k| (inf for elements without an active set)."""
        X = _rows(B, types)
        out = np.full(X.shape[0], np.inf)
        for t in range(len(self.elements)):
            sel = np.asarray(types) == t
            if sel.any() and self._inverse[t] is not None:
                out[sel] = grade(X[sel], self._inverse[t])
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"elements": list(self.elements), "rows": [None if r is None else encode_array(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ActiveSet":
        return cls(list(d["elements"]), [None if r is None else decode_array(r) for r in d["rows"]])


def _rows(B: np.ndarray, types: np.ndarray) -> np.ndarray:
    """(N, K + 1) rows [1, B] (checking ``types`` has one entry per row)."""
    B = np.asarray(B, dtype=np.float64)
    if B.ndim != 2 or np.shape(types) != (B.shape[0],):
        raise HybridpotError(f"{B.shape} rows of descriptors with {np.shape(types)} types: expected (N, K) and (N,)")
    return np.hstack([np.ones((B.shape[0], 1)), B])


def _maxvol_scaled(X: np.ndarray, tol: float) -> np.ndarray:
    """MaxVol row indices of X with columns scaled to unit RMS first (gamma does not depend on the
    scaling, but the pivoting and the rank test do)."""
    scale = np.sqrt(np.mean(X**2, axis=0))
    scale = np.where(scale > 0, scale, 1.0)
    return maxvol(X / scale, tol=tol)
