"""The fallback energy term: the ML residual switched off smoothly where the model extrapolates.

The residual of atom i is scaled by a smooth switch S_i built from the smooth grades g_j of the atoms,

    E_i = E_baseline,i + e_t + S_i (E_ML,i - e_t),
    s(g) = 1 (g <= lower), 0 (g >= upper), 1 - (10 u^3 - 15 u^4 + 6 u^5), u = (g - lower) / (upper - lower),

where e_t is the element's reference energy (the best per-element constant with the baseline
alone, fitted on the training set) so that far from the data the hybrid is exactly the
"baseline only" potential of the fit report. g is the p-norm ||x A^-1||_p (p even; a smooth
upper bound of the MaxVol grade gamma: gamma <= g <= M^(1/p) gamma, x = [1, B]) or the per-atom
predictive std (eV). The scope says which grades S_i sees:

* "atom" (default): S_i = s(g_i). Local, but no bound per structure: in a structure that
  extrapolates somewhere, the atoms that look in-distribution (the bulk-like layers of a slab)
  keep a residual that can be wrong there.
* "structure": S_i = prod_j s(g_j) over the atoms j of i's structure (per structure of a batch):
  exactly 1 while every atom is below the band, exactly 0 (baseline + reference energies) once
  one atom is beyond it, C^2 in between. A product rather than a smooth maximum (p-norm) of the
  g_j, which exceeds the maximum by up to N^(1/p) and so switches large in-distribution cells
  partly off. A "neighbourhood" product over the atoms within the cutoff was tried too and was
  never the better choice on the benchmark sets, so it is not offered.

The switch is part of the energy, so forces and stress follow by autograd like everything else;
they include -sum_j (E_ML,j - e_t) grad S_j, which for the structure scope has the residual
energy of the whole cell as its prefactor. What each scope and band does to errors, forces and
MD is measured in benchmarks/uq.py (benchmarks/README.md, Uncertainty): use "structure" for single points and
small cells that must not be worse than the baseline, "atom" for MD.

The term is pure numerics on (T, M, M) blocks; :func:`hybridpot.uq.enable_fallback` builds it from
a fitted hybrid's uncertainty data.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from hybridpot.errors import HybridpotError
from hybridpot.neighbors import PairGraph


def smoothstep_off(u: torch.Tensor) -> torch.Tensor:
    """1 for u <= 0, 0 for u >= 1, 1 - (10u^3 - 15u^4 + 6u^5) between (C^2: value, slope and
    curvature continuous at both ends)."""
    u = u.clamp(0.0, 1.0)
    return 1.0 - u**3 * (10.0 - 15.0 * u + 6.0 * u**2)


#: the measure of extrapolation the switch reads
MEASURES = ("gamma", "std")
#: what an atom's fallback switch looks at: its own grade, or the grades of all atoms of its structure
SCOPES = ("atom", "structure")


class Fallback(torch.nn.Module):
    """Smooth switch of the ML residual (the module docstring).

    Args:
        elements: chemical symbols (the model's order).
        reference: (T,) per-element reference energies e_t, eV.
        lower, upper: the band of the measure over which the residual goes from on to off.
        measure: "gamma" (smooth p-norm grade, dimensionless) or "std" (per-atom parametric
            energy std, eV; linear/quadratic models with a posterior).
        p: even exponent of the p-norm (measure "gamma").
        measure_data: (T, M, M) per element: the inverse active rows A_t^-1 (measure "gamma",
            M = K + 1) or the block of the posterior covariance of the element's coefficients
            (measure "std", M = the model's parameters per element).
        scope: "atom" (S_i = s(g_i)) or "structure" (S_i = the product of s(g_j) over the atoms j
            of atom i's structure).
    """

    def __init__(self, elements: Sequence[str], reference: Sequence[float], lower: float, upper: float, measure: str,
                 p: int, measure_data: np.ndarray, scope: str = "atom") -> None:
        super().__init__()
        if measure not in MEASURES:
            raise HybridpotError(f"fallback measure {measure!r}: expected one of {', '.join(map(repr, MEASURES))}")
        if scope not in SCOPES:
            raise HybridpotError(f"fallback scope {scope!r}: expected one of {', '.join(map(repr, SCOPES))}")
        if not (np.isfinite(lower) and np.isfinite(upper) and 0 <= lower < upper):
            raise HybridpotError(f"fallback band lower = {lower}, upper = {upper}: need 0 <= lower < upper")
        if not (isinstance(p, (int, np.integer)) and p >= 2 and p % 2 == 0):
            raise HybridpotError(f"fallback p = {p!r}: need an even integer >= 2 (|c|^p must be smooth)")
        T = len(elements)
        reference = np.asarray(reference, dtype=np.float64)
        if reference.shape != (T,):
            raise HybridpotError(f"fallback: {reference.shape} reference energies for {T} elements")
        blocks = np.asarray(measure_data, dtype=np.float64)
        if blocks.ndim != 3 or blocks.shape[0] != T or blocks.shape[1] != blocks.shape[2]:
            raise HybridpotError(f"fallback: measure data of shape {blocks.shape}, expected ({T}, M, M)")
        self.elements = list(elements)
        self.lower, self.upper, self.measure, self.p, self.scope = float(lower), float(upper), measure, int(p), scope
        self.register_buffer("reference", torch.as_tensor(reference), persistent=False)
        self.register_buffer("blocks", torch.as_tensor(blocks), persistent=False)

    def measure_of(self, B: torch.Tensor, types: torch.Tensor, model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N,) the smooth measure g of each atom (differentiable in B)."""
        g = torch.zeros(B.shape[0], dtype=B.dtype, device=B.device)
        for t in range(len(self.elements)):
            mask = types == t
            if not bool(mask.any()):
                continue
            idx = mask.nonzero().squeeze(1)
            if self.measure == "gamma":
                x = torch.cat([torch.ones((idx.shape[0], 1), dtype=B.dtype, device=B.device), B[idx]], dim=1)
                c = x @ self.blocks[t].to(B.dtype)
                # ||c||_p = m ||c / m||_p for any m > 0: m = max|c| (no gradient) avoids overflow,
                # the value and gradient are those of the p-norm itself
                m = c.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-300)
                val = m.squeeze(1) * ((c / m) ** self.p).sum(dim=1) ** (1.0 / self.p)
            else:
                if model is None or not hasattr(model, "features"):
                    raise HybridpotError("fallback on std needs a model linear in its parameters (linear, quadratic, kernel)")
                X = model.features(B[idx], types[idx]) if getattr(model, "typed_features", False) else model.features(B[idx])
                val = torch.sqrt(((X @ self.blocks[t].to(B.dtype)) * X).sum(dim=1).clamp_min(1e-300))
            g = g.index_put((idx,), val)
        return g

    def switch(self, g: torch.Tensor) -> torch.Tensor:
        """(N,) s(g) in [0, 1] of each atom's own measure."""
        return smoothstep_off((g - self.lower) / (self.upper - self.lower))

    def switches(self, B: torch.Tensor, types: torch.Tensor, graph: PairGraph, model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N,) the factor S_i in [0, 1] that scales each atom's residual, for this scope.

        Args:
            B: (N, K) descriptors; types: (N,); graph: the descriptor's pair graph (its ``batch``
                gives each atom's structure).
        """
        s = self.switch(self.measure_of(B, types, model))
        if self.scope == "atom":
            return s
        # product over each structure: exactly 1 while every atom is below the band, exactly 0 once
        # one is above it, C^2 in between (scatter_reduce's gradient of a product is exact with zeros)
        S = torch.ones(graph.n_structures, dtype=s.dtype, device=s.device).scatter_reduce(0, graph.batch, s, "prod")
        return S[graph.batch]

    def forward(self, energies: torch.Tensor, B: torch.Tensor, types: torch.Tensor, graph: PairGraph,
                model: torch.nn.Module | None = None) -> torch.Tensor:
        """(N,) e_t + S (E_ML - e_t) from the ML per-atom energies (N,) eV, descriptors (N, K),
        types (N,) and the descriptor's pair graph."""
        ref = self.reference.to(energies.dtype)[types]
        return ref + self.switches(B, types, graph, model) * (energies - ref)

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "lower": self.lower, "upper": self.upper, "p": self.p, "scope": self.scope,
                "reference": dict(zip(self.elements, map(float, self.reference.tolist())))}
