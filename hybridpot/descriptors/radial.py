"""Radial bases of the SO(3) descriptors, evaluated accurately in float64 (numpy).

A radial basis is a set of functions g_nl(r), n = 0..nmax-1, l = 0..lmax, of the pair distance
r (Angstrom) on [0, r_c], already multiplied by whatever makes them go smoothly to zero at r_c.
The density coefficients of atom i are c_nlm(i) = sum_j w_j g_nl(r_ij) Y_lm(r_ij / r_ij).

Two bases share the :class:`RadialBasis` interface:

* :class:`LammpsRadialBasis` (``basis="lammps"``): LAMMPS ML-IAP ``descriptor so3``.
  g_nl(r) = f_c(r) R_nl(r) with the cosine cutoff f_c(r) = (cos(pi r / r_c) + 1) / 2 and the
  Gaussian-smeared radial integral

      R_nl(r) = 4 pi exp(-alpha r^2) int_0^{r_c} x^2 u_n(x) exp(-alpha x^2) i_l(2 alpha x r) dx,

  u_n = sum_a W_na phi_a the polynomials phi_a(x) = (r_c - x)^(a+2) / N_a (a = 1..nmax, unit
  norm with weight x^2) orthonormalised symmetrically, W = S^(-1/2), S the overlap matrix, and
  i_l the modified spherical Bessel function of the first kind. alpha is in 1/Angstrom^2.
  Here the integral is evaluated by composite Gauss-Legendre quadrature (panels no wider than the
  Gaussian, exact to ~1e-15) with the exponentially scaled i_l:
  exp(-alpha (r^2 + x^2)) i_l(2 alpha x r) = exp(-alpha (x - r)^2) [exp(-z) i_l(z)], z = 2 alpha x r,
  which neither overflows nor loses digits (LAMMPS uses an upward recurrence for i_l, which is
  unstable for small z). W and the values u_n(x) at the quadrature nodes are computed with
  mpmath at 40 digits because S is ill-conditioned (condition number 6e8 at nmax 6, ~1e19 at 12).
* :class:`BesselRadialBasis` (``basis="bessel"``): spherical Bessel functions
  g_nl(r) = f_c(r) N_nl j_l(z_ln r / r_c), z_ln the (n+1)-th positive zero of j_l and
  N_nl = sqrt(2 / r_c^3) / |j_{l+1}(z_ln)| so that N_nl j_l(z_ln r / r_c) has unit norm on
  [0, r_c] with weight r^2. j_l(z_ln r / r_c) vanishes at r_c but its slope does not; the
  cosine cutoff f_c (value and slope zero at r_c) makes g_nl vanish as (r_c - r)^3, so value,
  first and second derivative are continuous at the cutoff. (The product is not exactly
  orthonormal; the descriptors do not need it to be.)

Both give g, dg/dr and d^2g/dr^2 at any r in [0, r_c] (:meth:`RadialBasis.evaluate`), which
:mod:`hybridpot.descriptors.spline` tabulates once per parameter set.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache

import mpmath
import numpy as np
from scipy.optimize import brentq
from scipy.special import ive, roots_legendre, spherical_in, spherical_jn

from hybridpot.errors import HybridpotError

#: Largest nmax the LAMMPS basis is computed for here. W = S^(-1/2) at _MP_DIGITS (40) digits loses
#: ~log10 cond(S) of them: cond(S) is 1e22 at 15 (18 digits left, more than float64 keeps), 1e24 at
#: 16 (float64 accuracy no longer assured) and 1e45 at 30, where the smallest eigenvalue comes out
#: negative at 40 digits.
LAMMPS_MAX_NMAX = 15
#: Most quadrature panels (Gaussian widths, rcut * sqrt(2 alpha)) across the cutoff: building the
#: basis and its spline tables takes ~10 s at this limit (rcut 5 A, alpha 200 1/A^2), 90 s at alpha 1000;
#: LAMMPS's examples use alpha 1-5. Beyond it the Gaussian is narrower than 0.05 A at rcut 5.
LAMMPS_MAX_PANELS = 100
#: Largest nmax LAMMPS orthonormalises accurately (its W loses ~cond(S) * 1e-16; cond(S) is 6e8 at 6).
LAMMPS_EXPORT_MAX_NMAX = 5
#: Largest relative error of LAMMPS's radial functions (its recurrence for i_l) accepted for export.
LAMMPS_EXPORT_TOLERANCE = 1e-10
#: Default shortest interatomic distance (Angstrom) the LAMMPS export check protects: below about
#: 1.5 A the recurrence fails for every lmax >= 4 (there R_nl(r) is dominated by i_l at small z).
LAMMPS_EXPORT_MIN_DISTANCE = 1.5

_MP_DIGITS = 40
_GAUSS_POINTS_PER_PANEL = 24


def max_lammps_alpha(rcut: float) -> float:
    """The largest alpha (1/A^2) the LAMMPS basis is built for at ``rcut`` (A): rcut * sqrt(2 alpha) <= LAMMPS_MAX_PANELS."""
    return (LAMMPS_MAX_PANELS / rcut) ** 2 / 2.0


def cosine_cutoff(r: np.ndarray, rcut: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """f_c(r) = (cos(pi r / r_c) + 1) / 2 on [0, r_c] and its first two derivatives (1/A, 1/A^2)."""
    k = np.pi / rcut
    c, s = np.cos(k * r), np.sin(k * r)
    return 0.5 * (c + 1.0), -0.5 * k * s, -0.5 * k * k * c


class RadialBasis(ABC):
    """Radial functions g_nl(r) on [0, r_c] (cutoff included), shape convention (R, nmax, lmax + 1).

    Attributes:
        rcut: cutoff radius r_c, Angstrom.
        nmax: number of radial functions per l.
        lmax: largest angular order.
    """

    name: str

    def __init__(self, rcut: float, nmax: int, lmax: int) -> None:
        if not (isinstance(rcut, (int, float)) and np.isfinite(rcut) and rcut > 0):
            raise HybridpotError(f"rcut must be a positive number of Angstrom, got {rcut!r}")
        for key, value in (("nmax", nmax), ("lmax", lmax)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise HybridpotError(f"{key} must be an integer >= 1, got {value!r}")
        self.rcut = float(rcut)
        self.nmax = int(nmax)
        self.lmax = int(lmax)

    @abstractmethod
    def evaluate(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """g_nl(r), dg_nl/dr and d^2 g_nl/dr^2 at distances r (Angstrom, in [0, r_c]).

        Returns:
            three float64 arrays of shape (len(r), nmax, lmax + 1), in 1, 1/A and 1/A^2 times the
            unit of g: A^(3/2) for the LAMMPS basis (R_nl is a
            density projected on polynomials of unit A^(-3/2)), A^(-3/2) for the Bessel basis.
        """

    @abstractmethod
    def to_dict(self) -> dict:
        """Hyper-parameters, enough to rebuild the basis with :func:`radial_basis`."""

    def _check_r(self, r: np.ndarray) -> np.ndarray:
        r = np.asarray(r, dtype=np.float64)
        if r.ndim != 1 or np.any(r < 0) or np.any(r > self.rcut * (1 + 1e-12)):
            raise HybridpotError(f"radial functions are defined on [0, {self.rcut}] A")
        return r


# --------------------------------------------------------------------------------------------
# LAMMPS so3 basis


def lammps_overlap(nmax: int) -> np.ndarray:
    """Overlap S_ab = int phi_a phi_b x^2 dx of the LAMMPS polynomials (independent of r_c)."""
    a = np.arange(1, nmax + 1, dtype=np.float64)
    f = np.sqrt((2 * a + 5) * (2 * a + 6) * (2 * a + 7))
    s = a[:, None] + a[None, :]
    return np.outer(f, f) / ((5 + s) * (6 + s) * (7 + s))


@lru_cache(maxsize=32)
def _lammps_orthonormalisation(nmax: int) -> mpmath.matrix:
    """W = S^(-1/2) in mpmath precision (S is exact in rationals and square roots)."""
    with mpmath.workdps(_MP_DIGITS):
        f = [mpmath.sqrt((2 * a + 5) * (2 * a + 6) * (2 * a + 7)) for a in range(1, nmax + 1)]
        s = mpmath.matrix(nmax, nmax)
        for i in range(nmax):
            for j in range(nmax):
                t = i + j + 2
                s[i, j] = f[i] * f[j] / ((5 + t) * (6 + t) * (7 + t))
        evals, evecs = mpmath.eigsy(s)
        d = mpmath.diag([1 / mpmath.sqrt(e) for e in evals])
        return evecs * d * evecs.T


def lammps_polynomials(rcut: float, nmax: int, x: np.ndarray) -> np.ndarray:
    """u_n(x), n = 0..nmax-1, the orthonormal LAMMPS radial polynomials at x (Angstrom).

    Evaluated in mpmath precision and rounded, since the expansion in phi_a cancels heavily.

    Returns:
        (nmax, len(x)) float64, unit A^-3/2.
    """
    w = _lammps_orthonormalisation(nmax)
    out = np.empty((nmax, len(x)))
    with mpmath.workdps(_MP_DIGITS):
        rc = mpmath.mpf(rcut)
        norms = [mpmath.sqrt(2 * rc ** (2 * a + 7) / ((2 * a + 5) * (2 * a + 6) * (2 * a + 7))) for a in range(1, nmax + 1)]
        for k, xk in enumerate(np.asarray(x, dtype=np.float64)):
            d = rc - mpmath.mpf(float(xk))
            phi = [d ** (a + 2) / norms[a - 1] for a in range(1, nmax + 1)]
            for n in range(nmax):
                out[n, k] = float(mpmath.fsum(w[n, a] * phi[a] for a in range(nmax)))
    return out


def scaled_spherical_in(lmax: int, z: np.ndarray) -> np.ndarray:
    """exp(-z) i_l(z) for l = 0..lmax, z >= 0 (i_l the modified spherical Bessel function).

    The two highest orders come from ``scipy.special.ive`` (i_l(z) = sqrt(pi / 2z) I_{l+1/2}(z));
    the rest from the downward recurrence i_{l-1} = i_{l+1} + (2l + 1) / z i_l, which adds positive
    terms only and is therefore stable (the upward one is not). Where the highest order underflows
    (z below ~1e-15) every order is taken from ``ive`` directly; z = 0 gives 1 for l = 0, else 0.

    Returns:
        (lmax + 1, *z.shape) float64.
    """
    z = np.asarray(z, dtype=np.float64)
    positive = z > 0
    zz = np.where(positive, z, 1.0)
    prefactor = np.sqrt(np.pi / (2.0 * zz))

    def direct(l: int) -> np.ndarray:
        return prefactor * ive(l + 0.5, zz)

    out = np.empty((lmax + 2,) + z.shape)
    out[lmax + 1], out[lmax] = direct(lmax + 1), direct(lmax)
    for l in range(lmax, 0, -1):
        out[l - 1] = out[l + 1] + (2 * l + 1) / zz * out[l]
    underflow = positive & (out[lmax + 1] == 0.0)
    if np.any(underflow):
        for l in range(lmax + 1):
            out[l] = np.where(underflow, direct(l), out[l])
    out = out[: lmax + 1]
    out[0] = np.where(positive, out[0], 1.0)
    out[1:] = np.where(positive, out[1:], 0.0)
    return out


def _bessel_derivative(f: np.ndarray) -> np.ndarray:
    """f'_l = (l f_{l-1} + (l + 1) f_{l+1}) / (2 l + 1) for l = 0..len(f) - 2 (modified spherical Bessel).

    Also holds for exp(-z) i_l(z), the recurrence being linear and homogeneous; l = 0 never uses f_{-1}.
    """
    lmax = f.shape[0] - 2
    out = np.empty((lmax + 1,) + f.shape[1:])
    for l in range(lmax + 1):
        lower = l * f[l - 1] if l > 0 else 0.0
        out[l] = (lower + (l + 1) * f[l + 1]) / (2 * l + 1)
    return out


def _gauss_legendre_panels(a: float, b: float, n_panels: int, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss-Legendre quadrature on [a, b]."""
    t, w = roots_legendre(order)
    edges = np.linspace(a, b, n_panels + 1)
    half = 0.5 * np.diff(edges)
    mid = 0.5 * (edges[1:] + edges[:-1])
    return (mid[:, None] + half[:, None] * t[None, :]).ravel(), (half[:, None] * w[None, :]).ravel()


