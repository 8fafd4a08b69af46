"""SO(3) descriptors: the numeric contract :func:`so3_descriptors` and the :class:`SO3` module.

Density coefficients of atom i (unit of the radial functions: A^(3/2) for ``basis="lammps"``,
A^(-3/2) for ``basis="bessel"``)

    c_{nu, lm}(i) = sum_{p: centers[p] = i} w_p g_{n l}(|r_p|) Y_lm(r_p / |r_p|),     nu = channel_p * nmax + n,

over the pairs p with vector r_p = x_j - x_i (Angstrom, periodic images included), r_p < r_c,
neighbour weight w_p and (optionally) neighbour channel channel_p (one channel: nu = n). The
invariants (:mod:`hybridpot.descriptors.invariants`) turn them into features B (N, K).

Derivatives in *pair form*: dB[p] = dB[centers[p]] / dr_p, shape (P, K, 3), the derivative of the
features of the centre atom with respect to the pair vector. Since r_p = x_j - x_i + shift,

    dB_i / dx_j = sum_{p: centers[p] = i, neighbour j} dB[p]   (j != i),
    dB_i / dx_i = -sum_{p: centers[p] = i} dB[p]                 (plus the terms above if j = i by periodicity),

and the virial of feature k (eV units when multiplied by dE/dB_k) is W_k = -sum_p r_p (x) dB[p, k].

Every path uses the same per-pair basis (:func:`pair_basis`: w g_nl, its radial derivatives,
Y_lm and its gradient/Hessian from sphericart) and the same angular contractions:

* values and autograd (``gradients=False``): c by :class:`_Density` (a custom autograd function,
  pairs processed in chunks), then B = invariants(c) in plain torch. :meth:`SO3.forward` passes
  one direction of every pair and lets it also stand for its reverse (``mirror``: the basis of
  -r_p is (-1)^l times that of r_p), which halves the per-pair work. Its backward receives
  dE/dc and returns dE/dr_p = sum_{nu l} [w g'_{nu l} r_hat <Y_l, dE/dc_{nu l}> + w g_{nu l} <dY_l, dE/dc_{nu l}>]
  per pair, never forming dB (:class:`_DensityVJP`, radial sums first: :func:`_vjp_chunk`; it is
  differentiable again, for training on forces and for Hessian-vector products).
* pair form (``gradients=True``): :meth:`Invariants.pair_derivatives` of each chunk. The derivative of an
  invariant is a sum over its factor blocks c_{nu l}, each contracted with an adjoint vector D computed per
  atom, so a pair contributes w g'_{nu l} r_hat <Y_l, D> + w g_{nu l} <dY_l, D>
  (the power spectrum: few D per atom, contracted per pair); the bispectrum, whose D outnumber the
  coefficients, forms each atom's Jacobian dB/dc from them and multiplies it with the pairs' dc/dr in one
  batched matrix product per chunk. Pairs are sorted by centre and processed in chunks of whole atoms, one
  pass: c, B and dB of a chunk together.

The per-chunk kernels can run through ``torch.compile`` (``compiled=True``): the same functions,
fused by inductor into a few loops (faster for the derivatives; benchmarks/descriptors.py measures it).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from hybridpot.backends.julia import require_julia, so3_power_spectrum
from hybridpot.descriptors.angular import l_of_lm, spherical_harmonics
from hybridpot.descriptors.invariants import Invariants, invariants
from hybridpot.descriptors.radial import (
    LAMMPS_EXPORT_MIN_DISTANCE,
    LAMMPS_MAX_NMAX,
    LAMMPS_MAX_PANELS,
    LammpsRadialBasis,
    RadialBasis,
    max_lammps_alpha,
    radial_basis,
)
from hybridpot.descriptors.spline import RadialSpline, tabulate
from hybridpot.errors import ConfigError, HybridpotError, StructureError
from hybridpot.neighbors import PairGraph, build_graph
from hybridpot.registry import DescriptorType
from hybridpot.settings import Settings, option
from hybridpot.system import AtomicSystem

#: Pairs processed at once, times the width nu (lmax + 1)^2 of a pair's density contribution: bounds
#: the temporary memory and keeps the working set in cache (2048 pairs at nu = 4, lmax = 4).
CHUNK_BUDGET = 204800


def default_chunk_size(n_radial: int, lmax: int) -> int:
    """Pairs per chunk for nu = ``n_radial`` radial channels: CHUNK_BUDGET / (nu (lmax + 1)^2), at
    least 128 (a fixed chunk of 2048 pairs was slower at large nmax and lmax, where a chunk's
    temporaries outgrow the cache)."""
    return max(128, CHUNK_BUDGET // (n_radial * (lmax + 1) ** 2))


# ------------------------------------------------------------------------------------ per pair


@dataclass
class PairBasis:
    """Per-pair radial and angular functions (P pairs, nu radial channels, L = lmax + 1).

    Attributes:
        radial: [w g, w dg/dr, w d2g/dr2] up to the order asked, each (P, nu, L); zero outside the
            pair's channel and for r >= r_c.
        angular: [Y, dY/dr, d2Y/dr dr] up to the order, (P, L^2), (P, 3, L^2), (P, 3, 3, L^2).
        unit: (P, 3) r / |r|.
        distance: (P,) |r|, Angstrom.
    """

    radial: list[torch.Tensor]
    angular: list[torch.Tensor]
    unit: torch.Tensor
    distance: torch.Tensor

    def angular_stack(self) -> torch.Tensor:
        """(P, L^2, 1 + 3 + 9 (order 2)) Y, dY and d2Y side by side, for the contractions."""
        parts = [self.angular[0].unsqueeze(2)] + [a.flatten(1, a.dim() - 2).transpose(1, 2) for a in self.angular[1:]]
        return torch.cat(parts, dim=2)

    def density_derivatives(self) -> torch.Tensor:
        """(P, 3, nu L^2) the pair's density contribution's derivative along x, y, z, dc_{nu lm} / dr_p =
        w g'_{nu l} Y_lm r_hat + w g_{nu l} dY_lm / dr (order >= 1; 1/A)."""
        (u, du), (y, dy), lmax = self.radial[:2], self.angular[:2], self.radial[0].shape[2] - 1
        along_r = radial_times_angular(du, y, lmax).flatten(1)  # (P, C)
        parts = [radial_times_angular(u, dy[:, a], lmax).flatten(1) for a in range(3)]
        return torch.stack(parts, dim=1).addcmul_(self.unit.unsqueeze(2), along_r.unsqueeze(1))


