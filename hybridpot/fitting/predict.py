"""Predictions of a potential on a data set, in batches."""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from hybridpot.fitting.assembly import DEFAULT_BATCH_ATOMS, batches
from hybridpot.io.data import Dataset
from hybridpot.potential import Potential, evaluate, to_numpy
from hybridpot.system import AtomicSystem


def predict(potential: Potential, data: Dataset, batch_atoms: int = DEFAULT_BATCH_ATOMS, progress: bool = True, desc: str = "predict") -> dict[str, np.ndarray]:
    """Energies (S,) eV, forces (N, 3) eV/A and stress (S, 6) eV/A^3 of every structure."""
    S, N = len(data), int(data.n_atoms.sum())
    out = {"energy": np.zeros(S), "forces": np.zeros((N, 3)), "stress": np.full((S, 6), np.nan)}
    ptr = data.ptr
    for idx in tqdm(list(batches(data, batch_atoms)), desc=desc, unit="batch", disable=not progress, leave=False):
        system = AtomicSystem.from_atoms([data.frames[s] for s in idx])
        res = to_numpy(evaluate(potential, system, forces=True, stress=True))
        out["energy"][idx] = res["energy"]
        out["forces"][ptr[idx[0]] : ptr[idx[-1] + 1]] = res["forces"]
        out["stress"][idx] = res["stress"]
    return out
