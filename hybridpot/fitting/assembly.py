"""Residual targets and the streamed design matrix of a linear-in-parameters model.

Per batch of structures (one neighbour list, shared by baseline and descriptor):

* baseline energies, forces and virials (evaluated once per structure and kept: the targets
  are DFT minus baseline);
* descriptors B (N, K) and their pair-form gradients dB (P, K, 3);
* model feature rows X (N, M) and their pair gradients G (P, M, 3), placed in the parameter
  block of the centre atom's element; then

  energy rows   sum_{i in s} X_i / N_s                          (per-atom energy, eV/atom)
  force rows    F_a = sum_{p: i_p = a} G_p - sum_{p: j_p = a} G_p  (eV/Angstrom)
  virial rows   W_s / N_s = -sum_{p in s} r_p (x) G_p / N_s       (eV/atom; = -stress V / N)

Rows are weighted so that each kind's total weight is independent of the data-set size:
weight^2 = w_kind * w_config / n_rows_of_kind. They are folded into a :class:`QRAccumulator`
batch by batch; the design matrix is never held whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from hybridpot.fitting.config import DEFAULT_BATCH_ATOMS
from hybridpot.fitting.solver import QRAccumulator
from hybridpot.io.data import Dataset
from hybridpot.neighbors import build_graph, neighbor_list
from hybridpot.potential import Potential, evaluate, voigt_to_matrix
from hybridpot.system import AtomicSystem


@dataclass
class Weights:
    """Row weights of the fit.

    Attributes:
        energy, force, stress: weight of each kind of row (per-atom energies, force components,
            virial-per-atom components), normalised by the number of rows of that kind.
        baseline_stress: weight of virial-per-atom rows with a zero residual target for the
            structures that have no reference stress ("where the data are silent, keep the
            baseline's stress"), normalised by their number.
        config: extra weight per ``config_type`` (default 1).
    """

    energy: float = 1.0
    force: float = 1.0
    stress: float = 0.0
    config: Mapping[str, float] = field(default_factory=dict)
    baseline_stress: float = 0.0

    def per_structure(self, data: Dataset) -> np.ndarray:
        """(S,) config-type weight of each structure."""
        return np.array([float(self.config.get(c, 1.0)) for c in data.config_type])


def batches(data: Dataset, batch_atoms: int) -> Iterator[np.ndarray]:
    """Consecutive structure indices holding about ``batch_atoms`` atoms each."""
    counts = data.n_atoms
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
        ptr = data.ptr
        rows = np.concatenate([np.arange(ptr[s], ptr[s + 1]) for s in index]) if index.size else np.zeros(0, dtype=int)
        return BaselinePredictions(self.energy[index], self.forces[rows], self.virial[index])


def baseline_predictions(baseline: Potential | None, data: Dataset, batch_atoms: int = DEFAULT_BATCH_ATOMS, progress: bool = True) -> BaselinePredictions:
    """Evaluate the baseline on every structure once (zeros without a baseline)."""
    S, N = len(data), int(data.n_atoms.sum())
    out = BaselinePredictions(np.zeros(S), np.zeros((N, 3)), np.zeros((S, 3, 3)))
    if baseline is None:
        return out
    ptr = data.ptr
    for idx in tqdm(list(batches(data, batch_atoms)), desc="baseline", unit="batch", disable=not progress, leave=False):
        system = AtomicSystem.from_atoms([data.frames[s] for s in idx])
        res = evaluate(baseline, system, forces=True, stress=True)
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


class DesignAssembler:
    """Builds weighted design-matrix rows of a linear-in-parameters model, batch by batch.

    Args:
        descriptor: module with ``rcut``, ``n_features`` and ``pair_form(graph, out) -> (B (N, K), dB (P, K, 3))``.
        model: a :class:`~hybridpot.models.PolynomialModel` (features and their pair gradients).
        types_of: maps atomic numbers (N,) to the model's type indices (raises on unknown elements).
        pair_budget: bytes of feature gradients (pairs x M x 3) formed at once (at least 1024
            pairs): bounds the memory of quadratic models, whose M is K(K+1)/2 + K + 1; 8 MiB keeps
            linear fits' transient memory small (the 1024-pair floor bounds the loop overhead).
    """

    def __init__(self, descriptor, model, types_of, cutoff: float, pair_budget: int = 8 * 1024**2) -> None:
        self.descriptor = descriptor
        self.model = model
        self.types_of = types_of
        self.cutoff = cutoff
        self.pair_budget = int(pair_budget)
        self.T = len(model.elements)
        self.M = model.n_params
        self._buffer: torch.Tensor | None = None

    def _pair_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A float64 CPU tensor of ``shape`` for the pair-form derivatives, reused across batches.

        Writing a fresh array of this size (tens of MB per batch) costs as much in page faults
        as computing it; the buffer is allocated once (by numpy: transparent huge pages) and
        grown when a batch needs more.
        """
        n = int(np.prod(shape))
        if self._buffer is None or self._buffer.numel() < n:
            self._buffer = None  # release the old one before allocating
            self._buffer = torch.from_numpy(np.empty(n))
        return self._buffer[:n].view(shape)

    @property
    def n_columns(self) -> int:
        return self.T * self.M

    def column_order(self) -> np.ndarray:
        """Permutation putting the T intercept columns first (they are not penalised)."""
        first = [t * self.M for t in range(self.T)]
        rest = [t * self.M + m for t in range(self.T) for m in range(1, self.M)]
        return np.array(first + rest)

    def rows(self, frames, forces: bool = True) -> dict[str, np.ndarray]:
        """Unweighted rows of a batch of structures.

        Args:
            frames: the structures.
            forces: also form the force and virial rows (the costly part: pair gradients).

        Returns:
            dict with ``energy`` (S, T*M) per-atom energy rows, ``atoms`` (N, T*M) the rows of each
            atom's own energy (its features in its element's block), ``descriptors`` (N, K),
            ``types`` (N,), and with ``forces`` also ``forces`` (N, 3, T*M) and ``virial``
            (S, 3, 3, T*M) virial-per-atom rows.
        """
        system = AtomicSystem.from_atoms(frames)
        nl = neighbor_list(system, self.cutoff)
        graph = build_graph(system, self.cutoff, nl).within(self.descriptor.rcut)
        with torch.no_grad():
            if forces:
                on_cpu = graph.vectors.device.type == "cpu" and graph.vectors.dtype == torch.float64
                out = self._pair_buffer((graph.i.shape[0], self.descriptor.n_features, 3)) if on_cpu else None
                B, dB = self.descriptor.pair_form(graph, out=out)
            else:
                B, dB = self.descriptor(graph), None
            types = self.types_of(graph.numbers)
            N, S, T, M = graph.n_atoms, graph.n_structures, self.T, self.M
            n_atoms = torch.bincount(graph.batch, minlength=S).to(B.dtype)
            X = self.model.features(B)
            blockX = torch.zeros((N, T, M), dtype=B.dtype)
            blockX[torch.arange(N), types] = X
            energy = torch.zeros((S, T, M), dtype=B.dtype).index_add_(0, graph.batch, blockX)
            energy = energy / n_atoms[:, None, None]
            out = {
                "energy": energy.reshape(S, T * M).numpy(),
                "atoms": blockX.reshape(N, T * M).numpy(),
                "descriptors": B.numpy(),
                "types": types.numpy(),
            }
            if not forces:
                return out
            # rows are indexed by (atom, element block of the pair's centre): row = atom * T + t
            forces = torch.zeros((N * T, M, 3), dtype=B.dtype)
            virial = torch.zeros((S * T, M, 3, 3), dtype=B.dtype)
            pair_key = graph.batch[graph.i] * T + types[graph.i]
            chunk = max(1024, self.pair_budget // (M * 3 * B.element_size()))
            for lo in range(0, graph.i.shape[0], chunk):
                sl = slice(lo, lo + chunk)
                i, j, t, key = graph.i[sl], graph.j[sl], types[graph.i[sl]], pair_key[sl]
                G = self.model.pair_feature_gradients(B[i], dB[sl])  # (p, M, 3)
                forces.index_add_(0, i * T + t, G).index_add_(0, j * T + t, -G)
                # virial W = -sum_p r_p (x) G_p per (structure, block): one contraction per key
                for k in torch.unique(key).tolist():
                    sel = key == k
                    virial[k] -= torch.einsum("pma,pb->mab", G[sel], graph.vectors[sl][sel])
            virial = virial.reshape(S, T, M, 3, 3)
            virial = 0.5 * (virial + virial.transpose(3, 4)) / n_atoms[:, None, None, None, None]
        out["forces"] = forces.reshape(N, T, M, 3).permute(0, 3, 1, 2).reshape(N, 3, T * M).numpy()
        out["virial"] = virial.permute(0, 3, 4, 1, 2).reshape(S, 3, 3, T * M).numpy()
        return out


#: the kinds of weighted rows, in the order of their indices in :func:`weighted_rows`
ROW_KINDS = ("energy", "force", "stress", "baseline_stress")


def weighted_rows(
    data: Dataset, baseline: BaselinePredictions, weights: Weights, idx: np.ndarray, rows: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted targets (and design rows, when ``rows`` from :meth:`DesignAssembler.rows` is given)
    of the structures ``idx``, always in the same order: energies, then forces and virials
    structure by structure.

    Returns:
        (A (n, T*M) or None, y (n,), owner (n,) structure index of each row, kind (n,) the
        :data:`ROW_KINDS` index of each row).
    """
    cw = weights.per_structure(data)
    n_e = len(data)
    n_f = max(int(3 * data.n_atoms[data.has_forces].sum()), 1)
    use_stress = weights.stress > 0 and bool(data.has_stress.any())
    n_s = max(int(6 * data.has_stress.sum()), 1)
    use_baseline_stress = weights.baseline_stress > 0 and not bool(data.has_stress.all())
    n_u = max(int(6 * (~data.has_stress).sum()), 1)
    ptr = data.ptr
    atom_lo = ptr[idx[0]]
    A_parts, y_parts, owner, kind = [], [], [], []
    nat = data.n_atoms[idx]
    we = np.sqrt(weights.energy * cw[idx] / n_e)
    y_parts.append((data.energy[idx] - baseline.energy[idx]) / nat * we)
    owner.append(idx)
    kind.append(np.full(idx.size, 0))
    if rows is not None:
        A_parts.append(rows["energy"] * we[:, None])
    iu = np.triu_indices(3)
    for k, s in enumerate(idx):
        if weights.force > 0 and data.has_forces[s]:
            wf = np.sqrt(weights.force * cw[s] / n_f)
            target = data.forces[ptr[s] : ptr[s + 1]] - baseline.forces[ptr[s] : ptr[s + 1]]
            y_parts.append(target.reshape(-1) * wf)
            owner.append(np.full(target.size, s))
            kind.append(np.full(target.size, 1))
            if rows is not None:
                a0, a1 = ptr[s] - atom_lo, ptr[s + 1] - atom_lo
                A_parts.append(rows["forces"][a0:a1].reshape(-1, rows["forces"].shape[-1]) * wf)
        if use_stress and data.has_stress[s]:
            # virial-per-atom rows from the reference stress: W/N = -sigma V / N
            ws = np.sqrt(weights.stress * cw[s] / n_s)
            sigma = voigt_to_matrix(data.stress[s])
            volume = abs(data.frames[s].cell.volume)
            target = (-sigma * volume - baseline.virial[s]) / data.n_atoms[s]
            y_parts.append(target[iu] * ws)
            owner.append(np.full(6, s))
            kind.append(np.full(6, 2))
            if rows is not None:
                A_parts.append(rows["virial"][k][iu] * ws)
        elif use_baseline_stress and not data.has_stress[s]:
            # no reference stress: the residual's virial is pulled to zero (the baseline's stress)
            wu = np.sqrt(weights.baseline_stress * cw[s] / n_u)
            y_parts.append(np.zeros(6))
            owner.append(np.full(6, s))
            kind.append(np.full(6, 3))
            if rows is not None:
                A_parts.append(rows["virial"][k][iu] * wu)
    A = np.concatenate(A_parts) if rows is not None else None
    return A, np.concatenate(y_parts), np.concatenate(owner), np.concatenate(kind)


def accumulate(
    assembler: DesignAssembler,
    data: Dataset,
    baseline: BaselinePredictions,
    weights: Weights,
    batch_atoms: int = DEFAULT_BATCH_ATOMS,
    folds: np.ndarray | None = None,
    by_kind: bool = False,
    progress: bool = True,
) -> tuple[dict[tuple[int, str], QRAccumulator], tuple[np.ndarray, np.ndarray]]:
    """Fold the weighted rows of ``data`` into QR accumulators, one per (fold, row kind).

    Each row is factorised once; a total is :meth:`QRAccumulator.combine` of the parts.

    Args:
        data: training structures with DFT labels.
        baseline: baseline predictions for ``data`` (targets are DFT minus baseline).
        weights: row weights.
        folds: (S,) fold index (0, 1, ...) per structure for cross-validation; None: one fold, 0.
        by_kind: keep each kind of row (:data:`ROW_KINDS`) in its own accumulator, so that kinds
            can be re-weighted and scored separately afterwards; else kind "all".

    Returns:
        ({(fold, kind): accumulator} for the pairs that have rows, (B (N, K), types (N,)) of
        every atom of ``data`` in order).
    """
    order = assembler.column_order()
    parts: dict[tuple[int, str], QRAccumulator] = {}
    fold_of = np.zeros(len(data), dtype=int) if folds is None else np.asarray(folds)
    first_atom = np.concatenate([[0], np.cumsum(data.n_atoms)])
    B_all = types_all = None  # filled batch by batch (no concatenated copies)
    for idx in tqdm(list(batches(data, batch_atoms)), desc="design matrix", unit="batch", disable=not progress, leave=False):
        rows = assembler.rows([data.frames[s] for s in idx])
        if B_all is None:
            B_all = np.empty((first_atom[-1], rows["descriptors"].shape[1]))
            types_all = np.empty(first_atom[-1], dtype=rows["types"].dtype)
        atoms = slice(first_atom[idx[0]], first_atom[idx[-1] + 1])  # batches are consecutive structures
        B_all[atoms], types_all[atoms] = rows["descriptors"], rows["types"]
        A, y, owner, kind = weighted_rows(data, baseline, weights, idx, rows)
        A = A[:, order]
        key = fold_of[owner] * len(ROW_KINDS) + (kind if by_kind else 0)
        keys = np.unique(key).tolist()
        for k in keys:
            name = (int(k // len(ROW_KINDS)), ROW_KINDS[k % len(ROW_KINDS)] if by_kind else "all")
            sel = slice(None) if len(keys) == 1 else key == k  # one part: no copy of the block
            parts.setdefault(name, QRAccumulator(assembler.n_columns)).add(A[sel], y[sel])
    return parts, (B_all, types_all)