def pair_basis(
    vectors: torch.Tensor,
    weights: torch.Tensor | None,
    channels: torch.Tensor | None,
    n_channels: int,
    spline: RadialSpline,
    order: int,
    distance: torch.Tensor | None = None,
) -> PairBasis:
    """w_p g_nl(r_p) and Y_lm(r_p) (with derivatives up to ``order``) for every pair.

    Args:
        vectors: (P, 3) r_p, Angstrom, non-zero.
        weights: (P,) neighbour weights w_p, or None for w_p = 1.
        channels: (P,) int64 neighbour channel, or None for a single density.
        n_channels: number of channels (1 if ``channels`` is None).
        spline: the tabulated radial functions.
        order: 0, 1 or 2.
        distance: (P,) |r_p| if already known. Inside a compiled kernel, pass it in: computed
            there, inductor re-evaluates the norm for every radial function.
    """
    distance = torch.linalg.vector_norm(vectors, dim=1) if distance is None else distance
    w = (distance < spline.rcut).to(vectors.dtype)
    w = (w if weights is None else weights.to(vectors.dtype) * w).reshape(-1, 1, 1)
    radial = [w * f for f in spline(distance.clamp(max=spline.rcut), order)]
    if channels is not None and n_channels > 1:
        radial = [_to_channels(f, channels, n_channels) for f in radial]
    angular = spherical_harmonics(vectors, spline.lmax, order)
    return PairBasis(radial, angular, vectors / distance.unsqueeze(1), distance)


def _to_channels(values: torch.Tensor, channels: torch.Tensor, n_channels: int) -> torch.Tensor:
    """(P, nmax, L) -> (P, n_channels * nmax, L), zero outside each pair's channel."""
    p, nmax, big_l = values.shape
    out = values.new_zeros((p, n_channels, nmax, big_l))
    out[torch.arange(p, device=values.device), channels] = values
    return out.reshape(p, n_channels * nmax, big_l)


@lru_cache(maxsize=None)
def _spread_matrix(lmax: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(L, L^2) 0/1 matrix: entry (l, lm) is 1 where column lm has order l (built once per setting)."""
    index = torch.as_tensor(l_of_lm(lmax), device=device)
    return (index.unsqueeze(0) == torch.arange(lmax + 1, device=device).unsqueeze(1)).to(dtype)


def _expand_l(radial: torch.Tensor, lmax: int) -> torch.Tensor:
    """(P, nu, L) -> (P, nu, L^2): each l repeated over its 2l + 1 values of m (a product with a
    0/1 matrix: faster than a gather along the last axis when run eagerly)."""
    return radial @ _spread_matrix(lmax, radial.device, radial.dtype)


def radial_times_angular(radial: torch.Tensor, angular: torch.Tensor, lmax: int) -> torch.Tensor:
    """r_{nu l} a_lm for every nu and (l, m): (P, nu, L) and (P, L^2) -> (P, nu, L^2).

    Eagerly through :func:`_expand_l`; under torch.compile one product per l (which inductor fuses
    into one loop, faster than the expanded product there)."""
    if torch.compiler.is_compiling():
        return torch.cat([radial[..., l : l + 1] * angular[:, None, l * l : (l + 1) * (l + 1)] for l in range(lmax + 1)], dim=2)
    return _expand_l(radial, lmax) * angular.unsqueeze(1)


def radial_sums(d: torch.Tensor, radials: Sequence[torch.Tensor], lmax: int) -> list[torch.Tensor]:
    """sum_nu d_{nu lm} r_{nu l} for each r in ``radials``: (P, nu, L^2) and (P, nu, L) each -> (P, L^2) each
    (layouts as in :func:`radial_times_angular`).

    Eagerly one product with the expanded r per radial function; under torch.compile the radial
    functions are stacked and summed in one loop per l, which reads d once for all of them
    (a faster backward kernel than separate sums)."""
    if torch.compiler.is_compiling():
        stacked = torch.stack(list(radials), dim=3)  # (P, nu, L, k)
        sums = torch.cat([(d[..., l * l : (l + 1) * (l + 1)].unsqueeze(3) * stacked[:, :, l : l + 1]).sum(1) for l in range(lmax + 1)], dim=1)
        return list(sums.unbind(2))
    return [(d * _expand_l(radial, lmax)).sum(1) for radial in radials]


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(n, s + size)) for s in range(0, max(n, 1), size)] if n else []


# ------------------------------------------------------------------------- coefficient kernels
# Chunk kernels: pure functions of a chunk of pairs, written so that torch.compile can fuse them
# (no in-place updates of inputs other than the final copy, no out= into views). They run as they
# are (eager) or compiled (``compiled=True``); the few layout choices that favour one or the other
# are made inside :func:`radial_times_angular`, :func:`radial_sums` and
# :func:`hybridpot.descriptors.invariants.angular_contractions`.

_COMPILED: dict[Callable, Callable] = {}


def _kernel(fn: Callable, compiled: bool) -> Callable:
    """``fn`` itself, or its torch.compile'd version (one per function, shapes dynamic).

    The generated CPU code runs on one thread (``cpp.threads = 1``): a chunk is too small to
    share, and inductor's parallel loops over it were several times slower than one thread.
    Eager operations between the kernels still use torch's threads."""
    if not compiled:
        return fn
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True, options={"cpp.threads": 1})
    return _COMPILED[fn]


