"""Predictions of a potential over a data set, batch by batch: the layer that fitting, uncertainty
and evaluation share.

* :func:`batches`: consecutive structures holding about ``batch_atoms`` atoms each;
* :func:`baseline_predictions` (the baseline once per structure, kept: fit targets are DFT minus
  baseline) and :func:`reference_energies` (the "baseline only" per-element constants);
* :func:`predict`: energies, forces and stress of any potential, optionally adding stored
  baseline predictions to a hybrid's residual;
* :func:`descriptors`: the descriptor values of many structures.

Each is a pass over batches of structures (:func:`hybridpot.distributed.map_batches`): in this process, or with
``cluster`` as one Dask task per batch, the same computation per batch, so the numbers do not depend on the number of
workers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from ase import Atoms

from hybridpot.dataset import Dataset
from hybridpot.distributed import ClusterArg, map_batches
from hybridpot.errors import StructureError
from hybridpot.neighbors import build_graph
from hybridpot.potential import HybridPotential, Potential, evaluate, matrix_to_voigt, to_numpy
from hybridpot.system import AtomicSystem

#: atoms per batch of structures in assembly, baseline and prediction passes: bounds the pair-form
#: derivatives held at once and so the fit's peak memory (the trade-off is measured in benchmarks/README.md)
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

    def subset(self, data: Dataset, index: np.ndarray, ptr: np.ndarray | None = None) -> "BaselinePredictions":
        """The predictions of the structures ``index`` (repeats allowed) of ``data`` (the set these belong to),
        matching ``data.subset(index)``; ``ptr``: ``data.ptr`` where the caller holds it (:meth:`Dataset.atom_rows`)."""
        index = np.asarray(index, dtype=int)
        return BaselinePredictions(self.energy[index], self.forces[data.atom_rows(index, ptr)], self.virial[index])


def for_workers(potential: Potential) -> Potential:
    """``potential`` as a pass sends it to its batches: without the record of its fit (``solution``, which ``hybridpot
    fit`` keeps on the potential: its training descriptors, (N, K), grow with the training set, and no batch needs
    them); ``potential`` itself where it carries none. A shallow copy: it shares every module and parameter."""
    if getattr(potential, "solution", None) is None:
        return potential
    lean = copy.copy(potential)
    del lean.solution
    return lean


def baseline_predictions(baseline: Potential | None, data: Dataset, batch_atoms: int = DEFAULT_BATCH_ATOMS, progress: bool = True,
                         cluster: ClusterArg = None, desc: str = "baseline") -> BaselinePredictions:
    """Evaluate the baseline on every structure once (zeros without a baseline).

    Args:
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`): one task per batch.
        desc: the name of the pass (progress bar, the cluster's record).

    Raises:
        StructureError: a structure the baseline cannot evaluate; where the baseline says which structure of the batch
            (the exception's ``structure``, as an external baseline does), the message names it in ``data``.
    """
    S, N = len(data), int(data.n_atoms.sum())
    out = BaselinePredictions(np.zeros(S), np.zeros((N, 3)), np.zeros((S, 3, 3)))
    if baseline is None:
        return out
    ptr = data.ptr

    def keep(idx: np.ndarray, res: dict[str, np.ndarray]) -> None:
        out.energy[idx] = res["energy"]
        out.forces[ptr[idx[0]] : ptr[idx[-1] + 1]] = res["forces"]
        out.virial[idx] = res["virial"]

    map_batches(_baseline_batch, baseline, list(batches(data.n_atoms, batch_atoms)), lambda idx: data.subset(idx, ptr), keep,
                cluster, progress, desc)
    return out


def _baseline_batch(baseline: Potential, batch: Dataset) -> dict[str, np.ndarray]:
    """The baseline's energies (B,) eV, forces (n, 3) eV/A and virials (B, 3, 3) eV of the B structures of ``batch``
    (one batch of :func:`baseline_predictions`: its structures alone, with their source and file indices for messages)."""
    try:
        res = evaluate(baseline, AtomicSystem.from_atoms(batch.frames), forces=True, stress=True)
    except StructureError as exc:
        k = getattr(exc, "structure", None)
        if k is None:
            raise
        raise StructureError(f"{batch.source}: {batch.describe(int(k))}: {getattr(exc, 'detail', exc)}") from exc
    return {k: res[k].detach().numpy() for k in ("energy", "forces", "virial")}


def reference_energies(data: Dataset, baseline: BaselinePredictions, elements: list[str]) -> np.ndarray:
    """(T,) per-element energies (eV/atom) minimising the residual energy error per atom.

    Used for the "baseline only" reference: E = E_baseline + sum_t n_t e_t.
    """
    resid = (data.energy - baseline.energy) / data.n_atoms
    e, *_ = np.linalg.lstsq(data.composition(elements) / data.n_atoms[:, None], resid, rcond=None)
    return e


def predict(potential: Potential, data: Dataset, batch_atoms: int = DEFAULT_BATCH_ATOMS, progress: bool = True, desc: str = "predict",
            baseline: BaselinePredictions | None = None, cluster: ClusterArg = None) -> dict[str, np.ndarray]:
    """Energies (S,) eV, forces (N, 3) eV/A and stress (S, 6) eV/A^3 of every structure.

    Args:
        baseline: the baseline's predictions on ``data``, when already computed for a
            :class:`HybridPotential`: then only its residual is evaluated and the two are added
            (the baseline is not evaluated a second time).
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`): one task per batch.
    """
    if baseline is not None and not isinstance(potential, HybridPotential):
        raise TypeError(f"baseline predictions are added to a HybridPotential's residual, got {type(potential).__name__}")
    model = potential.residual() if baseline is not None else for_workers(potential)
    S, N = len(data), int(data.n_atoms.sum())
    out = {"energy": np.zeros(S), "forces": np.zeros((N, 3)), "stress": np.full((S, 6), np.nan)}
    ptr = data.ptr

    def keep(idx: np.ndarray, res: dict[str, np.ndarray]) -> None:
        atoms = slice(ptr[idx[0]], ptr[idx[-1] + 1])
        out["energy"][idx] = res["energy"]
        out["forces"][atoms] = res["forces"]
        out["stress"][idx] = res["stress"]
        if baseline is not None:  # stress = -W / V (NaN without a cell, as the residual's already is)
            volume = np.where(res["volume"] > 1e-10, res["volume"], np.nan)
            out["energy"][idx] += baseline.energy[idx]
            out["forces"][atoms] += baseline.forces[atoms]
            out["stress"][idx] -= matrix_to_voigt(baseline.virial[idx]) / volume[:, None]

    map_batches(_predict_batch, model, list(batches(data.n_atoms, batch_atoms)), lambda idx: [data.frames[s] for s in idx], keep,
                cluster, progress, desc)
    return out


def _predict_batch(model: Potential, frames: list[Atoms]) -> dict[str, np.ndarray]:
    """Energies (B,) eV, forces (n, 3) eV/A, stress (B, 6) eV/A^3 and cell volumes (B,) A^3 of the B structures
    ``frames`` (one batch of :func:`predict`)."""
    system = AtomicSystem.from_atoms(frames)
    res = to_numpy(evaluate(model, system, forces=True, stress=True))
    return {"energy": res["energy"], "forces": res["forces"], "stress": res["stress"], "volume": system.volumes.detach().cpu().numpy()}


#: Atoms per batch when only descriptor values are needed: the values path keeps a few numbers per
#: pair (vector, indices, shift) and no pair-form derivatives, so its batches can be larger than the fit's.
DESCRIPTOR_BATCH_ATOMS = 4000


def descriptors(potential: HybridPotential, frames: Sequence[Atoms], batch_atoms: int = DESCRIPTOR_BATCH_ATOMS, progress: bool = False,
                cluster: ClusterArg = None, desc: str = "descriptors") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Descriptors of many structures, in batches of about ``batch_atoms`` atoms.

    Args:
        progress: show a bar over the batches.
        cluster: None (this process) or a Dask cluster (:mod:`hybridpot.distributed`): one task per batch.

    Returns:
        (B (N, K), types (N,), structure (N,) index of each atom's structure in ``frames``).
    """
    counts = np.array([len(a) for a in frames], dtype=int)
    first_atom = np.concatenate([[0], np.cumsum(counts)])
    out: dict[str, Any] = {}

    def keep(idx: np.ndarray, res: tuple[np.ndarray, np.ndarray]) -> None:
        B, types = res
        if not out:  # K and the type dtype from the first batch that arrives
            out["B"] = np.empty((first_atom[-1], B.shape[1]), dtype=B.dtype)
            out["types"] = np.empty(first_atom[-1], dtype=types.dtype)
        atoms = slice(first_atom[idx[0]], first_atom[idx[-1] + 1])  # batches are consecutive structures
        out["B"][atoms], out["types"][atoms] = B, types

    map_batches(_descriptor_batch, for_workers(potential), list(batches(counts, batch_atoms)), lambda idx: [frames[s] for s in idx],
                keep, cluster, progress, desc)
    if not out:
        raise ValueError("descriptors of no structures: frames is empty")
    return out["B"], out["types"], np.repeat(np.arange(len(counts)), counts)


def _descriptor_batch(potential: HybridPotential, frames: list[Atoms]) -> tuple[np.ndarray, np.ndarray]:
    """(B (n, K) descriptors, types (n,)) of the n atoms of the structures ``frames`` (one batch of :func:`descriptors`)."""
    graph = build_graph(AtomicSystem.from_atoms(frames), float(potential.descriptor.rcut))
    with torch.no_grad():
        B = potential.descriptor(graph).numpy()
    return B, potential.types(graph.numbers).numpy()
