"""Rotation invariants of the density coefficients: power spectrum and bispectrum.

Both map the coefficients C (N, nu, (lmax+1)^2) of N atoms (nu radial channels: nmax, times the
number of element channels if any; columns (l, m) as in :mod:`hybridpot.descriptors.angular`)
to features B (N, K). Every feature is a product of 2 (power) or 3 (bispectrum) coefficient
blocks c_{nu l}, so its derivative along a pair's dc is a sum over these factors of
<dc_{nu_f l_f}, D_f>, D_f (a vector over m) the partial derivative with respect to that block (its
"adjoint vector", one per factor and atom). Since a pair's dc_{nu lm} / dr =
w g'_{nu l} r_hat Y_lm + w g_{nu l} dY_lm / dr, the pair-form derivative
(:meth:`Invariants.pair_derivatives`) of the power spectrum needs only <Y_l, D> and <dY_l, D> per pair (the
"angular contractions" of :func:`angular_contractions`), combined with the radial functions by
:meth:`PowerSpectrum.pair_gradients`. The bispectrum has many more D than coefficients (nu + 2 nu^2 per
(l1, l2, l) triple), so it scatters them into each atom's Jacobian dB/dc instead and multiplies that with its
pairs' dc/dr (:meth:`Bispectrum.pair_derivatives`).

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
    """Base class: the features of C and their pair-form derivatives.

    Attributes:
        n_radial: nu, the number of radial channels.
        lmax: largest l.
        n_features: K.
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

    def pair_derivatives(self, coefficients: torch.Tensor, centers: torch.Tensor,
                         basis: "hybridpot.descriptors.so3.PairBasis") -> torch.Tensor:  # pragma: no cover - abstract
        """dB[centre] / dr_p (P, K, 3) of P pairs sorted by centre, 1/A times the unit of B.

        Args:
            coefficients: (n, nu, L^2) the density coefficients of the chunk's atoms; centers: (P,) each pair's centre
                in [0, n), non-decreasing.
            basis: the pairs' radial and angular functions, to first order (:class:`hybridpot.descriptors.so3.PairBasis`).
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

    def pair_derivatives(self, coefficients: torch.Tensor, centers: torch.Tensor, basis: "hybridpot.descriptors.so3.PairBasis") -> torch.Tensor:
        """The adjoint vectors of each pair's centre (:meth:`pair_adjoints`) contracted with its Y and dY
        (:func:`angular_contractions`), combined by :meth:`pair_gradients`."""
        contractions = angular_contractions(basis.angular_stack(), self.pair_adjoints(coefficients, centers))
        return self.pair_gradients(basis.radial[0], basis.radial[1], basis.unit, contractions)

    def pair_adjoints(self, coefficients: torch.Tensor, centers: torch.Tensor) -> list[torch.Tensor]:
        """The adjoint vectors of each pair's centre, a list over l of (P, nu, 2l + 1): the derivative of p(n1, n2, l)
        with respect to the block c_{n1 l} is (up to the norm) c_{n2 l}, so they are the centre's blocks themselves."""
        return gathered_blocks(coefficients, centers, self.lmax)  # one gather instead of one per l

    def pair_gradients(self, radial: torch.Tensor, d_radial: torch.Tensor, unit: torch.Tensor, contractions: torch.Tensor) -> torch.Tensor:
        """dp(n1, n2, l) = norm_l [r_hat (w g'_{n1 l} A_{n2 l} + w g'_{n2 l} A_{n1 l}) + w g_{n1 l} G_{n2 l} + w g_{n2 l} G_{n1 l}].

        Args:
            radial, d_radial: (P, nu, L) w g_{nu l}(r_p) and w dg/dr (1/A).
            unit: (P, 3) r_p / |r_p|.
            contractions: (P, L nu, 4): <Y_l, c_{nu l}> and <dY_l/dr, c_{nu l}> (1/A), l-major.

        Returns:
            (P, K, 3), 1/A times the unit of B.

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
    """Real Clebsch-Gordan bispectrum b(n, n', l1, l2, l) (module docstring).

    Its derivatives with respect to its three factor blocks ("slots") are, for t = (l1, l2, l),
    P_t[n'] = T_t : c_{n' l1} c_{n' l2} (slot X, block c_{n l}, order l), Q1_t[n, n'] = T_t : c_{n' l2} c_{n l}
    (slot Y, block c_{n' l1}, order l1) and Q2_t[n, n'] = T_t : c_{n' l1} c_{n l} (slot Z, block c_{n' l2}, order l2).
    :meth:`slot_vectors` forms them by products over groups of triples instead of one loop iteration per triple
    (several small products each, a large part of a small bispectrum's time): P for all triples of one (l1, l2)
    by one product of c_{l1} (x) c_{l2} with their coupling tensors side by side; Q1 and Q2 in two steps, one product
    of all coefficients with the coupling tensors contracted over m (``stage``), then one batched product per l of the
    other factor (Q1 grouped by l2, Q2 by l1). b = <c_{n l}, P_t[n']> is one batched product per l (:meth:`forward`).
    Every product runs over the nonzero blocks of the coupling only, except ``stage``, whose rows span all l (a few
    times the multiply-adds, in one product; it serves the Jacobian, not the features).

    Attributes:
        triples: the (l1, l2, l) in order (:func:`bispectrum_triples`).
        features: (K, 3) (n, n', t) of each column.
    """

    kind = "bispectrum"

    def __init__(self, n_radial: int, lmax: int) -> None:
        super().__init__(n_radial, lmax)
        nu, L = self.n_radial, self.lmax + 1
        self.triples = bispectrum_triples(self.lmax)
        self.features = np.array([(a, b, t) for a in range(nu) for b in range(nu) for t, (_, l2, l) in enumerate(self.triples)
                                  if a != b or l2 <= l], dtype=np.int64).reshape(-1, 3)
        self.n_features = len(self.features)
        order = {"X": 2, "Y": 0, "Z": 1}  # the order of each slot's vectors: (l1, l2, l)[order[slot]]
        entries: dict[tuple[str, int], tuple[int, int, int, int]] = {}  # (slot, t) -> (first flat entry, strides of n, n', m)
        flat = 0
        # slot X, per (l1, l2): P_t[n'] = (c_{n' l1} (x) c_{n' l2}) . T_t for the triples of that (l1, l2) side by side,
        # one product with their coupling tensors (x_coupling_i, ((2 l1 + 1)(2 l2 + 1), S)); flat layout (n', S)
        self.x_groups: list[tuple[int, int, int]] = []  # (l1, l2, S)
        for i, (l1, l2) in enumerate(sorted({triple[:2] for triple in self.triples})):
            members = [t for t, triple in enumerate(self.triples) if triple[:2] == (l1, l2)]
            size = sum(2 * self.triples[t][2] + 1 for t in members)
            offset = 0
            for t in members:
                entries[("X", t)] = (flat + offset, 0, size, 1)
                offset += 2 * self.triples[t][2] + 1
            coupling = np.concatenate([real_clebsch_gordan(*self.triples[t]).reshape((2 * l1 + 1) * (2 * l2 + 1), -1) for t in members], axis=1)
            self.register_buffer(f"x_coupling_{i}", torch.as_tensor(coupling), persistent=False)
            self.x_groups.append((l1, l2, size))
            flat += nu * size
        # slots Y (grouped by l2) and Z (by l1): U_t[m_own, m_other] = sum_m T_t[m1, m2, m] c_{n l m} for all triples by
        # one product with ``stage`` (L^2, columns), each group's columns (triples, m_own) major and m_other minor; then
        # one batched product per group with c_{n' g}: flat layout (n, triples, m_own, n')
        self.groups: list[tuple[str, int, int, int]] = []  # (slot, g, first stage column, R)
        rows, cols, values = [], [], []
        column = 0
        for slot in ("Y", "Z"):
            for g in range(L):
                members = [t for t, triple in enumerate(self.triples) if triple[1 if slot == "Y" else 0] == g]
                if not members:
                    continue
                size = sum(2 * self.triples[t][order[slot]] + 1 for t in members)
                offset = 0
                for t in members:
                    l1, l2, l = self.triples[t]
                    cg = real_clebsch_gordan(l1, l2, l)
                    m1, m2, m = np.nonzero(cg)
                    own, other = (m1, m2) if slot == "Y" else (m2, m1)
                    rows.append(l * l + m)
                    cols.append(column + (offset + own) * (2 * g + 1) + other)
                    values.append(cg[m1, m2, m])
                    entries[(slot, t)] = (flat + offset * nu, size * nu, 1, nu)
                    offset += 2 * self.triples[t][order[slot]] + 1
                self.groups.append((slot, g, column, size))
                column += (2 * g + 1) * size
                flat += nu * size * nu
        stage = np.zeros((L * L, column))
        stage[np.concatenate(rows), np.concatenate(cols)] = np.concatenate(values)
        self.register_buffer("stage", torch.as_tensor(stage), persistent=False)
        # forward: P_t[n', m] gathered per l as (2l + 1, n', triples of that l), the triples in the order of l
        by_l = [[t for t, triple in enumerate(self.triples) if triple[2] == l] for l in range(L)]
        self.forward_widths = [len(members) for members in by_l]
        source = [entries[("X", t)][0] + b * entries[("X", t)][2] + m
                  for l, members in enumerate(by_l) for m in range(2 * l + 1) for b in range(nu) for t in members]
        self.register_buffer("forward_source", torch.as_tensor(np.array(source, dtype=np.int64)), persistent=False)
        position = np.argsort(np.concatenate([np.array(m, dtype=np.int64) for m in by_l]))  # triple -> its place in that order
        a, b, t = self.features.T
        self.register_buffer("feature_index", torch.as_tensor((a * nu + b) * len(self.triples) + position[t]), persistent=False)
        # the Jacobian's scatter (:meth:`jacobians`): each slot of feature k puts its vector (2 l_slot + 1 entries of
        # the flat slot vectors) at rows (channel, l_slot, m) of column k of (C, K); the X slot's channel is n, the others' n'
        source, target = [], []
        for slot in ("X", "Y", "Z"):
            for k, (a, b, t) in enumerate(self.features):
                l_slot = self.triples[t][order[slot]]
                first, stride_a, stride_b, stride_m = entries[(slot, t)]
                m = np.arange(2 * l_slot + 1)
                source.append(first + a * stride_a + b * stride_b + m * stride_m)
                target.append(((a if slot == "X" else b) * L * L + l_slot * l_slot + m) * self.n_features + k)
        self.register_buffer("jacobian_source", torch.as_tensor(np.concatenate(source)), persistent=False)
        self.register_buffer("jacobian_target", torch.as_tensor(np.concatenate(target)), persistent=False)

    def slot_vectors(self, coefficients: torch.Tensor, slots: str = "XYZ") -> torch.Tensor:
        """The derivatives with respect to the factor blocks (class docstring) of the ``slots`` asked ("X" or "XYZ"),
        flattened per atom: (N, entries), X first (per (l1, l2): (n', triples, m)), then Y and Z (per group: (n,
        triples, m, n'))."""
        n, nu, dtype = coefficients.shape[0], self.n_radial, coefficients.dtype
        parts = []
        for i, (l1, l2, s) in enumerate(self.x_groups):
            outer = (_block(coefficients, l1).unsqueeze(-1) * _block(coefficients, l2).unsqueeze(-2)).flatten(-2)
            parts.append((outer @ getattr(self, f"x_coupling_{i}").to(dtype)).reshape(n, nu * s))
        if slots != "X":
            first = coefficients @ self.stage.to(dtype)  # (N, nu, columns)
            for _, g, column, r in self.groups:
                u = first[:, :, column : column + r * (2 * g + 1)].reshape(n, nu * r, 2 * g + 1)
                parts.append(torch.bmm(u, _block(coefficients, g).transpose(1, 2)).reshape(n, nu * r * nu))
        return torch.cat(parts, dim=1)

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        n, nu = coefficients.shape[0], self.n_radial
        gathered = self.slot_vectors(coefficients, "X").index_select(1, self.forward_source)
        values, start = [], 0
        for l, width in enumerate(self.forward_widths):
            if width:
                p = gathered[:, start : start + (2 * l + 1) * nu * width].view(n, 2 * l + 1, nu * width)
                values.append(torch.bmm(_block(coefficients, l), p).view(n, nu, nu, width))
                start += (2 * l + 1) * nu * width
        return torch.cat(values, dim=3).reshape(n, -1).index_select(1, self.feature_index)

    def jacobians(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(n, C, K) dB_k / dc_c of each atom, C = nu (lmax + 1)^2 in the coefficients' (nu, l m) order: each feature's
        three slots receive their vectors (:meth:`slot_vectors`, a scatter by the slot table)."""
        n = coefficients.shape[0]
        flat = self.slot_vectors(coefficients)
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
