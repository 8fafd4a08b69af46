"""Angular part of the SO(3) descriptors: real spherical harmonics and real Clebsch-Gordan coefficients.

Spherical harmonics come from sphericart (CPU and CUDA, torch): real, orthonormal on the unit
sphere (Y_00 = 1 / (2 sqrt(pi)), so no extra constant is needed), in the convention of the
Wikipedia article "Spherical harmonics" (real form), ordered (l, m) = (0, 0), (1, -1), (1, 0),
(1, 1), (2, -2), ... . Y_lm(r) depends on the direction of r only; its gradient with respect to
the vector r (1/Angstrom) is tangential.

Real coupling coefficients: with the unitary matrix U_l taking complex (Condon-Shortley)
harmonics to these real ones, Y^R = U Y^C, the real Clebsch-Gordan tensor is

    T^{l1 l2 l}[mu1, mu2, mu] = sum_{m1 m2 m} <l1 m1 l2 m2 | l m> conj(U_l1[mu1, m1]) conj(U_l2[mu2, m2]) U_l[mu, m],

so that sum T c^R_{l1} c^R_{l2} c^R_l equals the complex invariant
sum <l1 m1 l2 m2 | l m> c_{l1 m1} c_{l2 m2} conj(c_{lm}) for real densities. It is real when
l1 + l2 + l is even (checked when built); odd sums give pseudo-scalars, which hybridpot does not use.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import factorial

import numpy as np
import sphericart.torch
import torch

_CALCULATORS: dict[int, sphericart.torch.SphericalHarmonics] = {}


def _calculator(lmax: int) -> sphericart.torch.SphericalHarmonics:
    if lmax not in _CALCULATORS:
        _CALCULATORS[lmax] = sphericart.torch.SphericalHarmonics(lmax)
    return _CALCULATORS[lmax]


def spherical_harmonics(vectors: torch.Tensor, lmax: int, order: int = 0) -> list[torch.Tensor]:
    """Real orthonormal Y_lm(r / |r|) for l = 0..lmax and their derivatives w.r.t. r.

    Args:
        vectors: (P, 3) non-zero vectors r, Angstrom (any device; float32 or float64).
        lmax: largest l.
        order: 0 for values, 1 also the gradient, 2 also the Hessian.

    Returns:
        ``[Y (P, (lmax+1)^2)]`` + ``[dY/dr (P, 3, (lmax+1)^2), 1/A]`` + ``[d2Y/dr dr (P, 3, 3, (lmax+1)^2), 1/A^2]``
        up to ``order``.
    """
    calc = _calculator(lmax)
    if order == 0:
        return [calc.compute(vectors)]
    if order == 1:
        return list(calc.compute_with_gradients(vectors))
    return list(calc.compute_with_hessians(vectors))


def real_from_complex(l: int) -> np.ndarray:
    """U_l: Y^R_{l mu} = sum_m U[mu, m] Y^C_{l m} (rows and columns ordered m = -l..l)."""
    u = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    s = 1.0 / np.sqrt(2.0)
    for m in range(-l, l + 1):
        row = m + l
        if m > 0:
            u[row, -m + l] = s
            u[row, m + l] = (-1) ** m * s
        elif m == 0:
            u[row, l] = 1.0
        else:
            u[row, m + l] = 1j * s
            u[row, -m + l] = -1j * (-1) ** m * s
    return u


def clebsch_gordan(l1: int, m1: int, l2: int, m2: int, l: int, m: int) -> float:
    """<l1 m1 l2 m2 | l m> (Condon-Shortley), from the Racah formula in exact rational arithmetic."""
    if m1 + m2 != m or not abs(l1 - l2) <= l <= l1 + l2 or abs(m1) > l1 or abs(m2) > l2 or abs(m) > l:
        return 0.0
    f = factorial
    total = Fraction(0)
    for k in range(max(0, l2 - l - m1, l1 - l + m2), min(l1 + l2 - l, l1 - m1, l2 + m2) + 1):
        total += Fraction((-1) ** k, f(k) * f(l1 + l2 - l - k) * f(l1 - m1 - k) * f(l2 + m2 - k) * f(l - l2 + m1 + k) * f(l - l1 - m2 + k))
    square = Fraction(
        (2 * l + 1) * f(l + l1 - l2) * f(l - l1 + l2) * f(l1 + l2 - l) * f(l + m) * f(l - m) * f(l1 - m1) * f(l1 + m1) * f(l2 - m2) * f(l2 + m2),
        f(l1 + l2 + l + 1),
    )
    return float(total * total * square) ** 0.5 * (1.0 if total >= 0 else -1.0) if total else 0.0


@lru_cache(maxsize=1024)
def real_clebsch_gordan(l1: int, l2: int, l: int) -> np.ndarray:
    """Real coupling tensor T^{l1 l2 l}, shape (2 l1 + 1, 2 l2 + 1, 2 l + 1), for even l1 + l2 + l.

    Raises:
        ValueError: odd l1 + l2 + l or (l1, l2, l) violating the triangle rule.
    """
    if (l1 + l2 + l) % 2 or not abs(l1 - l2) <= l <= l1 + l2:
        raise ValueError(f"no real parity-even coupling for (l1, l2, l) = {(l1, l2, l)}")
    cg = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(-l2, l2 + 1):
            if abs(m1 + m2) <= l:
                cg[m1 + l1, m2 + l2, m1 + m2 + l] = clebsch_gordan(l1, m1, l2, m2, l, m1 + m2)
    u1, u2, u = real_from_complex(l1), real_from_complex(l2), real_from_complex(l)
    t = np.einsum("abc,xa,yb,zc->xyz", cg, u1.conj(), u2.conj(), u)
    if np.max(np.abs(t.imag)) > 1e-12 * max(np.max(np.abs(t.real)), 1.0):
        raise AssertionError(f"real Clebsch-Gordan tensor {(l1, l2, l)} is not real")
    return np.ascontiguousarray(t.real)


def l_of_lm(lmax: int) -> tuple[int, ...]:
    """The l of each of the (lmax+1)^2 (l, m) columns."""
    return tuple(l for l in range(lmax + 1) for _ in range(2 * l + 1))

