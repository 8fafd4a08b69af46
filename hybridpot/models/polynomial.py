"""Linear and quadratic per-element models in the exact form of LAMMPS ML-IAP.

For an atom of element t with descriptor row B (K,):

    linear:     E = b0 + sum_k b_k B_k
    quadratic:  E = b0 + sum_k b_k B_k + 1/2 sum_k q_kk B_k^2 + sum_{k<l} q_kl B_k B_l

Both are linear in their parameters. ``features(B)`` gives the (N, M) feature rows
[1, B, (1/2 B_k^2 | B_k B_l)] whose dot product with ``coef[t]`` is the energy; the quadratic
terms are in LAMMPS's order (upper triangle row by row, diagonal first in each row), so
``coef[t]`` is exactly the element's block of a LAMMPS ``.mliap.model`` file.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from hybridpot.errors import ConfigError
from hybridpot.registry import ModelType
from hybridpot.settings import Settings, option


class PolynomialModel(torch.nn.Module):
    """Per-element linear (``quadratic=False``) or quadratic model.

    Attributes:
        elements: chemical symbols, one parameter block each (type index = position).
        n_descriptors: K.
        quadratic: whether the K(K+1)/2 quadratic terms are present.
        coef: (T, M) parameters, M = 1 + K (+ K(K+1)/2); column 0 is the per-element reference
            energy (eV), the rest in eV per unit of descriptor (product).
    """

    def __init__(self, elements: Sequence[str], n_descriptors: int, quadratic: bool = False) -> None:
        super().__init__()
        self.elements = list(elements)
        self.n_descriptors = int(n_descriptors)
        self.quadratic = bool(quadratic)
        K = self.n_descriptors
        self.n_params = 1 + K + (K * (K + 1) // 2 if quadratic else 0)
        self.coef = torch.nn.Parameter(torch.zeros((len(self.elements), self.n_params), dtype=torch.float64))
        if quadratic:
            iu = torch.triu_indices(K, K)
            self.register_buffer("_iu", iu, persistent=False)
            half = torch.where(iu[0] == iu[1], 0.5, 1.0).to(torch.float64)
            self.register_buffer("_half", half, persistent=False)

    @property
    def kind(self) -> str:
        return "quadratic" if self.quadratic else "linear"

    def features(self, B: torch.Tensor) -> torch.Tensor:
        """(N, M) feature rows of descriptors ``B`` (N, K)."""
        ones = torch.ones((B.shape[0], 1), dtype=B.dtype, device=B.device)
        parts = [ones, B]
        if self.quadratic:
            parts.append(self._half.to(B.dtype) * B[:, self._iu[0]] * B[:, self._iu[1]])
        return torch.cat(parts, dim=1)

    def pair_feature_gradients(self, B_center: torch.Tensor, dB: torch.Tensor) -> torch.Tensor:
        """(P, M, 3) derivative of the centre atom's feature row w.r.t. each pair vector.

        Args:
            B_center: (P, K) descriptors of each pair's centre atom.
            dB: (P, K, 3) descriptor derivatives w.r.t. the pair vector (pair form).
        """
        P = dB.shape[0]
        parts = [torch.zeros((P, 1, 3), dtype=dB.dtype, device=dB.device), dB]
        if self.quadratic:
            a, b = self._iu
            h = self._half.to(dB.dtype)[None, :, None]
            parts.append(h * (B_center[:, a, None] * dB[:, b] + B_center[:, b, None] * dB[:, a]))
        return torch.cat(parts, dim=1)

    @property
    def summed_gradients(self) -> bool:
        """The quadratic model's pair gradients are bilinear in (B_centre, dB): the design rows are summed over
        pairs in descriptor space (:class:`hybridpot.design.DesignAssembler`, :meth:`gradient_rows`); a linear
        model's (P, M, 3) gradients are small enough to form per pair."""
        return self.quadratic

    def gradient_rows(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """(..., M, x) feature-gradient rows of a quadratic model from sums over pairs in descriptor space.

        :meth:`pair_feature_gradients` of one pair is ``gradient_rows(dB_p, B_i (x) dB_p)``; the map
        is linear, so sums of its arguments give sums of gradients.

        Args:
            first: (..., K, x) sums of dB (x: 3 components, or 9 for virial sums).
            second: (..., K, K, x) sums of B_centre (x) dB (element [a, b] = B_a dB_b).
        """
        K = self.n_descriptors
        out = torch.zeros(first.shape[:-2] + (self.n_params, first.shape[-1]), dtype=first.dtype, device=first.device)
        out[..., 1 : K + 1, :] = first
        a, b = self._iu
        h = self._half.to(first.dtype)[:, None]
        out[..., K + 1 :, :] = h * (second[..., a, b, :] + second[..., b, a, :])
        return out

    def forward(self, B: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        """(N,) per-atom energies (eV) from descriptors (N, K) and type indices (N,)."""
        return (self.features(B) * self.coef.to(B.dtype)[types]).sum(dim=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.kind,
            "elements": self.elements,
            "n_descriptors": self.n_descriptors,
            "coef": self.coef.detach().cpu().numpy().tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PolynomialModel":
        model = cls(d["elements"], int(d["n_descriptors"]), quadratic=d["type"] == "quadratic")
        coef = np.asarray(d["coef"], dtype=np.float64)
        if coef.shape != tuple(model.coef.shape):
            raise ValueError(f"coefficient array of shape {coef.shape}, expected {tuple(model.coef.shape)}")
        with torch.no_grad():
            model.coef.copy_(torch.from_numpy(coef))
        return model


@dataclasses.dataclass
class LinearSettings(Settings):
    """The keys of ``[model] type = "linear"`` and ``"quadratic"``."""

    regularization: str | float = option("evidence",
        "'evidence' (Bayesian: maximise the marginal likelihood), 'cv' (k-fold) or a ridge lambda >= 0")
    cv_folds: int = option(5, "folds of regularization = 'cv' and energy_weight = 'cv'")

    def check_values(self, where: str) -> None:
        reg = self.regularization
        if isinstance(reg, str) and reg not in ("evidence", "cv"):
            raise ConfigError(f"{where} regularization = {reg!r}: expected 'evidence', 'cv' or a number >= 0")
        if not isinstance(reg, str) and reg < 0:
            raise ConfigError(f"{where} regularization = {reg}: must be >= 0")
        if self.cv_folds < 2:
            raise ConfigError(f"{where} cv_folds = {self.cv_folds}: need at least 2")


#: registry entries (:mod:`hybridpot.registry`): linear in their parameters, so solved by the streamed QR
LINEAR = ModelType("linear", LinearSettings, lambda settings, elements, n_features: PolynomialModel(elements, n_features),
                   lambda d, nested: PolynomialModel.from_dict(d), linear=True,
                   summary="E_t(B) = b_0 + b . B per element; Bayesian posterior, evidence or CV regularisation")
QUADRATIC = ModelType("quadratic", LinearSettings,
                      lambda settings, elements, n_features: PolynomialModel(elements, n_features, quadratic=True),
                      lambda d, nested: PolynomialModel.from_dict(d), linear=True,
                      summary="linear plus all products B_k B_l / (1 + [k = l]); Bayesian posterior")
