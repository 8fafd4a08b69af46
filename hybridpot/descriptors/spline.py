"""Tabulated radial functions: a quintic Hermite spline of g_nl(r) on [0, r_c].

The radial functions depend on the distance alone, so they are computed accurately once per
parameter set (:meth:`RadialBasis.evaluate`, values, first and second derivatives at the grid
nodes) and interpolated per pair. On each interval [r_k, r_k + h] the spline is the quintic
polynomial in t = (r - r_k) / h matching g, g' and g'' at both ends (C^2 across nodes). Its error
is O(h^6) in g and O(h^5) in g'; :func:`tabulate` halves h until the error measured against the
exact functions between the nodes is below ``tolerance`` times their largest value (default
1e-11; the exact functions themselves are accurate to ~1e-14, which the spline derivative
amplifies by 1/h). Derivatives are those of the spline itself, so values and gradients are exactly consistent.
"""

from __future__ import annotations

import numpy as np
import torch

from hybridpot.descriptors.radial import RadialBasis
from hybridpot.errors import HybridpotError

#: Relative accuracy of the tabulated radial functions and their first derivatives.
DEFAULT_TOLERANCE = 1e-11
_MAX_INTERVALS = 1 << 16


def quintic_hermite_coefficients(g: np.ndarray, dg: np.ndarray, d2g: np.ndarray, h: float) -> np.ndarray:
    """Polynomial coefficients a_0..a_5 (in t in [0, 1]) of each interval, from node data.

    Args:
        g, dg, d2g: (n_nodes, ...) values and first and second derivatives at uniform nodes.
        h: node spacing (Angstrom).

    Returns:
        (n_nodes - 1, 6, ...) with p(t) = sum_k a_k t^k on each interval.
    """
    f0, f1 = g[:-1], g[1:]
    d0, d1 = h * dg[:-1], h * dg[1:]
    s0, s1 = h * h * d2g[:-1], h * h * d2g[1:]
    a0, a1, a2 = f0, d0, 0.5 * s0
    rest_a = f1 - a0 - a1 - a2
    rest_b = d1 - a1 - 2.0 * a2
    rest_c = s1 - 2.0 * a2
    a3 = 10.0 * rest_a - 4.0 * rest_b + 0.5 * rest_c
    a4 = -15.0 * rest_a + 7.0 * rest_b - rest_c
    a5 = 6.0 * rest_a - 3.0 * rest_b + 0.5 * rest_c
    return np.stack([a0, a1, a2, a3, a4, a5], axis=1)


