"""Predictions of a potential on a data set, in batches."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from hybridpot.fitting.assembly import DEFAULT_BATCH_ATOMS, BaselinePredictions, batches
from hybridpot.io.data import Dataset
from hybridpot.potential import HybridPotential, Potential, evaluate, matrix_to_voigt, to_numpy
from hybridpot.system import AtomicSystem


def predict(potential: Potential, data: Dataset, batch_atoms: int = DEFAULT_BATCH_ATOMS, progress: bool = True, desc: str = "predict",
            baseline: BaselinePredictions | None = None) -> dict[str, np.ndarray]:
    """Energies (S,) eV, forces (N, 3) eV/A and stress (S, 6) eV/A^3 of every structure.

    Args:
        baseline: the baseline's predictions on ``data``, when already computed for a
            :class:`HybridPotential`: then only its residual is evaluated and the two are added
            (the baseline is not evaluated a second time).
    """
    if baseline is not None and not isinstance(potential, HybridPotential):
        raise TypeError(f"baseline predictions are added to a HybridPotential's residual, got {type(potential).__name__}")
    model = potential.residual() if baseline is not None else potential
    S, N = len(data), int(data.n_atoms.sum())
    out = {"energy": np.zeros(S), "forces": np.zeros((N, 3)), "stress": np.full((S, 6), np.nan)}
    ptr = data.ptr
    for idx in tqdm(list(batches(data, batch_atoms)), desc=desc, unit="batch", disable=not progress, leave=False):
        system = AtomicSystem.from_atoms([data.frames[s] for s in idx])
        res = to_numpy(evaluate(model, system, forces=True, stress=True))
        atoms = slice(ptr[idx[0]], ptr[idx[-1] + 1])
        out["energy"][idx] = res["energy"]
        out["forces"][atoms] = res["forces"]
        out["stress"][idx] = res["stress"]
        if baseline is not None:  # stress = -W / V (NaN without a cell, as the residual's already is)
            volume = system.volumes.detach().cpu().numpy()
            volume = np.where(volume > 1e-10, volume, np.nan)
            out["energy"][idx] += baseline.energy[idx]
            out["forces"][atoms] += baseline.forces[atoms]
            out["stress"][idx] -= matrix_to_voigt(baseline.virial[idx]) / volume[:, None]
    return out
