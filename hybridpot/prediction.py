"""Predictions of a potential over a data set, batch by batch: the layer that fitting, uncertainty
and evaluation share.

* :func:`batches`: consecutive structures holding about ``batch_atoms`` atoms each;
* :func:`baseline_predictions` (the baseline once per structure, kept: fit targets are DFT minus
  baseline) and :func:`reference_energies` (the "baseline only" per-element constants);
* :func:`predict`: energies, forces and stress of any potential, optionally adding stored
  baseline predictions to a hybrid's residual;
* :func:`descriptors`: the descriptor values of many structures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from ase import Atoms
from tqdm.auto import tqdm

from hybridpot.dataset import Dataset
from hybridpot.errors import StructureError
from hybridpot.neighbors import build_graph
from hybridpot.potential import HybridPotential, Potential, evaluate, matrix_to_voigt, to_numpy
from hybridpot.system import AtomicSystem

#: atoms per batch of structures in assembly, baseline and prediction passes: bounds the pair-form
#: derivatives held at once and so the fit's peak memory (the trade-off is measured in README, Benchmarks)
DEFAULT_BATCH_ATOMS = 1000


def batches(counts: np.ndarray, batch_atoms: int) -> Iterator[np.ndarray]:
    """Consecutive structure indices holding about ``batch_atoms`` atoms each (``counts``: (S,) atoms per structure)."""
    start, acc = 0, 0
    for s, n in enumerate(counts):
        acc += n
        if acc >= batch_atoms:
            yield np.arange(start, s + 1)
            start, acc = s + 1, 0
    if start < len(counts):
        yield np.arange(start, len(counts))


@dataclass
class BaselinePredictions:
    """Baseline energies (S,) eV, forces (N, 3) eV/A and virials (S, 3, 3) eV of a data set."""

    energy: np.ndarray
    forces: np.ndarray
    virial: np.ndarray

    def subset(self, data: Dataset, index: np.ndarray) -> "BaselinePredictions":
        """The predictions of the structures ``index`` (repeats allowed) of ``data`` (the set these belong to),
        matching ``data.subset(index)``."""
        index = np.asarray(index, dtype=int)
        return BaselinePredictions(self.energy[index], self.forces[data.atom_rows(index)], self.virial[index])


def baseline_predictions(baseline: Potential | None, data: Dataset, batch_atoms: int = DEFAULT_BATCH_ATOMS, progress: bool = True) -> BaselinePredictions:
    """Evaluate the baseline on every structure once (zeros without a baseline).

    Raises:
        StructureError: a structure the baseline cannot evaluate; where the baseline says which structure of the batch
            (the exception's ``structure``, as an external baseline does), the message names it in ``data``.
    """
    S, N = len(data), int(data.n_atoms.sum())
    out = BaselinePredictions(np.zeros(S), np.zeros((N, 3)), np.zeros((S, 3, 3)))
    if baseline is None:
        return out
    ptr = data.ptr
    for idx in tqdm(list(batches(data.n_atoms, batch_atoms)), desc="baseline", unit="batch", disable=not progress, leave=False):
        system = AtomicSystem.from_atoms([data.frames[s] for s in idx])
        try:
            res = evaluate(baseline, system, forces=True, stress=True)
        except StructureError as exc:
            k = getattr(exc, "structure", None)
            if k is None:
                raise
            raise StructureError(f"{data.source}: {data.describe(int(idx[k]))}: {getattr(exc, 'detail', exc)}") from exc
        out.energy[idx] = res["energy"].detach().numpy()
        out.forces[ptr[idx[0]] : ptr[idx[-1] + 1]] = res["forces"].detach().numpy()
        out.virial[idx] = res["virial"].detach().numpy()
    return out


def reference_energies(data: Dataset, baseline: BaselinePredictions, elements: list[str]) -> np.ndarray:
    """(T,) per-element energies (eV/atom) minimising the residual energy error per atom.

    Used for the "baseline only" reference: E = E_baseline + sum_t n_t e_t.
    """
    resid = (data.energy - baseline.energy) / data.n_atoms
    e, *_ = np.linalg.lstsq(data.composition(elements) / data.n_atoms[:, None], resid, rcond=None)
    return e


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
    for idx in tqdm(list(batches(data.n_atoms, batch_atoms)), desc=desc, unit="batch", disable=not progress, leave=False):
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


#: Atoms per batch when only descriptor values are needed: the values path keeps a few numbers per
#: pair (vector, indices, shift) and no pair-form derivatives, so its batches can be larger than the fit's.
DESCRIPTOR_BATCH_ATOMS = 4000


def descriptors(potential: HybridPotential, frames: Sequence[Atoms], batch_atoms: int = DESCRIPTOR_BATCH_ATOMS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Descriptors of many structures, in batches of about ``batch_atoms`` atoms.

    Returns:
        (B (N, K), types (N,), structure (N,) index of each atom's structure in ``frames``).
    """
    counts = np.array([len(a) for a in frames])
    Bs, ts, ss = [], [], []
    for idx in batches(counts, batch_atoms):
        system = AtomicSystem.from_atoms([frames[s] for s in idx])
        graph = build_graph(system, float(potential.descriptor.rcut))
        with torch.no_grad():
            Bs.append(potential.descriptor(graph).numpy())
        ts.append(potential.types(graph.numbers).numpy())
        ss.append(np.repeat(idx, counts[idx]))
    return np.concatenate(Bs), np.concatenate(ts), np.concatenate(ss)
