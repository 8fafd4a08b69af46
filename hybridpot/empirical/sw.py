"""Stillinger-Weber three-body potential, as LAMMPS ``pair_style sw`` (LAMMPS ``.sw`` files).

Every parameter belongs to an ordered element triplet (i, j, k), i the centre atom. With r = |x_j - x_i|
(Angstrom) and the pair parameters of the *ijj* entry:

    phi2(r_ij)  = A eps [B (sigma / r)^p - (sigma / r)^q] exp(sigma / (r - a sigma))        r < a sigma
    phi3(r_ij, r_ik, theta_jik) = lambda_ijk eps_ijk (cos theta_jik - cos theta0_ijk)^2
                                  exp(gamma_ij sigma_ij / (r_ij - a_ij sigma_ij)) exp(gamma_ik sigma_ik / (r_ik - a_ik sigma_ik))

(lambda, eps and cos theta0 of phi3 from the *ijk* entry; gamma, sigma, a of each exponential from the
*ijj* and *ikk* entries), and

    E = sum_{pairs {i,j}} phi2(r_ij) + sum_i sum_{unordered pairs {j, k} of neighbours of i} phi3

Per-atom energies follow LAMMPS (``compute pe/atom``): phi2 is split equally between i and j, and
phi3 in three equal parts between i, j and k.

LAMMPS takes the pair parameters of i-j from the *ijj* entry of whichever atom it visits first and the
three-body parameters from *ijk* with j, k in neighbour-list order, so a file whose *ijj* and *jii*
pair terms (A eps, B, p, q, sigma, a) or *ijk* and *ikj* three-body terms (lambda eps, cos theta0) differ
gives energies that depend on the atom numbering there (``CdTeZnSeHgS0.sw``, shipped with LAMMPS, whose
lambda eps products agree to the 7 digits printed only). Such files are refused here, and so is ``tol`` > 0 (LAMMPS then shortens the
cutoff to where the energy falls below the tolerance; hybridpot uses the exact cutoff a sigma).

File format: as :mod:`hybridpot.empirical.triplet_file`, 14 values per entry::

    element1 element2 element3 epsilon sigma a lambda gamma costheta0 A B p q tol

Units (LAMMPS ``metal``): epsilon in eV, sigma in Angstrom, the rest dimensionless.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from hybridpot.empirical.triplet_file import Triplet, TripletFilePotential, read_entries
from hybridpot.errors import PotentialFileError
from hybridpot.neighbors import PairGraph, pair_triplets
from hybridpot.registry import BaselineType

#: the values of an entry, in file order
FIELDS = ("epsilon", "sigma", "a", "lambda", "gamma", "costheta0", "A", "B", "p", "q", "tol")
#: the fitted parameters (torch parameters; ``tol`` is checked to be 0 and kept as data)
PARAMETERS = FIELDS[:-1]
#: what LAMMPS's pair term uses, which must agree between the ijj and jii entries
PAIR_TERMS = {"A epsilon": lambda v: v["A"] * v["epsilon"], "B": lambda v: v["B"], "p": lambda v: v["p"], "q": lambda v: v["q"],
              "sigma": lambda v: v["sigma"], "a": lambda v: v["a"]}
#: what LAMMPS's three-body term takes from the ijk entry, which must agree between the ijk and ikj entries
ANGLE_TERMS = {"lambda epsilon": lambda v: v["lambda"] * v["epsilon"], "costheta0": lambda v: v["costheta0"]}


class StillingerWeber(TripletFilePotential):
    """Stillinger-Weber potential ``pair_style sw``; one row of parameters per element triplet.

    Parameters (torch ``Parameter``, float64, shape (n_elements**3,), row ``(a * n + b) * n + c`` for the
    triplet ``elements[a], elements[b], elements[c]``), named as in ``FIELDS`` (``lambda`` is reached with
    ``getattr``); ``[baseline] refit`` names them.

    Args:
        elements: chemical symbols; type index = position.
        entries: the 11 numbers (``FIELDS`` order) of every ordered triplet of ``elements``.
        source: file or description, for error messages.
        path: the ``.sw`` file holding exactly these parameters (used by :meth:`lammps_pair`).

    Raises:
        PotentialFileError: a missing triplet, a value LAMMPS rejects, ``tol`` != 0, or entries whose
            energies would depend on the atom numbering in LAMMPS (module docstring).
    """

    style = "sw"

    def __init__(self, elements: Sequence[str], entries: Mapping[Triplet, Sequence[float]], source: str = "Stillinger-Weber",
                 path: str | Path | None = None) -> None:
        elements = list(elements)
        rows = []
        for key in _triplets_of(elements):
            if key not in entries:
                raise PotentialFileError(f"{source}: missing entry for {' '.join(key)} (every ordered triplet of "
                                         f"{', '.join(elements)} is needed)")
            rows.append(_checked_entry([float(v) for v in entries[key]], f"{source}: entry {' '.join(key)}"))
        _check_symmetric(elements, {k: dict(zip(FIELDS, r)) for k, r in zip(_triplets_of(elements), rows)}, source)
        table = torch.tensor(rows, dtype=torch.float64)
        cut = table[:, FIELDS.index("a")] * table[:, FIELDS.index("sigma")]
        super().__init__(float(cut[_pair_rows(len(elements))].max()), elements, source)
        self.n_elements = len(elements)
        for f, name in enumerate(PARAMETERS):
            setattr(self, name, torch.nn.Parameter(table[:, f].clone()))
        self._remember_file(path)

    def _values(self) -> torch.Tensor:
        """(n_elements**3, 11) current values, ``FIELDS`` order (``tol`` = 0), detached copy."""
        values = [getattr(self, name).detach() for name in PARAMETERS]
        return torch.stack(values + [torch.zeros_like(values[0])], dim=1).cpu().clone()

    def forward(self, graph: PairGraph) -> torch.Tensor:
        """(N,) per-atom energies in eV, split as LAMMPS ``compute pe/atom`` does."""
        types = self.types(graph.numbers)
        n = self.n_elements
        eps, sigma, a, lam, gamma, cos0, A, B, p, q = (getattr(self, name) for name in PARAMETERS)
        cut = a * sigma
        largest = float(cut.detach().max())
        if largest > self.cutoff * (1 + 1e-12):
            raise ValueError(f"{self.source}: a sigma = {largest} A exceeds the potential's cutoff {self.cutoff} A "
                             "(the parameters changed); call update_cutoff()")
        r = graph.distances
        row_ijj = (types[graph.i] * n + types[graph.j]) * n + types[graph.j]
        bonds = torch.nonzero(r < cut[row_ijj]).squeeze(1)
        rb, pb = r[bonds], row_ijj[bonds]
        gap = rb - cut[pb]  # < 0 inside
        s_r = sigma[pb] / rb
        phi2 = A[pb] * eps[pb] * (B[pb] * s_r ** p[pb] - s_r ** q[pb]) * torch.exp(sigma[pb] / gap)
        out = torch.zeros(graph.n_atoms, dtype=r.dtype, device=r.device)
        out = out.index_add(0, graph.i[bonds], 0.5 * phi2)  # each directed pair i -> j: half of phi2 to i
        # three-body: ordered pairs (p, q) of bonds of the same centre, each unordered pair twice
        first, second = pair_triplets(graph.i, bonds, graph.n_atoms)
        second_ok = r[second] < cut[row_ijj[second]]
        first, second = first[second_ok], second[second_ok]
        if first.numel() == 0:
            return out
        i = graph.i[first]
        row_ijk = (types[i] * n + types[graph.j[first]]) * n + types[graph.j[second]]
        r1, r2 = r[first], r[second]
        p1, p2 = row_ijj[first], row_ijj[second]
        cos = (graph.vectors[first] * graph.vectors[second]).sum(1) / (r1 * r2)
        screen = torch.exp(gamma[p1] * sigma[p1] / (r1 - cut[p1]) + gamma[p2] * sigma[p2] / (r2 - cut[p2]))
        phi3 = 0.5 * lam[row_ijk] * eps[row_ijk] * (cos - cos0[row_ijk]) ** 2 * screen  # 0.5: each pair {j, k} twice
        third = phi3 / 3.0
        return out.index_add(0, i, third).index_add(0, graph.j[first], third).index_add(0, graph.j[second], third)

    def update_cutoff(self) -> None:
        """Set the cutoff to the largest pair cutoff a sigma (Angstrom), after refitting a or sigma."""
        self.cutoff = float((self.a * self.sigma).detach()[_pair_rows(self.n_elements)].max())

    def to_text(self) -> str:
        """The current parameters as a LAMMPS ``.sw`` file (full double precision: :meth:`read` gives them back).

        Raises:
            PotentialFileError: parameters LAMMPS would reject or that depend on the atom numbering (after refitting).
        """
        entries = self.entries()
        for key, values in entries.items():
            _checked_entry(values, f"{self.source}: entry {' '.join(key)}")
        _check_symmetric(self.elements, {k: dict(zip(FIELDS, v)) for k, v in entries.items()}, self.source)
        header = [f"# Stillinger-Weber parameters written by hybridpot (from {self.source})",
                  "# UNITS: metal  (epsilon in eV, sigma in Angstrom, the rest dimensionless)",
                  "# element1 element2 element3 " + " ".join(FIELDS)]
        return "\n".join(header + [" ".join(list(k) + [repr(v) for v in values]) for k, values in entries.items()]) + "\n"

    @classmethod
    def read(cls, path: str | Path, elements: Sequence[str] | None = None) -> "StillingerWeber":
        """Read a LAMMPS ``.sw`` file (``elements``: the ones to use, type order; default every element of the file).

        Raises:
            PotentialFileError: see :func:`hybridpot.empirical.triplet_file.read_entries` and the class.
        """
        path = Path(path)
        if not path.is_file():
            raise PotentialFileError(f"{path}: potential file not found")
        elements, entries, _ = read_entries(path, FIELDS, elements)
        return cls(elements, entries, source=str(path), path=path)


def _triplets_of(elements: Sequence[str]) -> list[Triplet]:
    return [(a, b, c) for a in elements for b in elements for c in elements]


def _pair_rows(n: int) -> torch.Tensor:
    """The rows ``(t n + u) n + u`` of the pair (``ijj``) entries of ``n`` elements."""
    return torch.tensor([(t * n + u) * n + u for t in range(n) for u in range(n)])


def _checked_entry(values: list[float], where: str) -> list[float]:
    """``values`` if LAMMPS accepts them and the cutoff is exact (tol = 0), else PotentialFileError."""
    v = dict(zip(FIELDS, values))
    negative = [k for k in FIELDS if k != "costheta0" and v[k] < 0]
    if negative:
        raise PotentialFileError(f"{where}: illegal Stillinger-Weber parameter: {', '.join(f'{k} = {v[k]!r}' for k in negative)} < 0")
    if v["tol"] != 0:
        raise PotentialFileError(f"{where}: tol = {v['tol']!r}: hybridpot evaluates the exact cutoff a sigma (tol = 0); with tol "
                                 "> 0 LAMMPS cuts the interaction off earlier. Set tol to 0 in the file")
    return values


def _check_symmetric(elements: Sequence[str], entries: Mapping[Triplet, Mapping[str, float]], source: str) -> None:
    """Refuse entries whose LAMMPS energies would depend on the atom numbering (module docstring)."""
    for a in elements:
        for b in elements:
            differ = _differences(PAIR_TERMS, entries[(a, b, b)], entries[(b, a, a)])
            if differ:
                raise PotentialFileError(f"{source}: the pair terms of {a} {b} {b} and {b} {a} {a} differ ({differ}); LAMMPS "
                                         "would use either, depending on the atom IDs. Make them equal")
            for c in elements:
                differ = _differences(ANGLE_TERMS, entries[(a, b, c)], entries[(a, c, b)])
                if differ:
                    raise PotentialFileError(f"{source}: the three-body terms of {a} {b} {c} and {a} {c} {b} differ ({differ}); "
                                             "LAMMPS would use either, depending on the neighbour order. Make them equal")


def _differences(terms, first: Mapping[str, float], second: Mapping[str, float]) -> str:
    """The terms that differ between two entries, with their values ('' when none)."""
    return "; ".join(f"{name} {f(first)!r} vs {f(second)!r}" for name, f in terms.items() if f(first) != f(second))


#: registry entry (:mod:`hybridpot.registry`)
SW = BaselineType("sw", (".sw",), StillingerWeber.read, "sw", summary="Stillinger-Weber three-body")
