"""Residual targets and the streamed, weighted design matrix of a linear-in-parameters fit.

The targets are DFT minus the baseline's predictions (:func:`hybridpot.prediction.baseline_predictions`,
evaluated once per structure); the rows come from :class:`hybridpot.design.DesignAssembler`.
Rows are weighted so that each kind's total weight is independent of the data-set size:
weight^2 = w_kind * w_config / n_rows_of_kind. They are folded into a :class:`QRAccumulator`
batch by batch; the design matrix is never held whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from hybridpot.dataset import Dataset
from hybridpot.design import DesignAssembler
from hybridpot.distributed import ClusterArg, map_reduce
from hybridpot.fitting.solver import QRAccumulator
from hybridpot.potential import voigt_to_matrix
from hybridpot.prediction import DEFAULT_BATCH_ATOMS, BaselinePredictions, batches, reference_energies


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

    def scaled(self, scales: Mapping[str, float]) -> "Weights":
        """These weights divided by the squared natural scale of each kind (``scales`` from
        :func:`target_scales`): a weight of 1 then means "errors as large as the spread of the
        targets cost the same for every kind", whatever the units."""
        return replace(self, energy=self.energy / scales["energy"] ** 2, force=self.force / scales["force"] ** 2,
                       stress=self.stress / scales["stress"] ** 2, baseline_stress=self.baseline_stress / scales["baseline_stress"] ** 2)

    def as_dict(self) -> dict[str, float]:
        """The weight of each kind of row (for reports)."""
        return {"energy": self.energy, "force": self.force, "stress": self.stress, "baseline_stress": self.baseline_stress}


def target_scales(data: Dataset, baseline: BaselinePredictions, elements: Sequence[str]) -> dict[str, float]:
    """The natural scale of each kind of residual target (DFT minus baseline) of ``data``.

    energy (eV/atom): RMS of the per-atom residual energies after the best per-element reference
    energies (what the unpenalised intercepts absorb); force (eV/A): RMS of the residual force
    components; stress (eV/atom): RMS of the residual virial-per-atom components of the structures
    with a stress label; baseline_stress (eV/atom): the stress scale, or without stress labels the
    energy scale (both are energies per atom). A kind without data, or with zero spread, gets 1.

    Every scale is in the units of its kind, so weights divided by their squares
    (:meth:`Weights.scaled`) do not depend on the units of the labels.
    """
    def rms(x: np.ndarray) -> float:
        v = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
        return v if v > 0 and np.isfinite(v) else 1.0

    per_atom = (data.energy - baseline.energy) / data.n_atoms
    X = data.composition(list(elements)) / data.n_atoms[:, None]
    ref = reference_energies(data, baseline, list(elements))
    n_atoms = data.n_atoms
    # the residual forces of the structures with forces, in order (one (N, 3) difference, not one per structure)
    forces = (data.forces - baseline.forces)[np.repeat(data.has_forces, n_atoms)]
    labelled = np.flatnonzero(data.has_stress)
    virial = np.array([(-voigt_to_matrix(data.stress[s]) * abs(data.frames[s].cell.volume) - baseline.virial[s]) / n_atoms[s]
                       for s in labelled]).reshape(-1, 3, 3)
    iu = np.triu_indices(3)
    out = {"energy": rms(per_atom - X @ ref), "force": rms(forces), "stress": rms(virial[:, iu[0], iu[1]])}
    out["baseline_stress"] = out["stress"] if labelled.size else out["energy"]
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
            target = (-sigma * volume - baseline.virial[s]) / nat[k]
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


