"""The Gaussian posterior of a linear-in-parameters model's coefficients and its noise model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hybridpot.arrays import decode_array, encode_array
from hybridpot.errors import HybridpotError


@dataclass
class Posterior:
    """Gaussian posterior of a linear-in-parameters model's coefficients and the noise model.

    Attributes:
        covariance: (T*M, T*M) posterior covariance, model order (element-major, as ``coef.ravel()``).
        alpha, beta: prior precision and noise precision of the weighted rows (evidence).
        noise: {"evidence": {"energy": eV/atom, "forces": eV/A}, "residual": {...}}: noise std of
            one per-atom energy / one force component under each noise model (NaN: not defined,
            e.g. a kind with weight 0).
    """

    covariance: np.ndarray
    alpha: float
    beta: float
    noise: dict[str, dict[str, float]]

    def noise_std(self, model: str) -> tuple[float, float]:
        """(energy per atom eV/atom, force component eV/A) noise std of noise model ``model``."""
        if model not in self.noise:
            raise HybridpotError(f"noise model {model!r}: expected one of {sorted(self.noise)}")
        return float(self.noise[model]["energy"]), float(self.noise[model]["forces"])

    def to_dict(self) -> dict[str, Any]:
        return {"covariance": encode_array(self.covariance), "alpha": float(self.alpha), "beta": float(self.beta),
                "noise": {k: {q: float(v) for q, v in d.items()} for k, d in self.noise.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Posterior":
        cov = decode_array(d["covariance"])
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise HybridpotError(f"posterior covariance of shape {cov.shape}: expected square")
        return cls(cov, float(d["alpha"]), float(d["beta"]), {k: dict(v) for k, v in d["noise"].items()})
