"""Rotation invariants of the density coefficients: power spectrum and bispectrum.

Both map the coefficients C (N, nu, (lmax+1)^2) of N atoms (nu radial channels: nmax, times the
number of element channels if any; columns (l, m) as in :mod:`hybridpot.descriptors.angular`)
to features B (N, K). Every feature is a product of 2 (power) or 3 (bispectrum) coefficient
blocks c_{nu l}, so its derivative along a pair's dc is a sum over these factors of
<dc_{nu_f l_f}, D_f>, D_f (a vector over m) the partial derivative with respect to that block,
computed per atom by :meth:`Invariants.adjoints`. Since a pair's dc_{nu lm} / dr =
w g'_{nu l} r_hat Y_lm + w g_{nu l} dY_lm / dr, the pair-form derivative
(:meth:`Invariants.pair_derivatives`) needs only <Y_l, D> and <dY_l, D> per pair (the "angular
contractions" of :func:`angular_contractions`), combined with the radial functions by
:meth:`Invariants.pair_gradients`: the power spectrum's route. The bispectrum has many more D than
coefficients (3 (nu + 2 nu^2) per (l1, l2, l) triple), so it scatters them into each atom's
Jacobian dB/dc instead and multiplies that with its pairs' dc/dr (:meth:`Bispectrum.pair_derivatives`).

* :class:`PowerSpectrum`: p(n1, n2, l) = (2 sqrt(2) pi / sqrt(2l + 1)) sum_m c_{n1 lm} c_{n2 lm},
  n2 <= n1, column k = (n1 (n1 + 1) / 2 + n2) (lmax + 1) + l (LAMMPS ``so3`` order and
  normalisation; the sum over m is the same for any orthonormal Y_lm).
* :class:`Bispectrum`: b(n, n', l1, l2, l) = sum T^{l1 l2 l}[m1, m2, m] c_{n' l1 m1} c_{n' l2 m2} c_{n l m}
  with the real Clebsch-Gordan tensor T, for l1 <= l2, |l1 - l2| <= l <= min(l1 + l2, lmax) and
  l1 + l2 + l even (parity-even: invariant under rotations and inversion; the odd ones are
  pseudo-scalars). For n = n' the three blocks come from one channel and the invariant is, up to
  a constant, symmetric in (l1, l2, l), so only l1 <= l2 <= l is kept. Columns are ordered by n,
  then n', then (l1, l2, l) lexicographically.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from hybridpot.descriptors.angular import l_of_lm, real_clebsch_gordan
from hybridpot.errors import HybridpotError


class Invariants(torch.nn.Module):
    """Base class: features of C, their adjoint vectors and the slot table.

    Attributes:
        n_radial: nu, the number of radial channels.
        lmax: largest l.
        n_features: K.
        n_adjoints: (lmax + 1,) number of adjoint vectors per l.
    """

    kind: str
    n_features: int

    def __init__(self, n_radial: int, lmax: int) -> None:
        super().__init__()
        self.n_radial = int(n_radial)
        self.lmax = int(lmax)

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """(N, nu, (lmax+1)^2) -> (N, K); differentiable torch operations."""
        raise NotImplementedError

    def adjoints(self, coefficients: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - abstract
        """Adjoint vectors per l: a list over l of (N, n_adjoints[l], 2l + 1)."""
        raise NotImplementedError

    def pair_adjoints(self, coefficients: torch.Tensor, centers: torch.Tensor) -> list[torch.Tensor]:
        """The adjoint vectors of each pair's centre: a list over l of (P, n_adjoints[l], 2l + 1)."""
        return [d.index_select(0, centers) for d in self.adjoints(coefficients)]

    def pair_derivatives(self, coefficients: torch.Tensor, centers: torch.Tensor, basis: "hybridpot.descriptors.so3.PairBasis") -> torch.Tensor:
        """dB[centre] / dr_p (P, K, 3) of P pairs sorted by centre: the adjoint vectors of each pair's centre contracted
        with its Y and dY (:func:`angular_contractions`), combined by :meth:`pair_gradients`.

        Args:
            coefficients: (n, nu, L^2) the density coefficients of the chunk's atoms; centers: (P,) each pair's centre
                in [0, n), non-decreasing.
            basis: the pairs' radial and angular functions, to first order (:class:`hybridpot.descriptors.so3.PairBasis`).
        """
        contractions = angular_contractions(basis.angular_stack(), self.pair_adjoints(coefficients, centers))
        return self.pair_gradients(basis.radial[0], basis.radial[1], basis.unit, contractions)

    def pair_gradients(
        self, radial: torch.Tensor, d_radial: torch.Tensor, unit: torch.Tensor, contractions: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """dB[centre] / dr_p for P pairs, from the contractions of :meth:`pair_derivatives`.

        Args:
            radial, d_radial: (P, nu, L) w g_{nu l}(r_p) and w dg/dr (1/A).
            unit: (P, 3) r_p / |r_p|.
            contractions: (P, sum_l n_adjoints[l], 4): <Y_l, D> and <dY_l/dr, D> (1/A) for the
                adjoint vectors of the pair's centre, l-major.

        Returns:
            (P, K, 3), 1/A times the unit of B.
        """
        raise NotImplementedError


def angular_contractions(angular: torch.Tensor, adjoints: Sequence[torch.Tensor]) -> torch.Tensor:
    """<Y_l, D>, <dY_l, D> (and <d2Y_l, D>) for every adjoint vector D of every l.

    Args:
        angular: (P, L^2, n_comp) from :meth:`hybridpot.descriptors.so3.PairBasis.angular_stack`.
        adjoints: list over l of (P, S_l, 2l + 1): the vectors D, already gathered per pair.

    Returns:
        (P, sum_l S_l, n_comp), l-major.
    """
    blocks = [(angular[:, l * l : (l + 1) * (l + 1)], d) for l, d in enumerate(adjoints) if d.shape[1]]
    if torch.compiler.is_compiling():
        # a product and a sum over m, which torch.compile fuses with the gathers of D
        return torch.cat([(d.unsqueeze(3) * a.unsqueeze(1)).sum(2) for a, d in blocks], dim=1)
    return torch.cat([torch.bmm(d, a) for a, d in blocks], dim=1)  # faster than the above when run eagerly


def _block(coefficients: torch.Tensor, l: int) -> torch.Tensor:
    """The (..., nu, 2l + 1) block of order l."""
    return coefficients[..., l * l : (l + 1) * (l + 1)]


def gathered_blocks(coefficients: torch.Tensor, index: torch.Tensor, lmax: int) -> list[torch.Tensor]:
    """coefficients[index] (P, nu, (lmax+1)^2) split by l: a list of (P, nu, 2l + 1) views."""
    rows = coefficients.index_select(0, index)
    return [_block(rows, l) for l in range(lmax + 1)]


class PowerSpectrum(Invariants):
    """LAMMPS-normalised power spectrum (module docstring); K = nu (nu + 1) (lmax + 1) / 2."""

    kind = "power"

    def __init__(self, n_radial: int, lmax: int) -> None:
        super().__init__(n_radial, lmax)
        nu, L = self.n_radial, self.lmax + 1
        n1, n2 = np.tril_indices(nu)  # row-major: (0,0), (1,0), (1,1), (2,0), ...
        l = np.arange(L)
        norms = 2.0 * np.sqrt(2.0) * np.pi / np.sqrt(2.0 * l + 1.0)
        self.n_features = len(n1) * L
        self.n_adjoints = [nu] * L
        self.register_buffer("first", torch.as_tensor(n1), persistent=False)
        self.register_buffer("second", torch.as_tensor(n2), persistent=False)
        self.register_buffer("norms", torch.as_tensor(norms), persistent=False)
        # (L^2, L) 0/1: sums the (l, m) columns over m
        self.register_buffer("sum_over_m", torch.as_tensor(np.equal.outer(l_of_lm(self.lmax), l).astype(np.float64)), persistent=False)

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        """Products of the channel pairs, summed over m by one matrix product (faster than
        a batch of per-atom Gram matrices, and more so the larger lmax)."""
        n, dtype = coefficients.shape[0], coefficients.dtype
        products = coefficients.index_select(1, self.first) * coefficients.index_select(1, self.second)  # (N, pairs, L^2)
        return ((products @ self.sum_over_m.to(dtype)) * self.norms.to(dtype)).reshape(n, self.n_features)

    def adjoints(self, coefficients: torch.Tensor) -> list[torch.Tensor]:
        """The adjoint vectors of order l are the blocks c_{nu l} themselves (nu of them)."""
        return [_block(coefficients, l) for l in range(self.lmax + 1)]

    def pair_adjoints(self, coefficients: torch.Tensor, centers: torch.Tensor) -> list[torch.Tensor]:
        return gathered_blocks(coefficients, centers, self.lmax)  # one gather instead of one per l

    def pair_gradients(self, radial: torch.Tensor, d_radial: torch.Tensor, unit: torch.Tensor, contractions: torch.Tensor) -> torch.Tensor:
        """dp(n1, n2, l) = norm_l [r_hat (w g'_{n1 l} A_{n2 l} + w g'_{n2 l} A_{n1 l}) + w g_{n1 l} G_{n2 l} + w g_{n2 l} G_{n1 l}].

        A_{nl} = <Y_l, c_{nl}>, G_{nl} = <dY_l, c_{nl}> (3 components). The features of one n1
        (n2 = 0..n1) are contiguous columns, so each block comes from slices, without gathers.
        The same loop runs in one of two memory layouts: pairs first when traced by
        torch.compile (which fuses it into one loop over pairs), pairs last when run eagerly, so
        that every operation sweeps long contiguous rows of pairs.
        """
        p, nu, big_l = radial.shape
        c = contractions.reshape(p, big_l, nu, 4) * self.norms.to(radial.dtype).reshape(1, big_l, 1, 1)
        if torch.compiler.is_compiling():
            axis, xyz = 1, 3  # (P, nu, L[, 3])
            a, g, u, du = c[..., 0].transpose(1, 2), c[..., 1:].transpose(1, 2), radial, d_radial
            unit = unit[:, None, None, :]
        else:
            axis, xyz = 0, 2  # (nu, L[, 3], P)
            c = c.permute(2, 1, 3, 0)
            a, g = c[:, :, 0].contiguous(), c[:, :, 1:].contiguous()
            u, du, unit = radial.permute(1, 2, 0).contiguous(), d_radial.permute(1, 2, 0).contiguous(), unit.t()
        rows = []
        for n1 in range(nu):
            lo = [x.narrow(axis, 0, n1 + 1) for x in (u, du, a, g)]
            at = [x.narrow(axis, n1, 1) for x in (u, du, a, g)]
            radial_part = torch.addcmul(at[1] * lo[2], lo[1], at[2]).unsqueeze(xyz)
            tangential = torch.addcmul(at[0].unsqueeze(xyz) * lo[3], lo[0].unsqueeze(xyz), at[3])
            rows.append(torch.addcmul(tangential, radial_part, unit))
        rows = torch.cat(rows, dim=axis)
        return rows.reshape(p, self.n_features, 3) if axis == 1 else rows.reshape(self.n_features, 3, p).permute(2, 0, 1)


def bispectrum_triples(lmax: int) -> list[tuple[int, int, int]]:
    """(l1, l2, l) with l1 <= l2, |l1 - l2| <= l <= min(l1 + l2, lmax), l1 + l2 + l even, sorted."""
    return [
        (l1, l2, l)
        for l1 in range(lmax + 1)
        for l2 in range(l1, lmax + 1)
        for l in range(l2 - l1, min(l1 + l2, lmax) + 1)
        if (l1 + l2 + l) % 2 == 0
    ]


class Bispectrum(Invariants):
    """Real Clebsch-Gordan bispectrum b(n, n', l1, l2, l) (module docstring)."""

    kind = "bispectrum"

    def __init__(self, n_radial: int, lmax: int) -> None:
        super().__init__(n_radial, lmax)
        nu, L = self.n_radial, self.lmax + 1
        self.triples = bispectrum_triples(self.lmax)
        n_tri = len(self.triples)
        for t, (l1, l2, l) in enumerate(self.triples):
            cg = torch.as_tensor(real_clebsch_gordan(l1, l2, l))
            self.register_buffer(f"cg_{t}", cg.reshape(-1, 2 * l + 1), persistent=False)
        keep = [
            (a, b, t)
            for a in range(nu)
            for b in range(nu)
            for t, (l1, l2, l) in enumerate(self.triples)
            if a != b or l2 <= l
        ]
        a, b, t = (np.array(x, dtype=np.int64) for x in zip(*keep))
        self.n_features = len(keep)
        self.register_buffer("feature_index", torch.as_tensor((a * nu + b) * n_tri + t), persistent=False)
        # adjoint vectors, grouped by l: for each triple t, the X slot (block c_{n l}) has
        # D = P_t[n'] (nu vectors of order l), the Y slot (c_{n' l1}) Q1_t[n, n'] (nu^2 of order l1),
        # the Z slot (c_{n' l2}) Q2_t[n, n'] (nu^2 of order l2). Order within an l group: X vectors
        # of all triples with that l, then Y, then Z (see adjoints()).
        counts = [0] * L
        x_off, y_off, z_off = {}, {}, {}
        for kind_off, size, l_of in ((x_off, nu, 2), (y_off, nu * nu, 0), (z_off, nu * nu, 1)):
            for tt, triple in enumerate(self.triples):
                lt = triple[l_of]
                kind_off[tt] = counts[lt]
                counts[lt] += size
        self.n_adjoints = counts
        offset = np.cumsum([0] + counts)[:-1]
        l1s, l2s, ls = (np.array([tr[i] for tr in self.triples])[t] for i in range(3))
        # slot f of feature k (entry f * K + k; f = X, Y, Z): its radial block nu * L + l and its
        # adjoint vector (index in the l-major concatenation of adjoints())
        slot_radial = np.concatenate([a * L + ls, b * L + l1s, b * L + l2s])
        slot_adjoint = np.concatenate(
            [
                offset[ls] + np.array([x_off[tt] for tt in t]) + b,
                offset[l1s] + np.array([y_off[tt] for tt in t]) + a * nu + b,
                offset[l2s] + np.array([z_off[tt] for tt in t]) + a * nu + b,
            ]
        )
        # the Jacobian's scatter (:meth:`jacobians`): slot f of feature k puts adjoint vector slot_adjoint (its 2l + 1
        # entries in the l-major concatenation of adjoints()) at rows (radial block, l m) of column k of (C, K)
        slot_l = slot_radial % L
        entry_offset = np.cumsum([0] + [c * (2 * l + 1) for l, c in enumerate(counts)])[:-1]  # its first entry
        feature = np.tile(np.arange(self.n_features), 3)
        source, target = [], []
        for f in range(3 * self.n_features):
            l, m = slot_l[f], np.arange(2 * slot_l[f] + 1)
            source.append(entry_offset[l] + (slot_adjoint[f] - offset[l]) * (2 * l + 1) + m)
            target.append(((slot_radial[f] // L) * L * L + l * l + m) * self.n_features + feature[f])
        self.register_buffer("jacobian_source", torch.as_tensor(np.concatenate(source)), persistent=False)
        self.register_buffer("jacobian_target", torch.as_tensor(np.concatenate(target)), persistent=False)

    def _coupled(self, t: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """sum_{m1 m2} T_t[m1, m2, m] x[..., m1] y[..., m2] -> (..., 2l + 1)."""
        cg = getattr(self, f"cg_{t}").to(x.dtype)
        outer = (x.unsqueeze(-1) * y.unsqueeze(-2)).flatten(-2)
        return outer @ cg

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        n = coefficients.shape[0]
        per_triple = []
        for t, (l1, l2, l) in enumerate(self.triples):
            coupled = self._coupled(t, _block(coefficients, l1), _block(coefficients, l2))  # (N, n', 2l+1)
            per_triple.append(torch.bmm(_block(coefficients, l), coupled.transpose(1, 2)))  # (N, n, n')
        values = torch.stack(per_triple, dim=-1).reshape(n, -1)
        return values.index_select(1, self.feature_index)

    def adjoints(self, coefficients: torch.Tensor) -> list[torch.Tensor]:
        n, nu = coefficients.shape[0], self.n_radial
        groups: list[list[torch.Tensor]] = [[] for _ in range(self.lmax + 1)]
        x_parts, y_parts, z_parts = [], [], []
        for t, (l1, l2, l) in enumerate(self.triples):
            c1, c2, c = _block(coefficients, l1), _block(coefficients, l2), _block(coefficients, l)
            cg = getattr(self, f"cg_{t}").to(coefficients.dtype).reshape(2 * l1 + 1, 2 * l2 + 1, 2 * l + 1)
            x_parts.append((l, self._coupled(t, c1, c2)))  # P_t[n'] (N, nu, 2l+1)
            # Q1[n, n', m1] = sum_{m2 m} T[m1, m2, m] c_{n' l2 m2} c_{n l m}
            t2 = torch.einsum("abm,jnm->jnab", cg, c)  # (N, nu(n), 2l1+1, 2l2+1)
            y_parts.append((l1, torch.einsum("jnab,jkb->jnka", t2, c2).reshape(n, nu * nu, 2 * l1 + 1)))
            z_parts.append((l2, torch.einsum("jnab,jka->jnkb", t2, c1).reshape(n, nu * nu, 2 * l2 + 1)))
        for parts in (x_parts, y_parts, z_parts):
            for lt, d in parts:
                groups[lt].append(d)
        return [torch.cat(g, dim=1) if g else coefficients.new_zeros((n, 0, 2 * l + 1)) for l, g in enumerate(groups)]

    def jacobians(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(n, C, K) dB_k / dc_c of each atom, C = nu (lmax + 1)^2 in the coefficients' (nu, l m) order: each feature's
        three factor slots receive their adjoint vectors (a scatter by the slot table)."""
        n = coefficients.shape[0]
        flat = torch.cat([d.reshape(n, -1) for d in self.adjoints(coefficients)], dim=1)
        out = coefficients.new_zeros((n, coefficients[0].numel() * self.n_features))
        return out.index_add_(1, self.jacobian_target, flat.index_select(1, self.jacobian_source)).view(n, -1, self.n_features)

    def pair_derivatives(self, coefficients: torch.Tensor, centers: torch.Tensor, basis: "hybridpot.descriptors.so3.PairBasis") -> torch.Tensor:
        """dB[centre] / dr_p = J_centre^T dc_p / dr_p: the atoms' Jacobians (:meth:`jacobians`) times their pairs' dc/dr
        (P, 3, C; ``PairBasis.density_derivatives``), one batched matrix product over the chunk's atoms with their pairs
        padded to the most any has. Its 3 K C multiply-adds per pair replace the 3 (nu + 2 nu^2) adjoint vectors per
        triple that the contractions of the other route gather for every pair (2.6-3.1x faster at nmax 4-6, lmax 4:
        benchmarks/pair_form.py)."""
        dc = basis.density_derivatives()  # (P, 3, C)
        p, n, big_k = dc.shape[0], coefficients.shape[0], self.n_features
        count = torch.bincount(centers, minlength=n)
        width = int(count.max()) if p else 0
        row = centers * width + torch.arange(p, device=centers.device) - (torch.cumsum(count, 0) - count).index_select(0, centers)
        padded = dc.new_zeros((n * width, 3, dc.shape[2])).index_copy_(0, row, dc)
        r = torch.bmm(padded.view(n, width * 3, -1), self.jacobians(coefficients)).view(n * width, 3, big_k)
        return r.index_select(0, row).transpose(1, 2)


def invariants(kind: str, n_radial: int, lmax: int) -> Invariants:
    """The invariants named ``kind`` ("power" or "bispectrum")."""

    if kind == "power":
        return PowerSpectrum(n_radial, lmax)
    if kind == "bispectrum":
        return Bispectrum(n_radial, lmax)
    raise HybridpotError(f"unknown descriptor kind {kind!r}; expected 'power' or 'bispectrum'")