def batch_parts(
    assembler: DesignAssembler,
    data: Dataset,
    baseline: BaselinePredictions,
    weights: Weights,
    idx: np.ndarray,
    fold_of: np.ndarray,
    by_kind: bool,
    extra_baselines: Sequence[BaselinePredictions] = (),
    parts: dict[tuple[int, str], QRAccumulator] | None = None,
) -> tuple[dict[tuple[int, str], QRAccumulator], np.ndarray, np.ndarray]:
    """The weighted rows of the consecutive structures ``idx`` folded into accumulators by (fold, kind).

    Args:
        fold_of: (S,) fold index of each structure.
        by_kind: one accumulator per row kind (:data:`ROW_KINDS`), else kind "all".
        extra_baselines: further baselines whose residual targets share the rows (target j + 1).
        parts: accumulators to fold into (a running total); None: new ones for this batch alone.

    Returns:
        (the accumulators, B (n, K) descriptors and (n,) types of the batch's atoms).
    """
    parts = {} if parts is None else parts
    rows = assembler.rows([data.frames[s] for s in idx])
    A, y, owner, kind = weighted_rows(data, baseline, weights, idx, rows)
    if extra_baselines:
        y = np.column_stack([y] + [weighted_rows(data, b, weights, idx)[1] for b in extra_baselines])
    A = A[:, assembler.column_order()]
    key = fold_of[owner] * len(ROW_KINDS) + (kind if by_kind else 0)
    keys = np.unique(key).tolist()
    for k in keys:
        name = (int(k // len(ROW_KINDS)), ROW_KINDS[k % len(ROW_KINDS)] if by_kind else "all")
        sel = slice(None) if len(keys) == 1 else key == k  # one part: no copy of the block
        parts.setdefault(name, QRAccumulator(assembler.n_columns, 1 + len(extra_baselines))).add(A[sel], y[sel])
    return parts, rows["descriptors"], rows["types"]


def _batch_task(shared: tuple, idx: np.ndarray) -> tuple[dict[tuple[int, str], QRAccumulator], tuple[np.ndarray, np.ndarray]]:
    """One batch's accumulators and (descriptors, types), on a Dask worker (:func:`accumulate` with a cluster)."""
    parts, B, types = batch_parts(*shared[:4], idx, *shared[4:])
    return parts, (B, types)


def merge_parts(a: dict[tuple[int, str], QRAccumulator], b: dict[tuple[int, str], QRAccumulator]) -> dict[tuple[int, str], QRAccumulator]:
    """The accumulators of two sets of rows, key by key (keys in sorted order: the result does not depend on dict order)."""
    return {key: QRAccumulator.combine([(part[key], 1.0) for part in (a, b) if key in part]) for key in sorted(set(a) | set(b))}


def accumulate(
    assembler: DesignAssembler,
    data: Dataset,
    baseline: BaselinePredictions,
    weights: Weights,
    batch_atoms: int = DEFAULT_BATCH_ATOMS,
    folds: np.ndarray | None = None,
    by_kind: bool = False,
    progress: bool = True,
    extra_baselines: Sequence[BaselinePredictions] = (),
    cluster: ClusterArg = None,
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
        extra_baselines: further baselines whose residual targets share the rows (the design rows
            do not depend on the baseline): target j + 1 of every accumulator (:meth:`QRAccumulator.target`).
        cluster: None: batch after batch in this process; else the batches run as Dask tasks
            (``"local:N"``, a scheduler address or an open :class:`~hybridpot.distributed.Cluster`), each reduced to
            its own accumulators, which are combined by a fixed tree over the batch indices.

    Returns:
        ({(fold, kind): accumulator} for the pairs that have rows, (B (N, K), types (N,)) of
        every atom of ``data`` in order).
    """
    fold_of = np.zeros(len(data), dtype=int) if folds is None else np.asarray(folds)
    first_atom = np.concatenate([[0], np.cumsum(data.n_atoms)])
    index = list(batches(data.n_atoms, batch_atoms))
    B_all = types_all = None  # filled batch by batch (no concatenated copies)

    def keep(idx: np.ndarray, B: np.ndarray, types: np.ndarray) -> None:
        nonlocal B_all, types_all
        if B_all is None:
            B_all = np.empty((first_atom[-1], B.shape[1]))
            types_all = np.empty(first_atom[-1], dtype=types.dtype)
        atoms = slice(first_atom[idx[0]], first_atom[idx[-1] + 1])  # batches are consecutive structures
        B_all[atoms], types_all[atoms] = B, types

    if cluster is not None:
        shared = (assembler, data, baseline, weights, fold_of, by_kind, tuple(extra_baselines))
        parts = map_reduce(cluster, _batch_task, shared, index, merge_parts, lambda idx, side: keep(idx, *side), progress,
                           "design matrix")
        return parts, (B_all, types_all)
    parts: dict[tuple[int, str], QRAccumulator] = {}
    for idx in tqdm(index, desc="design matrix", unit="batch", disable=not progress, leave=False):
        _, B, types = batch_parts(assembler, data, baseline, weights, idx, fold_of, by_kind, extra_baselines, parts)
        keep(idx, B, types)
    return parts, (B_all, types_all)
