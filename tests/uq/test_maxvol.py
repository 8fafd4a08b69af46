"""MaxVol (:func:`hybridpot.maxvol.maxvol`) against its definition, with determinants computed directly."""

import numpy as np
import pytest
import scipy.linalg

from hybridpot.maxvol import grade, maxvol


def _rows(seed: int, n: int = 120, m: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)) * rng.uniform(0.1, 3.0, size=m)  # uneven column scales


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_single_swap_grows_the_volume_by_more_than_tol(seed):
    X, tol = _rows(seed), 1.01
    rows = maxvol(X, tol=tol)
    assert len(set(rows.tolist())) == X.shape[1]
    volume = abs(np.linalg.det(X[rows]))
    for j in range(X.shape[1]):
        for i in set(range(X.shape[0])) - set(rows.tolist()):
            swapped = X[rows].copy()
            swapped[j] = X[i]
            assert abs(np.linalg.det(swapped)) <= tol * volume * (1 + 1e-9)
    assert grade(X, np.linalg.inv(X[rows])).max() <= tol * (1 + 1e-9)


def test_swaps_past_the_greedy_start():
    """The rank-one updates run: on this data the pivoted QR's greedy rows are not locally maximal, and the result
    has a larger volume than they have."""
    X = _rows(3, n=400, m=12)
    start = scipy.linalg.qr(X.T, pivoting=True, mode="economic")[2][: X.shape[1]]
    rows = maxvol(X, tol=1.0 + 1e-9)
    assert set(rows.tolist()) != set(start.tolist())
    assert abs(np.linalg.det(X[rows])) > abs(np.linalg.det(X[start]))


def test_refuses_too_few_or_rank_deficient_rows():
    X = _rows(4)
    with pytest.raises(ValueError, match="at least as many rows"):
        maxvol(X[:3])
    deficient = np.hstack([X, X[:, :1]])
    with pytest.raises(ValueError, match="rank-deficient"):
        maxvol(deficient)
