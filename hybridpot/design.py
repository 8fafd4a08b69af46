"""Design-matrix rows of a linear-in-parameters model (:class:`DesignAssembler`).

Per batch of structures (one neighbour list):

* descriptors B (N, K) and their pair-form gradients dB (P, K, 3);
* model feature rows X (N, M) and their pair gradients G (P, M, 3), placed in the parameter
  block of the centre atom's element; then

  energy rows   sum_{i in s} X_i / N_s                          (per-atom energy, eV/atom)
  force rows    F_a = sum_{p: i_p = a} G_p - sum_{p: j_p = a} G_p  (eV/Angstrom)
  virial rows   W_s / N_s = -sum_{p in s} r_p (x) G_p / N_s       (eV/atom; = -stress V / N)

The fit weights and streams these rows (:mod:`hybridpot.fitting.assembly`); the posterior
queries use them unweighted (:mod:`hybridpot.uq.query`).
"""

from __future__ import annotations

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
        pair_budget: bytes of feature gradients (pairs x M x 3) formed at once (at least 1024
            pairs): bounds the memory of quadratic models, whose M is K(K+1)/2 + K + 1; 8 MiB keeps
            linear fits' transient memory small (the 1024-pair floor bounds the loop overhead).
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

    def rows(self, frames, forces: bool = True) -> dict[str, np.ndarray]:
        """Unweighted rows of a batch of structures.

        Args:
            frames: the structures.
            forces: also form the force and virial rows (the costly part: pair gradients).

        Returns:
            dict with ``energy`` (S, T*M) per-atom energy rows, ``atoms`` (N, T*M) the rows of each
            atom's own energy (its features in its element's block), ``descriptors`` (N, K),
            ``types`` (N,), and with ``forces`` also ``forces`` (N, 3, T*M) and ``virial``
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
            # rows are indexed by (atom, element block of the pair's centre): row = atom * T + t
            forces = torch.zeros((N * T, M, 3), dtype=B.dtype)
            virial = torch.zeros((S * T, M, 3, 3), dtype=B.dtype)
            pair_key = graph.batch[graph.i] * T + types[graph.i]
            chunk = max(1024, self.pair_budget // (M * 3 * B.element_size()))
            for lo in range(0, graph.i.shape[0], chunk):
                sl = slice(lo, lo + chunk)
                i, j, t, key = graph.i[sl], graph.j[sl], types[graph.i[sl]], pair_key[sl]
                G = (self.model.pair_feature_gradients(B[i], dB[sl], t) if typed  # (p, M, 3)
                     else self.model.pair_feature_gradients(B[i], dB[sl]))
                forces.index_add_(0, i * T + t, G).index_add_(0, j * T + t, -G)
                # virial W = -sum_p r_p (x) G_p per (structure, block): one contraction per key
                for k in torch.unique(key).tolist():
                    sel = key == k
                    virial[k] -= torch.einsum("pma,pb->mab", G[sel], graph.vectors[sl][sel])
            virial = virial.reshape(S, T, M, 3, 3)
            virial = 0.5 * (virial + virial.transpose(3, 4)) / n_atoms[:, None, None, None, None]
        out["forces"] = forces.reshape(N, T, M, 3).permute(0, 3, 1, 2).reshape(N, 3, T * M).numpy()
        out["virial"] = virial.permute(0, 3, 4, 1, 2).reshape(S, 3, 3, T * M).numpy()
        return out
