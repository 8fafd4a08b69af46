"""Weighted, regularised linear least squares from a streamed design matrix.

The design matrix A (rows: weighted energy, force and stress residuals; columns: model
parameters) is never held whole. Row blocks are folded into a triangular factor as they come
(tall-skinny QR): ``R, z`` with ``R^T R = A^T A`` and ``R^T z = A^T y``, plus ``||y||^2`` and the
row count. That is all a ridge solve, the Bayesian evidence and the posterior covariance need.
Keeping one factor per cross-validation fold gives exact k-fold validation errors too.

Columns are scaled to unit RMS before the solve (the ridge acts on the scaled columns), unless
``scale_columns=False``: for a model whose parameters are already in a basis where the prior is
the identity (the whitened weights of a kernel model, whose prior precision is K_MM), the ridge
and the evidence then act on the parameters as they are. The first ``n_free`` columns (per-element
intercepts, i.e. reference energies) are not penalised: they are eliminated exactly with the
leading block of R, and the ridge acts on the rest.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.linalg.lapack


class QRAccumulator:
    """Running triangular factor of a row-streamed least-squares problem.

    The augmented matrix [A | y] is factorised, so the residual norm is its last diagonal entry
    (no cancellation between ||y||^2 and ||Q^T y||^2). Until it holds as many rows as columns it
    keeps the rows themselves (a cross-validation fold's few energy rows stay small); the square
    factor is formed from them when needed.

    Several target vectors can share the rows (``n_targets``; [A | y_1 ... y_r] is factorised):
    the design rows are folded in once, and :meth:`target` gives the single-target factor of each
    (what ``R``, ``z``, the residual floor and :meth:`sse` refer to is the first target).

    Attributes:
        n_columns: M.
        n_targets: r, target vectors held.
        n_rows: rows folded in.
    """

    def __init__(self, n_columns: int, n_targets: int = 1) -> None:
        self.n_columns = int(n_columns)
        self.n_targets = int(n_targets)
        self.n_rows = 0
        #: (C, C) triangular factor of [A | y] (C = M + r), or fewer than C of its rows as given
        self._R = np.zeros((0, self.n_columns + self.n_targets))
        #: the scaled blocks of R and their SVD (:class:`_Scaled`) by (n_free, scale_columns): shared by the targets
        self._scaled: dict[tuple[int, bool], _Scaled] = {}

    @property
    def _full(self) -> bool:
        return self._R.shape[0] == self._R.shape[1]

    def _square(self) -> np.ndarray:
        """The (C, C) triangular factor (zero rows below the rank when fewer than C rows were added)."""
        if self._full:
            return self._R
        C = self._R.shape[1]
        out = np.zeros((C, C))
        if self._R.shape[0]:
            out[: self._R.shape[0]] = _r_factor(self._R.copy())
        return out

    @property
    def R(self) -> np.ndarray:
        """(M, M) upper-triangular factor, R^T R = A^T A."""
        return self._square()[:-self.n_targets, :-self.n_targets]

    @property
    def z(self) -> np.ndarray:
        """(M,) Q^T y, R^T z = A^T y."""
        return self.target_parts(0)[0]

    @property
    def residual_floor(self) -> float:
        """min_w ||A w - y||^2 (the part of y outside the column space)."""
        return self.target_parts(0)[1]

    def target_parts(self, j: int) -> tuple[np.ndarray, float]:
        """(z_j (M,), residual floor of y_j): Q^T y_j, and min_w ||A w - y_j||^2.

        Below the design block, target j's column of the factor holds the part of y_j outside the column space of A
        (spread over rows M..M+j), so its squared norm is y_j's residual floor.
        """
        M, R = self.n_columns, self._square()
        return R[:M, M + j], float(np.sum(R[M:, M + j] ** 2))

    def add(self, A: np.ndarray, y: np.ndarray) -> None:
        """Fold in rows ``A`` (n, M) with targets ``y`` (n,), or (n, r) for r targets."""
        if A.shape[0] == 0:
            return
        y = y.reshape(y.shape[0], -1)
        if A.ndim != 2 or A.shape[1] != self.n_columns or A.shape[0] != y.shape[0] or y.shape[1] != self.n_targets:
            raise ValueError(f"block of shape {A.shape} / {y.shape} does not fit {self.n_columns} columns, {self.n_targets} targets")
        self.add_block(np.hstack([A, y]))

    def add_block(self, block: np.ndarray) -> None:
        """Fold in rows of the augmented matrix ``block`` (n, M + r) = [A | y] (overwritten; a Fortran-ordered
        block is used without a copy)."""
        if block.ndim != 2 or block.shape[1] != self.n_columns + self.n_targets:
            raise ValueError(f"block of shape {block.shape} does not fit {self.n_columns} columns, {self.n_targets} targets")
        if block.shape[0] == 0:
            return
        if not np.all(np.isfinite(block)):
            raise ValueError("non-finite values in the design matrix block")
        self._fold(block)
        self.n_rows += int(block.shape[0])

    @classmethod
    def from_factor(cls, R: np.ndarray, z: np.ndarray, floor: float, n_rows: int) -> "QRAccumulator":
        """The single-target accumulator of rows [A | y] given A's (M, M) triangular factor ``R``, z = Q^T y (M,) and
        y's residual floor min_w ||A w - y||^2: [[R, z], [0, sqrt(floor)]] is the factor of [A | y]."""
        M = R.shape[0]
        out = cls(M)
        out._R = np.zeros((M + 1, M + 1))
        out._R[:M, :M] = R
        out._R[:M, M] = z
        out._R[M, M] = np.sqrt(floor)
        out.n_rows = int(n_rows)
        return out

    def target(self, j: int) -> "QRAccumulator":
        """The single-target accumulator of target ``j`` (same rows): exact, from this factor alone
        (:meth:`target_parts`)."""
        return QRAccumulator.from_factor(self.R, *self.target_parts(j), self.n_rows)

    def leading(self, p: int) -> "QRAccumulator":
        """The accumulator of the first ``p`` columns only (first target): the leading block of a
        QR factor is the factor of the leading columns; the rest of z goes into the residual floor."""
        M = self.n_columns
        R = self._square()
        return QRAccumulator.from_factor(R[:p, :p], R[:p, M], float(np.sum(R[p:M, M] ** 2) + R[M, M] ** 2), self.n_rows)

    def columns(self, cols: np.ndarray) -> "QRAccumulator":
        """The accumulator of the columns ``cols`` of A alone (every target; the same rows): with [A | Y] = Q F,
        [A_S | Y] = Q [F_S | F_Y] for those columns of this factor F, so the triangular factor of the (C, |S| + r) block
        [F_S | F_Y] is the factor of [A_S | Y]: one QR of a factor-sized block, never the rows again. (:meth:`leading` is
        the case of the first columns, which needs no QR.)"""
        cols = np.asarray(cols, dtype=int)
        if cols.ndim != 1 or len(set(cols.tolist())) != cols.size or (cols.size and not 0 <= cols.min() <= cols.max() < self.n_columns):
            raise ValueError(f"columns {cols}: expected distinct indices below {self.n_columns}")
        out = QRAccumulator(cols.size, self.n_targets)
        block = self._R[:, np.concatenate([cols, self.n_columns + np.arange(self.n_targets)])]  # a copy
        out._R = _r_factor(block) if block.shape[0] >= block.shape[1] else block  # few rows stay rows (see _fold)
        out.n_rows = self.n_rows
        return out

    def _fold(self, rows: np.ndarray, triangular: bool = False) -> None:
        """Fold in augmented ``rows`` (overwritten), or another factor (``triangular``: a fresh (C, C) array)."""
        C = self._R.shape[1]
        self._scaled = {}
        if self._full:
            self._R = _r_update(self._R, rows, triangular)
        elif triangular:
            self._R = _r_update(rows, self._R) if self._R.shape[0] else rows
        elif self._R.shape[0] + rows.shape[0] < C:
            self._R = np.vstack([self._R, rows])
        else:
            self._R = _r_factor(np.vstack([self._R, rows]))

    def sse(self, coef: np.ndarray, target: int = 0) -> float:
        """||A coef - y||^2 of the rows held here, for target ``target``; a ``coef`` shorter than M gives the
        leading columns' coefficients (the others zero)."""
        p, y = coef.shape[0], self.n_columns + target
        if not self._full:  # the rows themselves
            return float(np.sum((self._R[:, :p] @ coef - self._R[:, y]) ** 2))
        R = self._R  # triangular: only the first p rows see the leading columns
        return float(np.sum((R[:p, :p] @ coef - R[:p, y]) ** 2) + np.sum(R[p:, y] ** 2))

    @staticmethod
    def combine(parts: "Sequence[tuple[QRAccumulator, float]]") -> "QRAccumulator":
        """A new accumulator holding the rows of every ``(accumulator, factor)`` in ``parts``, each
        part's rows (and targets) multiplied by its factor (a row weight, not a squared one).

        Triangular factors are merged by LAPACK's triangular-pentagonal QR; at least one part is needed.
        """
        if not parts:
            raise ValueError("combine needs at least one accumulator")
        n, r = parts[0][0].n_columns, parts[0][0].n_targets
        if any(a.n_columns != n or a.n_targets != r for a, _ in parts):
            raise ValueError("combine: accumulators of different widths")
        out = QRAccumulator(n, r)
        for a, f in parts:
            if a._R.shape[0]:
                out._fold(f * a._R, triangular=a._full)
        out.n_rows = sum(a.n_rows for a, _ in parts)
        return out


class FixedRows:
    """Design rows A (R, M) that stay fixed while their targets change (a co-fit moves only the baseline, so only y):
    A = Q R is factorised once (Householder, LAPACK geqrf) and the accumulator of [A | y] for each y is formed from
    Q^T y (LAPACK ormqr, about 4 R M flops) instead of a QR of [A | y] (2 R M^2: 155 Gflop for the Si kernel's 39913 x
    1395 rows, every evaluation of a co-fit). The residual floor is the squared norm of Q^T y below the first M entries:
    no cancellation between ||y||^2 and ||z||^2. ``A`` is copied, not overwritten. The accumulators share one cache of
    the scaled factor and its SVD (they have the same R): a solve's SVD is computed for the first target only.
    """

    def __init__(self, A: np.ndarray) -> None:
        self.n_rows, self.n_columns = A.shape
        (h, self._tau), R = scipy.linalg.qr(A, mode="raw", check_finite=False)
        k = min(self.n_rows, self.n_columns)
        self._h = h[:, :k]  # the k reflectors (all M columns' when R >= M)
        self._R = np.zeros((self.n_columns, self.n_columns))
        self._R[:k] = np.triu(R[:k])
        self._lwork = int(scipy.linalg.lapack.dormqr(b"L", b"T", self._h, self._tau, np.zeros((self.n_rows, 1)), -1)[1][0])
        self._scaled: dict[tuple[int, bool], _Scaled] = {}  # shared by every accumulator (QRAccumulator._scaled)

    def accumulator(self, y: np.ndarray) -> QRAccumulator:
        """The accumulator of [A | y] for targets ``y`` (R,)."""
        if y.shape != (self.n_rows,):
            raise ValueError(f"targets of shape {y.shape} for {self.n_rows} rows")
        qty, _, info = scipy.linalg.lapack.dormqr(b"L", b"T", self._h, self._tau, np.array(y, dtype=np.float64).reshape(-1, 1),
                                                  self._lwork, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"dormqr failed (info = {info})")
        M, k = self.n_columns, min(self.n_rows, self.n_columns)
        z = np.zeros(M)
        z[:k] = qty[:k, 0]
        acc = QRAccumulator.from_factor(self._R, z, float(np.sum(qty[k:, 0] ** 2)), self.n_rows)
        acc._scaled = self._scaled  # the same R: the scaled blocks and their SVD are the same (adding rows rebinds, never mutates it)
        return acc


def _r_factor(stacked: np.ndarray) -> np.ndarray:
    """(min(n, C), C) triangular (trapezoidal) factor of an (n, C) stack of rows (overwritten)."""
    C = stacked.shape[1]
    return scipy.linalg.qr(stacked, mode="r", overwrite_a=True, check_finite=False)[0][:C]


def tpqrt_block(n_columns: int) -> int:
    """Column block size of LAPACK's triangular-pentagonal QR (dtpqrt) for a C-column factor.

    Small blocks are faster with this project's OpenBLAS (``benchmarks/qr_update.py``, 2 threads, 2026-12-07): folding
    600 rows into a 1329-column factor (the quadratic 4/4 peer fit) ran at 64-66 Gflop/s with 16 columns per block
    against 51 with 64, and 1600 rows into a 53-column factor (a linear 4/4 fit) at 27-28 Gflop/s with 4 against 2-6
    with the whole width; 4 is the best of 4-64 below 200 columns and 16 (or within 10% of the best) above.
    """
    return min(4 if n_columns < 200 else 16, max(n_columns, 1))


def _r_update(R: np.ndarray, rows: np.ndarray, triangular: bool = False) -> np.ndarray:
    """(C, C) triangular factor of [R; rows]: R_new^T R_new = R^T R + rows^T rows.

    LAPACK's triangular-pentagonal QR (dtpqrt) uses the triangle of R and, for ``triangular``
    rows (another (C, C) factor), theirs: folding n rows costs about 2 n C^2 flops instead of the
    2 (n + C) C^2 of a QR of the stack. ``R`` and ``rows`` are overwritten.
    """
    C = R.shape[1]
    if rows.shape[0] == 0 or C == 0:
        return R
    R, _, _, info = scipy.linalg.lapack.dtpqrt(C if triangular else 0, tpqrt_block(C), R, rows,
                                               overwrite_a=True, overwrite_b=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"dtpqrt failed (info = {info})")
    return R  # dtpqrt writes the triangle only; below it R keeps its zeros


@dataclass
class LinearSolution:
    """Result of a ridge/Bayesian solve.

    Attributes:
        coef: (M,) parameters in the original (unscaled) columns.
        lam: ridge parameter on the scaled, penalised columns (alpha / beta).
        alpha, beta: prior precision and noise precision (evidence maximisation; beta also
            estimated for a fixed lam).
        covariance: (M, M) posterior covariance of ``coef`` (unscaled columns), with a flat prior
            on the free columns.
        n_rows, dof: rows used and effective number of parameters.
        rss: weighted residual sum of squares at ``coef``.
        condition: condition number of the scaled design matrix's penalised block (after
            eliminating the free columns).
        log_evidence: log marginal likelihood (up to a constant from the flat prior).
        method: "evidence", "cv" or "fixed".
        cv_curve: lam -> validation mean squared weighted residual, when chosen by CV.
        training_descriptors: (B (N, K), types (N,)) of the training atoms in data order, kept
            from the assembly so that the uncertainty data need not compute them again.
        energy_weight_cv: the record of the energy weight's selection by cross-validation
            (:func:`hybridpot.fitting.linear.choose_energy_weight`), when it was chosen so.
        baseline_check: the cross-validated errors with and without the baseline
            (:func:`hybridpot.fitting.linear.baseline_check`), when they were computed.
        cv_errors: k-fold CV RMSE per kind of the fit as solved (:func:`hybridpot.fitting.linear.cv_errors`, config
            weights applied), when folds were assembled (baseline check, energy weight or ``cv_score``), and
            "energy_mae_meV_atom": the mean |held-out per-atom energy error| over the structures (unweighted).
        energy_rows: (S, T*M) unweighted per-atom energy rows of the training structures, model order.
        cv_energy_errors: (S,) held-out per-atom energy error (eV/atom) of each training structure in those folds
            (:func:`hybridpot.fitting.linear.held_out_energy_errors`), with ``cv_errors``.
    """

    coef: np.ndarray
    lam: float
    alpha: float
    beta: float
    covariance: np.ndarray
    n_rows: int
    dof: float
    rss: float
    condition: float
    log_evidence: float
    method: str
    cv_curve: dict[float, float] = field(default_factory=dict)
    training_descriptors: tuple[np.ndarray, np.ndarray] | None = None
    energy_weight_cv: dict | None = None
    baseline_check: dict | None = None
    cv_errors: dict | None = None
    energy_rows: np.ndarray | None = None
    cv_energy_errors: np.ndarray | None = None


class _Scaled:
    """The design part of a factor R, columns scaled (``scale``) and split at the free columns: R00, R01, R11; the SVD
    of R11 when first asked for. Held by the :class:`QRAccumulator`, so that its targets share them."""

    def __init__(self, R: np.ndarray, n_rows: int, n_free: int, scale_columns: bool) -> None:
        norms = np.linalg.norm(R, axis=0) / np.sqrt(max(n_rows, 1))
        self.scale = np.where(norms > 0, norms, 1.0) if scale_columns else np.ones(R.shape[1])
        Rs = R / self.scale  # column scaling keeps R triangular
        self.R00, self.R01, self.R11 = Rs[:n_free, :n_free], Rs[:n_free, n_free:], Rs[n_free:, n_free:]

    @functools.cached_property
    def svd(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(U, s, Vt) of R11."""
        return np.linalg.svd(self.R11, full_matrices=False)


class _Reduced:
    """The scaled problem of target ``target`` with the free columns eliminated: min ||R11 w1 - z1||^2 + lam ||w1||^2.

    The SVD of R11 (``s``, ``Vt`` and ``u = U^T z1``) is computed when first asked for: the evidence,
    the condition number and a grid of ``lam`` need it; one ``lam`` alone does not (:meth:`solve`). The targets of
    one accumulator share it (the hybrid's and pure ML's targets of one set of rows: one SVD for both).
    """

    def __init__(self, acc: QRAccumulator, n_free: int, scale_columns: bool = True, target: int = 0) -> None:
        key = (n_free, scale_columns)
        if key not in acc._scaled:
            acc._scaled[key] = _Scaled(acc.R, acc.n_rows, n_free, scale_columns)
        self.shared = acc._scaled[key]
        self.scale, self.R00, self.R01, self.R11 = self.shared.scale, self.shared.R00, self.shared.R01, self.shared.R11
        self.n_free = n_free
        z, self.floor = acc.target_parts(target)  # floor: y's part outside the column space
        self.z0, self.z1 = z[:n_free], z[n_free:]
        self.n_rows = acc.n_rows
        if n_free and np.min(np.abs(np.diag(self.R00))) < 1e-12 * max(np.max(np.abs(np.diag(self.R00))), 1e-300):
            raise np.linalg.LinAlgError("the unpenalised (intercept) columns are linearly dependent: an element has no data")

    @property
    def has_svd(self) -> bool:
        return "svd" in self.shared.__dict__

    @property
    def s(self) -> np.ndarray:
        """(M1,) singular values of R11."""
        return self.shared.svd[1]

    @functools.cached_property
    def u(self) -> np.ndarray:
        """(M1,) z1 in the left singular vectors of R11."""
        return self.shared.svd[0].T @ self.z1

    def solve(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """Scaled (w0, w1) for ridge parameter lam: from the SVD where it has been computed (many lam cost a
        matrix-vector product each), else by one QR of [R11 z1; sqrt(lam) I 0] (about a fifteenth of an SVD's cost
        for a square R11: a cross-validation fold fitted at a given lam)."""
        if self.has_svd:
            _, s, Vt = self.shared.svd
            w1 = Vt.T @ (s / (s**2 + lam) * self.u)
        elif self.R11.size:
            M1 = self.R11.shape[0]
            top = np.zeros((M1 + 1, M1 + 1), order="F")
            top[:M1, :M1], top[:M1, M1] = self.R11, self.z1
            below = np.zeros((M1 + 1, M1 + 1), order="F")
            below[np.arange(M1), np.arange(M1)] = np.sqrt(lam)
            R = _r_update(top, below, triangular=True)
            w1 = scipy.linalg.solve_triangular(R[:M1, :M1], R[:M1, M1])
        else:
            w1 = np.zeros(0)
        w0 = scipy.linalg.solve_triangular(self.R00, self.z0 - self.R01 @ w1) if self.n_free else np.zeros(0)
        return w0, w1

    def rss(self, lam: float) -> float:
        """||A w(lam) - y||^2 for the scaled problem."""
        # R11 is square, so z1 lies in the span of U: the only residuals are the shrinkage and
        # the part of y outside the column space of A
        shrink = lam / (self.s**2 + lam)
        return float(np.sum((shrink * self.u) ** 2)) + self.floor


def _posterior(red: _Reduced, alpha: float, beta: float) -> np.ndarray:
    """Posterior covariance in scaled coordinates, flat prior on the free block."""
    M1 = red.R11.shape[0]
    n_free = red.n_free
    # precision = beta R^T R + alpha diag(0, I); build it in the scaled basis
    R = np.zeros((n_free + M1, n_free + M1))
    R[:n_free, :n_free] = red.R00
    R[:n_free, n_free:] = red.R01
    R[n_free:, n_free:] = red.R11
    precision = beta * (R.T @ R)
    precision[n_free:, n_free:] += alpha * np.eye(M1)
    return np.linalg.inv(0.5 * (precision + precision.T))


def _log_evidence(red: _Reduced, alpha: float, beta: float, w1: np.ndarray, rss: float) -> float:
    """log p(y | alpha, beta) (NaN without a proper prior, alpha = 0)."""
    if alpha <= 0 or beta <= 0:
        return float("nan")
    M1 = red.s.size
    N = red.n_rows - red.n_free
    eig = beta * red.s**2 + alpha
    return float(
        0.5 * M1 * np.log(alpha) + 0.5 * N * np.log(beta) - 0.5 * beta * rss - 0.5 * alpha * (w1 @ w1)
        - 0.5 * np.sum(np.log(eig)) - 0.5 * N * np.log(2 * np.pi)
    )


def solve(
    acc: QRAccumulator,
    n_free: int = 0,
    lam: float | None = None,
    folds: list[QRAccumulator] | None = None,
    max_iter: int = 200,
    posterior: bool = True,
    scale_columns: bool = True,
    target: int = 0,
) -> LinearSolution:
    """Solve the regularised least-squares problem of target ``target`` held in ``acc``.

    Args:
        acc: the accumulated factor of all rows.
        n_free: leading columns left unpenalised (per-element intercepts).
        lam: fixed ridge parameter (scaled columns); None chooses it: by k-fold cross-validation
            when ``folds`` (one accumulator per fold, their rows partitioning ``acc``'s) is given,
            else by evidence maximisation (MacKay's fixed-point iteration for alpha and beta).
        folds: per-fold accumulators for cross-validation.
        posterior: compute the posterior covariance (an M x M inverse; else ``covariance`` is empty).
        scale_columns: scale the columns to unit RMS before the ridge (False: the prior is the
            identity on the parameters as given, e.g. a whitened kernel basis; such a proper prior
            needs rows only for the free columns, a GP may have more parameters than rows).
        target: which of ``acc``'s targets; the targets of one accumulator share the SVD that choosing lam needs.

    Raises:
        numpy.linalg.LinAlgError: fewer rows than columns (than free columns with ``scale_columns=False``),
            or dependent intercept columns.
    """
    needed = acc.n_columns if scale_columns else n_free  # a model's own (identity) prior makes the penalised block proper
    if acc.n_rows < needed:
        raise np.linalg.LinAlgError(f"{acc.n_rows} rows for {acc.n_columns} parameters: not enough data")
    red = _Reduced(acc, n_free, scale_columns, target)
    cond = float(red.s[0] / red.s[-1]) if red.s.size and red.s[-1] > 0 else float("inf")
    N = red.n_rows - n_free
    cv_curve: dict[float, float] = {}
    if lam is None and folds:
        method = "cv"
        lam, cv_curve = _choose_by_cv(acc, folds, n_free, red, scale_columns)
    if lam is None:
        method = "evidence"
        alpha, beta = 1.0, 1.0 / max(red.rss(1e-8) / max(N, 1), 1e-300)
        alpha = beta * 1e-6 * max(np.mean(red.s**2), 1e-300)
        for _ in range(max_iter):
            lam_now = alpha / beta
            _, w1 = red.solve(lam_now)
            rss = red.rss(lam_now)
            gamma = float(np.sum(beta * red.s**2 / (beta * red.s**2 + alpha)))
            alpha_new = gamma / max(float(w1 @ w1), 1e-300)
            beta_new = max(N - gamma, 1e-12) / max(rss, 1e-300)
            converged = abs(np.log(alpha_new / alpha)) < 1e-9 and abs(np.log(beta_new / beta)) < 1e-9
            alpha, beta = alpha_new, beta_new
            if converged:
                break
        lam = alpha / beta
    else:
        method = method if cv_curve else "fixed"
        rss = red.rss(lam)
        gamma = float(np.sum(red.s**2 / (red.s**2 + lam)))
        beta = max(N - gamma, 1e-12) / max(rss, 1e-300)
        alpha = lam * beta
    w0, w1 = red.solve(lam)
    rss = red.rss(lam)
    gamma = float(np.sum(red.s**2 / (red.s**2 + lam)))
    scaled = np.concatenate([w0, w1])
    coef = scaled / red.scale
    cov = _posterior(red, alpha, beta) / np.outer(red.scale, red.scale) if posterior else np.empty((0, 0))
    return LinearSolution(
        coef=coef,
        lam=float(lam),
        alpha=float(alpha),
        beta=float(beta),
        covariance=cov,
        n_rows=acc.n_rows,
        dof=gamma + n_free,
        rss=rss,
        condition=cond,
        log_evidence=_log_evidence(red, alpha, beta, w1, rss),
        method=method,
        cv_curve=cv_curve,
    )


def ridge_coef(acc: QRAccumulator, n_free: int, lam: float, scale_columns: bool = True) -> np.ndarray:
    """(M,) coefficients (unscaled columns) of ``acc``'s problem at the given ridge parameter ``lam`` (on the scaled,
    penalised columns, as :func:`solve`'s), without the SVD that choosing it needs: a cross-validation fold fitted
    at a ridge chosen elsewhere."""
    red = _Reduced(acc, n_free, scale_columns)
    w0, w1 = red.solve(lam)
    return np.concatenate([w0, w1]) / red.scale


def _choose_by_cv(acc: QRAccumulator, folds: list[QRAccumulator], n_free: int, full: _Reduced,
                  scale_columns: bool = True) -> tuple[float, dict[float, float]]:
    """Ridge parameter minimising the k-fold validation error (exact, from the fold factors).

    The grid is over lam per row (lam / n_rows, relative to the mean squared singular value per
    row), so that a fold with fewer rows gets the equivalent penalty.
    """
    per_row = max(float(np.mean(full.s**2)), 1e-300) / full.n_rows
    grid = np.logspace(-14, 2, 33) * per_row
    totals = np.zeros(grid.size)
    n_total = 0
    for k, held in enumerate(folds):
        train = QRAccumulator.combine([(other, 1.0) for m, other in enumerate(folds) if m != k])
        if train.n_rows < (acc.n_columns if scale_columns else n_free):
            raise np.linalg.LinAlgError(f"cross-validation fold {k}: too few training rows")
        red = _Reduced(train, n_free, scale_columns)
        for g, lam_row in enumerate(grid):
            w0, w1 = red.solve(lam_row * red.n_rows)
            coef = np.concatenate([w0, w1]) / red.scale
            totals[g] += held.sse(coef)
        n_total += held.n_rows
    curve = {float(lam_row * full.n_rows): float(t / n_total) for lam_row, t in zip(grid, totals)}
    best = float(grid[int(np.argmin(totals))] * full.n_rows)
    return best, curve
