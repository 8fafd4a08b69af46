"""Tersoff bond-order potential, as LAMMPS ``pair_style tersoff`` (LAMMPS ``.tersoff`` files).

Every parameter belongs to an ordered element triplet (i, j, k). With r_ij = |x_j - x_i| (Angstrom)
and the directed bond i -> j inside the cutoff R_ijj + D_ijj of the *ijj* entry:

    f_C(r)   = 1 for r < R - D;  1/2 [1 - sin(pi/2 (r - R) / D)] for |r - R| <= D;  0 beyond
    f_R(r)   = A exp(-lambda1 r) f_C(r)                       (ijj entry)       eV
    f_A(r)   = -B exp(-lambda2 r) f_C(r)                      (ijj entry)       eV
    zeta_ij  = sum_{k != j, r_ik < R_ijk + D_ijk} f_C(r_ik) g(theta_ijk) exp(a_ijk)   (ijk entries)
    g(theta) = gamma [1 + c^2/d^2 - c^2 / (d^2 + (h - cos theta_ijk)^2)]
    a_ijk    = (lambda3 (r_ij - r_ik))^m,  m = 3 or 1; exp(a) is 1e30 for a > 69.0776 and 0 for
               a < -69.0776 (LAMMPS's overflow guard; the energy is then flat in a)
    b_ij     = (1 + x^n)^(-1/(2n)),  x = beta zeta_ij             (ijj entry: beta, n)

with LAMMPS's four asymptotic branches of b_ij, thresholds c1 = (2n 1e-16)^(-1/n),
c2 = (2n 1e-8)^(-1/n), c3 = 1/c2, c4 = 1/c1 (all 0 when n = 0):

    x > c1: x^(-1/2);   c2 < x <= c1: (1 - x^(-n)/(2n)) x^(-1/2);
    x < c4: 1;          c4 <= x < c3: 1 - x^n/(2n);        otherwise the full expression.

    E = sum_{pairs {i,j}} f_R(r_ij) + 1/2 sum_{i != j} b_ij f_A(r_ij)

Per-atom energies follow LAMMPS (``compute pe/atom``): each pair's repulsion is split equally
between its two atoms, and the attractive energy 1/2 b_ij f_A(r_ij) of the directed bond i -> j is
also split equally between i and j (so atom i gets 1/4 b_ij f_A + 1/4 b_ji f_A from bond i-j).
LAMMPS evaluates each unordered pair's repulsion once, from the atom chosen by the parity of the
atom IDs (i with ID_i > ID_j when ID_i + ID_j is odd, with ID_i < ID_j when it is even), with that
atom's *ijj* entry. Where the *ijj* and *jii* entries differ in A, lambda1, R or D (as in
``SiC_1989.tersoff`` and ``SiC_1994.tersoff``, to round-off of the published values) the energy
therefore depends on the atom numbering; hybridpot reproduces this with atom ID = 1 + position of
the atom in its structure (as :func:`hybridpot.lammps_run.run_lammps` numbers atoms). For files
whose mixed entries agree (all other files shipped with LAMMPS) the choice makes no difference.

File format (as LAMMPS reads it): ``#`` starts a comment, blank lines are skipped, and each entry
is 17 whitespace-separated values, possibly over several lines::

    element1 element2 element3 m gamma lambda3 c d costheta0(h) n beta lambda2 B R D lambda1 A

Units (LAMMPS ``metal``): A, B in eV; lambda1, lambda2, lambda3 in 1/Angstrom; R, D in Angstrom;
the rest dimensionless.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import torch

from hybridpot.empirical.triplet_file import Triplet, TripletFilePotential, read_entries
from hybridpot.errors import PotentialFileError
from hybridpot.neighbors import PairGraph, pair_triplets
from hybridpot.registry import BaselineType

#: The 14 numbers of an entry, in file order after the three element names.
FIELDS = ("m", "gamma", "lambda3", "c", "d", "h", "n", "beta", "lambda2", "B", "R", "D", "lambda1", "A")
#: Fields that are refittable torch parameters (m, the integer exponent 1 or 3, is a buffer).
PARAMETERS = FIELDS[1:]
#: Values per entry, including the three element names.
#: LAMMPS's guard on the exponent a_ijk: exp(a) is replaced by 1e30 above and 0 below -EXP_GUARD.
EXP_GUARD = 69.0776
#: Parameters LAMMPS requires to be >= 0.
NON_NEGATIVE = ("c", "d", "n", "beta", "lambda2", "B", "R", "D", "lambda1", "A", "gamma")



class Tersoff(TripletFilePotential):
    """Tersoff potential ``pair_style tersoff``; one row of parameters per element triplet.

    Parameters (torch ``Parameter``, float64, shape (n_elements**3,), row ``(a * n + b) * n + c``
    for the triplet ``elements[a], elements[b], elements[c]``): ``gamma``, ``lambda3`` (1/A),
    ``c``, ``d``, ``h`` (costheta0), ``n``, ``beta``, ``lambda2`` (1/A), ``B`` (eV), ``R`` (A),
    ``D`` (A), ``lambda1`` (1/A), ``A`` (eV). A subset is refit by switching ``requires_grad`` off
    for the others. ``m`` (1 or 3 per row) is a buffer.

    Args:
        elements: chemical symbols; type index = position.
        entries: the 14 numbers (``FIELDS`` order) for every ordered triplet of ``elements``.
        source: file or description, used in error messages.
        path: the ``.tersoff`` file holding exactly these parameters (used by :meth:`lammps_pair`).
        lines: line number of each entry in ``source``, for error messages.

    Raises:
        PotentialFileError: a missing triplet or a value LAMMPS rejects.
    """

    style = "tersoff"

    def __init__(
        self,
        elements: Sequence[str],
        entries: Mapping[Triplet, Sequence[float]],
        source: str = "Tersoff",
        path: str | Path | None = None,
        lines: Mapping[Triplet, int] | None = None,
    ) -> None:
        elements = list(elements)
        n_el = len(elements)
        rows = []
        for a in elements:
            for b in elements:
                for c in elements:
                    key = (a, b, c)
                    if key not in entries:
                        raise PotentialFileError(
                            f"{source}: missing entry for {a} {b} {c} (every ordered triplet of "
                            f"{', '.join(elements)} is needed)"
                        )
                    values = [float(v) for v in entries[key]]
                    where = f"{source}: entry {a} {b} {c}" + (f" (line {lines[key]})" if lines and key in lines else "")
                    _check_entry(values, where)
                    rows.append(values)
        table = torch.tensor(rows, dtype=torch.float64)  # (n_el**3, 14)
        cutoff = float((table[:, FIELDS.index("R")] + table[:, FIELDS.index("D")]).max())
        super().__init__(cutoff, elements, source)
        self.register_buffer("m", table[:, 0].clone())
        for f, name in enumerate(FIELDS[1:], start=1):
            setattr(self, name, torch.nn.Parameter(table[:, f].clone()))
        self.n_elements = n_el
        self._remember_file(path)

    def forward(self, graph: PairGraph) -> torch.Tensor:
        """(N,) per-atom energies in eV, split between atoms as LAMMPS ``compute pe/atom`` does."""
        types = self.types(graph.numbers)
        bonds, p, x = self._bond_arguments(graph, types)
        b = _bond_order(x, self.n[p])
        i, j = graph.i[bonds], graph.j[bonds]
        r = graph.distances[bonds]
        fc = _cutoff_function(r, self.R[p], self.D[p])
        repulsive = self.A[p] * torch.exp(-self.lambda1[p] * r) * fc
        attractive = -self.B[p] * torch.exp(-self.lambda2[p] * r) * fc
        # LAMMPS tallies each unordered pair's repulsion once, from one of its two atoms (ID parity)
        local = _local_ids(graph)
        id_i, id_j = local[i], local[j]
        odd = (id_i + id_j) % 2 == 1
        chosen = torch.where(id_i > id_j, odd, ~odd).to(r.dtype)
        weight = torch.where(id_i == id_j, torch.full_like(r, 0.5), chosen)
        e_half = 0.5 * weight * repulsive + 0.25 * b * attractive  # given to i and to j each
        out = torch.zeros(graph.n_atoms, dtype=r.dtype, device=r.device)
        return out.index_add(0, i, e_half).index_add(0, j, e_half)

    def bond_orders(self, graph: PairGraph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Bond orders of the directed bonds of ``graph``.

        Returns:
            (bonds, x, b), each (B,): indices into the pairs of ``graph`` with
            r_ij < R_ijj + D_ijj, x = beta_ijj zeta_ij (which selects LAMMPS's b_ij branch) and
            b_ij (dimensionless).
        """
        bonds, p, x = self._bond_arguments(graph, self.types(graph.numbers))
        return bonds, x, _bond_order(x, self.n[p])

    def _bond_arguments(self, graph: PairGraph, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(bonds, p, x), each (B,): bond pair indices, their ijj rows and beta_ijj zeta_ij."""
        r = graph.distances
        n_el = self.n_elements
        cut = self.R + self.D
        largest = float(cut.detach().max())
        if largest > self.cutoff:
            raise ValueError(
                f"{self.source}: R + D = {largest} A exceeds the potential's cutoff {self.cutoff} A "
                f"(the parameters changed); call update_cutoff()"
            )
        type_ij = types[graph.i] * n_el + types[graph.j]
        row_ijj = type_ij * n_el + types[graph.j]
        bonds = torch.nonzero(r < cut[row_ijj]).squeeze(1)
        p, q = pair_triplets(graph.i, bonds, graph.n_atoms)  # pairs i->j (a bond) and i->k
        t = type_ij[p] * n_el + types[graph.j[q]]  # ijk rows
        inside = r[q] < cut[t]
        p, q, t = p[inside], q[inside], t[inside]
        r_ij, r_ik = r[p], r[q]
        cos = (graph.vectors[p] * graph.vectors[q]).sum(1) / (r_ij * r_ik)
        c2, d2 = self.c[t] ** 2, self.d[t] ** 2
        g = self.gamma[t] * (1.0 + c2 / d2 - c2 / (d2 + (self.h[t] - cos) ** 2))
        a = self.lambda3[t] * (r_ij - r_ik)
        a = torch.where(self.m[t] == 3, a**3, a)
        ex = torch.exp(a.clamp(-EXP_GUARD, EXP_GUARD))
        ex = torch.where(a > EXP_GUARD, torch.full_like(ex, 1e30), torch.where(a < -EXP_GUARD, torch.zeros_like(ex), ex))
        terms = _cutoff_function(r_ik, self.R[t], self.D[t]) * g * ex
        zeta = torch.zeros(r.shape[0], dtype=terms.dtype, device=terms.device).index_add(0, p, terms)
        p_bond = row_ijj[bonds]
        return bonds, p_bond, self.beta[p_bond] * zeta[bonds]

    def update_cutoff(self) -> None:
        """Set the cutoff to the largest R + D (Angstrom), after refitting R or D."""
        self.cutoff = float((self.R + self.D).detach().max())

    def to_text(self) -> str:
        """The current parameters as a LAMMPS ``.tersoff`` file (full double precision, so
        :meth:`read` gives back the same parameters).

        Raises:
            PotentialFileError: a parameter LAMMPS would reject (e.g. after refitting).
        """
        entries = self.entries()
        for (a, b, c), values in entries.items():
            _check_entry(values, f"{self.source}: entry {a} {b} {c}")
        header = [
            f"# Tersoff parameters written by hybridpot (from {self.source})",
            "# UNITS: metal  (A, B in eV; lambda1, lambda2, lambda3 in 1/Angstrom; R, D in Angstrom)",
            "# element1 element2 element3 " + " ".join("costheta0" if f == "h" else f for f in FIELDS),
        ]
        body = [" ".join([a, b, c] + [repr(v) for v in values]) for (a, b, c), values in entries.items()]
        return "\n".join(header + body) + "\n"

    @classmethod
    def read(cls, path: str | Path, elements: Sequence[str] | None = None) -> "Tersoff":
        """Read a LAMMPS ``.tersoff`` file.

        Args:
            path: the file.
            elements: the elements to use (type order); like LAMMPS, only entries whose three
                elements are all among them are used. Default: every element in the file, in order
                of first appearance.

        Raises:
            PotentialFileError: missing file, an entry with the wrong number of values, a
                non-numeric value, a duplicate or missing entry, an illegal value, or an element
                name that is not a chemical symbol.
        """
        path = Path(path)
        if not path.is_file():
            raise PotentialFileError(f"{path}: potential file not found")
        elements, entries, lines = read_entries(path, FIELDS, elements)
        return cls(elements, entries, source=str(path), path=path, lines=lines)

    def _values(self) -> torch.Tensor:
        """(n_elements**3, 14) current parameters, ``FIELDS`` order, detached copy."""
        return torch.stack([self.m] + [getattr(self, name).detach() for name in PARAMETERS], dim=1).cpu().clone()


def _check_entry(values: Sequence[float], where: str) -> None:
    """Raise if LAMMPS would reject an entry (``values`` in ``FIELDS`` order)."""
    v = dict(zip(FIELDS, values))
    negative = [name for name in NON_NEGATIVE if v[name] < 0]
    if negative:
        raise PotentialFileError(
            f"{where}: illegal Tersoff parameter: {', '.join(f'{k} = {v[k]!r}' for k in negative)} < 0"
        )
    if v["D"] > v["R"]:
        raise PotentialFileError(f"{where}: illegal Tersoff parameter: D = {v['D']!r} > R = {v['R']!r}")
    if v["m"] not in (1.0, 3.0):
        raise PotentialFileError(f"{where}: illegal Tersoff parameter: m = {v['m']!r}, must be 1 or 3")


def _cutoff_function(r: torch.Tensor, R: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """Tersoff cutoff f_C(r) (dimensionless), all tensors (T,), r, R, D in Angstrom."""
    width = torch.where(D > 0, D, torch.ones_like(D))  # D = 0: a step at R, no smooth zone
    smooth = 0.5 * (1.0 - torch.sin(0.5 * math.pi * (r - R) / width))
    return torch.where(r < R - D, torch.ones_like(r), torch.where(r > R + D, torch.zeros_like(r), smooth))


def _bond_order(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """b = (1 + x^n)^(-1/(2n)) with LAMMPS's asymptotic branches; x >= 0, n >= 0, shapes (B,).

    Every branch is evaluated on inputs that keep it finite, so gradients (with respect to x and
    n) are those of the branch taken.
    """
    with torch.no_grad():
        positive = n > 0
        n_safe = torch.where(positive, n, torch.ones_like(n))
        zero = torch.zeros_like(n)
        c1 = torch.where(positive, (2.0 * n_safe * 1e-16) ** (-1.0 / n_safe), zero)
        c2 = torch.where(positive, (2.0 * n_safe * 1e-8) ** (-1.0 / n_safe), zero)
        c3 = torch.where(positive, 1.0 / c2, zero)
        c4 = torch.where(positive, 1.0 / c1, zero)
    one = torch.ones_like(x)
    large = x > c2
    tiny = ~large & (x < c4)
    small = ~large & ~tiny & (x < c3)
    full = ~large & ~tiny & ~small
    two_n = 2.0 * torch.where(n > 0, n, torch.ones_like(n))
    xl = torch.where(large, x, one)
    b_large = torch.where(x > c1, xl**-0.5, (1.0 - xl ** (-n) / two_n) * xl**-0.5)
    xs = torch.where(small, x, one)
    b_small = 1.0 - xs**n / two_n
    xf = torch.where(full, x, one)
    b_full = (1.0 + xf**n) ** (-1.0 / (2.0 * n))
    return torch.where(large, b_large, torch.where(tiny, one, torch.where(small, b_small, b_full)))


def _local_ids(graph: PairGraph) -> torch.Tensor:
    """(N,) 1 + position of each atom in its structure (the LAMMPS atom ID run_lammps gives it)."""
    counts = torch.bincount(graph.batch, minlength=graph.n_structures)
    first = torch.cumsum(counts, 0) - counts
    return torch.arange(graph.n_atoms, device=graph.batch.device) - first[graph.batch] + 1


#: registry entry (:mod:`hybridpot.registry`)
TERSOFF = BaselineType("tersoff", (".tersoff",), Tersoff.read, "tersoff", summary="Tersoff bond order")