class LammpsRadialBasis(RadialBasis):
    """The radial basis of LAMMPS ML-IAP ``descriptor so3`` (see the module docstring).

    Args:
        rcut: r_c (``rcutfac`` in the LAMMPS descriptor file), Angstrom.
        nmax: number of radial functions.
        lmax: largest angular order.
        alpha: Gaussian smearing exponent, 1/Angstrom^2.
    """

    name = "lammps"

    def __init__(self, rcut: float, nmax: int, lmax: int, alpha: float) -> None:
        super().__init__(rcut, nmax, lmax)
        if self.nmax > LAMMPS_MAX_NMAX:
            raise HybridpotError(f"nmax = {self.nmax}: basis='lammps' is limited to nmax <= {LAMMPS_MAX_NMAX} (its polynomial "
                                 "overlap matrix becomes too ill-conditioned to orthonormalise); use basis='bessel' for more "
                                 "radial functions")
        if not (isinstance(alpha, (int, float)) and np.isfinite(alpha) and alpha > 0):
            raise HybridpotError(f"alpha must be a positive number (1/A^2) for basis='lammps', got {alpha!r}")
        self.alpha = float(alpha)
        width = 1.0 / np.sqrt(2.0 * self.alpha)  # standard deviation of exp(-alpha (x - r)^2)
        n_panels = max(4, int(np.ceil(self.rcut / width)))
        if n_panels > LAMMPS_MAX_PANELS:
            raise HybridpotError(f"alpha = {alpha} with rcut = {rcut}: a Gaussian {width:.3g} A wide needs {n_panels} quadrature "
                                 f"panels across the cutoff, more than {LAMMPS_MAX_PANELS}; use alpha <= "
                                 f"{max_lammps_alpha(self.rcut):.4g} 1/A^2 at this rcut (typical: 1-5)")
        x, w = _gauss_legendre_panels(0.0, self.rcut, n_panels, _GAUSS_POINTS_PER_PANEL)
        self._x = x
        # 4 pi w_k x_k^2 u_n(x_k): the r-independent part of the integrand, (nmax, n_nodes)
        self._kernel = 4.0 * np.pi * w * x * x * lammps_polynomials(self.rcut, self.nmax, x)

    def to_dict(self) -> dict:
        return {"basis": self.name, "rcut": self.rcut, "nmax": self.nmax, "lmax": self.lmax, "alpha": self.alpha}

    def radial_integral(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """R_nl(r) and its first two derivatives (without the cutoff), each (len(r), nmax, lmax + 1)."""
        r = self._check_r(r)
        a, x, lmax = self.alpha, self._x, self.lmax
        out = np.empty((3, len(r), self.nmax, lmax + 1))
        block = max(1, 50_000 // (len(x) * (lmax + 3)))  # ~0.4 MB per temporary: the table build stays small
        for s in range(0, len(r), block):
            rb = r[s : s + block, None]
            z = 2.0 * a * x[None, :] * rb
            gauss = np.exp(-a * (x[None, :] - rb) ** 2)
            k = scaled_spherical_in(lmax + 2, z)  # (lmax+3, R, X)
            dk = _bessel_derivative(k)  # (lmax+2, R, X)
            d2k = _bessel_derivative(dk)  # (lmax+1, R, X)
            k, dk = k[: lmax + 1], dk[: lmax + 1]
            f0 = gauss * k
            f1 = gauss * (-2.0 * a * rb * k + 2.0 * a * x * dk)
            f2 = gauss * ((4.0 * a * a * rb * rb - 2.0 * a) * k - 8.0 * a * a * x * rb * dk + 4.0 * a * a * x * x * d2k)
            for d, f in enumerate((f0, f1, f2)):
                out[d, s : s + block] = np.einsum("nx,lrx->rnl", self._kernel, f)
        return out[0], out[1], out[2]

    def evaluate(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self._check_r(r)
        big, dbig, d2big = self.radial_integral(r)
        fc, dfc, d2fc = (f[:, None, None] for f in cosine_cutoff(r, self.rcut))
        return fc * big, dfc * big + fc * dbig, d2fc * big + 2.0 * dfc * dbig + fc * d2big

    # ---------------------------------------------------------------- LAMMPS export checks

    def lammps_quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """The Gauss-Chebyshev nodes (Angstrom) and weights LAMMPS integrates R_nl with (10 (nmax + lmax + 1) nodes)."""
        nq = 10 * (self.nmax + self.lmax + 1)
        t = np.cos((2 * np.arange(1, nq + 1) - 1) * np.pi / (2 * nq))
        return 0.5 * self.rcut * (t + 1.0), 0.5 * self.rcut * np.pi / nq * np.sqrt(1.0 - t * t)

    def lammps_recurrence_error(self, min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE, n_r: int = 200) -> float:
        """Relative error LAMMPS's upward recurrence for i_l puts into its radial functions.

        LAMMPS computes i_0 = sinh z / z, i_1 = (cosh z - i_0) / z and i_l = i_{l-2} - (2l - 1) i_{l-1} / z
        (and i_{lmax+1} for the derivative) at z = 2 alpha x_k r over its quadrature nodes x_k. For
        distances r in [min_distance, r_c] this compares R_nl and dR_nl/dr integrated on LAMMPS's
        nodes with the recurrence against the same sums with ``scipy.special.spherical_in``, and returns
        max |difference| / max |R| (resp. max |dR|), the larger of the two. (A pointwise relative
        comparison of i_l is not the right measure: the recurrence is wrong by orders of magnitude
        where i_l is negligibly small, which is harmless.)
        """
        x, w = self.lammps_quadrature()
        r = np.linspace(min_distance, self.rcut, n_r)
        z = 2.0 * self.alpha * x[None, :] * r[:, None]  # (R, X)
        lmax = self.lmax
        recurrence = np.empty((lmax + 2,) + z.shape)
        with np.errstate(over="ignore", invalid="ignore"):
            recurrence[0] = np.sinh(z) / z
            recurrence[1] = (np.cosh(z) - recurrence[0]) / z
            for l in range(2, lmax + 2):
                recurrence[l] = recurrence[l - 2] - (2 * l - 1) / z * recurrence[l - 1]
        exact = np.stack([spherical_in(l, z) for l in range(lmax + 2)])
        u = lammps_polynomials(self.rcut, self.nmax, x)  # (nmax, X)
        g = (w * x * x * np.exp(-self.alpha * x * x))[None, :] * u  # (nmax, X)
        pref = 4.0 * np.pi * np.exp(-self.alpha * r * r)  # (R,)

        def radial(i_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            di = _bessel_derivative(i_l)  # (lmax+1, R, X)
            with np.errstate(over="ignore", invalid="ignore"):
                big = pref[:, None, None] * np.einsum("nx,lrx->rnl", g, i_l[: lmax + 1])
                dbig = pref[:, None, None] * np.einsum("nx,lrx->rnl", g * x, di)
            return big, dbig

        (r_rec, d_rec), (r_ex, d_ex) = radial(recurrence), radial(exact)
        with np.errstate(invalid="ignore"):
            err = max(np.max(np.abs(r_rec - r_ex)) / np.max(np.abs(r_ex)), np.max(np.abs(d_rec - d_ex)) / np.max(np.abs(d_ex)))
        return float(err) if np.isfinite(err) else float("inf")

    def check_lammps_exportable(self, min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE) -> None:
        """Raise :class:`HybridpotError` if LAMMPS would compute these descriptors inaccurately.

        Two failure modes of LAMMPS's own ``so3`` code (hybridpot evaluates every parameter set
        accurately): its orthonormalisation of the radial polynomials loses accuracy for
        nmax > 5, and its upward recurrence for i_l is unstable at small arguments, which with
        larger lmax, smaller alpha and more quadrature nodes corrupts the radial functions at
        short distances (:meth:`lammps_recurrence_error` > 1e-10 for r >= ``min_distance``).

        Args:
            min_distance: the shortest interatomic distance (Angstrom) the exported model is
                expected to see; 1.5 A by default (Cu-Cu is 2.55 A at equilibrium).
        """
        params = f"rcut={self.rcut}, nmax={self.nmax}, lmax={self.lmax}, alpha={self.alpha}"
        if self.nmax > LAMMPS_EXPORT_MAX_NMAX:
            cond = np.linalg.cond(lammps_overlap(self.nmax))
            raise HybridpotError(
                f"so3 descriptor ({params}) cannot be exported to LAMMPS: LAMMPS orthonormalises the radial "
                f"polynomials through an overlap matrix with condition number {cond:.1e} and loses accuracy for "
                f"nmax > {LAMMPS_EXPORT_MAX_NMAX}. Use nmax <= {LAMMPS_EXPORT_MAX_NMAX} for export; hybridpot itself "
                f"evaluates this parameter set accurately."
            )
        err = self.lammps_recurrence_error(min_distance)
        if not err <= LAMMPS_EXPORT_TOLERANCE:
            raise HybridpotError(
                f"so3 descriptor ({params}) cannot be exported to LAMMPS: its upward recurrence for the modified "
                f"spherical Bessel functions makes its radial functions wrong by {err:.1e} (relative, distances "
                f">= {min_distance} A; tolerance {LAMMPS_EXPORT_TOLERANCE:g}). Use a smaller lmax or a larger alpha "
                f"for export (or pass a larger min_distance if no pair can come closer); hybridpot itself evaluates "
                f"this parameter set accurately."
            )


# --------------------------------------------------------------------------------------------
# Spherical Bessel basis


@lru_cache(maxsize=32)
def spherical_bessel_zeros(nmax: int, lmax: int) -> np.ndarray:
    """z_ln, the first nmax positive zeros of j_l for l = 0..lmax, shape (nmax, lmax + 1).

    Zeros of j_l interlace with those of j_{l-1} (z_{l-1,n} < z_{l,n} < z_{l-1,n+1}), starting
    from the zeros n pi of j_0.
    """
    count = nmax + lmax
    zeros = [np.pi * np.arange(1, count + 1)]
    for l in range(1, lmax + 1):
        prev = zeros[-1]
        zeros.append(np.array([brentq(lambda x: spherical_jn(l, x), prev[n], prev[n + 1], xtol=1e-14, rtol=1e-15) for n in range(len(prev) - 1)]))
    return np.stack([z[:nmax] for z in zeros], axis=1)


class BesselRadialBasis(RadialBasis):
    """Spherical Bessel functions j_l(z_ln r / r_c) with a cosine cutoff (see the module docstring)."""

    name = "bessel"

    def __init__(self, rcut: float, nmax: int, lmax: int) -> None:
        super().__init__(rcut, nmax, lmax)
        self.zeros = spherical_bessel_zeros(self.nmax, self.lmax)  # (nmax, lmax+1)
        l = np.arange(self.lmax + 1)
        self.norms = np.sqrt(2.0 / self.rcut**3) / np.abs(spherical_jn(l[None, :] + 1, self.zeros))

    def to_dict(self) -> dict:
        return {"basis": self.name, "rcut": self.rcut, "nmax": self.nmax, "lmax": self.lmax}

    def evaluate(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self._check_r(r)
        k = self.zeros / self.rcut  # (nmax, L), 1/A
        b, db, d2b = (np.empty((len(r), self.nmax, self.lmax + 1)) for _ in range(3))
        for l in range(self.lmax + 1):
            x = r[:, None] * k[None, :, l]  # (R, nmax)
            lower = l * spherical_jn(l - 1, x, derivative=True) if l > 0 else 0.0
            b[:, :, l] = spherical_jn(l, x)
            db[:, :, l] = k[:, l] * spherical_jn(l, x, derivative=True)
            # j_l'' = (l j'_{l-1} - (l + 1) j'_{l+1}) / (2l + 1), stable down to x = 0
            d2b[:, :, l] = k[:, l] ** 2 * (lower - (l + 1) * spherical_jn(l + 1, x, derivative=True)) / (2 * l + 1)
        b, db, d2b = self.norms * b, self.norms * db, self.norms * d2b
        fc, dfc, d2fc = (f[:, None, None] for f in cosine_cutoff(r, self.rcut))
        return fc * b, dfc * b + fc * db, d2fc * b + 2.0 * dfc * db + fc * d2b


def radial_basis(basis: str, rcut: float, nmax: int, lmax: int, alpha: float | None = None) -> RadialBasis:
    """The radial basis named ``basis`` ("lammps" or "bessel")."""
    if basis == "lammps":
        if alpha is None:
            raise HybridpotError("basis='lammps' needs alpha (Gaussian smearing exponent, 1/A^2)")
        return LammpsRadialBasis(rcut, nmax, lmax, alpha)
    if basis == "bessel":
        if alpha is not None:
            raise HybridpotError("basis='bessel' takes no alpha (it is the Gaussian smearing of basis='lammps')")
        return BesselRadialBasis(rcut, nmax, lmax)
    raise HybridpotError(f"unknown radial basis {basis!r}; expected 'lammps' or 'bessel'")
