"""Potentials: modules mapping a pair graph to per-atom energies, and the one evaluation path.

Every potential in hybridpot (empirical, ML residual, hybrid) is a :class:`Potential`: a
``torch.nn.Module`` whose ``forward(graph)`` returns per-atom energies (eV, shape (N,)) from the
pair vectors of a :class:`~hybridpot.neighbors.PairGraph`. :func:`evaluate` turns that into
energies, forces and stress with one backward pass with respect to the pair vectors:

* forces  F_a = -dE/dx_a = sum_{p: i_p = a} g_p - sum_{p: j_p = a} g_p,   g_p = dE/dr_p
* virial  W = -sum_p r_p (x) g_p (as LAMMPS);  stress sigma = -W / V (ASE sign: positive = tensile;
  the LAMMPS pressure tensor's potential part is -sigma)

A potential evaluated by another engine (a LAMMPS pair style run by the LAMMPS library: an
:attr:`Potential.external` potential) cannot go through autograd. It hands :func:`evaluate` its
energies, forces and virial as :class:`ExternalTerms` (:meth:`Potential.external_terms`), which are
added to the autograd part (constants for autograd: the residual of a hybrid keeps its graph, for
training on forces with ``create_graph``). A :class:`HybridPotential` with an external baseline
passes the baseline's terms on, so every caller of :func:`evaluate` (``compute``, the ASE calculator,
the data-set predictions) gets the whole hybrid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

from hybridpot.errors import StructureError, UncertaintyDataError
from hybridpot.neighbors import NeighborList, PairGraph, build_graph
from hybridpot.system import AtomicSystem

#: ASE Voigt order of the 6-component stress: xx, yy, zz, yz, xz, xy.
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
#: position in the Voigt vector of each (a, b) component of a symmetric 3x3 tensor
_VOIGT_INDEX = np.array([[0, 5, 4], [5, 1, 3], [4, 3, 2]])


def voigt_to_matrix(v: np.ndarray) -> np.ndarray:
    """(..., 6) ASE Voigt vectors -> (..., 3, 3) symmetric tensors."""
    return np.asarray(v)[..., _VOIGT_INDEX]


def matrix_to_voigt(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) tensors -> (..., 6) ASE Voigt vectors (xx, yy, zz, yz, xz, xy)."""
    m = np.asarray(m)
    return np.stack([m[..., a, b] for a, b in VOIGT], axis=-1)


@dataclass
class ExternalTerms:
    """Energies, forces and virials of a batch computed by another engine (no autograd graph).

    Attributes:
        energies: (N,) per-atom energies, eV.
        forces: (N, 3) eV/Angstrom.
        virial: (S, 3, 3) eV, W as LAMMPS (W = sum r (x) f; the stress is -W / V).
    """

    energies: torch.Tensor
    forces: torch.Tensor
    virial: torch.Tensor


class Potential(torch.nn.Module):
    """Base class: per-atom energies from pair vectors.

    Subclasses set ``self.cutoff`` (Angstrom, the largest pair distance they look at),
    ``self.elements`` (chemical symbols they accept, in the order of their type index, or None for
    any) and ``self.source`` (file or description, used in error messages), and implement
    :meth:`forward`.

    A potential computed by another engine sets :attr:`external` and implements
    :meth:`external_terms` instead: its ``forward`` gives zeros and its ``cutoff`` is 0 (hybridpot
    builds no neighbour list for it).
    """

    cutoff: float
    elements: list[str] | None
    source: str
    #: evaluated by another engine through :meth:`external_terms` (no pair-vector part)
    external: bool = False

    def __init__(self, cutoff: float, elements: Sequence[str] | None, source: str = "") -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.elements = list(elements) if elements is not None else None
        self.source = source
        table = torch.full((len(chemical_symbols),), -1, dtype=torch.int64)
        for t, symbol in enumerate(self.elements or []):
            if symbol not in atomic_numbers:
                raise ValueError(f"{source}: unknown chemical symbol {symbol!r}")
            table[atomic_numbers[symbol]] = t
        self.register_buffer("_type_table", table, persistent=False)

    def types(self, numbers: torch.Tensor) -> torch.Tensor:
        """(N,) type index (position in ``self.elements``) of each atom.

        Raises:
            StructureError: an element the potential does not cover.
        """
        t = self._type_table[numbers]
        if bool((t < 0).any()):
            missing = sorted({chemical_symbols[int(z)] for z in numbers[t < 0].tolist()})
            raise StructureError(
                f"element(s) {', '.join(missing)} not covered by {self.source or type(self).__name__} "
                f"(it has {', '.join(self.elements or [])})"
            )
        return t

    def forward(self, graph: PairGraph) -> torch.Tensor:  # pragma: no cover - abstract
        """(N,) per-atom energies in eV."""
        raise NotImplementedError

    def external_terms(self, system: AtomicSystem) -> ExternalTerms | None:
        """What another engine adds to this potential's autograd part for ``system`` (None: nothing).

        :func:`evaluate` adds them to the energies, forces and virial it computes from :meth:`forward`.
        """
        return None

    def compute(
        self, atoms: Atoms | Sequence[Atoms] | AtomicSystem, forces: bool = True, stress: bool = True
    ) -> dict[str, torch.Tensor]:
        """Energies, forces and stress of one or more structures; see :func:`evaluate`."""
        system = atoms if isinstance(atoms, AtomicSystem) else AtomicSystem.from_atoms(atoms, dtype=self.dtype)
        return evaluate(self, system, forces=forces, stress=stress)

    @property
    def dtype(self) -> torch.dtype:
        for p in self.parameters():
            return p.dtype
        return torch.float64


