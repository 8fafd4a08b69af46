"""D-optimal active sets (MaxVol) and the extrapolation grade gamma.

For per-atom feature rows x (here [1, B], the descriptor with a constant; M columns), the
active set is the M x M submatrix A of the training rows with (locally) maximal |det A|. Any
row x has coefficients c = x A^{-1}: |c_k| <= 1 for all k for every training row once MaxVol
has converged, so

    gamma(x) = max_k |(x A^{-1})_k|

is <= 1 inside the training set's hull in this sense (interpolation) and > 1 outside
(extrapolation), as in the active learning of MTP and ACE. A smooth upper bound for use inside
energies (the fallback switch) is the p-norm ||x A^{-1}||_p.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dger


def maxvol(X: np.ndarray, tol: float = 1.01, max_iter: int = 10000) -> np.ndarray:
    """Indices of M rows of ``X`` (n, M) whose submatrix has locally maximal volume.

    Starts from a pivoted QR of X^T (a good greedy choice), then swaps a row in whenever some
    row has a coefficient |c| > ``tol`` (each swap multiplies |det| by |c|).

    Raises:
        ValueError: fewer rows than columns, or rank-deficient rows.
    """
    n, M = X.shape
    if n < M:
        raise ValueError(f"maxvol needs at least as many rows ({n}) as columns ({M})")
    _, _, piv = scipy.linalg.qr(X.T, pivoting=True, mode="economic")
    rows = piv[:M].copy()
    A = X[rows]
    if np.linalg.matrix_rank(A) < M:
        raise ValueError("the feature rows are rank-deficient: no non-singular active set exists")
    C = np.asfortranarray(np.linalg.solve(A.T, X.T).T)  # (n, M): X = C A; Fortran order for BLAS's in-place update
    for _ in range(max_iter):
        # the largest |C| from the largest and the smallest entry: no n x M temporary |C| (nor np.outer's below; at
        # n = 27420, M = 2101 each took 460 MB and the iterations 4-5x as long); Ct, a C-ordered view, for the reductions
        Ct = C.T
        hi, lo = int(np.argmax(Ct)), int(np.argmin(Ct))
        j, i = divmod(hi if Ct.flat[hi] >= -Ct.flat[lo] else lo, n)
        if abs(C[i, j]) <= tol:
            break
        # replace active row j by row i: rank-one update of C, in place
        col = C[:, j].copy()
        row = C[i].copy()
        row[j] -= 1.0
        C = dger(-1.0 / C[i, j], col, row, a=C, overwrite_a=True)
        rows[j] = i
    return rows


def grade(X: np.ndarray, A_inv: np.ndarray) -> np.ndarray:
    """(n,) extrapolation grade max_k |(x A^{-1})_k| of each row of ``X``."""
    return np.max(np.abs(X @ A_inv), axis=1)
