"""The Gaussian posterior of a linear-in-parameters model's coefficients and its noise model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from hybridpot.arrays import decode_array, encode_array
from hybridpot.errors import HybridpotError
from hybridpot.uq.local_noise import LocalNoise


@dataclass
class Posterior:
    """Gaussian posterior of a linear-in-parameters model's coefficients and the noise model.

    Attributes:
        covariance: (T*M, T*M) posterior covariance, model order (element-major, as ``coef.ravel()``).
        alpha, beta: prior precision and noise precision of the weighted rows (evidence).
        noise: {"evidence": {"energy": eV/atom, "forces": eV/A}, "residual": {...}, "cv": {...}}: noise std of one
            per-atom energy / one force component under each noise model (NaN: not defined, e.g. a kind with weight 0,
            or a fit without CV errors; models written before "cv" existed have none). The "local" model, where
            ``local_noise`` exists, has the "cv" numbers; its energy noise of a given structure comes from ``local_noise``.
        energy_interval_factors: {"68": q68, "95": q95}: the total energy's 68.27 % / 95 % intervals are
            +- q times its predictive std under the noise model ``interval_noise``; the q are split-conformal quantiles
            of the held-out |error| / std of the training structures (:func:`hybridpot.uq.calibration.interval_factors`);
            empty without CV errors (a level is left out where too few structures give its quantile).
        local_noise: the training structures' fingerprints and held-out errors behind the "local" noise model
            (:mod:`hybridpot.uq.local_noise`), or None (no CV errors; models written before it existed).
        interval_noise: the noise model the interval factors were calibrated with ("local", or "cv" in models written
            before "local" existed).
    """

    covariance: np.ndarray
    alpha: float
    beta: float
    noise: dict[str, dict[str, float]]
    energy_interval_factors: dict[str, float] = field(default_factory=dict)
    local_noise: LocalNoise | None = None
    interval_noise: str = "cv"

    def noise_models(self) -> list[str]:
        """The noise models this posterior has: those of ``noise``, and "local" where ``local_noise`` exists."""
        return sorted(self.noise) + (["local"] if self.local_noise is not None else [])

    def noise_std(self, model: str) -> tuple[float, float]:
        """(energy per atom eV/atom, force component eV/A) noise std of noise model ``model`` ("local": the "cv"
        numbers, the structure's own energy noise being ``local_noise.sigma``)."""
        if model not in self.noise_models():
            raise HybridpotError(f"noise model {model!r}: expected one of {self.noise_models()}")
        levels = self.noise["cv" if model == "local" else model]
        return float(levels["energy"]), float(levels["forces"])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; an undefined (NaN) noise level is written as null, so the file holds only finite numbers."""
        return {"covariance": encode_array(self.covariance), "alpha": float(self.alpha), "beta": float(self.beta),
                "noise": {k: {q: float(v) if np.isfinite(v) else None for q, v in d.items()} for k, d in self.noise.items()},
                "energy_interval_factors": {k: float(v) for k, v in self.energy_interval_factors.items()},
                "local_noise": None if self.local_noise is None else self.local_noise.to_dict(),
                "interval_noise": self.interval_noise}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Posterior":
        cov = decode_array(d["covariance"])
        if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
            raise HybridpotError(f"posterior covariance of shape {cov.shape}: expected square")
        noise = {k: {q: float("nan") if v is None else float(v) for q, v in n.items()} for k, n in d["noise"].items()}
        factors = {k: float(v) for k, v in d.get("energy_interval_factors", {}).items()}
        local = None if d.get("local_noise") is None else LocalNoise.from_dict(d["local_noise"])
        return cls(cov, float(d["alpha"]), float(d["beta"]), noise, factors, local, str(d.get("interval_noise", "cv")))