def evaluate(
    potential: torch.nn.Module,
    system: AtomicSystem,
    forces: bool = True,
    stress: bool = True,
    nl: NeighborList | None = None,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """Evaluate a per-atom-energy module on a batch.

    Args:
        potential: module with a ``cutoff`` attribute mapping a PairGraph to (N,) energies (eV); a
            :class:`Potential`'s :meth:`~Potential.external_terms` are added (an :attr:`~Potential.external`
            potential has nothing else: no neighbour list is built for it).
        system: the structures.
        forces, stress: whether to compute them.
        nl: a neighbour list to reuse (its cutoff must be >= the potential's cutoff).
        create_graph: keep the autograd graph of forces/stress (to train on them; external terms are
            constants of that graph).

    Returns:
        dict with ``energies`` (N,) eV per atom, ``energy`` (S,) eV, and if asked ``forces`` (N, 3)
        eV/Angstrom, ``virial`` (S, 3, 3) eV (W = -sum_p r_p (x) dE/dr_p, the LAMMPS virial, defined
        with or without a cell) and ``stress`` (S, 6) eV/Angstrom^3 in ASE Voigt order, -W/V (NaN
        for structures without a cell).
    """
    if nl is not None and nl.cutoff < potential.cutoff:
        raise ValueError(f"neighbour list cutoff {nl.cutoff} is smaller than the potential's {potential.cutoff}")
    is_potential = isinstance(potential, Potential)
    external = potential.external_terms(system) if is_potential else None
    need_grad = forces or stress
    if is_potential and potential.external:
        if external is None:
            raise ValueError(f"{potential.source or type(potential).__name__}: an external potential gave no external terms")
        energies, f, w = external.energies, external.forces, external.virial
    else:
        graph = build_graph(system, potential.cutoff, nl)
        if need_grad:
            graph.vectors = graph.vectors.detach().requires_grad_(True)
        graph = graph.within(potential.cutoff)
        energies = potential(graph)
        f = w = None
        if need_grad:
            vectors = graph.vectors
            (g,) = torch.autograd.grad(energies.sum(), vectors, create_graph=create_graph, allow_unused=True)
            if g is None:
                g = torch.zeros_like(vectors)
            if forces:
                f = torch.zeros((system.n_atoms, 3), dtype=g.dtype, device=g.device)
                f = f.index_add(0, graph.i, g).index_add(0, graph.j, -g)
            if stress:
                w = torch.zeros((system.n_structures, 3, 3), dtype=g.dtype, device=g.device)
                w = w.index_add(0, graph.batch[graph.i], vectors.unsqueeze(2) * g.unsqueeze(1))
                w = -0.5 * (w + w.transpose(1, 2))
        if external is not None:
            energies = energies + external.energies.to(energies)
            f = f + external.forces.to(f) if f is not None else None
            w = w + external.virial.to(w) if w is not None else None
    energy = torch.zeros(system.n_structures, dtype=energies.dtype, device=energies.device)
    energy = energy.index_add(0, system.batch.to(energies.device), energies)
    out = {"energies": energies, "energy": energy}
    if forces:
        out["forces"] = f
    if stress:
        out["virial"] = w
        volume = system.volumes.to(w.dtype)
        volume = torch.where(volume > 1e-10, volume, torch.full_like(volume, float("nan")))
        sigma = -w / volume[:, None, None]
        out["stress"] = torch.stack([sigma[:, a, b] for a, b in VOIGT], dim=1)
    return out


def to_numpy(results: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Detach and convert a results dict to float64 numpy arrays."""
    return {k: v.detach().cpu().to(torch.float64).numpy() for k, v in results.items()}


class HybridPotential(Potential):
    """E = E_baseline + sum_i E_ML(B_i): an empirical baseline plus a residual on descriptors.

    Args:
        baseline: the empirical potential, or None for a pure ML potential.
        descriptor: module with ``rcut`` (Angstrom), ``elements`` and ``forward(graph) -> (N, K)``
            differentiable in the pair vectors.
        model: per-element model with ``elements`` and ``forward(B, types) -> (N,)`` eV.

    The neighbour list is built once with the larger cutoff and each part sees the pairs within
    its own cutoff. The model's per-element constant is the reference energy, so
    ``energy`` is directly comparable to DFT totals. An :attr:`~Potential.external` baseline (computed
    by LAMMPS) is not part of ``forward``: :meth:`external_terms` passes its terms to :func:`evaluate`.
    """

    def __init__(self, baseline: Potential | None, descriptor: torch.nn.Module, model: torch.nn.Module) -> None:
        elements = list(model.elements)
        if list(descriptor.elements) != elements:
            raise ValueError(f"descriptor elements {descriptor.elements} and model elements {elements} differ")
        if baseline is not None and baseline.elements is not None:
            missing = [e for e in elements if e not in baseline.elements]
            if missing:
                raise StructureError(
                    f"element(s) {', '.join(missing)} not in the baseline {baseline.source} (it has {', '.join(baseline.elements)})"
                )
        cutoff = max(float(descriptor.rcut), baseline.cutoff if baseline is not None and not baseline.external else 0.0)
        source = f"hybrid({baseline.source if baseline is not None else 'no baseline'} + {type(model).__name__})"
        super().__init__(cutoff, elements, source)
        self.baseline = baseline
        self.descriptor = descriptor
        self.model = model
        #: optional :class:`hybridpot.fallback.Fallback`: switches the residual off far from the data
        self.fallback = None
        #: optional :class:`hybridpot.uq.UQData` (posterior, MaxVol active set), set by the fit
        self.uq_data = None

    def residual_energies(self, graph: PairGraph) -> torch.Tensor:
        """(N,) ML residual per atom, eV (including the per-element reference energies; with a
        fallback, switched smoothly towards those reference energies where the model extrapolates)."""
        types = self.types(graph.numbers)
        graph = graph.within(float(self.descriptor.rcut))
        B = self.descriptor(graph)
        energies = self.model(B, types)
        if self.fallback is not None:
            energies = self.fallback(energies, B, types, graph, self.model)
        return energies

    def residual(self) -> "HybridPotential":
        """The residual alone (no baseline), sharing this potential's descriptor, model and fallback."""
        part = HybridPotential(None, self.descriptor, self.model)
        part.fallback = self.fallback
        return part

    def uncertainty(self, atoms: Atoms, forces: bool = True, noise: str | None = None) -> dict:
        """Predictive std (energy, per-atom energy, forces) and extrapolation grade gamma of one
        structure; see :func:`hybridpot.uq.uncertainty`.

        Raises:
            UncertaintyDataError: the potential carries no uncertainty data (``uq_data``; set by the fit).
        """
        if self.uq_data is None:
            raise UncertaintyDataError()
        return self.uq_data.uncertainty(self, atoms, forces=forces, noise=noise)

    def forward(self, graph: PairGraph) -> torch.Tensor:
        energies = self.residual_energies(graph)
        if self.baseline is not None and not self.baseline.external:
            energies = energies + self.baseline(graph.within(self.baseline.cutoff))
        return energies

    def external_terms(self, system: AtomicSystem) -> ExternalTerms | None:
        """The baseline's terms where another engine computes it (see :func:`evaluate`), else None."""
        return self.baseline.external_terms(system) if self.baseline is not None else None
