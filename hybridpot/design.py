"""Design-matrix rows of a linear-in-parameters model (:class:`DesignAssembler`).

Per batch of structures (one neighbour list):

* descriptors B (N, K) and their pair-form gradients dB (P, K, 3);
* model feature rows X (N, M) and their pair gradients G (P, M, 3), placed in the parameter
  block of the centre atom's element (a model with ``map_gradient_rows`` gives G in a basis it maps linearly to its
  features per element, applied to the sums below: the kernel model's whitening); then

  energy rows   sum_{i in s} X_i / N_s                          (per-atom energy, eV/atom)
  force rows    F_a = sum_{p: i_p = a} G_p - sum_{p: j_p = a} G_p  (eV/Angstrom)
  virial rows   W_s / N_s = -sum_{p in s} r_p (x) G_p / N_s       (eV/atom; = -stress V / N)

For a model whose pair gradients are bilinear in the centre's descriptors and dB
(``summed_gradients``: the quadratic model), G_p = L(dB_p, B_i (x) dB_p) with a fixed linear map L
(``gradient_rows``), the sums over pairs are taken before L, in descriptor space:

  force rows    L(sum_p s_ap dB_p, sum_p s_ap B_{i_p} (x) dB_p)      s_ap = +1 (a = i_p), -1 (a = j_p)
  virial rows   -L(sum_{i in s} V_i, sum_{i in s} B_i (x) V_i)        V_i = sum_{p: i_p = i} dB_p (x) r_p

so nothing of size pairs x M is formed (M = K(K+1)/2 + K + 1 for a quadratic model); the sums
of outer products are batched matrix products over the pairs of each atom.

The fit weights and streams these rows (:mod:`hybridpot.fitting.assembly`); the posterior
queries use them unweighted (:mod:`hybridpot.uq.query`).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from hybridpot.neighbors import build_graph, neighbor_list
from hybridpot.system import AtomicSystem


class DesignAssembler:
    """Builds weighted design-matrix rows of a linear-in-parameters model, batch by batch.

    Args:
        descriptor: module with ``rcut``, ``n_features`` and ``pair_form(graph, out) -> (B (N, K), dB (P, K, 3))``.
        model: a model linear in its parameters (``features``, ``pair_feature_gradients``, ``n_params``,
            ``elements``; :attr:`hybridpot.registry.ModelType.linear`).
        types_of: maps atomic numbers (N,) to the model's type indices (raises on unknown elements).
        pair_budget: bytes of per-pair operands formed at once: the feature gradients (pairs x M x 3,
            at least 1024 pairs) of other models; the padded
            operands and sums of the sums over pairs of ``summed_gradients`` models. 8 MiB keeps the
            transient memory small.
    """

    def __init__(self, descriptor, model, types_of, cutoff: float, pair_budget: int = 8 * 1024**2) -> None:
        self.descriptor = descriptor
        self.model = model
        self.types_of = types_of
        self.cutoff = cutoff
        self.pair_budget = int(pair_budget)
        self.T = len(model.elements)
        self.M = model.n_params
        self._buffer: torch.Tensor | None = None

    def _pair_buffer(self, shape: tuple[int, ...]) -> torch.Tensor:
        """A float64 CPU tensor of ``shape`` for the pair-form derivatives, reused across batches.

        Writing a fresh array of this size (tens of MB per batch) costs as much in page faults
        as computing it; the buffer is allocated once (by numpy: transparent huge pages) and
        grown when a batch needs more.
        """
        n = int(np.prod(shape))
        if self._buffer is None or self._buffer.numel() < n:
            self._buffer = None  # release the old one before allocating
            self._buffer = torch.from_numpy(np.empty(n))
        return self._buffer[:n].view(shape)

    @property
    def n_columns(self) -> int:
        return self.T * self.M

    def column_order(self) -> np.ndarray:
        """Permutation putting the T intercept columns first (they are not penalised)."""
        first = [t * self.M for t in range(self.T)]
        rest = [t * self.M + m for t in range(self.T) for m in range(1, self.M)]
        return np.array(first + rest)

    def rows(self, frames, forces: bool = True, virial: bool = True) -> dict[str, np.ndarray]:
        """Unweighted rows of a batch of structures.

        Args:
            frames: the structures.
            forces: also form the force and virial rows (the costly part: pair gradients).
            virial: with ``forces``, also the virial rows (False where no row of the batch uses them: no stress label
                and no baseline-stress weight; for the quadratic model they cost a fifth of the force rows' time).

        Returns:
            dict with ``energy`` (S, T*M) per-atom energy rows, ``atoms`` (N, T*M) the rows of each
            atom's own energy (its features in its element's block), ``descriptors`` (N, K),
            ``types`` (N,), and with ``forces`` also ``forces`` (N, 3, T*M) and (with ``virial``) ``virial``
            (S, 3, 3, T*M) virial-per-atom rows.
        """
        system = AtomicSystem.from_atoms(frames)
        nl = neighbor_list(system, self.cutoff)
        graph = build_graph(system, self.cutoff, nl).within(self.descriptor.rcut)
        with torch.no_grad():
            if forces:
                on_cpu = graph.vectors.device.type == "cpu" and graph.vectors.dtype == torch.float64
                out = self._pair_buffer((graph.i.shape[0], self.descriptor.n_features, 3)) if on_cpu else None
                B, dB = self.descriptor.pair_form(graph, out=out)
            else:
                B, dB = self.descriptor(graph), None
            types = self.types_of(graph.numbers)
            N, S, T, M = graph.n_atoms, graph.n_structures, self.T, self.M
            n_atoms = torch.bincount(graph.batch, minlength=S).to(B.dtype)
            typed = getattr(self.model, "typed_features", False)  # rows that depend on the atom's element
            X = self.model.features(B, types) if typed else self.model.features(B)
            blockX = torch.zeros((N, T, M), dtype=B.dtype)
            blockX[torch.arange(N), types] = X
            energy = torch.zeros((S, T, M), dtype=B.dtype).index_add_(0, graph.batch, blockX)
            energy = energy / n_atoms[:, None, None]
            out = {
                "energy": energy.reshape(S, T * M).numpy(),
                "atoms": blockX.reshape(N, T * M).numpy(),
                "descriptors": B.numpy(),
                "types": types.numpy(),
            }
            if not forces:
                return out
            if getattr(self.model, "summed_gradients", False):
                forces, W = self._summed_rows(B, dB, graph, types, virial)
            else:
                forces, W = self._pair_rows(B, dB, graph, types, typed, virial)
        out["forces"] = forces.reshape(N, 3, T * M).numpy()
        if virial:
            W = W.reshape(S, T, M, 3, 3)
            W = 0.5 * (W + W.transpose(3, 4)) / n_atoms[:, None, None, None, None]
            out["virial"] = W.permute(0, 3, 4, 1, 2).reshape(S, 3, 3, T * M).numpy()
        return out

    def _pair_rows(self, B: torch.Tensor, dB: torch.Tensor, graph, types: torch.Tensor, typed: bool,
                   virial: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Force rows (N, 3, T, M) and unsymmetrised virial sums (S*T, M, 3, 3; None without ``virial``) from the
        model's pair feature gradients (P, M, 3), formed ``pair_budget`` bytes at a time (any linear model)."""
        N, S, T, M = graph.n_atoms, graph.n_structures, self.T, self.M
        # rows are indexed by (atom, element block of the pair's centre): row = atom * T + t
        forces = torch.zeros((N * T, M, 3), dtype=B.dtype)
        W = torch.zeros((S * T, M, 3, 3), dtype=B.dtype) if virial else None
        pair_key = graph.batch[graph.i] * T + types[graph.i]
        chunk = max(1024, self.pair_budget // (M * 3 * B.element_size()))
        for lo in range(0, graph.i.shape[0], chunk):
            sl = slice(lo, lo + chunk)
            i, j, t, key = graph.i[sl], graph.j[sl], types[graph.i[sl]], pair_key[sl]
            G = (self.model.pair_feature_gradients(B[i], dB[sl], t) if typed  # (p, M, 3)
                 else self.model.pair_feature_gradients(B[i], dB[sl]))
            forces.index_add_(0, i * T + t, G).index_add_(0, j * T + t, G, alpha=-1.0)
            if W is None:
                continue
            # virial W = -sum_p r_p (x) G_p per (structure, block): one contraction per key
            for k in torch.unique(key).tolist():
                sel = key == k
                W[k] -= torch.einsum("pma,pb->mab", G[sel], graph.vectors[sl][sel])
        forces = forces.reshape(N, T, M, 3)
        if hasattr(self.model, "map_gradient_rows"):  # G in a basis the model maps linearly per element, after the sums
            for t in range(T):
                forces[:, t] = self.model.map_gradient_rows(forces[:, t], t)
                if W is not None:
                    Wt = W.view(S, T, M, 9)[:, t]
                    W.view(S, T, M, 9)[:, t] = self.model.map_gradient_rows(Wt, t)
        return forces.permute(0, 3, 1, 2), W

    def _summed_rows(self, B: torch.Tensor, dB: torch.Tensor, graph, types: torch.Tensor,
                     virial: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Force rows (N, 3, T, M) and unsymmetrised virial sums (S*T, M, 3, 3; None without ``virial``) of a model whose pair
        gradients are bilinear in the centre's descriptors and dB (module docstring): sums in descriptor
        space, then the model's ``gradient_rows``, ``pair_budget`` bytes of rows at a time."""
        N, S, T, K = graph.n_atoms, graph.n_structures, self.T, B.shape[1]
        i, j, t_i = graph.i, graph.j, types[graph.i]
        own = torch.arange(N) * T + types  # each atom's row in its own element's block
        # force rows: row = atom * T + element of the pair's centre
        D = torch.zeros((N, K, 3), dtype=B.dtype).index_add_(0, i, dB)  # sum_{p: i_p = a} dB_p
        S1 = torch.zeros((N * T, K, 3), dtype=B.dtype)
        S1[own] = D
        S1.index_add_(0, j * T + t_i, dB, alpha=-1.0)
        forces = torch.empty((N, 3, T, self.M), dtype=B.dtype)
        rows = forces.permute(0, 2, 3, 1)  # (N, T, M, 3) view: row atom * T + t is rows[atom, t]
        # B_a (x) D_a in the own row, minus sum_{p: j_p = a} B_{i_p} (x) dB_p
        owner = torch.full((N * T,), -1, dtype=torch.int64)
        owner[own] = torch.arange(N)
        for lo, hi, sums in _segment_outer(j * T + t_i, B, dB.reshape(-1, 3 * K), N * T, self.pair_budget, left_index=i):
            S2 = sums.reshape(hi - lo, K, K, 3).neg_()
            a = owner[lo:hi]
            has = (a >= 0).nonzero().squeeze(1)
            S2[has] += B[a[has], :, None, None] * D[a[has], None, :, :]
            r = torch.arange(lo, hi)
            rows[r // T, r % T] = self.model.gradient_rows(S1[lo:hi], S2)
        if not virial:
            return forces, None
        # virial sums: -L(sum_{i in (s, t)} V_i, sum_{i in (s, t)} B_i (x) V_i), V_i = sum_{p: i_p = i} dB_p (x) r_p
        V = _segment_outer_sums(i, dB.reshape(-1, K * 3), graph.vectors.to(B.dtype), N, self.pair_budget).reshape(N, K, 9)
        block = graph.batch * T + types
        S1v = torch.zeros((S * T, K, 9), dtype=B.dtype).index_add_(0, block, V)
        S2v = _segment_outer_sums(block, B, V.reshape(N, 9 * K), S * T, self.pair_budget).reshape(S * T, K, K, 9)
        return forces, -self.model.gradient_rows(S1v, S2v).reshape(S * T, self.M, 3, 3)


def _segment_outer(group: torch.Tensor, left: torch.Tensor, right: torch.Tensor, n_groups: int,
                   budget: int, left_index: torch.Tensor | None = None) -> Iterator[tuple[int, int, torch.Tensor]]:
    """Sums of outer products left_p (x) right_p over the items p of each group, a range of groups at a time.

    Groups are padded to their largest size and summed by batched matrix products; a range holds
    as many groups as fit ``budget`` bytes of padded operands and of sums (at least one).

    Args:
        group: (P,) group index of each item (0 <= group < n_groups; any order).
        left, right: (P, a) and (P, b).
        n_groups: G.
        budget: bytes.
        left_index: (P,) rows of ``left`` to use for each item (``left[left_index]``, gathered a chunk at a time).

    Yields:
        (lo, hi, (hi - lo, a, b) sums of the groups lo..hi-1); the ranges cover 0..G in order.
    """
    a, b = left.shape[1], right.shape[1]
    order = torch.argsort(group, stable=True)
    g = group[order]
    counts = torch.bincount(g, minlength=n_groups)
    start = torch.cumsum(counts, 0) - counts
    position = torch.arange(g.numel()) - start[g]  # rank of each item inside its group
    size = left.element_size()
    lo = 0
    while lo < n_groups:
        # the longest range from lo whose padded operands and sums fit the budget (at least one group)
        width = torch.cummax(counts[lo:], 0).values
        cost = torch.arange(1, n_groups - lo + 1) * (width * (a + b) + a * b) * size
        hi = lo + max(1, int(torch.searchsorted(cost, budget, right=True)))
        width = int(width[hi - lo - 1])
        sums = (torch.empty if width else torch.zeros)((hi - lo, a, b), dtype=left.dtype)  # bmm overwrites it
        if width:
            items = slice(int(start[lo]), int(start[hi - 1] + counts[hi - 1]))
            local = g[items] - lo
            L = torch.zeros((hi - lo, width, a), dtype=left.dtype)
            R = torch.zeros((hi - lo, width, b), dtype=left.dtype)
            L[local, position[items]] = left[order[items] if left_index is None else left_index[order[items]]]
            R[local, position[items]] = right[order[items]]
            torch.bmm(L.transpose(1, 2), R, out=sums)
        yield lo, hi, sums
        lo = hi


def _segment_outer_sums(group: torch.Tensor, left: torch.Tensor, right: torch.Tensor, n_groups: int, budget: int) -> torch.Tensor:
    """(G, a, b) sums of :func:`_segment_outer`, all groups at once."""
    out = torch.empty((n_groups, left.shape[1], right.shape[1]), dtype=left.dtype)
    for lo, hi, sums in _segment_outer(group, left, right, n_groups, budget):
        out[lo:hi] = sums
    return out
