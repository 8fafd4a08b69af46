"""The streamed least-squares solver against dense linear algebra."""

from __future__ import annotations

import numpy as np
import pytest

from hybridpot.fitting.solver import QRAccumulator, ridge_coef, solve


def problem(n=1500, m=10, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, m)) * np.logspace(0, 4, m)
    A[:, 0] = 1.0
    w = rng.normal(size=m)
    y = A @ w + rng.normal(scale=noise, size=n)
    return A, y, w


def accumulate(A, y, block=211):
    acc = QRAccumulator(A.shape[1])
    for k in range(0, len(y), block):
        acc.add(A[k : k + block], y[k : k + block])
    return acc


def test_streamed_factor_equals_normal_equations():
    A, y, _ = problem()
    acc = accumulate(A, y)
    assert np.allclose(acc.R.T @ acc.R, A.T @ A, rtol=1e-10, atol=1e-6)
    assert np.allclose(acc.R.T @ acc.z, A.T @ y, rtol=1e-10)
    assert acc.n_rows == len(y)
    assert acc.residual_floor == pytest.approx(np.sum((A @ np.linalg.lstsq(A, y, rcond=None)[0] - y) ** 2), rel=1e-10)



@pytest.mark.parametrize("m", [3, 199, 200, 260])
def test_streamed_factor_and_merges_at_both_column_block_sizes(m):
    """The folds and the triangular merges are exact on both sides of tpqrt_block's switch (4 -> 16 columns per block)."""
    from hybridpot.fitting.solver import tpqrt_block

    assert tpqrt_block(m) == min(4 if m < 200 else 16, m)
    rng = np.random.default_rng(m)
    A, y = rng.normal(size=(3 * m + 50, m)), rng.normal(size=3 * m + 50)
    half = len(y) // 2
    acc = QRAccumulator.combine([(accumulate(A[:half], y[:half], block=m // 2 + 7), 1.0), (accumulate(A[half:], y[half:], block=m + 3), 1.0)])
    scale = np.abs(A.T @ A).max()
    assert np.allclose(acc.R.T @ acc.R, A.T @ A, rtol=0, atol=1e-12 * scale)
    assert np.allclose(acc.R.T @ acc.z, A.T @ y, rtol=0, atol=1e-12 * scale)
    assert acc.residual_floor == pytest.approx(np.sum((A @ np.linalg.lstsq(A, y, rcond=None)[0] - y) ** 2), rel=1e-9)

def test_unregularised_equals_lstsq():
    A, y, _ = problem()
    sol = solve(accumulate(A, y), n_free=1, lam=0.0)
    assert np.allclose(sol.coef, np.linalg.lstsq(A, y, rcond=None)[0], rtol=1e-9, atol=1e-12)


def test_ridge_leaves_intercept_free():
    A, y, _ = problem()
    lam = 3.0
    sol = solve(accumulate(A, y), n_free=1, lam=lam)
    scale = np.linalg.norm(A, axis=0) / np.sqrt(len(y))
    As = A / scale
    D = np.eye(A.shape[1])
    D[0, 0] = 0.0
    dense = np.linalg.solve(As.T @ As + lam * D, As.T @ y) / scale
    assert np.allclose(sol.coef, dense, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("scale_columns", [True, False])
def test_ridge_at_a_given_lam_without_the_svd_equals_the_dense_ridge(scale_columns):
    """ridge_coef (one QR of [R11; sqrt(lam) I], no SVD) equals the dense ridge solution and solve's (SVD) at that lam."""
    A, y, _ = problem()
    acc = accumulate(A, y)
    lam = 3.0
    scale = np.linalg.norm(A, axis=0) / np.sqrt(len(y)) if scale_columns else np.ones(A.shape[1])
    As = A / scale
    D = np.eye(A.shape[1])
    D[0, 0] = 0.0
    dense = np.linalg.solve(As.T @ As + lam * D, As.T @ y) / scale
    fast = ridge_coef(acc, 1, lam, scale_columns)
    assert np.allclose(fast, dense, rtol=1e-9, atol=1e-12)
    assert np.allclose(fast, solve(acc, n_free=1, lam=lam, scale_columns=scale_columns).coef, rtol=1e-10, atol=1e-12)


def test_targets_of_one_factor_share_its_svd(monkeypatch):
    """Each target of a two-target factor solves (evidence, posterior) as its own single-target factor does, and the
    second target's solve reuses the first's SVD; adding rows drops it."""
    A, y, _ = problem()
    y2 = y + np.random.default_rng(1).normal(scale=0.5, size=y.size)
    acc = QRAccumulator(A.shape[1], 2)
    for k in range(0, len(y), 211):
        acc.add(A[k : k + 211], np.stack([y, y2], axis=1)[k : k + 211])
    calls = []
    svd = np.linalg.svd
    monkeypatch.setattr(np.linalg, "svd", lambda *a, **k: calls.append(1) or svd(*a, **k))
    for j in (0, 1):
        shared = solve(acc, n_free=1, target=j)
        alone = solve(acc.target(j), n_free=1)
        assert shared.lam == pytest.approx(alone.lam, rel=1e-8) and shared.rss == pytest.approx(alone.rss, rel=1e-8)
        assert np.allclose(shared.coef, alone.coef, rtol=1e-9, atol=1e-12)
        assert np.allclose(shared.covariance, alone.covariance, rtol=1e-8, atol=1e-14)
    assert len(calls) == 3  # the shared factor's SVD once, each single-target factor's once
    acc.add(A[:5], np.stack([y, y2], axis=1)[:5])
    solve(acc, n_free=1, target=1)
    assert len(calls) == 4


def test_evidence_recovers_noise_and_weights_and_covariance():
    A, y, w = problem(noise=0.02, n=4000)
    sol = solve(accumulate(A, y), n_free=1)
    assert sol.method == "evidence"
    assert 1 / np.sqrt(sol.beta) == pytest.approx(0.02, rel=0.05)
    # weights within 4 posterior standard deviations
    assert np.all(np.abs(sol.coef - w) < 4 * np.sqrt(np.diag(sol.covariance)))
    scale = np.linalg.norm(A, axis=0) / np.sqrt(len(y))
    As = A / scale
    D = np.eye(A.shape[1])
    D[0, 0] = 0.0
    dense = np.linalg.inv(sol.beta * As.T @ As + sol.alpha * D) / np.outer(scale, scale)
    assert np.allclose(sol.covariance, dense, rtol=1e-8, atol=1e-300)


def test_cross_validation_errors_are_exact():
    A, y, _ = problem(n=600, noise=0.5)
    folds = np.arange(len(y)) % 3
    fold_acc = [accumulate(A[folds == f], y[folds == f]) for f in range(3)]
    acc = QRAccumulator.combine([(f, 1.0) for f in fold_acc])
    sol = solve(acc, n_free=1, folds=fold_acc)
    assert sol.method == "cv"
    # recompute one point of the curve by explicit refits on the held-in rows
    lam = sorted(sol.cv_curve)[10]
    total = 0.0
    for f in range(3):
        tr = folds != f
        inner = solve(accumulate(A[tr], y[tr]), n_free=1, lam=lam * tr.sum() / len(y))
        total += np.sum((A[~tr] @ inner.coef - y[~tr]) ** 2)
    assert sol.cv_curve[lam] == pytest.approx(total / len(y), rel=1e-8)
    assert sol.lam == min(sol.cv_curve, key=sol.cv_curve.get)


def test_combine_scales_and_stacks_rows():
    """combine([(a, f), (b, g)]) is the factor of the stacked rows [f A_a; g A_b] (targets scaled too)."""
    A, y, _ = problem(n=300, noise=0.1)
    a, b = accumulate(A[:100], y[:100]), accumulate(A[100:], y[100:])
    both = QRAccumulator.combine([(a, 3.0), (b, 0.5)])
    w = np.concatenate([np.full(100, 3.0), np.full(200, 0.5)])
    direct = accumulate(A * w[:, None], y * w)
    assert both.n_rows == 300
    # R is unique up to the signs of its rows
    assert np.allclose(both.R.T @ both.R, direct.R.T @ direct.R, rtol=1e-12, atol=1e-9)
    assert np.allclose(both.R.T @ both.z, direct.R.T @ direct.z, rtol=1e-12, atol=1e-9)
    assert both.residual_floor == pytest.approx(direct.residual_floor, rel=1e-10)
    coef = np.random.default_rng(1).normal(size=A.shape[1])
    assert both.sse(coef) == pytest.approx(np.sum((w * (A @ coef - y)) ** 2), rel=1e-10)


def test_too_few_rows():
    A, y, _ = problem(n=5)
    with pytest.raises(np.linalg.LinAlgError, match="not enough data"):
        solve(accumulate(A, y))


@pytest.mark.parametrize("n, m", [(700, 12), (9, 12)])
def test_fixed_rows_give_the_accumulator_of_each_target(n, m):
    """FixedRows (A factorised once, Q^T y per target) against the streamed factor of [A | y]: the same normal equations,
    residual floor and ridge solution, for several targets (fewer rows than columns too)."""
    from hybridpot.fitting.solver import FixedRows

    rng = np.random.default_rng(n)
    A = rng.normal(size=(n, m)) * np.logspace(0, 3, m)
    A_before = A.copy()
    rows = FixedRows(A)
    assert np.array_equal(A, A_before)  # copied, not overwritten
    for k in range(3):
        y = A @ rng.normal(size=m) + rng.normal(scale=0.1 * (k + 1), size=n)
        got, want = rows.accumulator(y), accumulate(A, y, block=97)
        scale = np.abs(A.T @ A).max()
        assert np.allclose(got.R.T @ got.R, want.R.T @ want.R, rtol=0, atol=1e-12 * scale)
        assert np.allclose(got.R.T @ got.z, A.T @ y, rtol=0, atol=1e-11 * np.abs(A.T @ y).max())
        assert got.residual_floor == pytest.approx(want.residual_floor, rel=1e-9, abs=1e-12 * float(y @ y))
        assert got.n_rows == n
        if n > m:
            a, b = solve(got, n_free=0, lam=0.3, posterior=False), solve(want, n_free=0, lam=0.3, posterior=False)
            assert np.allclose(a.coef, b.coef, rtol=1e-9, atol=1e-12)
            assert a.rss == pytest.approx(b.rss, rel=1e-9)
    with pytest.raises(ValueError, match="targets of shape"):
        rows.accumulator(np.zeros(n + 1))


def test_fixed_rows_accumulators_share_one_svd(monkeypatch):
    """The accumulators of one FixedRows have the same R: a solve's SVD is computed once for all of their targets, and
    adding rows to one of them gives it its own again (the others keep theirs)."""
    from hybridpot.fitting.solver import FixedRows

    A, y, _ = problem()
    rows = FixedRows(A)
    calls = []
    svd = np.linalg.svd
    monkeypatch.setattr(np.linalg, "svd", lambda *a, **k: calls.append(1) or svd(*a, **k))
    first = solve(rows.accumulator(y), n_free=1, lam=0.5, posterior=False)
    second = solve(rows.accumulator(2 * y), n_free=1, lam=0.5, posterior=False)
    assert len(calls) == 1
    assert np.allclose(second.coef, 2 * first.coef, rtol=1e-10, atol=1e-12)
    grown = rows.accumulator(y)
    grown.add(A[:50], y[:50])
    solve(grown, n_free=1, lam=0.5, posterior=False)
    assert len(calls) == 2
    solve(rows.accumulator(y), n_free=1, lam=0.5, posterior=False)
    assert len(calls) == 2
