"""The "local" energy noise: a structure's energy noise is the held-out error of the training structures nearest to it.

The "cv" noise model gives every structure the same per-atom energy noise, the RMS held-out error of the training
structures. Those errors are far from uniform: on the mlearn sets a few structures (surfaces, hot liquids) carry most of
them, so a constant width is too wide for bulk cells and far too narrow for surfaces, and the predicted std does not rank
the errors. Here the per-atom energy noise of a structure s is

    sigma_E(s)^2 = (1 / k) sum_{j in kNN(s)} e_j^2,

with e_j the held-out per-atom energy errors (eV/atom) of the training structures (each predicted by the CV fit of the
folds it is not in) and kNN(s) the k training structures nearest to s in a structure fingerprint. The fingerprint of a
structure is, for each element, the mean and the standard deviation over its atoms of the descriptor vector (zeros where
the element is absent), standardised per component over the training structures; the distance is Euclidean. A
training structure's own sigma leaves the structure itself out of its neighbours (leave-one-out), so that its score
|e_s| / sigma_E(s) is a held-out score and the split-conformal factors of :func:`~hybridpot.uq.calibration.interval_factors`
keep their meaning ("locally weighted" conformal intervals).

k is chosen among :data:`NEIGHBOUR_CANDIDATES` by the Gaussian log-likelihood of the training structures' held-out
errors under their leave-one-out sigma (training data only). A pull towards the global mean square (pseudo-neighbours)
was tried and dropped: with errors 10x apart between two kinds of structure, one pseudo-neighbour in 11 widened the quiet
kind's intervals 2.3x and left the noisy kind's 68 % interval covering 0.48 (tests/uq/test_uq.py has the case).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from hybridpot.arrays import decode_array, encode_array
from hybridpot.errors import HybridpotError

#: the numbers of nearest training structures the fit chooses from (at most the training structures less one)
NEIGHBOUR_CANDIDATES = (3, 5, 7, 10, 15, 20, 30)


def fingerprints(B: np.ndarray, types: np.ndarray, owner: np.ndarray, n_structures: int, n_types: int) -> np.ndarray:
    """(S, 2 T K) per structure and element, the mean and the standard deviation of its atoms' descriptors.

    Args:
        B: (N, K) per-atom descriptors; types: (N,) element index 0..T-1; owner: (N,) structure index 0..S-1.
    """
    B = np.asarray(B, dtype=np.float64)
    K = B.shape[1]
    out = np.zeros((n_structures, n_types, 2, K))
    key = np.asarray(owner) * n_types + np.asarray(types)
    count = np.bincount(key, minlength=n_structures * n_types).astype(np.float64)
    sums = np.zeros((n_structures * n_types, K))
    squares = np.zeros((n_structures * n_types, K))
    np.add.at(sums, key, B)
    np.add.at(squares, key, B * B)
    present = count > 0
    mean = np.zeros_like(sums)
    mean[present] = sums[present] / count[present, None]
    var = np.zeros_like(sums)
    var[present] = np.maximum(squares[present] / count[present, None] - mean[present] ** 2, 0.0)
    out[:, :, 0] = mean.reshape(n_structures, n_types, K)
    out[:, :, 1] = np.sqrt(var).reshape(n_structures, n_types, K)
    return out.reshape(n_structures, -1)


@dataclass
class LocalNoise:
    """The training structures' fingerprints and held-out errors, and the rule that turns them into a noise level.

    Attributes:
        center, scale: (F,) the standardisation of the fingerprints (mean and std over the training structures; a
            constant component has scale 1).
        fingerprints: (S, F) the standardised fingerprints of the training structures.
        errors: (S,) their held-out per-atom energy errors, eV/atom.
        n_types: elements of the model (the fingerprint's layout).
        neighbours: k (module docstring).
        log_likelihood: {k: mean Gaussian log-likelihood of the held-out errors under the leave-one-out sigma} of the
            candidates k was chosen from (empty when k was given).
    """

    center: np.ndarray
    scale: np.ndarray
    fingerprints: np.ndarray
    errors: np.ndarray
    n_types: int
    neighbours: int
    log_likelihood: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_training(cls, B: np.ndarray, types: np.ndarray, n_atoms: np.ndarray, errors: np.ndarray, n_types: int,
                      neighbours: int | None = None) -> "LocalNoise":
        """From the training atoms' descriptors (N, K) and element indices (N,), in data order, the structures' atom
        counts (S,) and their held-out per-atom energy errors (S,) eV/atom; ``neighbours`` None: k chosen by the
        leave-one-out likelihood (module docstring)."""
        n_atoms = np.asarray(n_atoms, dtype=int)
        errors = np.asarray(errors, dtype=np.float64)
        if len(errors) != len(n_atoms) or int(n_atoms.sum()) != len(B):
            raise HybridpotError(f"local noise: {len(errors)} errors, {len(n_atoms)} structures of {int(n_atoms.sum())} atoms "
                                 f"and {len(B)} descriptor rows do not fit together")
        if len(errors) < 2 or not np.all(np.isfinite(errors)) or not np.any(errors != 0):
            raise HybridpotError("local noise needs finite, not all zero, held-out errors of at least 2 training structures")
        if neighbours is not None and neighbours < 1:
            raise HybridpotError(f"local noise: neighbours {neighbours} must be >= 1")
        owner = np.repeat(np.arange(len(n_atoms)), n_atoms)
        fp = fingerprints(B, types, owner, len(n_atoms), n_types)
        center = fp.mean(axis=0)
        scale = fp.std(axis=0)
        scale[scale <= 1e-12 * max(float(np.max(scale, initial=0.0)), 1e-300)] = 1.0
        out = cls(center, scale, (fp - center) / scale, errors, int(n_types), int(neighbours or 1))
        if neighbours is None:
            candidates = sorted({min(k, len(errors) - 1) for k in NEIGHBOUR_CANDIDATES})
            for k in candidates:
                out.neighbours = k
                sigma = out.training_sigma()  # a zero sigma (k neighbours without error): no likelihood, that k loses
                out.log_likelihood[k] = (float(np.mean(-np.log(sigma) - 0.5 * (errors / sigma) ** 2)) if np.all(sigma > 0)
                                         else float("-inf"))
            out.neighbours = max(candidates, key=lambda k: out.log_likelihood[k])
        return out

    def _sigma(self, query: np.ndarray, leave_out_self: bool = False) -> np.ndarray:
        """(Q,) per-atom energy noise (eV/atom) of standardised fingerprints ``query`` (Q, F)."""
        d2 = (np.sum(query**2, axis=1)[:, None] - 2.0 * query @ self.fingerprints.T
              + np.sum(self.fingerprints**2, axis=1)[None, :])
        if leave_out_self:
            np.fill_diagonal(d2, np.inf)
        k = min(self.neighbours, self.fingerprints.shape[0] - (1 if leave_out_self else 0))
        nearest = np.argpartition(d2, k - 1, axis=1)[:, :k]
        return np.sqrt(np.mean(self.errors[nearest] ** 2, axis=1))

    def training_sigma(self) -> np.ndarray:
        """(S,) each training structure's noise from the others (leave-one-out), eV/atom."""
        return self._sigma(self.fingerprints, leave_out_self=True)

    def sigma(self, B: np.ndarray, types: np.ndarray, owner: np.ndarray, n_structures: int) -> np.ndarray:
        """(S',) per-atom energy noise (eV/atom) of new structures from their atoms' descriptors (N, K), element
        indices (N,) and structure indices (N,)."""
        fp = fingerprints(B, types, owner, n_structures, self.n_types)
        if fp.shape[1] != self.fingerprints.shape[1]:
            raise HybridpotError(f"local noise: fingerprints of width {fp.shape[1]} against {self.fingerprints.shape[1]} "
                                 "of the training structures (another descriptor?)")
        return self._sigma((fp - self.center) / self.scale)

    def to_dict(self) -> dict[str, Any]:
        return {"center": encode_array(self.center), "scale": encode_array(self.scale),
                "fingerprints": encode_array(self.fingerprints), "errors": encode_array(self.errors),
                "n_types": self.n_types, "neighbours": self.neighbours,
                "log_likelihood": {str(k): v if np.isfinite(v) else None for k, v in self.log_likelihood.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LocalNoise":
        out = cls(decode_array(d["center"]), decode_array(d["scale"]), decode_array(d["fingerprints"]),
                  decode_array(d["errors"]), int(d["n_types"]), int(d["neighbours"]),
                  {int(k): float("-inf") if v is None else float(v) for k, v in d.get("log_likelihood", {}).items()})
        S, F = out.fingerprints.shape
        if out.center.shape != (F,) or out.scale.shape != (F,) or out.errors.shape != (S,):
            raise HybridpotError(f"local noise record: fingerprints {out.fingerprints.shape}, center {out.center.shape}, "
                                 f"scale {out.scale.shape}, errors {out.errors.shape} do not fit together")
        return out