@lru_cache(maxsize=None)
def _parity(lmax: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(L^2,) (-1)^l of each (l, m) column: Y_lm(-r) = (-1)^l Y_lm(r)."""
    return torch.as_tensor([(-1.0) ** l for l in l_of_lm(lmax)], device=device, dtype=dtype)


def _side_weights(weights: torch.Tensor, mirror_weights: torch.Tensor | None, parity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-pair factors of the two densities a pair feeds: w_p (P, 1, 1) for its centre and, with a
    mirror, w'_p (-1)^l (P, 1, L^2) for its neighbour (the reversed pair -r_p)."""
    a = weights.unsqueeze(1).unsqueeze(2)
    return a, None if mirror_weights is None else (mirror_weights.unsqueeze(1) * parity).unsqueeze(1)


def _value_chunk(
    vectors: torch.Tensor, distance: torch.Tensor, weights: torch.Tensor, mirror_weights: torch.Tensor | None, parity: torch.Tensor, spline: RadialSpline
) -> tuple[torch.Tensor, ...]:
    """Per-pair density contributions (P, nmax, L^2): w g_nl Y_lm to the centre's density row and,
    with a mirror, w' (-1)^l g_nl Y_lm to the neighbour's."""
    basis = pair_basis(vectors, None, None, 1, spline, 0, distance)
    g, y = basis.radial[0], basis.angular[0]
    a = radial_times_angular(g * weights.unsqueeze(1).unsqueeze(2), y, spline.lmax)  # w g first: bit for bit the pair form's c
    if mirror_weights is None:
        return (a,)
    return a, radial_times_angular(g * mirror_weights.unsqueeze(1).unsqueeze(2), y * parity, spline.lmax)


def _effective_adjoint(
    grad: torch.Tensor, slots: torch.Tensor, weights: torch.Tensor, mirror_slots: torch.Tensor | None, mirror_weights: torch.Tensor | None, parity: torch.Tensor
) -> torch.Tensor:
    """D_p (P, nmax, L^2) = w dE/dc[slot] (+ w' (-1)^l dE/dc[mirror slot]): what multiplies
    d(g_nl Y_lm)/dr_p in dE/dr_p. ``grad``: dE/dc by density row, (N n_channels, nmax, L^2)."""
    a, b = _side_weights(weights, mirror_weights, parity)
    d = grad.index_select(0, slots) * a
    return d if b is None else d + grad.index_select(0, mirror_slots) * b


def _vjp_chunk(
    vectors: torch.Tensor,
    distance: torch.Tensor,
    slots: torch.Tensor,
    weights: torch.Tensor,
    mirror_slots: torch.Tensor | None,
    mirror_weights: torch.Tensor | None,
    grad: torch.Tensor,
    parity: torch.Tensor,
    spline: RadialSpline,
) -> torch.Tensor:
    """dE/dr_p (P, 3) of a chunk from dE/dc by density row (N n_channels, nmax, L^2).

    With D from :func:`_effective_adjoint`, H_lm = sum_n D_{n lm} g_{n l} and H'_lm = sum_n D_{n lm}
    g'_{n l}: dE/dr_p = r_hat sum_lm H'_lm Y_lm + sum_lm H_lm dY_lm/dr (the radial sum first: no
    per-pair matrix products).
    """
    basis = pair_basis(vectors, None, None, 1, spline, 1, distance)
    d = _effective_adjoint(grad, slots, weights, mirror_slots, mirror_weights, parity)
    h, dh = radial_sums(d, basis.radial, spline.lmax)  # (P, L^2) each
    y, dy = basis.angular
    return (dh * y).sum(1, keepdim=True) * basis.unit + (dy * h.unsqueeze(1)).sum(2)


def _gradient_chunk(
    vectors: torch.Tensor,
    weights: torch.Tensor,
    channels: torch.Tensor | None,
    local: torch.Tensor,
    n_local: int,
    n_channels: int,
    spline: RadialSpline,
    invariants: Invariants,
    out: torch.Tensor,
) -> torch.Tensor:
    """Features of ``n_local`` atoms whose pairs are all in this chunk (centres ``local``), and their pair-form derivatives copied into ``out``."""
    basis = pair_basis(vectors, weights, channels, n_channels, spline, 1)
    c = radial_times_angular(basis.radial[0], basis.angular[0], spline.lmax)
    coefficients = torch.index_add(c.new_zeros((n_local,) + c.shape[1:]), 0, local, c)
    out.copy_(invariants.pair_derivatives(coefficients, local, basis))
    return invariants(coefficients)


@dataclass(frozen=True)
class Mirror:
    """The reversed direction of every pair of a half list (see :func:`so3_descriptors`).

    Attributes:
        centers: (P,) int64 the pairs' neighbour atoms j (centres of the reversed pairs -r_p).
        weights: (P,) the weights of the pairs' centre atoms i (as neighbours of j).
        channels: (P,) int64 channels of the centre atoms, or None for one density.
    """

    centers: torch.Tensor
    weights: torch.Tensor
    channels: torch.Tensor | None = None


@dataclass(frozen=True)
class _PairSet:
    """The non-differentiable inputs of the density (kept together for the autograd functions).

    The density is handled by rows: c (N, n_channels nmax, L^2) viewed as (N n_channels, nmax, L^2),
    row ``slot = atom * n_channels + channel``; a pair adds to the row of its centre and its
    neighbour's channel (and, with a mirror, to the row of its neighbour and its centre's channel).
    """

    slots: torch.Tensor
    weights: torch.Tensor
    mirror_slots: torch.Tensor | None
    mirror_weights: torch.Tensor | None
    n_atoms: int
    n_channels: int
    spline: RadialSpline
    chunk_size: int
    compiled: bool

    @staticmethod
    def build(centers: torch.Tensor, weights: torch.Tensor, channels: torch.Tensor | None, mirror: Mirror | None, n_atoms: int,
              n_channels: int, spline: RadialSpline, chunk_size: int, compiled: bool) -> "_PairSet":
        def slots(atoms: torch.Tensor, ch: torch.Tensor | None) -> torch.Tensor:
            return atoms if ch is None or n_channels == 1 else atoms * n_channels + ch

        if mirror is None:
            return _PairSet(slots(centers, channels), weights, None, None, n_atoms, n_channels, spline, chunk_size, compiled)
        return _PairSet(slots(centers, channels), weights, slots(mirror.centers, mirror.channels), mirror.weights.to(weights.dtype),
                        n_atoms, n_channels, spline, chunk_size, compiled)

    def part(self, part: slice) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(slots, weights, mirror slots, mirror weights) of a chunk."""
        mirror = self.mirror_slots is not None
        return self.slots[part], self.weights[part], self.mirror_slots[part] if mirror else None, self.mirror_weights[part] if mirror else None

    def parity(self, like: torch.Tensor) -> torch.Tensor:
        return _parity(self.spline.lmax, like.device, like.dtype)

    def empty_rows(self, like: torch.Tensor) -> torch.Tensor:
        """Zero density rows (N n_channels, nmax, L^2) with the dtype and device of ``like``."""
        nmax, lmax = self.spline.nmax, self.spline.lmax
        return like.new_zeros((self.n_atoms * self.n_channels, nmax, (lmax + 1) ** 2))

    def as_coefficients(self, rows: torch.Tensor) -> torch.Tensor:
        """(N n_channels, nmax, L^2) rows -> c (N, nu, L^2)."""
        return rows.view(self.n_atoms, self.n_channels * self.spline.nmax, rows.shape[2])

    def as_rows(self, coefficients: torch.Tensor) -> torch.Tensor:
        """c (N, nu, L^2) -> (N n_channels, nmax, L^2)."""
        return coefficients.reshape(self.n_atoms * self.n_channels, self.spline.nmax, coefficients.shape[2])

    def scatter(self, rows: torch.Tensor, part: slice, values: Sequence[torch.Tensor]) -> None:
        """Add a chunk's contributions (to the centres' rows and, with a mirror, the neighbours') into ``rows``."""
        slots, _, mirror_slots, _ = self.part(part)
        rows.index_add_(0, slots, values[0])
        if mirror_slots is not None:
            rows.index_add_(0, mirror_slots, values[1])


def _density(vectors: torch.Tensor, pairs: _PairSet) -> torch.Tensor:
    """c (N, nu, L^2) from the pairs, chunk by chunk."""
    rows = pairs.empty_rows(vectors)
    kernel, parity, distances = _kernel(_value_chunk, pairs.compiled), pairs.parity(vectors), torch.linalg.vector_norm(vectors, dim=1)
    for part in _chunks(vectors.shape[0], pairs.chunk_size):
        _, weights, _, mirror_weights = pairs.part(part)
        pairs.scatter(rows, part, kernel(vectors[part], distances[part], weights, mirror_weights, parity, pairs.spline))
    return pairs.as_coefficients(rows)


def _density_vjp(grad: torch.Tensor, vectors: torch.Tensor, pairs: _PairSet) -> torch.Tensor:
    """dE/dr_p (P, 3) from dE/dc (N, nu, L^2)."""
    out = torch.empty_like(vectors)
    kernel, parity, rows = _kernel(_vjp_chunk, pairs.compiled), pairs.parity(vectors), pairs.as_rows(grad)
    distances = torch.linalg.vector_norm(vectors, dim=1)
    for part in _chunks(vectors.shape[0], pairs.chunk_size):
        out[part] = kernel(vectors[part], distances[part], *pairs.part(part), rows, parity, pairs.spline)
    return out


def _density_jvp(tangent: torch.Tensor, vectors: torch.Tensor, pairs: _PairSet) -> torch.Tensor:
    """sum_p (dc_p / dr_p) . t_p, (N, nu, L^2): the directional derivative of c along pair tangents t (P, 3)."""
    rows = pairs.empty_rows(vectors)
    lmax, parity = pairs.spline.lmax, pairs.parity(vectors)
    for part in _chunks(vectors.shape[0], pairs.chunk_size):
        basis = pair_basis(vectors[part], None, None, 1, pairs.spline, 1)
        t = tangent[part]
        along = (basis.unit * t).sum(1)
        y, dy = basis.angular[0], basis.angular[1]
        dc = radial_times_angular(basis.radial[1], along.unsqueeze(1) * y, lmax)
        dc = dc + radial_times_angular(basis.radial[0], torch.einsum("pak,pa->pk", dy, t), lmax)
        _, weights, _, mirror_weights = pairs.part(part)
        a, b = _side_weights(weights, mirror_weights, parity)
        pairs.scatter(rows, part, (dc * a,) if b is None else (dc * a, dc * b))
    return pairs.as_coefficients(rows)


def _density_hvp(grad: torch.Tensor, tangent: torch.Tensor, vectors: torch.Tensor, pairs: _PairSet) -> torch.Tensor:
    """sum_a t_{p,a} d(dE/dr_{p,a})/dr_p at fixed dE/dc: the second-derivative term, (P, 3).

    dE/dr_p = r_hat A + V with A = sum_lm H'_lm Y_lm, V = sum_lm H_lm dY_lm (see :func:`_vjp_chunk`);
    with H'' = sum_n D g'', t_r = r_hat . t, W' = sum_lm H'_lm dY_lm and the Hessians d2Y_lm:
    d(dE/dr_p) t = A (t - r_hat t_r) / r + r_hat (t_r sum_lm H''_lm Y_lm + W' . t) + t_r W' + sum_lm H_lm d2Y_lm t.
    """
    out = torch.empty_like(vectors)
    lmax, parity, grad_rows = pairs.spline.lmax, pairs.parity(vectors), pairs.as_rows(grad)
    for part in _chunks(vectors.shape[0], pairs.chunk_size):
        basis = pair_basis(vectors[part], None, None, 1, pairs.spline, 2)
        d = _effective_adjoint(grad_rows, *pairs.part(part), parity)
        h, dh, d2h = radial_sums(d, basis.radial, lmax)  # (P, L^2) each
        y, dy, d2y = basis.angular
        unit, r, t = basis.unit, basis.distance, tangent[part]
        t_r = (t * unit).sum(1, keepdim=True)
        a = (dh * y).sum(1, keepdim=True)
        w = (dy * dh.unsqueeze(1)).sum(2)  # W' (P, 3)
        hess = (d2y * h[:, None, None, :]).sum(3)  # (P, 3, 3)
        res = a * (t - t_r * unit) / r.unsqueeze(1)
        res = res + unit * (t_r * (d2h * y).sum(1, keepdim=True) + (w * t).sum(1, keepdim=True)) + t_r * w
        out[part] = res + torch.einsum("pab,pb->pa", hess, t)
    return out


class _Density(torch.autograd.Function):
    """c (N, nu, L^2) from pair vectors; backward by :func:`_density_vjp`."""

    @staticmethod
    def forward(ctx: Any, vectors: torch.Tensor, pairs: _PairSet) -> torch.Tensor:
        ctx.save_for_backward(vectors)
        ctx.pairs = pairs
        return _density(vectors.detach(), pairs)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        (vectors,) = ctx.saved_tensors
        return _DensityVJP.apply(grad, vectors, ctx.pairs), None


class _DensityVJP(torch.autograd.Function):
    """dE/dr_p from dE/dc; differentiable in both (JVP of c, and the Hessian term)."""

    @staticmethod
    def forward(ctx: Any, grad: torch.Tensor, vectors: torch.Tensor, pairs: _PairSet) -> torch.Tensor:
        ctx.save_for_backward(grad, vectors)
        ctx.pairs = pairs
        return _density_vjp(grad.detach(), vectors.detach(), pairs)

    @staticmethod
    def backward(ctx: Any, tangent: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        grad, vectors = ctx.saved_tensors
        d_grad = _density_jvp(tangent, vectors.detach(), ctx.pairs) if ctx.needs_input_grad[0] else None
        d_vectors = _density_hvp(grad.detach(), tangent, vectors.detach(), ctx.pairs) if ctx.needs_input_grad[1] else None
        return d_grad, d_vectors, None


# ---------------------------------------------------------------------------- the contract


def so3_descriptors(
    vectors: torch.Tensor,
    centers: torch.Tensor,
    weights: torch.Tensor,
    channels: torch.Tensor | None,
    n_atoms: int,
    spline: RadialSpline,
    invariants: Invariants,
    gradients: bool = False,
    chunk_size: int | None = None,
    out: torch.Tensor | None = None,
    compiled: bool = False,
    mirror: Mirror | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SO(3) descriptors of N atoms from their pairs (the numeric contract of hybridpot).

    Args:
        vectors: (P, 3) pair vectors r_p = x_j - x_i (+ periodic shift), Angstrom, non-zero; pairs
            with |r_p| >= r_c contribute nothing. Float32 or float64, any device; everything is
            computed in this dtype on this device.
        centers: (P,) int64 centre atom i of each pair (any order).
        weights: (P,) neighbour weight w_p (e.g. the LAMMPS ``welems`` of atom j's element).
        channels: (P,) int64 neighbour channel in [0, n_channels), or None for one density.
            n_channels = invariants.n_radial / spline.nmax.
        n_atoms: N.
        spline: tabulated radial functions g_nl (:func:`hybridpot.descriptors.spline.tabulate`).
        invariants: power spectrum or bispectrum on nu = n_channels * nmax radial channels.
            ``spline`` and ``invariants`` are modules: put them on the device of ``vectors``
            (``SO3.to(device)`` does).
        gradients: also return the pair-form derivatives.
        chunk_size: pairs processed at once (default: :func:`default_chunk_size`).
        out: optional (P, K, 3) tensor to write the derivatives into (``gradients=True``).
        compiled: run the chunk kernels through ``torch.compile`` (same code; the first call per
            parameter set compiles for 10-30 s; needs a C++ compiler on CPU, triton on CUDA).
        mirror: the pairs are a *half* list: pair p also stands for its reverse, the pair
            -r_p of centre ``mirror.centers[p]`` (atom j) with weight ``mirror.weights[p]`` and channel
            ``mirror.channels[p]`` (those of atom i). Its basis is computed once for both directions
            (Y_lm(-r) = (-1)^l Y_lm(r)): about half the work of the full list. Only with
            ``gradients=False``; dE/dr_p then holds the derivative through both directions.

    Returns:
        B (N, K); differentiable with respect to ``vectors`` when ``gradients`` is False (the
        backward never forms dB). With ``gradients=True`` (no autograd): (B, dB), dB (P, K, 3) with
        dB[p] = dB[centers[p]] / dr_p. Hence dB_i/dx_j = sum over pairs (i, j) of dB[p],
        dB_i/dx_i = -sum_{p: centers[p] = i} dB[p], virial of feature k = -sum_p r_p (x) dB[p, k].
    """
    nu = invariants.n_radial
    if nu % spline.nmax or (channels is None and nu != spline.nmax) or invariants.lmax != spline.lmax:
        raise HybridpotError(f"invariants on {nu} radial channels, lmax {invariants.lmax} do not fit the radial table (nmax {spline.nmax}, lmax {spline.lmax})")
    n_channels = nu // spline.nmax
    chunk_size = default_chunk_size(nu, spline.lmax) if chunk_size is None else chunk_size
    if not gradients:
        pairs = _PairSet.build(centers, weights.to(vectors.dtype), channels, mirror, int(n_atoms), n_channels, spline, int(chunk_size), bool(compiled))
        return invariants(_Density.apply(vectors, pairs))
    if mirror is not None:
        raise HybridpotError("the pair form (gradients=True) needs the full pair list, not a half list with a mirror")
    p, k = vectors.shape[0], invariants.n_features
    if out is None:
        out = vectors.new_empty((p, k, 3))
    elif out.shape != (p, k, 3) or out.dtype != vectors.dtype or out.device != vectors.device:
        raise ValueError(f"out must be a {vectors.dtype} tensor of shape {(p, k, 3)} on {vectors.device}, got {out.dtype} {tuple(out.shape)}")
    with torch.no_grad():
        return _features_and_pair_gradients(vectors.detach(), centers, weights, channels, int(n_atoms), n_channels, spline, invariants,
                                            int(chunk_size), bool(compiled), out)


def _atom_aligned_chunks(sorted_centers: torch.Tensor, n_atoms: int, size: int) -> list[tuple[int, int, int, int]]:
    """(first atom, end atom, first pair, end pair) of consecutive atom ranges with about ``size`` pairs each."""
    ends = torch.cumsum(torch.bincount(sorted_centers, minlength=n_atoms), 0).cpu().numpy()
    chunks, a0, p0 = [], 0, 0
    while a0 < n_atoms:
        a1 = max(int(np.searchsorted(ends, p0 + size, side="right")), a0 + 1)
        p1 = int(ends[a1 - 1])
        chunks.append((a0, a1, p0, p1))
        a0, p0 = a1, p1
    return chunks


def _features_and_pair_gradients(
    vectors: torch.Tensor,
    centers: torch.Tensor,
    weights: torch.Tensor,
    channels: torch.Tensor | None,
    n_atoms: int,
    n_channels: int,
    spline: RadialSpline,
    invariants: Invariants,
    chunk_size: int,
    compiled: bool,
    out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over atom-aligned chunks of centre-sorted pairs: c, B, adjoints and dB of each chunk."""
    is_sorted = vectors.shape[0] < 2 or bool((centers[1:] >= centers[:-1]).all())
    order = None if is_sorted else torch.argsort(centers, stable=True)

    def sort(x: torch.Tensor | None) -> torch.Tensor | None:
        return x if x is None or order is None else x.index_select(0, order)

    vectors, centers, weights, channels = sort(vectors), sort(centers), sort(weights), sort(channels)
    kernel = _kernel(_gradient_chunk, compiled)
    features = vectors.new_zeros((n_atoms, invariants.n_features))
    for a0, a1, p0, p1 in _atom_aligned_chunks(centers, n_atoms, chunk_size):
        if p1 == p0:
            continue  # atoms without neighbours: B = 0, no pairs
        part = slice(p0, p1)
        target = out[part] if order is None else out.new_empty((p1 - p0,) + out.shape[1:])
        features[a0:a1] = kernel(vectors[part], weights[part], channels[part] if channels is not None else None, centers[part] - a0, a1 - a0,
                                 n_channels, spline, invariants, target)
        if order is not None:
            out.index_copy_(0, order[part], target)
    return features, out


# ---------------------------------------------------------------------------- the module


@dataclass(frozen=True)
class PairGradients:
    """Derivatives of the descriptors in pair form (numpy, float64).

    Attributes:
        values: (P, K, 3) dB[i[p]] / dr_p, r_p = x_j - x_i (+ shift), 1/Angstrom times the unit of B.
        i: (P,) centre atom of each pair (index in the concatenated batch).
        j: (P,) neighbour atom.
        vectors: (P, 3) r_p, Angstrom.
        structure: (P,) index of the structure each pair belongs to.
    """

    values: np.ndarray
    i: np.ndarray
    j: np.ndarray
    vectors: np.ndarray
    structure: np.ndarray

    def position_gradient(self, n_atoms: int) -> np.ndarray:
        """(n_atoms, K, 3): d(sum_i B_i) / dx_a, summed over centres (force rows of a linear model)."""
        values = torch.from_numpy(self.values)
        out = torch.zeros((n_atoms,) + values.shape[1:], dtype=values.dtype)
        out.index_add_(0, torch.from_numpy(self.j), values).index_add_(0, torch.from_numpy(self.i), -values)
        return out.numpy()

    def virial(self, n_structures: int) -> np.ndarray:
        """(n_structures, K, 3, 3): W_k = -sum_p r_p (x) dB[p, k] per structure (stress rows: -W / V)."""
        values = torch.from_numpy(self.values)
        outer = -torch.einsum("pa,pkb->pkab", torch.from_numpy(self.vectors), values)
        out = torch.zeros((n_structures,) + outer.shape[1:], dtype=values.dtype)
        return out.index_add_(0, torch.from_numpy(self.structure), outer).numpy()


def _tables(basis: RadialBasis) -> RadialSpline:
    key = tuple(sorted(basis.to_dict().items()))
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = tabulate(basis)
    spline = _TABLE_CACHE[key]
    return RadialSpline(spline.coefficients.clone(), spline.spacing, spline.rcut, spline.nmax, spline.lmax, spline.error)


_TABLE_CACHE: dict[tuple, RadialSpline] = {}


class SO3(torch.nn.Module):
    """SO(3) power-spectrum or bispectrum descriptors (a thin module around :func:`so3_descriptors`).

    Args:
        rcut: cutoff r_c, Angstrom (> 0).
        nmax: radial functions per l (>= 1).
        lmax: largest angular order (>= 1).
        alpha: Gaussian smearing exponent in 1/Angstrom^2 (``basis="lammps"`` only, > 0).
        basis: "lammps" (exactly LAMMPS ML-IAP ``descriptor so3``) or "bessel" (spherical Bessel
            functions with a cosine cutoff), see :mod:`hybridpot.descriptors.radial`.
        kind: "power" (LAMMPS column order and normalisation) or "bispectrum".
        elements: chemical symbols this descriptor accepts (order = LAMMPS ``elems``).
        weights: neighbour weight per element (LAMMPS ``welems``); default 1 for every element.
        element_channels: one density per neighbour element (``basis="bessel"`` only); then
            nu = len(elements) * nmax radial channels enter the invariants.
        chunk_size: pairs processed at once (default: :func:`default_chunk_size`).
        compile: run the per-pair kernels through ``torch.compile`` (faster, see benchmarks/descriptors.py; the
            first evaluation per parameter set compiles for 10-30 s and needs a C++ compiler).
        backend: "torch" (default) or "julia": the Julia kernels of ``julia/HybridPotKernels``
            through juliacall (:mod:`hybridpot.backends.julia`; power spectrum, values and first
            derivatives, no pair form). Raises :class:`~hybridpot.backends.julia.JuliaUnavailable`
            naming what is missing where Julia, juliacall or the package is absent.
            ``chunk_size``, ``compile`` and ``backend`` are execution options, not part of :meth:`to_dict`.

    Attributes:
        n_features: K, the number of columns.
        cutoff: r_c (the pair distance the neighbour list must cover).
        radial_basis: the exact radial functions (:class:`RadialBasis`).
        radial: their :class:`RadialSpline` table; ``invariants``: the contraction.
    """

    def __init__(
        self,
        rcut: float,
        nmax: int,
        lmax: int,
        alpha: float | None = None,
        basis: str = "lammps",
        kind: str = "power",
        elements: Sequence[str] = ("Cu",),
        weights: dict[str, float] | None = None,
        element_channels: bool = False,
        chunk_size: int | None = None,
        compile: bool = False,
        backend: str = "torch",
    ) -> None:
        super().__init__()
        self.backend = _check_backend(backend, kind, compile)
        self.radial_basis = radial_basis(basis, rcut, nmax, lmax, alpha)
        self.kind = kind
        self.elements = _check_elements(elements)
        self.weights = _check_weights(weights, self.elements)
        if element_channels and basis != "bessel":
            raise HybridpotError("element_channels=True needs basis='bessel' (LAMMPS so3 has one density with element weights)")
        self.element_channels = bool(element_channels)
        if not (chunk_size is None or (isinstance(chunk_size, int) and chunk_size >= 1)):
            raise HybridpotError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.compiled = bool(compile)
        n_channels = len(self.elements) if self.element_channels else 1
        self.radial = _tables(self.radial_basis)
        self.invariants = invariants(kind, n_channels * self.radial_basis.nmax, self.radial_basis.lmax)
        self.chunk_size = default_chunk_size(self.invariants.n_radial, self.lmax) if chunk_size is None else chunk_size
        weight_table = torch.zeros(len(chemical_symbols), dtype=torch.float64)
        type_table = torch.full((len(chemical_symbols),), -1, dtype=torch.int64)
        for t, symbol in enumerate(self.elements):
            weight_table[atomic_numbers[symbol]] = self.weights[symbol]
            type_table[atomic_numbers[symbol]] = t
        self.register_buffer("_weight_table", weight_table, persistent=False)
        self.register_buffer("_type_table", type_table, persistent=False)

    # hyper-parameters ------------------------------------------------------------------
    @property
    def rcut(self) -> float:
        return self.radial_basis.rcut

    @property
    def cutoff(self) -> float:
        return self.radial_basis.rcut

    @property
    def nmax(self) -> int:
        return self.radial_basis.nmax

    @property
    def lmax(self) -> int:
        return self.radial_basis.lmax

    @property
    def alpha(self) -> float | None:
        return getattr(self.radial_basis, "alpha", None)

    @property
    def n_features(self) -> int:
        return self.invariants.n_features

    def to_dict(self) -> dict:
        """Hyper-parameters as plain data; :meth:`from_dict` rebuilds an identical descriptor."""
        return {
            "type": "so3",
            **self.radial_basis.to_dict(),
            "kind": self.kind,
            "elements": list(self.elements),
            "weights": dict(self.weights),
            "element_channels": self.element_channels,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SO3":
        """Rebuild from :meth:`to_dict` output."""
        data = dict(data)
        if data.pop("type", "so3") != "so3":
            raise HybridpotError(f"not an so3 descriptor: {data}")
        allowed = {"rcut", "nmax", "lmax", "alpha", "basis", "kind", "elements", "weights", "element_channels"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise HybridpotError(f"unknown so3 descriptor key(s) {unknown}")
        return cls(**data)

    def check_lammps_exportable(self, min_distance: float = LAMMPS_EXPORT_MIN_DISTANCE) -> None:
        """Raise :class:`HybridpotError` unless LAMMPS ``descriptor so3`` computes exactly this descriptor accurately.

        Needs basis "lammps", kind "power", no element channels, integer weights (some LAMMPS
        versions truncate ``welems`` to integers), nmax <= 5 and a stable recurrence for i_l
        (:meth:`LammpsRadialBasis.check_lammps_exportable`; ``min_distance`` in Angstrom).
        """
        if not isinstance(self.radial_basis, LammpsRadialBasis):
            raise HybridpotError("only basis='lammps' descriptors exist in LAMMPS (descriptor so3); this one is 'bessel'")
        if self.kind != "power":
            raise HybridpotError(f"LAMMPS descriptor so3 computes the power spectrum only, not {self.kind!r}")
        fractional = {e: w for e, w in self.weights.items() if float(w) != int(w)}
        if fractional:
            raise HybridpotError(f"LAMMPS so3 weights (welems) must be integers to be portable across LAMMPS versions: {fractional}")
        self.radial_basis.check_lammps_exportable(min_distance)

    # evaluation -------------------------------------------------------------------------
    def _types(self, graph: PairGraph) -> torch.Tensor:
        """(N,) element index of every atom; raises for elements the descriptor does not cover."""
        types = self._type_table[graph.numbers]
        if bool((types < 0).any()):
            missing = sorted({chemical_symbols[int(z)] for z in graph.numbers[types < 0].tolist()})
            bad = graph.batch[types < 0].unique().tolist()
            raise StructureError(
                f"structure(s) {bad}: element(s) {', '.join(missing)} not covered by the so3 descriptor "
                f"(elements {', '.join(self.elements)})"
            )
        return types

    def _pair_inputs(self, graph: PairGraph, atoms: torch.Tensor, types: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weights and channels (None without element channels) of the given atoms as pair neighbours
        (``types``: :meth:`_types` of the graph, if already checked)."""
        types = self._types(graph) if types is None else types
        return self._weight_table[graph.numbers[atoms]], types[atoms] if self.element_channels else None

    def forward(self, graph: PairGraph) -> torch.Tensor:
        """(N, K) descriptors of the graph's atoms, differentiable w.r.t. ``graph.vectors``.

        Computed from one direction of every pair (:meth:`PairGraph.one_direction`) with the
        reverse as the mirror (see :func:`so3_descriptors`): the same numbers as the full list
        (to rounding) for about half the work; pairs of the other direction get zero gradient.
        With ``backend="julia"`` the full list goes to the Julia kernels (differentiable once).
        """
        if self.backend == "julia":
            return self._julia_features(graph, graph.vectors)
        half = graph.one_direction()
        i, j, types = graph.i[half], graph.j[half], self._types(graph)
        weights, channels = self._pair_inputs(graph, j, types)
        mirror = Mirror(j, *self._pair_inputs(graph, i, types))
        return so3_descriptors(graph.vectors.index_select(0, half), i, weights, channels, graph.n_atoms, self.radial, self.invariants,
                               chunk_size=self.chunk_size, compiled=self.compiled, mirror=mirror)

    def pair_form(self, graph: PairGraph, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B (N, K), dB (P, K, 3)) of the graph's atoms and pairs, dB in pair form (no autograd),
        written into ``out`` if given (see :func:`so3_descriptors`)."""
        self._torch_only("pair-form derivatives (pair_form, compute(..., gradients=True))")
        weights, channels = self._pair_inputs(graph, graph.j)
        return so3_descriptors(graph.vectors.detach(), graph.i, weights, channels, graph.n_atoms, self.radial, self.invariants,
                               gradients=True, chunk_size=self.chunk_size, out=out, compiled=self.compiled)

    def _julia_features(self, graph: PairGraph, vectors: torch.Tensor) -> torch.Tensor:
        """(N, K) power spectrum of the full pair list by the Julia kernels (:mod:`hybridpot.backends.julia`)."""
        weights, channels = self._pair_inputs(graph, graph.j)
        return so3_power_spectrum(vectors, graph.i, weights, channels, graph.n_atoms, self.invariants.n_radial // self.nmax, self.radial)

    def _torch_only(self, what: str) -> None:
        if self.backend != "torch":
            raise HybridpotError(f"{what} are not implemented in the {self.backend} backend; use SO3(..., backend='torch')")

    def compute(self, atoms: Atoms | Sequence[Atoms] | AtomicSystem, gradients: bool = False) -> np.ndarray | tuple[np.ndarray, PairGradients]:
        """Descriptors (and pair-form derivatives) of one or more structures, as numpy float64.

        Returns:
            B (N_total, K), atoms of all structures concatenated; with ``gradients=True`` also a
            :class:`PairGradients` (see :func:`so3_descriptors` for the pair form).
        """
        device = self._weight_table.device  # where the module lives (SO3.to("cuda") computes on the GPU)
        system = atoms if isinstance(atoms, AtomicSystem) else AtomicSystem.from_atoms(atoms, dtype=torch.float64, device=device)
        graph = build_graph(system, self.rcut)  # pairs ordered by centre: contiguous pair-form output
        if gradients:
            self._torch_only("pair-form derivatives (pair_form, compute(..., gradients=True))")
        if self.backend == "julia":
            with torch.no_grad():
                return self._julia_features(graph, graph.vectors.detach()).cpu().double().numpy()
        weights, channels = self._pair_inputs(graph, graph.j)
        args = (graph.vectors.detach(), graph.i, weights, channels, graph.n_atoms, self.radial, self.invariants)
        if not gradients:
            with torch.no_grad():
                return so3_descriptors(*args, chunk_size=self.chunk_size, compiled=self.compiled).cpu().double().numpy()
        p, k = graph.vectors.shape[0], self.n_features
        on_cpu = graph.vectors.device.type == "cpu" and graph.vectors.dtype == torch.float64
        # numpy allocates large arrays with transparent huge pages: far fewer page faults than torch
        out = torch.from_numpy(np.empty((p, k, 3))) if on_cpu else None
        features, d = so3_descriptors(*args, gradients=True, chunk_size=self.chunk_size, out=out, compiled=self.compiled)
        return features.cpu().double().numpy(), PairGradients(
            values=d.cpu().double().numpy(),
            i=graph.i.cpu().numpy(),
            j=graph.j.cpu().numpy(),
            vectors=graph.vectors.detach().cpu().double().numpy(),
            structure=graph.batch[graph.i].cpu().numpy(),
        )


def _check_backend(backend: str, kind: str, compile: bool) -> str:
    """The backend name, checked; for "julia", that Julia can run here (without importing juliacall)."""
    if backend not in ("torch", "julia"):
        raise HybridpotError(f"unknown so3 backend {backend!r}; expected 'torch' or 'julia'")
    if backend == "julia":
        if kind != "power":
            raise HybridpotError(f"the Julia backend computes the power spectrum only, not {kind!r}")
        if compile:
            raise HybridpotError("compile=True applies to the torch backend, not to backend='julia'")
        require_julia()
    return backend


def _check_elements(elements: Sequence[str]) -> list[str]:
    if isinstance(elements, str):
        elements = [elements]
    elements = list(elements)
    if not elements:
        raise HybridpotError("elements must list at least one chemical symbol")
    unknown = [e for e in elements if e not in atomic_numbers]
    if unknown:
        raise HybridpotError(f"unknown chemical symbol(s) {unknown}")
    if len(set(elements)) != len(elements):
        raise HybridpotError(f"elements listed twice: {elements}")
    return elements


def _check_weights(weights: dict[str, float] | None, elements: list[str]) -> dict[str, float]:
    if weights is None:
        return {e: 1.0 for e in elements}
    missing = [e for e in elements if e not in weights]
    extra = [e for e in weights if e not in elements]
    if missing:
        raise HybridpotError(f"weights missing for element(s) {missing} (weights given for {sorted(weights)})")
    if extra:
        raise HybridpotError(f"weights given for element(s) {extra} not in elements {elements}")
    out = {}
    for e in elements:
        w = weights[e]
        if not (isinstance(w, (int, float)) and np.isfinite(w)):
            raise HybridpotError(f"weight of {e} must be a finite number, got {w!r}")
        out[e] = float(w)
    return out


@dataclasses.dataclass
class SO3Settings(Settings):
    """The keys of ``[descriptor] type = "so3"`` (the default type)."""

    basis: str = option("lammps", "radial basis: 'lammps' (LAMMPS so3, exportable to ML-IAP) or 'bessel'")
    kind: str = option("power", "'power' (power spectrum) or 'bispectrum'")
    rcut: float = option(5.0, "cutoff, Angstrom")
    nmax: int = option(4, "radial functions")
    lmax: int = option(4, "largest angular momentum")
    alpha: float | None = option(None, "Gaussian smearing of the lammps basis, 1/Angstrom^2 "
                                       "(default 2.0; not for bessel)")
    weights: dict | None = option(None, "neighbour weight per element (default 1 each)")
    channels: bool = option(False, "one density channel per element instead of weighted sums")

    def check_values(self, where: str) -> None:
        """Also sets the lammps basis's default alpha (2.0)."""
        if self.basis not in ("lammps", "bessel"):
            raise ConfigError(f"{where} basis = {self.basis!r}: expected 'lammps' or 'bessel'")
        if self.kind not in ("power", "bispectrum"):
            raise ConfigError(f"{where} kind = {self.kind!r}: expected 'power' or 'bispectrum'")
        if self.basis == "lammps" and self.alpha is None:
            self.alpha = 2.0
        if self.basis == "bessel" and self.alpha is not None:
            raise ConfigError(f"{where} alpha = {self.alpha}: only basis = 'lammps' has alpha (Gaussian smearing); remove it for 'bessel'")
        for key in ("rcut", "alpha"):
            if getattr(self, key) is not None and not getattr(self, key) > 0:
                raise ConfigError(f"{where} {key} = {getattr(self, key)}: must be positive")
        for key in ("nmax", "lmax"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where} {key} = {getattr(self, key)}: too small (at least 1)")
        if self.basis == "lammps" and self.alpha > max_lammps_alpha(self.rcut):
            raise ConfigError(f"{where} alpha = {self.alpha} with rcut = {self.rcut}: the Gaussian smearing is too narrow for the "
                              f"radial quadrature (more than {LAMMPS_MAX_PANELS} Gaussian widths across the cutoff, where building "
                              f"the basis takes many seconds); use alpha <= {max_lammps_alpha(self.rcut):.4g} at this rcut (typical: 1-5)")
        if self.basis == "lammps" and self.nmax > LAMMPS_MAX_NMAX:
            raise ConfigError(f"{where} nmax = {self.nmax}: basis = 'lammps' is limited to nmax <= {LAMMPS_MAX_NMAX} (its polynomial "
                              "overlap matrix cannot be orthonormalised accurately beyond); lower nmax or use basis = 'bessel'")


def from_settings(settings: SO3Settings, elements: list[str]) -> SO3:
    """The SO(3) descriptor of ``settings`` for ``elements``.

    Raises:
        ConfigError: ``weights`` without an entry for one of the elements.
    """
    weights = settings.weights or {e: 1.0 for e in elements}
    missing = [e for e in elements if e not in weights]
    if missing:
        raise ConfigError(f"[descriptor] weights has no entry for {missing}")
    return SO3(rcut=float(settings.rcut), nmax=settings.nmax, lmax=settings.lmax,
               alpha=None if settings.alpha is None else float(settings.alpha), basis=settings.basis, kind=settings.kind,
               elements=elements, weights={e: float(weights[e]) for e in elements}, element_channels=settings.channels)


#: registry entry (:mod:`hybridpot.registry`)
SO3_TYPE = DescriptorType("so3", SO3Settings, from_settings, SO3.from_dict,
                          summary="SO(3) power spectrum or bispectrum on the LAMMPS or the Bessel radial basis")