def _evaluate_numpy(coefficients: np.ndarray, h: float, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = r / h
    idx = np.clip(np.floor(s).astype(np.int64), 0, coefficients.shape[0] - 1)
    t = (s - idx).reshape((-1,) + (1,) * (coefficients.ndim - 2))
    c = coefficients[idx]
    value = c[:, 5]
    deriv = 5.0 * c[:, 5]
    for k in range(4, -1, -1):
        value = value * t + c[:, k]
        if k > 0:
            deriv = deriv * t + k * c[:, k]
    return value, deriv / h


class RadialSpline(torch.nn.Module):
    """Quintic Hermite table of g_nl(r) for r in [0, r_c] (torch; moves with ``.to``).

    Attributes:
        coefficients: buffer (n_intervals, 6, nmax * (lmax + 1)) polynomial coefficients in t.
        spacing: node spacing h, Angstrom.
        rcut: r_c, Angstrom.
        nmax, lmax: shape of the tabulated functions.
        error: measured relative error of the table (g and dg/dr) against the exact functions.
    """

    def __init__(
        self, coefficients: np.ndarray | torch.Tensor, spacing: float, rcut: float, nmax: int, lmax: int, error: float
    ) -> None:
        super().__init__()
        coefficients = torch.as_tensor(coefficients, dtype=torch.float64)
        self.register_buffer("coefficients", coefficients.reshape(coefficients.shape[0], 6, nmax * (lmax + 1)).contiguous())
        self.spacing = float(spacing)
        self.rcut = float(rcut)
        self.nmax = int(nmax)
        self.lmax = int(lmax)
        self.error = float(error)

    @property
    def n_intervals(self) -> int:
        return int(self.coefficients.shape[0])

    def forward(self, r: torch.Tensor, order: int = 0) -> list[torch.Tensor]:
        """g_nl(r) and its derivatives up to ``order`` (0, 1 or 2).

        Args:
            r: (P,) distances in [0, r_c], Angstrom (values beyond r_c are extrapolated: mask them).
            order: highest derivative returned.

        Returns:
            ``order + 1`` tensors of shape (P, nmax, lmax + 1): g, dg/dr (1/A), d^2g/dr^2 (1/A^2).
        """
        coefficients = self.coefficients.to(dtype=r.dtype)
        s = r / self.spacing
        idx = torch.floor(s).clamp_(0, self.n_intervals - 1)
        t = (s - idx).unsqueeze(1)
        c = coefficients.index_select(0, idx.to(torch.int64))  # (P, 6, Q)
        out = [c[:, 5]]
        for k in range(4, -1, -1):
            out[0] = torch.addcmul(c[:, k], out[0], t)
        if order >= 1:
            d = 5.0 * c[:, 5]
            for k in range(4, 0, -1):
                d = torch.addcmul(k * c[:, k], d, t)
            out.append(d / self.spacing)
        if order >= 2:
            d2 = 20.0 * c[:, 5]
            for k in range(4, 1, -1):
                d2 = torch.addcmul(k * (k - 1) * c[:, k], d2, t)
            out.append(d2 / self.spacing**2)
        shape = (r.shape[0], self.nmax, self.lmax + 1)
        return [o.reshape(shape) for o in out]


def _spline_error(basis: RadialBasis, n_intervals: int) -> tuple[np.ndarray, float, float]:
    """Coefficients on ``n_intervals`` intervals and their relative errors in g and dg/dr.

    The error of a quintic Hermite interpolant is largest near t = 1/2 for g and near
    t = 1/2 -+ 1/(2 sqrt 5) for g' (leading-order error t^3 (1 - t)^3); both are probed.
    """
    h = basis.rcut / n_intervals
    nodes = np.linspace(0.0, basis.rcut, n_intervals + 1)
    g, dg, d2g = basis.evaluate(nodes)
    coefficients = quintic_hermite_coefficients(g, dg, d2g, h)
    probe = (nodes[:-1, None] + h * np.array([0.5 - 0.5 / np.sqrt(5.0), 0.5])[None, :]).ravel()
    exact_g, exact_dg, _ = basis.evaluate(probe)
    spline_g, spline_dg = _evaluate_numpy(coefficients, h, probe)
    err_g = np.max(np.abs(spline_g - exact_g)) / max(np.max(np.abs(g)), 1e-300)
    err_dg = np.max(np.abs(spline_dg - exact_dg)) / max(np.max(np.abs(dg)), 1e-300)
    return coefficients, float(err_g), float(err_dg)


def tabulate(basis: RadialBasis, tolerance: float = DEFAULT_TOLERANCE) -> RadialSpline:
    """Tabulate ``basis`` on [0, r_c] with relative error below ``tolerance`` in g and dg/dr.

    The error is measured between the nodes against ``basis.evaluate``, relative to the largest
    |g| (resp. |dg/dr|) on the grid. A coarse grid predicts the spacing (error ~ h^5), which is
    then checked and halved until the tolerance holds.

    Raises:
        HybridpotError: the tolerance is not reached with 65536 intervals.
    """
    n_intervals = 64
    coefficients, err_g, err_dg = _spline_error(basis, n_intervals)
    if max(err_g, err_dg) > tolerance:
        n_intervals = int(np.ceil(n_intervals * 1.25 * (max(err_g, err_dg) / tolerance) ** 0.2))
    while max(err_g, err_dg) > tolerance and n_intervals <= _MAX_INTERVALS:
        coefficients, err_g, err_dg = _spline_error(basis, n_intervals)
        n_intervals *= 2
    if max(err_g, err_dg) > tolerance:
        raise HybridpotError(
            f"could not tabulate the {basis.name} radial basis {basis.to_dict()} to {tolerance:g} "
            f"(relative errors {err_g:.1e} in g, {err_dg:.1e} in dg/dr with {_MAX_INTERVALS} intervals)"
        )
    return RadialSpline(coefficients, basis.rcut / coefficients.shape[0], basis.rcut, basis.nmax, basis.lmax, max(err_g, err_dg))
