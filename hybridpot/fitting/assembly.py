"""Residual targets and the streamed, weighted design matrix of a linear-in-parameters fit.

The targets are DFT minus the baseline's predictions (:func:`hybridpot.prediction.baseline_predictions`,
evaluated once per structure); the rows come from :class:`hybridpot.design.DesignAssembler`.
Rows are weighted so that each kind's total weight is independent of the data-set size:
weight^2 = w_kind * w_config / n_rows_of_kind. They are folded into a :class:`QRAccumulator`
batch by batch; the design matrix is never held whole.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from tqdm.auto import tqdm

from hybridpot.arrays import release_memory, reuse_freed_blocks
from hybridpot.dataset import Dataset
from hybridpot.design import DesignAssembler
from hybridpot.distributed import ClusterArg, map_reduce
from hybridpot.fitting.outliers import OutlierCheck
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


def target_scales(data: Dataset, baseline: BaselinePredictions, elements: Sequence[str],
                  outliers: OutlierCheck | None = None) -> dict[str, float]:
    """The natural scale of each kind of residual target (DFT minus baseline) of ``data``.

    energy (eV/atom): RMS of the per-atom residual energies after the best per-element reference
    energies (what the unpenalised intercepts absorb); force (eV/A): RMS of the residual force
    components; stress (eV/atom): RMS of the residual virial-per-atom components of the structures
    with a stress label; baseline_stress (eV/atom): the stress scale, or without stress labels the
    energy scale (both are energies per atom). A kind without data, or with zero spread, gets 1.

    Every scale is in the units of its kind, so weights divided by their squares
    (:meth:`Weights.scaled`) do not depend on the units of the labels.

    ``outliers``: :func:`~hybridpot.fitting.outliers.check_outliers` of these residuals: the energies of its
    ``energy_structures`` and the forces of its ``force_atoms`` are left out of the RMS (one 80 eV/A force label would
    otherwise set the force scale, and so de-weight every other force; their rows are fitted all the same).
    """
    def rms(x: np.ndarray) -> float:
        v = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
        return v if v > 0 and np.isfinite(v) else 1.0

    per_atom = (data.energy - baseline.energy) / data.n_atoms
    X = data.composition(list(elements)) / data.n_atoms[:, None]
    ref = reference_energies(data, baseline, list(elements))
    n_atoms = data.n_atoms
    kept_energy, kept_atoms = np.ones(len(data), dtype=bool), np.repeat(data.has_forces, n_atoms)
    if outliers is not None:
        kept_energy[outliers.energy_structures] = False
        kept_atoms[outliers.force_atoms] = False
    # the residual forces of the kept atoms of the structures with forces, in order (one (N, 3) difference)
    forces = (data.forces - baseline.forces)[kept_atoms]
    labelled = np.flatnonzero(data.has_stress)
    virial = np.array([(-voigt_to_matrix(data.stress[s]) * abs(data.frames[s].cell.volume) - baseline.virial[s]) / n_atoms[s]
                       for s in labelled]).reshape(-1, 3, 3)
    iu = np.triu_indices(3)
    out = {"energy": rms((per_atom - X @ ref)[kept_energy]), "force": rms(forces), "stress": rms(virial[:, iu[0], iu[1]])}
    out["baseline_stress"] = out["stress"] if labelled.size else out["energy"]
    return out


#: the kinds of weighted rows, in the order of their indices in :func:`weighted_rows`
ROW_KINDS = ("energy", "force", "stress", "baseline_stress")


@dataclass(frozen=True)
class RowCounts:
    """Rows of each kind in a whole data set: the normalisers of the row weights (weight^2 = w_kind * w_config /
    n_rows_of_kind), counted once in the fitting process, so that a batch's rows are weighted as in the whole set.

    Attributes:
        energy: structures (one per-atom energy row each).
        force: force components of the structures with forces (3 per atom).
        stress: virial-per-atom components of the structures with a stress label (6 each).
        baseline_stress: the same of the structures without one (6 each; :attr:`Weights.baseline_stress`).
    """

    energy: int
    force: int
    stress: int
    baseline_stress: int

    @classmethod
    def of(cls, data: Dataset) -> "RowCounts":
        """The rows of ``data``."""
        return cls(len(data), 3 * int(data.n_atoms[data.has_forces].sum()), 6 * int(data.has_stress.sum()),
                   6 * int((~data.has_stress).sum()))


def _segments(batch: Dataset, baseline: BaselinePredictions, weights: Weights,
              counts: RowCounts) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray, tuple]]:
    """The weighted targets of the structures of ``batch`` (consecutive structures of a data set with ``counts`` rows,
    and the baseline's predictions on them) as segments of rows, always in the same order: the energies, then forces
    and virials structure by structure.

    Returns:
        [(kind (the :data:`ROW_KINDS` index), owner (n,) structure of each row in ``batch``, weighted targets (n,),
        row weights (n,), source of the design rows: ("energy", None) | ("forces", (a0, a1)) atoms of the
        batch | ("virial", k) the k-th structure of the batch)].
    """
    cw = weights.per_structure(batch)
    n_e = counts.energy
    n_f = max(counts.force, 1)
    use_stress = weights.stress > 0 and counts.stress > 0
    n_s = max(counts.stress, 1)
    use_baseline_stress = weights.baseline_stress > 0 and counts.baseline_stress > 0
    n_u = max(counts.baseline_stress, 1)
    ptr = batch.ptr
    nat = batch.n_atoms
    we = np.sqrt(weights.energy * cw / n_e)
    out = [(0, np.arange(len(batch)), (batch.energy - baseline.energy) / nat * we, we, ("energy", None))]
    iu = np.triu_indices(3)
    for s in range(len(batch)):
        if weights.force > 0 and batch.has_forces[s]:
            wf = np.sqrt(weights.force * cw[s] / n_f)
            target = (batch.forces[ptr[s] : ptr[s + 1]] - baseline.forces[ptr[s] : ptr[s + 1]]).reshape(-1)
            out.append((1, np.full(target.size, s), target * wf, np.full(target.size, wf), ("forces", (ptr[s], ptr[s + 1]))))
        if use_stress and batch.has_stress[s]:
            # virial-per-atom rows from the reference stress: W/N = -sigma V / N
            ws = np.sqrt(weights.stress * cw[s] / n_s)
            sigma = voigt_to_matrix(batch.stress[s])
            volume = abs(batch.frames[s].cell.volume)
            target = (-sigma * volume - baseline.virial[s]) / nat[s]
            out.append((2, np.full(6, s), target[iu] * ws, np.full(6, ws), ("virial", s)))
        elif use_baseline_stress and not batch.has_stress[s]:
            # no reference stress: the residual's virial is pulled to zero (the baseline's stress)
            wu = np.sqrt(weights.baseline_stress * cw[s] / n_u)
            out.append((3, np.full(6, s), np.zeros(6), np.full(6, wu), ("virial", s)))
    return out


def _design_rows(rows: dict[str, np.ndarray], source: tuple) -> np.ndarray:
    """The unweighted design rows of a segment's ``source`` (:func:`_segments`) in ``rows`` (:meth:`DesignAssembler.rows`)."""
    what, where = source
    if what == "energy":
        return rows["energy"]
    if what == "forces":
        return rows["forces"][where[0] : where[1]].reshape(-1, rows["forces"].shape[-1])
    return rows["virial"][where][np.triu_indices(3)]


def weighted_rows(
    batch: Dataset, baseline: BaselinePredictions, weights: Weights, counts: RowCounts, rows: dict[str, np.ndarray] | None = None
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted targets (and design rows, when ``rows`` from :meth:`DesignAssembler.rows` is given)
    of the structures of ``batch`` (consecutive structures of a data set with ``counts`` rows; ``baseline``: the
    baseline's predictions on them), always in the same order: energies, then forces and virials structure by structure.

    Returns:
        (A (n, T*M) or None, y (n,), owner (n,) structure of each row in ``batch``, kind (n,) the
        :data:`ROW_KINDS` index of each row).
    """
    segments = _segments(batch, baseline, weights, counts)
    A = np.concatenate([_design_rows(rows, src) * w[:, None] for _, _, _, w, src in segments]) if rows is not None else None
    return (A, np.concatenate([y for _, _, y, _, _ in segments]), np.concatenate([o for _, o, _, _, _ in segments]),
            np.concatenate([np.full(o.size, kind) for kind, o, _, _, _ in segments]))


def batch_parts(
    assembler: DesignAssembler,
    weights: Weights,
    counts: RowCounts,
    by_kind: bool,
    batch: Dataset,
    baseline: BaselinePredictions,
    extra_baselines: Sequence[BaselinePredictions],
    folds: np.ndarray,
    parts: dict[tuple[int, str], QRAccumulator] | None = None,
) -> tuple[dict[tuple[int, str], QRAccumulator], np.ndarray, np.ndarray, np.ndarray]:
    """The weighted rows of one batch folded into accumulators by (fold, kind).

    Each accumulator's rows [A | y] are written once, weighted and in the solver's column order,
    into a Fortran-ordered block that LAPACK factorises in place (no other copy of the batch's rows).

    Args:
        assembler, weights, by_kind: as in :func:`accumulate` (the same for every batch of a pass).
        counts: the rows of the whole data set (:meth:`RowCounts.of`), which normalise the weights.
        batch: the batch's B structures (``data.subset``), the only structures this sees.
        baseline: the baseline's predictions on ``batch``.
        extra_baselines: further baselines' predictions on ``batch``, whose residual targets share the rows
            (target j + 1).
        folds: (B,) fold index of each structure of ``batch``.
        parts: accumulators to fold into (a running total); None: new ones for this batch alone.

    Returns:
        (the accumulators, B (n, K) descriptors and (n,) types of the batch's atoms, (B, T*M) unweighted per-atom
        energy rows of its structures in model order).
    """
    parts = {} if parts is None else parts
    segments = _segments(batch, baseline, weights, counts)
    rows = assembler.rows(batch.frames, virial=any(src[0] == "virial" for *_, src in segments))
    extra = [[y for _, _, y, _, _ in _segments(batch, b, weights, counts)] for b in extra_baselines]
    order = assembler.column_order()
    M, r = assembler.n_columns, 1 + len(extra_baselines)
    permute = not np.array_equal(order, np.arange(M))
    n_kinds = len(ROW_KINDS)
    keys = [folds[owner] * n_kinds + (kind if by_kind else 0) for kind, owner, _, _, _ in segments]
    n_rows: dict[int, int] = {}
    for key in keys:
        for k, n in zip(*np.unique(key, return_counts=True)):
            n_rows[int(k)] = n_rows.get(int(k), 0) + int(n)
    blocks = {k: np.empty((n, M + r), order="F") for k, n in sorted(n_rows.items())}
    filled = dict.fromkeys(blocks, 0)
    for s, ((_, _, y, w, src), key) in enumerate(zip(segments, keys)):
        A = _design_rows(rows, src)
        for k in np.unique(key).tolist():
            sel = slice(None) if key.size == 1 or np.all(key == k) else key == k
            n = y[sel].size
            dest = blocks[k][filled[k] : filled[k] + n]
            dest[:, :M] = (A[:, order] if permute else A)[sel]
            dest[:, :M] *= w[sel, None]
            dest[:, M] = y[sel]
            for j, ys in enumerate(extra):
                dest[:, M + 1 + j] = ys[s][sel]
            filled[k] += n
    for k, block in blocks.items():
        name = (k // n_kinds, ROW_KINDS[k % n_kinds] if by_kind else "all")
        parts.setdefault(name, QRAccumulator(M, r)).add_block(block)
    return parts, rows["descriptors"], rows["types"], rows["energy"]


def design_inputs(data: Dataset, baseline: BaselinePredictions, extra_baselines: Sequence[BaselinePredictions], folds: np.ndarray,
                  ptr: np.ndarray, idx: np.ndarray) -> tuple[Dataset, BaselinePredictions, tuple[BaselinePredictions, ...], np.ndarray]:
    """A design-matrix batch's own inputs (the arguments of :func:`batch_parts` after the shared ones): the structures
    ``idx`` of ``data``, the baselines' predictions on them and their (B,) folds (``folds``: (S,) of the whole set;
    ``ptr``: ``data.ptr``)."""
    return (data.subset(idx, ptr), baseline.subset(data, idx, ptr), tuple(b.subset(data, idx, ptr) for b in extra_baselines),
            folds[idx])


def _batch_task(shared: tuple[DesignAssembler, Weights, RowCounts, bool], own: tuple[Dataset, BaselinePredictions,
                tuple[BaselinePredictions, ...], np.ndarray]) -> tuple[dict[tuple[int, str], QRAccumulator],
                                                                       tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One batch's accumulators and (descriptors, types, energy rows), on a Dask worker (:func:`accumulate` with a
    cluster): ``shared`` the pass's settings, ``own`` the batch's inputs (:func:`batch_parts`). The worker's C heap keeps
    freed blocks for reuse, as the fitting process's does (:func:`~hybridpot.arrays.reuse_freed_blocks`)."""
    reuse_freed_blocks()
    parts, B, types, energy = batch_parts(*shared, *own)
    release_memory()
    return parts, (B, types, energy)


def merge_parts(a: dict[tuple[int, str], QRAccumulator], b: dict[tuple[int, str], QRAccumulator]) -> dict[tuple[int, str], QRAccumulator]:
    """The accumulators of two sets of rows, key by key (keys in sorted order: the result does not depend on dict order)."""
    return {key: QRAccumulator.combine([(part[key], 1.0) for part in (a, b) if key in part]) for key in sorted(set(a) | set(b))}


#: bytes of force rows (3 x atoms x columns, float64) a design-matrix batch may hold: wide models
#: (quadratic: M = K(K+1)/2 + K + 1 per element) get batches of fewer atoms than ``batch_atoms``
DESIGN_ROW_BYTES = 16 * 1024**2


def design_batch_atoms(batch_atoms: int, n_columns: int) -> int:
    """Atoms per design-matrix batch: ``batch_atoms``, or fewer where a batch's force rows would exceed
    :data:`DESIGN_ROW_BYTES` (a quadratic 4/4 power spectrum, 1326 columns: about 530 atoms)."""
    return max(1, min(int(batch_atoms), DESIGN_ROW_BYTES // (3 * 8 * max(int(n_columns), 1))))


def fold_batches(counts: np.ndarray, folds: np.ndarray, batch_atoms: int) -> list[np.ndarray]:
    """Batches of about ``batch_atoms`` atoms (``counts``: (S,) atoms per structure), each within one fold
    (``folds``: (S,) fold index per structure): fold 0's structures in order, then fold 1's, ...

    One fold per batch makes each batch's rows of a kind one block, folded into its QR factor in one LAPACK call: with
    5 random folds, batches of consecutive structures split every batch's force rows into 5 blocks of a fifth of the
    rows, which LAPACK's triangular-pentagonal QR folds in at about two thirds of its speed on full blocks (measured on
    the quadratic 4/4 model's 1328 columns in its fit: ~33 against ~42 GFLOP/s).
    """
    counts, folds = np.asarray(counts), np.asarray(folds)
    out = []
    for k in np.unique(folds):
        members = np.flatnonzero(folds == k)
        out.extend(members[b] for b in batches(counts[members], batch_atoms))
    return out


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
) -> tuple[dict[tuple[int, str], QRAccumulator], tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Fold the weighted rows of ``data`` into QR accumulators, one per (fold, row kind).

    Each row is factorised once; a total is :meth:`QRAccumulator.combine` of the parts.

    Args:
        data: training structures with DFT labels.
        baseline: baseline predictions for ``data`` (targets are DFT minus baseline).
        weights: row weights.
        batch_atoms: atoms per batch (fewer for wide models: :func:`design_batch_atoms`).
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
        every atom of ``data`` in order, (S, T*M) the unweighted per-atom energy rows of every structure in model
        order (:meth:`DesignAssembler.rows`: a few MB; the held-out energy errors of the CV folds need them)).
    """
    fold_of = np.zeros(len(data), dtype=int) if folds is None else np.asarray(folds)
    ptr = data.ptr  # (S + 1,) first atom of each structure
    index = fold_batches(data.n_atoms, fold_of, design_batch_atoms(batch_atoms, assembler.n_columns))
    shared = (assembler, weights, RowCounts.of(data), by_kind)
    own = functools.partial(design_inputs, data, baseline, tuple(extra_baselines), fold_of, ptr)
    B_all = types_all = None  # filled batch by batch (no concatenated copies)
    energy_all = np.empty((len(data), assembler.n_columns))

    def keep(idx: np.ndarray, B: np.ndarray, types: np.ndarray, energy: np.ndarray) -> None:
        nonlocal B_all, types_all
        if B_all is None:
            B_all = np.empty((ptr[-1], B.shape[1]))
            types_all = np.empty(ptr[-1], dtype=types.dtype)
        atoms = data.atom_rows(idx, ptr)  # the batch's atoms in the order of its structures
        B_all[atoms], types_all[atoms] = B, types
        energy_all[idx] = energy

    if cluster is not None:
        parts = map_reduce(cluster, _batch_task, shared, index, own, merge_parts, lambda idx, side: keep(idx, *side), progress,
                           "design matrix")
        return parts, (B_all, types_all), energy_all
    parts: dict[tuple[int, str], QRAccumulator] = {}
    for idx in tqdm(index, desc="design matrix", unit="batch", disable=not progress, leave=False):
        _, B, types, energy = batch_parts(*shared, *own(idx), parts)
        keep(idx, B, types, energy)
        release_memory()
    return parts, (B_all, types_all), energy_all
